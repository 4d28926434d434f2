//! Deterministic simulation: a cluster of real raftbed nodes (the same `server` code) under
//! turmoil, with simulated network, disks and clocks, driven by one seed.
//!
//! A run has two phases:
//! 1. **Safety**: clients run a workload while the nemesis injects faults; every node's `Ready`
//!    is checked against the cluster-wide invariants (`checks.rs`) as it happens, so a
//!    violation stops the run at the step that caused it.
//! 2. **Liveness**: every fault is healed; within a bound, one leader must remain and a fresh
//!    write must commit. Failing that is reported apart from safety.
//!
//! Then every acknowledged write must be in the committed log, and the clients' history must be
//! linearizable (jepsen-lite). Every parameter (timeouts, latencies, fault schedule) derives
//! from the seed, and the same seed gives the same trace, byte for byte.

pub mod checks;
pub mod fencing;
pub(crate) mod harness;
pub mod nemesis;
mod report;
pub mod sweep;
pub mod trace;
pub mod workload;

pub use harness::note_panic;
use harness::{Harness, Probe, sim_now};
pub use report::SimReport;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use checks::Checks;
use jepsen_lite::{CheckOptions, CheckResult, ModelKind, RegisterModel};
use nemesis::{Fault, FaultKind};
use trace::Trace;
use workload::{ClientParams, Shared};

use crate::clock::SimClock;
use crate::raft::NodeId;
use crate::rng::SplitMix64;
use crate::server::{Member, NodeConfig, Observer, run_node};
use crate::storage::WalOptions;
use crate::storage::fs::SimFs;
use crate::transport::net::SimNet;
use crate::transport::peer::TransportConfig;

/// Deliberately broken modes the checks must catch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimBugs {
    /// Acknowledge before the WAL sync (never sync).
    pub skip_fsync: bool,
    /// Do not persist the vote.
    pub forget_vote: bool,
    /// Commit an older term's entry by counting replicas.
    pub commit_old_term: bool,
    /// A leader lease as long as the minimum election timeout (no clock-drift margin).
    pub lease_no_drift_margin: bool,
    /// Followers answer linearizable reads from their own state.
    pub stale_follower_read: bool,
}

/// Every bug's command-line name.
pub const BUG_NAMES: [&str; 5] = [
    "skip-fsync",
    "forget-vote",
    "commit-old-term",
    "lease-no-drift-margin",
    "stale-follower-read",
];

impl SimBugs {
    /// The command-line names of the bugs switched on.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.skip_fsync {
            names.push("skip-fsync");
        }
        if self.forget_vote {
            names.push("forget-vote");
        }
        if self.commit_old_term {
            names.push("commit-old-term");
        }
        if self.lease_no_drift_margin {
            names.push("lease-no-drift-margin");
        }
        if self.stale_follower_read {
            names.push("stale-follower-read");
        }
        names
    }

    /// Switches on a bug by its command-line name.
    pub fn enable(&mut self, name: &str) -> Result<(), String> {
        match name {
            "skip-fsync" => self.skip_fsync = true,
            "forget-vote" => self.forget_vote = true,
            "commit-old-term" => self.commit_old_term = true,
            "lease-no-drift-margin" => self.lease_no_drift_margin = true,
            "stale-follower-read" => self.stale_follower_read = true,
            other => return Err(format!("unknown bug {other} ({})", BUG_NAMES.join(", "))),
        }
        Ok(())
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Everything derives from it.
    pub seed: u64,
    /// Raft nodes.
    pub nodes: usize,
    /// Workload clients.
    pub clients: usize,
    /// Lock clients writing to the fenced resource.
    pub lock_clients: usize,
    /// Length of the safety phase, in simulated time.
    pub duration: Duration,
    /// Fault kinds the nemesis may use.
    pub faults: Vec<FaultKind>,
    /// Bugs to switch on.
    pub bugs: SimBugs,
    /// Keep the trace's lines (for `--trace`).
    pub keep_trace: bool,
    /// Go on after a safety violation instead of stopping at the step that caused it.
    pub keep_going: bool,
    /// How long the healed cluster has to recover.
    pub liveness_bound: Duration,
    /// The peer transport the nodes use.
    pub peer_transport: crate::transport::PeerTransport,
}

