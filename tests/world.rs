//! The simulated world with a node program of the test's own: a node that panics ends the run
//! as a finding, with its message, and the world steps no further (it never loops on it).
//!
//! Method: build a one-node world whose node panics after a second of simulated time, step it,
//! and assert on the recorded violation (release builds, as every simulation test).

use std::rc::Rc;
use std::time::Duration;

use raftbed::faults::Faults;
use raftbed::server::timing::Timing;
use raftbed::sim::checks::{Checks, Violation};
use raftbed::sim::{NetSpec, NodeHost, NodeProgram, NodeSpec, SimBugs, World, WorldSpec};

struct PanicsAfterASecond;

impl NodeProgram for PanicsAfterASecond {
    fn add_node(&self, sim: &mut turmoil::Sim<'_>, node: NodeHost<'_>) {
        sim.host(node.name, || async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            panic!("the node gave up at one second");
        });
    }

    fn leader(&self, _checks: &Checks) -> Option<usize> {
        None
    }
}

fn spec() -> WorldSpec {
    WorldSpec {
        seed: 1,
        nodes: vec!["n1".into()],
        voters: 1,
        node: NodeSpec {
            timing: Timing::from_ticks(Duration::from_millis(10), 10, 2),
            lease_reads: false,
            pre_vote: true,
            check_quorum: true,
            max_entries_per_message: 64,
            compact_every: 1000,
            request_timeout: Duration::from_secs(1),
            rpc_timeout: Duration::from_millis(100),
            first_leader: None,
            auto_compaction: None,
            peer_transport: raftbed::transport::PeerTransport::Framed,
            bugs: SimBugs::default(),
        },
        net: NetSpec {
            run_for: Duration::from_secs(60),
            max_latency: Duration::from_millis(5),
            repair_rate: 1.0,
        },
        clients: Vec::new(),
        locks: Vec::new(),
        watchers: None,
        watcher_count: 0,
        keep_trace: true,
        sim_net: raftbed::transport::net::SimNet::MESSAGES,
    }
}

#[test]
fn a_node_that_panics_ends_the_run_as_a_finding() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(raftbed::sim::note_panic));
    let mut rng = raftbed::rng::SplitMix64::new(1);
    let mut world = World::build(&spec(), Rc::new(PanicsAfterASecond), &mut rng);
    let mut steps = 0;
    while world.now() < Duration::from_secs(10) && world.step() {
        steps += 1;
    }
    std::panic::set_hook(hook);
    assert!(world.broken(), "the panic broke the world after {steps} steps");
    let at = world.now();
    assert!(at >= Duration::from_secs(1) && at < Duration::from_millis(1100), "stopped at {at:?}");
    assert!(!world.step(), "a broken world steps no further");
    assert_eq!(world.now(), at, "and its time stands still");
    let violations = world.checks().borrow().violations().to_vec();
    assert_eq!(violations.len(), 1, "{violations:?}");
    let Violation::NodeFailed { error, .. } = &violations[0] else {
        panic!("not a node failure: {violations:?}");
    };
    assert!(error.contains("panicked: the node gave up at one second"), "{error}");
}
