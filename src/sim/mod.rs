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
//!
//! The world itself (`world.rs`) is the one `raftbed replay` builds too, with its own node
//! program; faults reach it only through the primitives of `crate::faults`, which the
//! nemesis (`nemesis/`) lowers its schedule to.

pub mod append;
pub mod bugs;
pub mod checks;
pub mod coverage;
pub mod fencing;
pub mod leases;
mod links;
pub mod liveness;
pub mod nemesis;
mod phases;
mod probe;
mod report;
pub mod shard;
pub mod swarm;
pub mod sweep;
pub mod trace;
pub mod watchers;
pub mod workload;
pub mod world;

pub use bugs::{BUG_NAMES, SimBugs};
pub use phases::{Driver, draws, run, run_world};
pub use probe::note_panic;
pub(crate) use probe::sim_now;
pub use report::SimReport;
pub use world::{
    ClientGroupSpec, LockGroupSpec, NetSpec, NodeHost, NodeProgram, NodeSpec, RaftProgram, World,
    WorldSpec,
};

use std::time::Duration;

use jepsen_lite::{
    CheckOptions, CheckResult, History, ModelKind, RegisterModel, Resolved, ResolvedCounts,
};
use nemesis::{Density, FaultKind};
use swarm::{Pins, Swarm};
use workload::{ClientParams, Role};

use crate::rng::SplitMix64;
use crate::server::api::compactor::AutoCompaction;
use crate::server::timing::Timing;
use crate::transport::net::SimNet;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Everything derives from it.
    pub seed: u64,
    /// Raft nodes.
    pub nodes: usize,
    /// Nodes beside them, running but no members until a membership change adds them;
    /// `None`: as the faults need ([`SimOptions::spares`]).
    pub spares: Option<usize>,
    /// Workload clients.
    pub clients: usize,
    /// List-append transaction clients beside the single-key clients (`workload` kv; with
    /// `append` every client appends).
    pub append_clients: usize,
    /// Lock clients writing to the fenced resource.
    pub lock_clients: usize,
    /// Watchers of the workload's keys, checked against the committed history.
    pub watchers: usize,
    /// Revisions the leader's auto-compaction keeps (etcd's revision mode, checked every
    /// [`AUTO_COMPACTION_CHECK`]); 0: history is never compacted.
    pub history_kept: i64,
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
    /// (None: datagrams with the message transport, framed TCP with the wire.)
    pub peer_transport: Option<crate::transport::PeerTransport>,
    /// What the history checker may spend before the history check is undecided.
    pub check: CheckBudget,
    /// How gRPC travels: as datagrams (fast) or over HTTP/2 and TCP (`wire`).
    pub transport: SimTransport,
    /// Swarm testing: the seed draws the world, but for what these pin (`swarm`); `None`
    /// is the fixed world these options spell out (`--no-swarm`).
    pub swarm: Option<Pins>,
    /// How close together and how long fault episodes are.
    pub density: Density,
    /// Situations the run must reach (`coverage::names`), or it is undecided.
    pub required: Vec<String>,
    /// The scenario file whose timeline drives the faults (`raftbed replay` of a file
    /// `--emit-scenario` wrote), instead of the seed's schedule.
    pub scenario: Option<String>,
    /// What the clients do: single-key operations, or list-append transactions.
    pub workload: Workload,
}

/// What the simulated clients do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Workload {
    /// put, get, compare-and-set and delete over a few keys, checked for linearizability.
    #[default]
    Kv,
    /// Transactions of appends and reads over etcd's Txn (`append.rs`), checked for Elle's
    /// anomalies.
    Append,
}

impl Workload {
    /// The workload named `name` on the command line (`append`; anything else is `kv`, which
    /// clap's list of values leaves as the only other name).
    pub fn from_name(name: &str) -> Workload {
        if name == "append" { Workload::Append } else { Workload::Kv }
    }

    /// The name `from_name` reads.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Kv => "kv",
            Workload::Append => "append",
        }
    }
}

