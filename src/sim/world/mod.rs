//! The simulated world: one turmoil simulation built from a [`WorldSpec`] and a node program
//! (raftbed's Raft, or a comparison system the caller supplies), with the workload's clients,
//! the lock clients and the fenced resource. `raftbed sim` and `raftbed replay` both build it;
//! faults reach it only through the [`Faults`] primitives, and every step is checked.
//!
//! Hosts are created in one order, whatever builds the world: the nodes, the program's
//! control hosts, the client groups, the fenced resource, the lock groups; and each client
//! and lock client forks the caller's RNG in that order. The trace of a seed depends on both.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

mod changes;
mod faults;

use super::checks::{Checks, Event, Violation};
use super::coverage::{Coverage, WorldEvent};
use super::fencing::{self, FencingLog, LockParams};
use super::links::Links;
use super::probe::{Probe, panic_message};
use super::trace::Trace;
use super::workload::{self, ClientParams, Role, Shared};
use super::{CLIENT_PORT, PEER_PORT, SIM_STEP, SimBugs};
use crate::clock::SimClock;
use crate::faults::{Applied, Faults, Latency, NodeState};
use crate::raft::NodeId;
use crate::rng::SplitMix64;
use crate::server::timing::Timing;
use crate::server::{Member, NodeConfig, Observer, ServerBugs, run_node};
use crate::storage::WalOptions;
use crate::storage::fs::SimFs;
use crate::transport::PeerTransport;
use crate::transport::net::SimNet;
use crate::transport::peer::TransportConfig;

/// The fenced resource's host.
pub const RESOURCE_HOST: &str = "resource";
/// The host the watchers run on.
pub const WATCHERS_HOST: &str = "watchers";

/// How every node of the world is configured.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Raft's timers.
    pub timing: Timing,
    /// Leader-lease reads (§6.4.1) on (they turn check-quorum on).
    pub lease_reads: bool,
    /// Pre-vote (§9.6) on.
    pub pre_vote: bool,
    /// Check-quorum and leader stickiness (§6.2) on.
    pub check_quorum: bool,
    /// At most this many entries per AppendEntries.
    pub max_entries_per_message: usize,
    /// Entries between snapshots.
    pub compact_every: u64,
    /// A proposal with no outcome after this long is answered "timeout" (indefinite).
    pub request_timeout: Duration,
    /// Deadline of one peer RPC.
    pub rpc_timeout: Duration,
    /// The node that campaigns first (a scenario's designated leader).
    pub first_leader: Option<usize>,
    /// How the leader compacts history without a client asking (watchers behind it are
    /// cancelled with the compaction's revision).
    pub auto_compaction: Option<crate::server::api::compactor::AutoCompaction>,
    /// The peer transport.
    pub peer_transport: PeerTransport,
    /// Deliberate bugs.
    pub bugs: SimBugs,
}

