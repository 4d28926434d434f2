//! Scenario files: a topology of sites, the links between them, client groups, timing, and a
//! timeline of faults, replayed deterministically against Raft and against naive failover
//! (`run.rs`), with the split-brain detector (`detect.rs`), reports (`report.rs`) and shrinking
//! (`shrink.rs`). The file format is `file.rs`; this module holds the validated form.

mod detect;
mod drawn;
mod file;
mod naive_program;
mod report;
mod roles;
mod run;
mod shrink;
#[cfg(test)]
mod tests;
mod timeline;

use std::time::Duration;

pub use crate::faults::Latency;
pub use crate::sim::world::RESOURCE_HOST;
pub use detect::{Evidence, Finding, Findings, detect};
pub use drawn::{emitted_text, from_run, replay_drawn};
pub use file::{MAX_FILE_BYTES, ScenarioError, load, parse, parse_duration, to_toml};
pub use naive_program::MONITOR_HOST;
pub use report::write_report;
pub use roles::RoleSpan;
pub use run::{ReplayReport, RunInfo, System, replay};
pub(crate) use run::{group_params, settle_time, site_of_host};
pub use shrink::{shrink, shrink_drawn};
pub(crate) use timeline::Timeline;

/// A validated scenario. Nodes are indexes into `nodes`; node `i` has Raft id `i + 1`.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// Simulated length of the run; every event happens before it.
    pub duration: Duration,
    /// Node names, in the order the sites list them.
    pub nodes: Vec<String>,
    /// The node that leads (or is primary) first.
    pub leader: usize,
    /// The default seed.
    pub seed: u64,
    /// Timing.
    pub timing: Timing,
    /// Raft's options beyond its timers.
    pub raft: RaftOptions,
    /// Sites.
    pub sites: Vec<Site>,
    /// Links between sites (pairs not listed: `timing.default_latency`).
    pub links: Vec<Link>,
    /// Client groups.
    pub clients: Vec<ClientGroup>,
    /// Lock client groups (they write to the fenced resource, in the first group's site).
    pub locks: Vec<LockGroup>,
    /// The timeline, sorted by time.
    pub events: Vec<Event>,
    /// The situations each system's run must reach (`[expect]`).
    pub expect: Expect,
    /// A world drawn by `raftbed sim` (`[sim]`), which replaces the sites, links, clients,
    /// timing and Raft options: the simulator's own world, workload and checks, built from
    /// these values, under the timeline.
    pub sim: Option<SimWorld>,
}

/// The world of a `raftbed sim` run, as `--emit-scenario` writes it (`[sim]`): what the
/// seed drew, so that a replay builds the same world whatever the seed draws today.
#[derive(Clone, Debug, PartialEq)]
pub struct SimWorld {
    /// Raft nodes (`n1`..).
    pub nodes: usize,
    /// Spare nodes after them, no members until added (absent in older files: none).
    pub spares: usize,
    /// Workload clients (one reader per node besides them).
    pub clients: usize,
    /// What the workload clients do.
    pub workload: crate::sim::Workload,
    /// List-append clients beside single-key ones.
    pub append_clients: usize,
    /// Lock clients writing to the fenced resource.
    pub lock_clients: usize,
    /// Watchers of the workload's keys.
    pub watchers: usize,
    /// Revisions the leader's auto-compaction keeps (0: never compacted).
    pub history_kept: i64,
    /// Timers, latency, workload and Raft options.
    pub params: crate::sim::SimParams,
    /// How gRPC travels between the simulated hosts.
    pub transport: crate::sim::SimTransport,
    /// The peer transport.
    pub peer_transport: crate::transport::PeerTransport,
}

/// The situations each system's run must reach, or its verdict is undecided: that the
/// failure the scenario is about really happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    /// Raft's (any of `sim::coverage::names`).
    pub raft: Vec<String>,
    /// naive-failover's (of `NAIVE_SITUATIONS`).
    pub naive_failover: Vec<String>,
    /// naive-failover-fenced's (of `NAIVE_SITUATIONS`).
    pub naive_failover_fenced: Vec<String>,
}

impl Expect {
    /// What `system`'s run must reach.
    pub fn of(&self, system: System) -> &[String] {
        match system {
            System::Raft => &self.raft,
            System::NaiveFailover => &self.naive_failover,
            System::NaiveFailoverFenced => &self.naive_failover_fenced,
        }
    }
}

/// Timing of both systems.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// Raft's tick, election timeout, heartbeat and lease drift margin.
    pub raft: crate::server::timing::Timing,
    /// Leader leases on (lease reads; the drift margin above).
    pub lease: bool,
    /// A write with no outcome after this long is answered "timeout" (indefinite).
    pub request_timeout: Duration,
    /// naive-failover: promote after the primary was silent this long.
    pub failover_after: Duration,
    /// naive-failover: the monitor pings this often.
    pub monitor_interval: Duration,
    /// naive-failover: the site the monitor runs in.
    pub monitor_site: usize,
    /// Latency between sites with no `[[link]]`.
    pub default_latency: Latency,
}