/// How the simulated hosts' gRPC calls travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SimTransport {
    /// Each call's parts as datagrams over the simulated network (`transport::msg`).
    #[default]
    Messages,
    /// tonic's HTTP/2 over turmoil's TCP, as real nodes talk.
    Wire,
}

impl SimTransport {
    /// The network the hosts use.
    pub fn net(self) -> SimNet {
        match self {
            SimTransport::Messages => SimNet::MESSAGES,
            SimTransport::Wire => SimNet::WIRE,
        }
    }
}

impl SimOptions {
    /// Defaults: 5 nodes, 8 clients, 60 s, every fault kind.
    pub fn new(seed: u64) -> SimOptions {
        SimOptions {
            seed,
            nodes: 5,
            spares: None,
            clients: 8,
            append_clients: 0,
            lock_clients: 2,
            watchers: 2,
            history_kept: DEFAULT_HISTORY_KEPT,
            duration: Duration::from_secs(60),
            faults: FaultKind::ALL.to_vec(),
            bugs: SimBugs::default(),
            keep_trace: false,
            keep_going: false,
            liveness_bound: Duration::from_secs(30),
            peer_transport: None,
            check: CheckBudget::default(),
            transport: SimTransport::default(),
            swarm: None,
            density: Density::default(),
            required: Vec::new(),
            scenario: None,
            workload: Workload::Kv,
        }
    }

    /// The peer transport the nodes use.
    pub fn peers(&self) -> crate::transport::PeerTransport {
        self.peer_transport.unwrap_or(match self.transport {
            SimTransport::Messages => crate::transport::PeerTransport::Datagram,
            SimTransport::Wire => crate::transport::PeerTransport::Framed,
        })
    }

    /// A swarm run's world (`swarm`): what the seed draws, with what `pins` fix kept.
    pub(crate) fn drawn(&self, pins: &Pins) -> SimOptions {
        let drawn = Swarm::draw(self.seed);
        SimOptions {
            nodes: pins.nodes.unwrap_or(drawn.nodes),
            clients: pins.clients.unwrap_or(drawn.clients),
            append_clients: pins.append_clients.unwrap_or(drawn.append_clients),
            lock_clients: drawn.lock_clients,
            watchers: pins.watchers.unwrap_or(drawn.watchers),
            faults: pins.faults.clone().unwrap_or(drawn.faults),
            history_kept: pins.history_kept.unwrap_or(drawn.history_kept),
            density: drawn.density,
            ..self.clone()
        }
    }

    /// Spare nodes beside the voters: as set, else [`SPARE_NODES`] with membership faults
    /// and none without.
    pub fn spares(&self) -> usize {
        let needed = if self.faults.contains(&FaultKind::Member) { SPARE_NODES } else { 0 };
        self.spares.unwrap_or(needed)
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        if let Some(path) = &self.scenario {
            let bugs: String = self.bugs.names().iter().map(|b| format!(" --bug {b}")).collect();
            return format!(
                "raftbed replay {path} --seed {}{bugs}{}",
                self.seed,
                self.check.flags()
            );
        }
        let mut command = format!("raftbed sim --seed {}", self.seed);
        let defaults = SimOptions::new(self.seed);
        match &self.swarm {
            Some(pins) => command += &pins.flags(),
            None => {
                command += " --no-swarm";
                let fixed = Pins {
                    nodes: (self.nodes != defaults.nodes).then_some(self.nodes),
                    clients: (self.clients != defaults.clients).then_some(self.clients),
                    watchers: (self.watchers != defaults.watchers).then_some(self.watchers),
                    append_clients: (self.append_clients != defaults.append_clients)
                        .then_some(self.append_clients),
                    faults: (self.faults != defaults.faults).then(|| self.faults.clone()),
                    history_kept: (self.history_kept != defaults.history_kept)
                        .then_some(self.history_kept),
                };
                command += &fixed.flags();
            }
        }
        if self.duration != defaults.duration {
            command += &format!(" --duration {}ms", self.duration.as_millis());
        }
        for bug in self.bugs.names() {
            command += &format!(" --bug {bug}");
        }
        if self.keep_going {
            command += " --keep-going";
        }
        if self.workload == Workload::Append {
            command += " --workload append";
        }
        if let Some(peers) = self.peer_transport {
            command += &format!(" --peer-transport {}", peers.name());
        }
        if self.transport == SimTransport::Wire {
            command += " --transport wire";
        }
        if !self.required.is_empty() {
            command += &format!(" --require {}", self.required.join(","));
        }
        command + &self.check.flags()
    }
}