impl SimOptions {
    /// Defaults: 5 nodes, 8 clients, 60 s, every fault kind.
    pub fn new(seed: u64) -> SimOptions {
        SimOptions {
            seed,
            nodes: 5,
            clients: 8,
            lock_clients: 2,
            duration: Duration::from_secs(60),
            faults: FaultKind::ALL.to_vec(),
            bugs: SimBugs::default(),
            keep_trace: false,
            keep_going: false,
            liveness_bound: Duration::from_secs(30),
            peer_transport: crate::transport::PeerTransport::Framed,
        }
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        let mut command = format!("raftbed sim --seed {}", self.seed);
        let defaults = SimOptions::new(self.seed);
        if self.nodes != defaults.nodes {
            command += &format!(" --nodes {}", self.nodes);
        }
        if self.clients != defaults.clients {
            command += &format!(" --clients {}", self.clients);
        }
        if self.duration != defaults.duration {
            command += &format!(" --duration {}ms", self.duration.as_millis());
        }
        if self.faults != defaults.faults {
            let names: Vec<&str> = self.faults.iter().map(|f| f.name()).collect();
            command += &format!(
                " --faults {}",
                if names.is_empty() { "none".into() } else { names.join(",") }
            );
        }
        for bug in self.bugs.names() {
            command += &format!(" --bug {bug}");
        }
        if self.keep_going {
            command += " --keep-going";
        }
        if self.peer_transport == crate::transport::PeerTransport::Grpc {
            command += " --peer-transport grpc";
        }
        command
    }
}

/// Timing derived from the seed, so a sweep explores many clusters (swarm testing).
#[derive(Clone, Debug)]
pub struct SimParams {
    /// One Raft tick on a node's clock.
    pub tick: Duration,
    /// Minimum election timeout, in ticks (the maximum is twice it).
    pub election_ticks: u32,
    /// Heartbeat interval, in ticks.
    pub heartbeat_ticks: u32,
    /// Largest one-way network latency.
    pub latency_max: Duration,
    /// Longest client think time.
    pub think_max: Duration,
    /// Entries between snapshots.
    pub compact_every: u64,
    /// Keys in the workload.
    pub keys: u64,
    /// At most this many entries per AppendEntries (small batches widen the windows in which a
    /// new leader hears of old entries before its own).
    pub max_entries_per_message: usize,
    /// Pre-vote (§9.6) on.
    pub pre_vote: bool,
    /// Check-quorum and leader stickiness (§6.2) on.
    pub check_quorum: bool,
    /// Leader-lease reads (§6.4.1) on (they need check-quorum).
    pub lease_reads: bool,
    /// Attempts per client request.
    pub attempts: usize,
}

impl SimParams {
    fn derive(rng: &mut SplitMix64) -> SimParams {
        SimParams {
            tick: Duration::from_millis(10),
            election_ticks: rng.range_inclusive(10, 20),
            heartbeat_ticks: rng.range_inclusive(2, 4),
            latency_max: Duration::from_millis(u64::from(rng.range_inclusive(2, 15))),
            think_max: Duration::from_millis(u64::from(rng.range_inclusive(5, 60))),
            compact_every: u64::from(rng.range_inclusive(100, 1000)),
            keys: u64::from(rng.range_inclusive(2, 6)),
            max_entries_per_message: [1, 4, 16, 64][rng.below(4) as usize],
            pre_vote: rng.chance(0.75),
            check_quorum: rng.chance(0.75),
            lease_reads: rng.chance(0.75),
            attempts: rng.range_inclusive(1, 3) as usize,
        }
    }
}

/// One turmoil step: every host runs this much simulated time, then the checks run. Raft ticks
/// are 10 ms; a 5 ms step keeps message delivery finer than a tick and runs a 5-node cluster
/// with 8 clients at over 100x real time (1 ms steps: about 40x).
pub(crate) const SIM_STEP: Duration = Duration::from_millis(5);

pub(crate) const PEER_PORT: u16 = 7000;
pub(crate) const CLIENT_PORT: u16 = 7001;