/// Raft's options beyond its timers (`[raft]`): what `raftbed sim`'s swarm draws, so that a
/// seed's world can be written as a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftOptions {
    /// Pre-vote (§9.6).
    pub pre_vote: bool,
    /// Check-quorum and leader stickiness (§6.2); leases need it.
    pub check_quorum: bool,
    /// At most this many entries per AppendEntries.
    pub max_entries_per_message: usize,
    /// Entries between snapshots.
    pub snapshot_every: u64,
    /// The last this many nodes (in site order) are spares: running, but no members until
    /// an `add` or `replace` event adds them.
    pub spares: usize,
}

impl Default for RaftOptions {
    fn default() -> RaftOptions {
        RaftOptions {
            pre_vote: true,
            check_quorum: true,
            max_entries_per_message: 64,
            snapshot_every: 1000,
            spares: 0,
        }
    }
}

/// A site and its nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    /// Its name.
    pub name: String,
    /// Its nodes.
    pub nodes: Vec<usize>,
    /// Latency inside the site.
    pub latency: Latency,
}

/// The link between two sites.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// One site.
    pub a: usize,
    /// The other.
    pub b: usize,
    /// One-way latency.
    pub latency: Latency,
    /// Chance a message is lost (over TCP: the connection breaks).
    pub loss: f64,
}

/// The share of each operation in a client group's workload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix {
    /// Puts.
    pub put: f64,
    /// Gets.
    pub get: f64,
    /// Compare-and-sets.
    pub cas: f64,
    /// Deletes.
    pub delete: f64,
}

/// A group of clients.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientGroup {
    /// Its name.
    pub name: String,
    /// The site it runs in.
    pub site: usize,
    /// Clients.
    pub count: usize,
    /// Operations per second per client (on average).
    pub rate: f64,
    /// The workload.
    pub mix: Mix,
    /// Keys `k0`..: how many.
    pub keys: u64,
    /// The nodes it talks to, in order of preference.
    pub talk_to: Vec<usize>,
    /// Read consistency: `linearizable`, `lease` or `serializable`.
    pub consistency: crate::server::calls::Consistency,
    /// Give up on one attempt after this.
    pub timeout: Duration,
}

/// A group of lock clients: each takes lock `scenario`, writes to the fenced resource with its
/// token, sometimes pauses for 2-4 TTLs while holding it, and releases it.
#[derive(Clone, Debug, PartialEq)]
pub struct LockGroup {
    /// Its name.
    pub name: String,
    /// The site it runs in.
    pub site: usize,
    /// Clients.
    pub count: usize,
    /// The lock's lease TTL, in whole seconds.
    pub ttl: i64,
    /// The chance a holder pauses past its lease.
    pub pause_chance: f64,
    /// The nodes it talks to, in order of preference.
    pub talk_to: Vec<usize>,
}

/// Something that can be cut off: a site or a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every host in a site (nodes, clients, the monitor).
    Site(usize),
    /// One node.
    Node(usize),
}

/// A timed event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// When.
    pub at: Duration,
    /// What.
    pub action: Action,
    /// The line of the file it came from (0: made by shrinking).
    pub line: usize,
}

/// What an event does.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Cut the sides off from each other (with `one_way`, only the first side's messages to
    /// the others are lost). Hosts on no side keep every link.
    Partition {
        /// The sides.
        sides: Vec<Vec<Target>>,
        /// Only the first side's outgoing messages are lost.
        one_way: bool,
    },
    /// Cut these directed links between nodes (from, to): what `raftbed sim` applied, written
    /// back by `--emit-scenario`. Cuts count: a link cut twice stays cut until uncut twice.
    Cut(Vec<(usize, usize)>),
    /// Heal these directed links, cut by an earlier `Cut` (links not cut are left alone).
    Uncut(Vec<(usize, usize)>),
    /// Undo every partition and isolation.
    Heal,
    /// Cut whoever leads at that moment off from every other node and the monitor (its own
    /// site's clients still reach it).
    IsolateLeader,
    /// Crash a node (losing unsynced writes).
    Crash(usize),
    /// Restart a crashed node.
    Restart(usize),
    /// Pause a node (SIGSTOP).
    Pause(usize),
    /// Resume a paused node.
    Resume(usize),
    /// Run a node's clock at this rate.
    Drift(usize, f64),
    /// Jump a node's clock forward.
    Jump(usize, Duration),
    /// Set the loss rate between two sites or nodes.
    Loss(Target, Target, f64),
    /// Set the latency between two sites or nodes.
    SetLatency(Target, Target, Latency),
    /// Write a line into the trace and the report (`raftbed sim`'s nemesis says what it is
    /// doing this way, and `--emit-scenario` keeps its words).
    Note(String),
    /// Ask the leader for a membership change (`add`, `promote`, `remove`): asked again
    /// while it cannot take it yet, as an operator would.
    Member(crate::raft::MembershipChange),
    /// Remove the first node and add the second as a voter, asked back to back.
    Replace(usize, usize),
}