impl NodeSpec {
    /// The configuration of node `index` of the nodes `names`, of which the first `voters`
    /// are the cluster's voters at start; every node knows every address, and the others
    /// wait, empty, to be added (`raftbed sim`'s spare nodes).
    pub fn config(&self, index: usize, names: &[String], voters: usize, seed: u64) -> NodeConfig {
        let members: BTreeMap<NodeId, Member> = names
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let member = Member {
                    peer_addr: format!("{host}:{PEER_PORT}"),
                    client_addr: format!("{host}:{CLIENT_PORT}"),
                };
                (NodeId(i as u64 + 1), member)
            })
            .collect();
        let id = NodeId(index as u64 + 1);
        let bugs = self.bugs;
        let mut raft = crate::raft::Config::new(id, members.keys().copied().take(voters).collect());
        raft.seed = seed;
        raft.max_entries_per_message = self.max_entries_per_message;
        raft.pre_vote = self.pre_vote;
        raft.check_quorum = self.check_quorum;
        if self.lease_reads {
            raft = raft.with_lease_reads();
        }
        self.timing.lower(&mut raft);
        if bugs.lease_no_drift_margin {
            raft.lease_drift_margin_ticks = 0;
        }
        raft.bugs.commit_old_term = bugs.commit_old_term;
        raft.bugs.read_index_before_term_commit = bugs.read_index_before_term_commit;
        raft.bugs.commit_beyond_match = bugs.commit_beyond_match;
        raft.bugs.stale_ack_after_truncation = bugs.stale_ack_after_truncation;
        raft.bugs.pre_vote_counted_as_vote = bugs.pre_vote_counted_as_vote;
        raft.bugs.append_after_step_down = bugs.append_after_step_down;
        raft.bugs.vote_by_index_only = bugs.vote_by_index_only;
        raft.bugs.keep_conflicting_tail = bugs.keep_conflicting_tail;
        raft.bugs.lease_until_step_down = bugs.lease_until_step_down;
        raft.bugs.unsafe_membership = bugs.unsafe_membership;
        raft.bugs.learner_refuses_vote = bugs.learner_refuses_vote;
        // The whole-state check after every input of every node (§ "The validator" in the
        // README measures what it costs).
        raft.validate_every = 1;
        NodeConfig {
            id,
            members,
            raft,
            timing: self.timing,
            transport: TransportConfig {
                rpc_timeout: self.rpc_timeout,
                idle_timeout: Duration::from_secs(5),
                queue_depth: 1024,
            },
            peer_transport: self.peer_transport,
            wal: WalOptions {
                segment_bytes: 256 << 10,
                sync: !bugs.skip_fsync,
                lazy_sync_interval: Duration::from_millis(500),
                // turmoil's files do not preallocate (`AppendFile::preallocate` does nothing).
                preallocate: false,
                persist_vote: !bugs.forget_vote,
            },
            data_dir: std::path::PathBuf::from("/data"),
            request_timeout: self.request_timeout,
            compact_every: self.compact_every,
            max_batch: 256,
            bugs: ServerBugs {
                stale_follower_read: bugs.stale_follower_read,
                stale_follower_txn_read: bugs.stale_follower_txn_read,
                leader_local_read: bugs.leader_local_read,
                watch_resume_skips: bugs.watch_resume_skip,
                require_leader_ignored: bugs.require_leader_ignored,
                ack_by_position: bugs.ack_by_position,
            },
            state_at_rest: false,
            live: Default::default(),
            auto_compaction: self.auto_compaction,
            watch_progress: crate::server::DEFAULT_WATCH_PROGRESS,
            campaign_first: self.first_leader == Some(index),
            max_request_bytes: crate::server::DEFAULT_MAX_REQUEST_BYTES,
            cluster_id: None,
            exit_when_removed: false,
            name: None,
        }
    }
}

/// The simulated network.
#[derive(Clone, Debug)]
pub struct NetSpec {
    /// turmoil's limit on simulated time (a run that reaches it is a harness bug).
    pub run_for: Duration,
    /// The largest one-way latency of a link with no latency of its own.
    pub max_latency: Duration,
    /// The chance per step that a flapping (lossy) link comes back.
    pub repair_rate: f64,
}

/// Clients that share one simulated host (and so are cut off together).
#[derive(Clone, Debug)]
pub struct ClientGroupSpec {
    /// The host.
    pub host: String,
    /// How they behave.
    pub params: ClientParams,
    /// Each client's number and role.
    pub clients: Vec<(u64, Role)>,
}

/// Lock clients that share one simulated host.
#[derive(Clone, Debug)]
pub struct LockGroupSpec {
    /// The host.
    pub host: String,
    /// How they behave.
    pub params: LockParams,
    /// Each lock client's number.
    pub ids: Vec<u64>,
}