pub(crate) fn node_config(
    id: NodeId,
    options: &SimOptions,
    params: &SimParams,
    seed: u64,
) -> NodeConfig {
    let members = (1..=options.nodes as u64)
        .map(|n| {
            let host = format!("n{n}");
            let member = Member {
                peer_addr: format!("{host}:{PEER_PORT}"),
                client_addr: format!("{host}:{CLIENT_PORT}"),
            };
            (NodeId(n), member)
        })
        .collect::<BTreeMap<_, _>>();
    let mut raft = crate::raft::Config::new(id, members.keys().copied().collect());
    raft.election_timeout_ticks_min = params.election_ticks;
    raft.election_timeout_ticks_max = 2 * params.election_ticks;
    raft.heartbeat_interval_ticks = params.heartbeat_ticks;
    raft.seed = seed;
    raft.max_entries_per_message = params.max_entries_per_message;
    raft.pre_vote = params.pre_vote;
    raft.check_quorum = params.check_quorum;
    if params.lease_reads || options.bugs.lease_no_drift_margin {
        raft = raft.with_lease_reads();
    }
    if options.bugs.lease_no_drift_margin {
        raft.lease_drift_margin_ticks = 0;
    }
    raft.bugs.commit_old_term = options.bugs.commit_old_term;
    let round_trip = params.latency_max * 2;
    NodeConfig {
        id,
        members,
        raft,
        tick: params.tick,
        transport: TransportConfig {
            rpc_timeout: (round_trip * 4).max(Duration::from_millis(100)),
            idle_timeout: Duration::from_secs(5),
            queue_depth: 1024,
        },
        peer_transport: options.peer_transport,
        wal: WalOptions {
            segment_bytes: 256 << 10,
            sync: !options.bugs.skip_fsync,
            lazy_sync_interval: Duration::from_millis(500),
            // turmoil's files do not preallocate (`AppendFile::preallocate` does nothing).
            preallocate: false,
            persist_vote: !options.bugs.forget_vote,
        },
        data_dir: PathBuf::from("/data"),
        request_timeout: Duration::from_secs(1),
        compact_every: params.compact_every,
        max_batch: 256,
        min_lease_ttl: min_lease_ttl(params),
        bugs: crate::server::ServerBugs { stale_follower_read: options.bugs.stale_follower_read },
        state_at_rest: false,
        live: Default::default(),
        campaign_first: false,
    }
}

/// Adds a host running a raftbed node, restarted from its simulated disk after each crash.
pub(crate) fn raft_host(
    sim: &mut turmoil::Sim<'_>,
    name: &str,
    config: NodeConfig,
    clock: SimClock,
    probe: Rc<dyn Observer>,
) {
    let host = name.to_string();
    sim.host(name, move || {
        let (config, clock, probe, host) =
            (config.clone(), clock.clone(), probe.clone(), host.clone());
        async move {
            run_node(config, SimNet, SimFs, clock, Some(probe))
                .await
                .map_err(|e| format!("{host}: {e}").into())
        }
    });
}