/// Timing derived from the seed, so a sweep explores many clusters (swarm testing).
#[derive(Clone, Debug, PartialEq)]
pub struct SimParams {
    /// Raft's timers: 10 ms ticks, a minimum election timeout of 10-20 ticks (the maximum is
    /// twice it), heartbeats every 2-4 ticks.
    pub timing: Timing,
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
    pub(crate) fn derive(rng: &mut SplitMix64) -> SimParams {
        SimParams {
            // Election ticks are drawn before heartbeat ticks, as the seed's stream expects.
            timing: Timing::from_ticks(
                Duration::from_millis(10),
                rng.range_inclusive(10, 20),
                rng.range_inclusive(2, 4),
            ),
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

/// Spare nodes beside the voters when the nemesis changes membership: enough to add a
/// learner and to replace two nodes in one run.
pub const SPARE_NODES: usize = 3;

pub(crate) const PEER_PORT: u16 = 7000;
pub(crate) const CLIENT_PORT: u16 = 7001;

/// Revisions the simulated leader's auto-compaction keeps by default: a few seconds of the
/// default workload, so a watcher that resumes from a member that fell behind is cancelled.
pub const DEFAULT_HISTORY_KEPT: i64 = 100;

/// How often the simulated leader's auto-compaction looks (etcd's revision mode: 5 minutes,
/// far beyond a simulated run).
pub const AUTO_COMPACTION_CHECK: Duration = Duration::from_secs(1);

/// How long the history checker may take, and how much memory it may use, before it gives up
/// and the history check is undecided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckBudget {
    /// Wall time.
    pub timeout: Duration,
    /// Memory for remembered configurations.
    pub memory_bytes: usize,
}

impl CheckBudget {
    /// The command-line flags that set this budget (none for the default).
    pub fn flags(&self) -> String {
        let default = CheckBudget::default();
        let mut flags = String::new();
        if self.timeout != default.timeout {
            flags += &format!(" --check-timeout {}ms", self.timeout.as_millis());
        }
        if self.memory_bytes != default.memory_bytes {
            flags += &format!(" --check-memory {}", self.memory_bytes);
        }
        flags
    }
}

impl Default for CheckBudget {
    fn default() -> CheckBudget {
        CheckBudget { timeout: Duration::from_secs(60), memory_bytes: 1 << 30 }
    }
}

/// Checks `history` against the key-value model within `budget`, on one thread, with the
/// fates of its writes from the committed log when known (`resolved.rs`).
pub fn check_history(
    history: &History,
    budget: CheckBudget,
    resolved: Option<&Resolved>,
) -> (CheckResult, ResolvedCounts) {
    let check = CheckOptions {
        timeout: Some(budget.timeout),
        threads: 1,
        max_memory_bytes: budget.memory_bytes,
        resolved: resolved.cloned().map(std::sync::Arc::new),
    };
    match jepsen_lite::check(&RegisterModel::new(ModelKind::Kv), history, &check) {
        Ok(report) => (report.result, report.resolved),
        Err(e) => (CheckResult::Unknown(format!("history malformed: {e}")), Default::default()),
    }
}

/// The workload's client groups: `clients` on host `clients`, and `appenders` list-append
/// clients numbered from `first_appender` on host `appenders`.
fn client_groups(
    params: ClientParams,
    clients: Vec<(u64, Role)>,
    first_appender: u64,
    appenders: usize,
) -> Vec<ClientGroupSpec> {
    let ids = first_appender..first_appender + appenders as u64;
    let appending = ClientGroupSpec {
        host: "appenders".into(),
        params: ClientParams { workload: Workload::Append, ..params.clone() },
        clients: ids.map(|id| (id, Role::Mixed)).collect(),
    };
    let single = ClientGroupSpec { host: "clients".into(), params, clients };
    [single, appending].into_iter().filter(|group| !group.clients.is_empty()).collect()
}

/// The world `options` describe, from the seed's parameters.
pub(crate) fn world_spec(options: &SimOptions, params: &SimParams) -> WorldSpec {
    let hosts: Vec<String> =
        (1..=options.nodes + options.spares()).map(|n| format!("n{n}")).collect();
    // Clients know the voters the cluster starts with, as a client's endpoints are
    // configured; spares are not among them.
    let nodes = &hosts[..options.nodes];
    // All workload clients share one simulated host, and the lock clients another: they are
    // never partitioned one by one, and every host costs a runtime polled at every step.
    // No clients is an idle cluster: no readers and no lock clients either.
    let readers = if options.clients == 0 { 0 } else { options.nodes };
    let clients: Vec<(u64, Role)> = (0..options.clients + readers)
        .map(|c| {
            let role =
                if c < options.clients { Role::Mixed } else { Role::Reader(c - options.clients) };
            (c as u64, role)
        })
        .collect();
    // List-append clients beside the single-key ones, on a host of their own, numbered after
    // them; an idle cluster has none, and with `--workload append` every client appends.
    let appenders = match options.workload {
        Workload::Kv if options.clients > 0 => options.append_clients,
        _ => 0,
    };
    let first_appender = clients.len() as u64;
    let client_params = ClientParams {
        nodes: nodes.iter().map(|n| format!("{n}:{CLIENT_PORT}")).collect(),
        keys: params.keys,
        think_max: params.think_max,
        timeout: Duration::from_millis(1500),
        attempts: params.attempts,
        processes: first_appender + appenders as u64,
        lease_reads: if params.lease_reads { 0.5 } else { 0.0 },
        mix: workload::DEFAULT_MIX,
        read_consistency: None,
        spread: true,
        workload: options.workload,
    };
    let client_params_nodes = client_params.nodes.clone();
    let locks = (options.lock_clients > 0 && options.clients > 0).then(|| LockGroupSpec {
        host: "lockers".into(),
        params: fencing::LockParams {
            nodes: client_params.nodes.clone(),
            ttl: params.timing.min_lease_ttl(),
            pause_chance: 0.5,
        },
        ids: (1..=options.lock_clients as u64).collect(),
    });
    WorldSpec {
        seed: options.seed,
        voters: options.nodes,
        node: NodeSpec {
            timing: params.timing,
            lease_reads: params.lease_reads,
            pre_vote: params.pre_vote,
            check_quorum: params.check_quorum,
            max_entries_per_message: params.max_entries_per_message,
            compact_every: params.compact_every,
            request_timeout: Duration::from_secs(1),
            rpc_timeout: (params.latency_max * 8).max(Duration::from_millis(100)),
            first_leader: None,
            auto_compaction: (options.history_kept > 0).then_some(AutoCompaction::Revision {
                keep: options.history_kept,
                every: AUTO_COMPACTION_CHECK,
            }),
            peer_transport: options.peers(),
            bugs: options.bugs,
        },
        net: NetSpec {
            run_for: options.duration + options.liveness_bound + Duration::from_secs(60),
            max_latency: params.latency_max,
            repair_rate: 0.5,
        },
        clients: client_groups(client_params, clients, first_appender, appenders),
        locks: locks.into_iter().collect(),
        watchers: (options.watchers > 0 && options.clients > 0).then(|| watchers::WatcherParams {
            nodes: client_params_nodes.clone(),
            stay_max: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(1),
        }),
        watcher_count: options.watchers,
        keep_trace: options.keep_trace,
        sim_net: options.transport.net(),
        nodes: hosts,
    }
}