/// Everything a world is built from.
#[derive(Clone, Debug)]
pub struct WorldSpec {
    /// turmoil's seed.
    pub seed: u64,
    /// The nodes' host names; node `i` has Raft id `i + 1`.
    pub nodes: Vec<String>,
    /// The first this many nodes are the voters at start; the rest are spares, running but
    /// no member until a membership change adds them.
    pub voters: usize,
    /// How every node is configured.
    pub node: NodeSpec,
    /// The network.
    pub net: NetSpec,
    /// Client groups.
    pub clients: Vec<ClientGroupSpec>,
    /// Lock client groups (with any, the fenced resource runs too).
    pub locks: Vec<LockGroupSpec>,
    /// How watchers behave, if there are any (on a host of their own).
    pub watchers: Option<super::watchers::WatcherParams>,
    /// How many watchers.
    pub watcher_count: usize,
    /// Keep the trace's lines (the hash is always kept).
    pub keep_trace: bool,
    /// How gRPC travels between the hosts: as datagrams, or over HTTP/2 and TCP.
    pub sim_net: SimNet,
}

/// What a node host is given.
pub struct NodeHost<'h> {
    /// Its index.
    pub index: usize,
    /// Its host name.
    pub name: &'h str,
    /// Its configuration.
    pub config: NodeConfig,
    /// Its clock.
    pub clock: SimClock,
    /// The probe a Raft node reports to.
    pub probe: Rc<dyn Observer>,
    /// The run's trace.
    pub trace: &'h Rc<RefCell<Trace>>,
    /// The network.
    pub net: SimNet,
}

/// The program the nodes run.
pub trait NodeProgram {
    /// Adds node `node.index`'s host.
    fn add_node(&self, sim: &mut turmoil::Sim<'_>, node: NodeHost<'_>);
    /// Adds the program's control hosts after the nodes (a failover monitor); their names.
    fn add_control_hosts(
        &self,
        _sim: &mut turmoil::Sim<'_>,
        _spec: &WorldSpec,
        _trace: &Rc<RefCell<Trace>>,
    ) -> Vec<String> {
        Vec::new()
    }
    /// The node that leads now; `checks` holds what Raft nodes reported.
    fn leader(&self, checks: &Checks) -> Option<usize>;
}

/// raftbed's Raft server, restarted from its simulated disk after each crash.
pub struct RaftProgram;

impl NodeProgram for RaftProgram {
    fn add_node(&self, sim: &mut turmoil::Sim<'_>, node: NodeHost<'_>) {
        let NodeHost { name, config, clock, probe, net, .. } = node;
        let host = name.to_string();
        sim.host(name, move || {
            let (config, clock, probe, host) =
                (config.clone(), clock.clone(), probe.clone(), host.clone());
            async move {
                run_node(config, net, SimFs, clock, Some(probe))
                    .await
                    .map_err(|e| format!("{host}: {e}").into())
            }
        });
    }

    fn leader(&self, checks: &Checks) -> Option<usize> {
        checks.current_leader().map(|(id, _)| id.0 as usize - 1)
    }
}

/// The running world.
pub struct World<'a> {
    sim: turmoil::Sim<'a>,
    program: Rc<dyn NodeProgram>,
    nodes: Vec<String>,
    /// Every host, in creation order.
    hosts: Vec<String>,
    /// The program's control hosts: cut off with an isolated node.
    control: Vec<String>,
    clocks: Vec<SimClock>,
    checks: Rc<RefCell<Checks>>,
    trace: Rc<RefCell<Trace>>,
    events: Rc<RefCell<Vec<Event>>>,
    coverage: Rc<RefCell<Coverage>>,
    links: Links,
    crashed: BTreeSet<usize>,
    paused: BTreeSet<usize>,
    /// What faults did, as the callers noted it: (when, text).
    notes: Vec<(Duration, String)>,
    applied: Vec<(Duration, Applied)>,
    /// Each link's latency and loss as built, and the links faults changed since.
    built_links: BTreeMap<(String, String), (Latency, f64)>,
    /// The latency of a link built with none of its own.
    default_latency: Latency,
    changed_links: BTreeSet<(String, String)>,
    /// Links losing messages now, and links whose latency a fault changed (until the heal).
    lossy_links: BTreeSet<(String, String)>,
    slowed_links: BTreeSet<(String, String)>,
    /// Bumped by every fault and heal: whether connectivity may have changed.
    generation: u64,
    workload: Rc<Shared>,
    watch_streams: Rc<RefCell<Vec<jepsen_lite::watch::Stream>>>,
    fencing: Rc<RefCell<FencingLog>>,
    lock_stop: Rc<Cell<bool>>,
    /// Set when a host failed or panicked: the world steps no further.
    broken: bool,
    /// Each node's admin state: membership changes reach its driver through it.
    lives: Vec<std::sync::Arc<crate::server::LiveFaults>>,
    /// Membership changes asked and not yet appended.
    changes: changes::Changes,
    /// Nodes that are or were members (the voters at start, and every node added since).
    ever_members: BTreeSet<usize>,
}