/// Runs `futures` as tasks of the current host, until all finish.
pub(crate) async fn join_local(
    futures: Vec<impl std::future::Future<Output = turmoil::Result> + 'static>,
) -> turmoil::Result {
    let tasks: Vec<_> = futures.into_iter().map(tokio::task::spawn_local).collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// etcd's minimum lease TTL: one and a half of the longest election timeout, in whole seconds.
pub(crate) fn min_lease_ttl(params: &SimParams) -> i64 {
    let election = params.tick * (2 * params.election_ticks);
    (election.as_secs_f64() * 1.5).ceil().max(1.0) as i64
}

/// Runs one simulation.
pub fn run(options: &SimOptions) -> SimReport {
    let wall = Instant::now();
    let mut rng = SplitMix64::new(options.seed);
    let params = SimParams::derive(&mut rng);
    let schedule =
        nemesis::schedule(&mut rng.fork(), &options.faults, options.nodes, options.duration);
    let mut sim = turmoil::Builder::new()
        .simulation_duration(options.duration + options.liveness_bound + Duration::from_secs(60))
        .tick_duration(SIM_STEP)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(params.latency_max)
        .repair_rate(0.5)
        .tcp_capacity(1 << 16)
        .rng_seed(options.seed)
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .build();
    let checks = Rc::new(RefCell::new(Checks::default()));
    let trace = Rc::new(RefCell::new(Trace::new(options.keep_trace)));
    let events = Rc::new(RefCell::new(Vec::new()));
    let nodes: Vec<String> = (1..=options.nodes).map(|n| format!("n{n}")).collect();
    let clocks: Vec<SimClock> =
        (0..options.nodes).map(|_| SimClock::new(Duration::ZERO, Duration::ZERO, 1.0)).collect();
    for (i, name) in nodes.iter().enumerate() {
        let config = node_config(NodeId(i as u64 + 1), options, &params, options.seed);
        let probe: Rc<dyn Observer> =
            Rc::new(Probe { checks: checks.clone(), trace: trace.clone(), events: events.clone() });
        raft_host(&mut sim, name, config, clocks[i].clone(), probe);
    }
    let shared = Rc::new(Shared::default());
    let client_params = ClientParams {
        nodes: nodes.iter().map(|n| format!("{n}:{CLIENT_PORT}")).collect(),
        keys: params.keys,
        think_max: params.think_max,
        timeout: Duration::from_millis(1500),
        attempts: params.attempts,
        processes: (options.clients + options.nodes) as u64,
        lease_reads: if params.lease_reads || options.bugs.lease_no_drift_margin {
            0.5
        } else {
            0.0
        },
        mix: workload::DEFAULT_MIX,
        read_consistency: None,
        spread: true,
    };
    // All workload clients share one simulated host, and the lock clients another: they are
    // never partitioned one by one, and every host costs a runtime polled at every step.
    let mut hosts = nodes.clone();
    let mut clients = Vec::new();
    for c in 0..options.clients + options.nodes {
        let role = if c < options.clients {
            workload::Role::Mixed
        } else {
            workload::Role::Reader(c - options.clients)
        };
        clients.push(workload::run(
            c as u64,
            role,
            client_params.clone(),
            rng.fork(),
            shared.clone(),
            trace.clone(),
        ));
    }
    hosts.push("clients".into());
    sim.client("clients", join_local(clients));
    let fencing = Rc::new(RefCell::new(fencing::FencingLog::default()));
    let lock_stop = Rc::new(Cell::new(false));
    if options.lock_clients > 0 {
        sim.client("resource", fencing::resource(fencing.clone(), trace.clone()));
        let lock_params = fencing::LockParams {
            nodes: client_params.nodes.clone(),
            ttl: min_lease_ttl(&params),
            pause_chance: 0.5,
        };
        let lockers = (0..options.lock_clients)
            .map(|l| {
                fencing::lock_client(
                    l as u64 + 1,
                    lock_params.clone(),
                    rng.fork(),
                    fencing.clone(),
                    trace.clone(),
                    lock_stop.clone(),
                )
            })
            .collect();
        hosts.push("lockers".into());
        sim.client("lockers", join_local(lockers));
    }
    let mut harness =
        Harness::new(sim, nodes, hosts, clocks, checks.clone(), trace.clone(), events, rng.fork());

    let safe = safety_phase(&mut harness, schedule, options.duration, options.keep_going);
    shared.stop.set(true);
    lock_stop.set(true);
    let liveness = if safe {
        liveness_phase(&mut harness, options, &client_params)
    } else {
        Err("not run: safety failed".into())
    };
    let safe = harness.checks.borrow().violations().is_empty();
    if safe {
        for (client, seq, index) in shared.acked.borrow().iter() {
            harness.checks.borrow_mut().check_acked(*client, *seq, *index);
        }
    }
    if let Some((earlier, later)) = fencing.borrow().token_order_violation() {
        harness.checks.borrow_mut().violate(checks::Violation::FencingTokenOrder {
            earlier: (earlier.client, earlier.token, earlier.completed),
            later: (later.client, later.token, later.invoked),
        });
    }
    let history = shared.history.borrow().clone();
    let sim_wall = wall.elapsed();
    // The history is checked even after a safety violation: what the clients saw of it is
    // evidence of its own.
    let linearizability = {
        let check = CheckOptions {
            timeout: Some(Duration::from_secs(60)),
            threads: 1,
            ..CheckOptions::default()
        };
        let result = jepsen_lite::check(&RegisterModel::new(ModelKind::Kv), &history, &check)
            .map(|report| report.result)
            .unwrap_or_else(|e| CheckResult::Unknown(format!("history malformed: {e}")));
        Some(result)
    };
    let fencing = {
        let log = fencing.borrow();
        report::FencingStats {
            grants: log.grants.len(),
            writes: log.writes.len(),
            refused: log.refused(),
            pauses: log.pauses,
        }
    };
    let ops = history.ops().unwrap_or_default();
    let count = |o: jepsen_lite::Outcome| ops.iter().filter(|op| op.outcome == o).count();
    let checks = harness.checks.borrow();
    let trace = harness.trace.borrow();
    SimReport {
        options: options.clone(),
        params,
        ops: (
            ops.len(),
            count(jepsen_lite::Outcome::Ok),
            count(jepsen_lite::Outcome::Fail),
            count(jepsen_lite::Outcome::Indeterminate),
        ),
        leaders: checks.leaders().clone(),
        faults: harness.faults.clone(),
        violations: checks.violations().to_vec(),
        liveness,
        linearizability,
        fencing,
        trace_hash: trace.hash(),
        trace: trace.lines().to_vec(),
        sim_time: harness.sim.elapsed(),
        wall_time: sim_wall,
        check_time: wall.elapsed() - sim_wall,
        history,
    }
}

/// Runs the workload under the fault schedule until `duration`; false if a check failed.
fn safety_phase(
    h: &mut Harness<'_>,
    mut schedule: Vec<Fault>,
    duration: Duration,
    keep_going: bool,
) -> bool {
    schedule.reverse();
    while h.now() < duration {
        let now = h.now();
        while schedule.last().is_some_and(|f| f.start <= now) {
            let fault = schedule.pop().expect("checked");
            let undo = h.start(&fault);
            h.active.push((fault, undo));
        }
        let mut i = 0;
        while i < h.active.len() {
            if h.active[i].0.end <= now {
                let (_, undo) = h.active.remove(i);
                h.undo(undo);
            } else {
                i += 1;
            }
        }
        h.run_timed(false);
        if !h.step() && !keep_going {
            return false;
        }
        h.react();
    }
    h.checks.borrow().violations().is_empty()
}

/// Heals everything, then waits (within the bound) for one leader and a fresh committed write.
fn liveness_phase(
    h: &mut Harness<'_>,
    options: &SimOptions,
    client: &ClientParams,
) -> Result<Duration, String> {
    let healed_at = h.now();
    for (_, undo) in std::mem::take(&mut h.active) {
        h.undo(undo);
    }
    h.chaos = None;
    h.run_timed(true);
    h.record("heal everything".into());
    let committed: Rc<Cell<Option<Duration>>> = Rc::new(Cell::new(None));
    let done = committed.clone();
    let nodes = client.nodes.clone();
    h.sim.client("liveness", async move {
        let mut client = crate::client::Client::new(SimNet, nodes, u64::MAX);
        client.timeout = Duration::from_secs(1);
        client.attempts = 1;
        let mut value = 0;
        while done.get().is_none() {
            value += 1;
            if workload::put_once(&mut client, value).await.is_some() {
                done.set(Some(sim_now()));
            }
            client.prefer(client.current() + 1);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    });
    let bound = healed_at + options.liveness_bound;
    while h.now() < bound {
        if !h.step() {
            return Err("a safety check failed during recovery".into());
        }
        let leaders = h.checks.borrow().leaders_now();
        if let Some(at) = committed.get()
            && leaders.len() == 1
        {
            return Ok(at.saturating_sub(healed_at));
        }
    }
    let leaders = h.checks.borrow().leaders_now();
    Err(match committed.get() {
        None => format!(
            "no fresh write committed within {:.0}s of the heal (leaders: {leaders:?})",
            options.liveness_bound.as_secs_f64()
        ),
        Some(_) => format!(
            "{} nodes still claim leadership {:.0}s after the heal: {leaders:?}",
            leaders.len(),
            options.liveness_bound.as_secs_f64()
        ),
    })
}
