//! Scenario files: a topology of sites, the links between them, client groups, timing, and a
//! timeline of faults, replayed deterministically against Raft and against naive failover
//! (`run.rs`), with the split-brain detector (`detect.rs`), reports (`report.rs`) and shrinking
//! (`shrink.rs`). The file format is `file.rs`; this module holds the validated form.

mod detect;
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
pub use file::{MAX_FILE_BYTES, ScenarioError, load, parse, parse_duration, to_toml};
pub use naive_program::MONITOR_HOST;
pub use report::write_report;
pub use roles::RoleSpan;
pub use run::{ReplayReport, RunInfo, System, replay};
pub use shrink::shrink;

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
    /// Set the loss rate between two sites.
    Loss(usize, usize, f64),
    /// Set the latency between two sites.
    SetLatency(usize, usize, Latency),
}

impl Scenario {
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

/// The simulated host of a client group.
pub fn group_host(name: &str) -> String {
    format!("clients-{name}")
}

/// The simulated host of a lock group.
pub fn lock_host(name: &str) -> String {
    format!("locks-{name}")
}

/// A duration the way scenario files write it: `1.5s`, `250ms`.
pub fn show(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 && (ms / 1000.0).fract() == 0.0 {
        format!("{}s", ms / 1000.0)
    } else if ms.fract() == 0.0 {
        format!("{ms}ms")
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}