impl<'a> World<'a> {
    /// Builds the world; each client and lock client forks `rng`, in creation order.
    pub fn build(
        spec: &WorldSpec,
        program: Rc<dyn NodeProgram>,
        rng: &mut SplitMix64,
    ) -> World<'a> {
        let mut sim = turmoil::Builder::new()
            .simulation_duration(spec.net.run_for)
            .tick_duration(SIM_STEP)
            .min_message_latency(Duration::from_millis(1))
            .max_message_latency(spec.net.max_latency)
            .repair_rate(spec.net.repair_rate)
            .tcp_capacity(1 << 16)
            .rng_seed(spec.seed)
            .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .build();
        let checks = Rc::new(RefCell::new(Checks::default()));
        let bootstrap = (1..=spec.voters as u64).map(NodeId);
        checks.borrow_mut().bootstrap(crate::raft::Membership::of_voters(bootstrap));
        let trace = Rc::new(RefCell::new(Trace::new(spec.keep_trace)));
        let events = Rc::new(RefCell::new(Vec::new()));
        let coverage = Rc::new(RefCell::new(Coverage::default()));
        let mut lives = Vec::with_capacity(spec.nodes.len());
        let clocks: Vec<SimClock> = (0..spec.nodes.len())
            .map(|_| SimClock::new(Duration::ZERO, Duration::ZERO, 1.0))
            .collect();
        for (index, name) in spec.nodes.iter().enumerate() {
            let probe: Rc<dyn Observer> = Rc::new(Probe {
                checks: checks.clone(),
                trace: trace.clone(),
                events: events.clone(),
                coverage: coverage.clone(),
            });
            let config = spec.node.config(index, &spec.nodes, spec.voters, spec.seed);
            lives.push(config.live.clone());
            let clock = clocks[index].clone();
            let net = spec.sim_net;
            let node = NodeHost { index, name, config, clock, probe, trace: &trace, net };
            program.add_node(&mut sim, node);
        }
        let mut hosts = spec.nodes.clone();
        let control = program.add_control_hosts(&mut sim, spec, &trace);
        hosts.extend(control.iter().cloned());
        let workload = Rc::new(Shared::default());
        for group in &spec.clients {
            let clients: Vec<_> = group
                .clients
                .iter()
                .map(|(id, role)| {
                    let (params, shared, trace) =
                        (group.params.clone(), workload.clone(), trace.clone());
                    workload::run(spec.sim_net, *id, *role, params, rng.fork(), shared, trace)
                })
                .collect();
            sim.client(group.host.as_str(), join_local(clients));
            hosts.push(group.host.clone());
        }
        let fencing = Rc::new(RefCell::new(FencingLog::default()));
        let lock_stop = Rc::new(Cell::new(false));
        if !spec.locks.is_empty() {
            sim.client(RESOURCE_HOST, fencing::resource(fencing.clone(), trace.clone()));
            hosts.push(RESOURCE_HOST.into());
        }
        for group in &spec.locks {
            let lockers: Vec<_> = group
                .ids
                .iter()
                .map(|id| {
                    let (log, trace, stop) = (fencing.clone(), trace.clone(), lock_stop.clone());
                    let params = group.params.clone();
                    fencing::lock_client(spec.sim_net, *id, params, rng.fork(), log, trace, stop)
                })
                .collect();
            sim.client(group.host.as_str(), join_local(lockers));
            hosts.push(group.host.clone());
        }
        let watch_streams = Rc::new(RefCell::new(Vec::new()));
        if let Some(params) = &spec.watchers {
            let watchers: Vec<_> = (0..spec.watcher_count as u64)
                .map(|id| {
                    let (params, shared, streams) =
                        (params.clone(), workload.clone(), watch_streams.clone());
                    super::watchers::run(spec.sim_net, id, params, rng.fork(), shared, streams)
                })
                .collect();
            sim.client(WATCHERS_HOST, join_local(watchers));
            hosts.push(WATCHERS_HOST.into());
        }
        World {
            sim,
            program,
            nodes: spec.nodes.clone(),
            hosts,
            control,
            clocks,
            checks,
            trace,
            events,
            coverage,
            links: Links::default(),
            crashed: BTreeSet::new(),
            paused: BTreeSet::new(),
            notes: Vec::new(),
            applied: Vec::new(),
            built_links: BTreeMap::new(),
            default_latency: Latency { min: Duration::from_millis(1), max: spec.net.max_latency },
            changed_links: BTreeSet::new(),
            lossy_links: BTreeSet::new(),
            slowed_links: BTreeSet::new(),
            generation: 0,
            workload,
            watch_streams,
            fencing,
            lock_stop,
            broken: false,
            lives,
            changes: changes::Changes::default(),
            ever_members: (0..spec.voters).collect(),
        }
    }

    /// What the run reached so far: the nodes' events, what the world saw of crashes and clock
    /// faults, the lock holders' pauses and the fenced resource's refusals.
    pub fn coverage(&self) -> Coverage {
        let mut coverage = self.coverage.borrow().clone();
        let log = self.fencing.borrow();
        coverage.world(WorldEvent::LockHolderPaused, log.pauses as u64);
        coverage.world(WorldEvent::FencedRejection, log.refused() as u64);
        coverage
    }

    /// Every fault primitive that took effect and every note, in order, when (`heal_all`
    /// aside).
    pub fn applied(&self) -> &[(Duration, Applied)] {
        &self.applied
    }

    /// Writes `text` to the trace and the report's list of what faults did (a `note` also
    /// keeps it among the applied primitives, for `--emit-scenario`).
    fn tell(&mut self, text: &str) {
        let now = self.now();
        self.trace.borrow_mut().record(now, format_args!("nemesis {text}"));
        self.notes.push((now, text.to_string()));
    }

    fn record(&mut self, what: Applied) {
        let now = self.now();
        self.applied.push((now, what));
    }

    /// A clock fault on `node`: coverage notes whether it held a valid lease then.
    fn note_clock_fault(&self, node: usize) {
        let local = self.clocks[node].local_at(self.now());
        if self.checks.borrow().leases().holds(NodeId(node as u64 + 1), local) {
            self.coverage.borrow_mut().world(WorldEvent::ClockFaultUnderLease, 1);
        }
    }

    /// Sets a link's latency and loss as part of the topology (not a fault: `heal_all` puts
    /// links back to this).
    pub fn build_link(&mut self, a: &str, b: &str, latency: Latency, loss: f64) {
        self.set_latency(a, b, latency);
        self.sim.set_link_fail_rate(a, b, loss);
        self.built_links.insert(link_key(a, b), (latency, loss));
    }

    fn set_latency(&mut self, a: &str, b: &str, latency: Latency) {
        self.sim.set_link_latency(a, b, latency.min);
        if latency.max > latency.min {
            self.sim.set_link_max_message_latency(a, b, latency.max);
        }
    }

    /// One step of simulated time, then the lease check. A host's error or panic is recorded
    /// as a violation and breaks the world: it steps no further. Returns whether every check
    /// held.
    pub fn step(&mut self) -> bool {
        if self.broken {
            return false;
        }
        if !self.changes.is_empty() {
            self.drive_changes();
        }
        let now = self.now();
        let failure = match std::panic::catch_unwind(AssertUnwindSafe(|| self.sim.step())) {
            Ok(Ok(_)) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(panic) => Some(format!("panicked: {}", panic_message(&panic))),
        };
        if let Some(error) = failure {
            self.broken = true;
            let host = "a node".to_string();
            self.checks.borrow_mut().violate(Violation::NodeFailed { host, error, at: now });
        }
        let clocks = &self.clocks;
        let now = self.now();
        self.checks
            .borrow_mut()
            .check_leases(now, |node| clocks[node.0 as usize - 1].local_at(now));
        self.checks.borrow().violations().is_empty()
    }

    /// Counts faults, heals and applied configurations: connectivity (and what a quorum is)
    /// changes only when it does.
    pub fn generation(&self) -> u64 {
        self.generation + self.checks.borrow().configurations_changed()
    }

    /// The nodes running now, and for each pair of them whether their link is whole (neither
    /// way cut, latency and loss as built) and whether it is severed (both ways cut).
    pub fn connectivity(&self) -> super::liveness::Connectivity {
        let up: Vec<bool> = (0..self.nodes.len()).map(|n| self.state(n) == NodeState::Up).collect();
        let pair = |a: usize, b: usize| {
            let (x, y) = (&self.nodes[a], &self.nodes[b]);
            let cut = (self.links.is_cut(x, y), self.links.is_cut(y, x));
            let key = link_key(x, y);
            let changed = self.lossy_links.contains(&key) || self.slowed_links.contains(&key);
            (!cut.0 && !cut.1 && !changed, cut.0 && cut.1)
        };
        let running = (0..self.nodes.len()).filter(|n| up[*n]).map(|n| NodeId(n as u64 + 1));
        let configurations = self.checks.borrow().deciding_configurations(running);
        super::liveness::Connectivity::new(up, pair).with_configurations(&configurations)
    }

    /// Whether a host failed: the run ends there, as a finding.
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Adds a client host (the liveness probe).
    pub fn add_client(
        &mut self,
        name: &str,
        client: impl std::future::Future<Output = turmoil::Result> + 'static,
    ) {
        self.sim.client(name, client);
    }

    /// Election events the probes reported since the last call.
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.borrow_mut())
    }

    /// The cluster-wide checks.
    pub fn checks(&self) -> &Rc<RefCell<Checks>> {
        &self.checks
    }

    /// The trace.
    pub fn trace(&self) -> &Rc<RefCell<Trace>> {
        &self.trace
    }

    /// What the workload's clients recorded.
    pub fn workload(&self) -> &Rc<Shared> {
        &self.workload
    }

    /// The watchers' streams and what they received.
    pub fn watch_streams(&self) -> &Rc<RefCell<Vec<jepsen_lite::watch::Stream>>> {
        &self.watch_streams
    }

    /// What the lock clients and the fenced resource recorded.
    pub fn fencing(&self) -> &Rc<RefCell<FencingLog>> {
        &self.fencing
    }

    /// Stops the workload and the lock clients.
    pub fn stop_clients(&self) {
        self.workload.stop.set(true);
        self.lock_stop.set(true);
    }

    /// What faults did, as noted: (when, text).
    pub fn notes(&self) -> &[(Duration, String)] {
        &self.notes
    }

    /// Every host, in creation order.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    fn index_ok(&self, node: usize) -> bool {
        node < self.nodes.len()
    }
}

fn link_key(a: &str, b: &str) -> (String, String) {
    if a <= b { (a.into(), b.into()) } else { (b.into(), a.into()) }
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