impl SimWorld {
    /// The names of a drawn world's nodes: `n1`, `n2`, ...
    pub fn node_names(nodes: usize) -> Vec<String> {
        (1..=nodes).map(|n| format!("n{n}")).collect()
    }
}

impl Scenario {
    /// The voters the cluster starts with: the nodes but for the spares.
    pub fn voters(&self) -> usize {
        self.nodes.len() - self.raft.spares
    }

    /// A scenario of a world `raftbed sim` drew: its nodes in one site, the site-world
    /// sections filled from `world` for what reads them (the timeline, the writer).
    pub fn drawn(
        name: String,
        description: String,
        duration: Duration,
        seed: u64,
        world: SimWorld,
        events: Vec<Event>,
        expect: Expect,
    ) -> Scenario {
        let p = &world.params;
        let latency = Latency { min: Duration::from_millis(1), max: p.latency_max };
        Scenario {
            name,
            description,
            duration,
            nodes: SimWorld::node_names(world.nodes + world.spares),
            leader: 0,
            seed,
            timing: Timing {
                raft: p.timing,
                lease: p.lease_reads,
                request_timeout: Duration::from_secs(1),
                failover_after: Duration::from_secs(3),
                monitor_interval: Duration::from_secs(1),
                monitor_site: 0,
                default_latency: latency,
            },
            raft: RaftOptions {
                pre_vote: p.pre_vote,
                check_quorum: p.check_quorum,
                max_entries_per_message: p.max_entries_per_message,
                snapshot_every: p.compact_every,
                spares: world.spares,
            },
            sites: vec![Site {
                name: DRAWN_SITE.into(),
                nodes: (0..world.nodes + world.spares).collect(),
                latency,
            }],
            links: Vec::new(),
            clients: Vec::new(),
            locks: Vec::new(),
            events,
            expect,
            sim: Some(world),
        }
    }

    /// The name of a site or node.
    pub fn target_name(&self, target: &Target) -> &str {
        match target {
            Target::Site(s) => &self.sites[*s].name,
            Target::Node(n) => &self.nodes[*n],
        }
    }

    /// The hosts of site `s`: its nodes, and its client groups.
    pub fn site_hosts(&self, s: usize, with_monitor: bool) -> Vec<String> {
        let mut hosts: Vec<String> =
            self.sites[s].nodes.iter().map(|n| self.nodes[*n].clone()).collect();
        for group in self.clients.iter().filter(|g| g.site == s) {
            hosts.push(group_host(&group.name));
        }
        for group in self.locks.iter().filter(|g| g.site == s) {
            hosts.push(lock_host(&group.name));
        }
        if self.locks.first().is_some_and(|g| g.site == s) {
            hosts.push(RESOURCE_HOST.into());
        }
        if with_monitor && self.timing.monitor_site == s {
            hosts.push(MONITOR_HOST.into());
        }
        hosts
    }

    /// The site of node `n`.
    pub fn site_of(&self, n: usize) -> usize {
        self.sites.iter().position(|s| s.nodes.contains(&n)).expect("validated")
    }

    /// The latency between sites `a` and `b`.
    pub fn latency(&self, a: usize, b: usize) -> (Latency, f64) {
        if a == b {
            return (self.sites[a].latency, 0.0);
        }
        self.links
            .iter()
            .find(|l| (l.a, l.b) == (a, b) || (l.a, l.b) == (b, a))
            .map_or((self.timing.default_latency, 0.0), |l| (l.latency, l.loss))
    }

    /// Total clients.
    pub fn client_count(&self) -> usize {
        self.clients.iter().map(|g| g.count).sum()
    }
}

/// The one site of a drawn world's nodes (events name the nodes, never it).
pub const DRAWN_SITE: &str = "sim";

/// The simulated host of a client group.
pub fn group_host(name: &str) -> String {
    format!("clients-{name}")
}

/// The simulated host of a lock group.
pub fn lock_host(name: &str) -> String {
    format!("locks-{name}")
}

/// A duration the way scenario files write it, exactly (`parse_duration` reads it back to the
/// nanosecond): `2s`, `250ms`, `1500ms`, `12.345678ms`.
pub fn show(d: Duration) -> String {
    let nanos = d.as_nanos();
    let ms = nanos / 1_000_000;
    if nanos.is_multiple_of(1_000_000_000) && nanos > 0 {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{ms}ms")
    } else {
        let fraction = format!("{:06}", nanos % 1_000_000);
        format!("{ms}.{}ms", fraction.trim_end_matches('0'))
    }
}
