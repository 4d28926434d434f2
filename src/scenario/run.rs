//! Replaying a scenario under turmoil against one system: Raft (the real raftbed server),
//! naive-failover or naive-failover-fenced. The topology, clients, timeline and detector are
//! the same for all three; only the node program differs.
//!
//! A run has the scenario's own length, then a settling phase: every fault is undone, clients
//! stop, and the cluster gets time to converge (the naive monitor to demote an old primary,
//! replicas to copy the survivor). Then the detector compares what clients were told with what
//! the cluster kept.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use jepsen_lite::{CheckOptions, CheckResult, History, ModelKind, RegisterModel};

use super::detect::{self, Findings};
use super::{Action, MONITOR_HOST, RESOURCE_HOST, Scenario, Target, group_host, lock_host};
use crate::clock::SimClock;
use crate::naive::{self, Disk, NaiveConfig, NaiveObserver, NaiveRole, monitor};
use crate::raft::NodeId;
use crate::rng::SplitMix64;
use crate::server::{Member, Observer};
use crate::sim::checks::{Checks, Event as CheckEvent, Violation};
use crate::sim::harness::{Harness, Probe};
use crate::sim::trace::Trace;
use crate::sim::workload::{self, ClientParams, Shared};
use crate::sim::{CLIENT_PORT, PEER_PORT, SIM_STEP, SimOptions, SimParams, join_local};
use crate::transport::net::SimNet;

/// The system a scenario runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    /// raftbed's Raft.
    Raft,
    /// One primary, asynchronous replicas, a monitor that promotes without a quorum.
    NaiveFailover,
    /// The same with epochs checked at the storage and semi-synchronous acknowledgement.
    NaiveFailoverFenced,
}

impl System {
    /// Every system.
    pub const ALL: [System; 3] = [System::Raft, System::NaiveFailover, System::NaiveFailoverFenced];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            System::Raft => "raft",
            System::NaiveFailover => "naive-failover",
            System::NaiveFailoverFenced => "naive-failover-fenced",
        }
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Option<System> {
        System::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A node's role over a stretch of simulated time.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleSpan {
    /// The node (index).
    pub node: usize,
    /// `leader`, `follower`, `candidate`, `primary`, `replica`, `down` or `paused`.
    pub role: String,
    /// From.
    pub from: Duration,
    /// Until.
    pub to: Duration,
}

/// What one replay found.
#[derive(Clone, Debug)]
pub struct ReplayReport {
    /// The scenario.
    pub scenario: Scenario,
    /// The system.
    pub system: System,
    /// The seed.
    pub seed: u64,
    /// Hash of the trace: equal runs, equal hashes.
    pub trace_hash: String,
    /// The trace.
    pub trace: Vec<String>,
    /// The clients' history.
    pub history: History,
    /// The linearizability verdict.
    pub linearizability: CheckResult,
    /// What the detector found.
    pub findings: Findings,
    /// Each node's role over time.
    pub roles: Vec<RoleSpan>,
    /// Fault windows for the timeline: (from, to, label).
    pub faults: Vec<(Duration, Duration, String)>,
    /// Client group of each client number.
    pub groups: Vec<String>,
    /// Processes per client (process ids advance by this after an indeterminate op).
    pub processes: u64,
    /// Wall time.
    pub wall: Duration,
    /// How to run it again, when it is not a scenario replay.
    pub rerun: Option<String>,
}

impl ReplayReport {
    /// Whether the design held: linearizable and no split-brain effect.
    pub fn ok(&self) -> bool {
        self.linearizable() && !self.findings.split_brain()
    }

    /// Whether the history is linearizable.
    pub fn linearizable(&self) -> bool {
        matches!(self.linearizability, CheckResult::Linearizable)
    }

    /// The command that replays it.
    pub fn replay_command(&self, path: &str) -> String {
        if let Some(rerun) = &self.rerun {
            return rerun.clone();
        }
        format!("raftbed replay {path} --system {} --seed {}", self.system.name(), self.seed)
    }
}

/// Roles as the nodes report them, shared with their observers.
#[derive(Default)]
struct Roles {
    current: BTreeMap<usize, (String, Duration)>,
    spans: Vec<RoleSpan>,
    /// naive: each node's (role, epoch).
    naive: BTreeMap<usize, (NaiveRole, u64)>,
    refused: u64,
}

impl Roles {
    fn set(&mut self, node: usize, role: &str, at: Duration) {
        if self.current.get(&node).is_some_and(|(old, _)| old == role) {
            return;
        }
        if let Some((old, since)) = self.current.insert(node, (role.to_string(), at)) {
            self.spans.push(RoleSpan { node, role: old, from: since, to: at });
        }
    }

    fn finish(&mut self, at: Duration) {
        for (node, (role, since)) in std::mem::take(&mut self.current) {
            self.spans.push(RoleSpan { node, role, from: since, to: at });
        }
        self.spans.sort_by_key(|s| (s.node, s.from));
    }

    fn naive_primary(&self) -> Option<usize> {
        self.naive
            .iter()
            .filter(|(_, (role, _))| *role == NaiveRole::Primary)
            .max_by_key(|(n, (_, epoch))| (*epoch, std::cmp::Reverse(**n)))
            .map(|(n, _)| *n)
    }
}

struct NaiveProbe {
    roles: Rc<RefCell<Roles>>,
    trace: Rc<RefCell<Trace>>,
}

impl NaiveObserver for NaiveProbe {
    fn role(&self, node: NodeId, role: NaiveRole, epoch: u64) {
        let now = crate::sim::harness::sim_now();
        let index = node.0 as usize - 1;
        let name = if role == NaiveRole::Primary { "primary" } else { "replica" };
        let mut roles = self.roles.borrow_mut();
        roles.naive.insert(index, (role, epoch));
        roles.set(index, name, now);
        let following = match role {
            NaiveRole::Primary => String::new(),
            NaiveRole::Replica(p) => {
                format!(" of {}", p.map_or("nobody".into(), |p| p.to_string()))
            }
        };
        self.trace.borrow_mut().record(now, format_args!("{node} {name}{following} epoch={epoch}"));
    }

    fn refused(&self, node: NodeId, from: NodeId, epoch: u64) {
        let now = crate::sim::harness::sim_now();
        self.roles.borrow_mut().refused += 1;
        self.trace.borrow_mut().record(now, format_args!("{node} refuses {from}'s epoch {epoch}"));
    }

    fn unstored(&self, node: NodeId, epoch: u64) {
        // Fencing at work only when a newer epoch exists: the replicas moved on.
        let now = crate::sim::harness::sim_now();
        let mut roles = self.roles.borrow_mut();
        let newest = roles.naive.values().map(|(_, e)| *e).max().unwrap_or(0);
        if newest > epoch {
            roles.refused += 1;
            self.trace.borrow_mut().record(
                now,
                format_args!("{node} write at stale epoch {epoch} stored by no replica (epoch {newest} exists)"),
            );
        }
    }

    fn note(&self, node: NodeId, text: String) {
        let now = crate::sim::harness::sim_now();
        self.trace.borrow_mut().record(now, format_args!("{node} {text}"));
    }
}

impl monitor::MonitorObserver for NaiveProbe {
    fn note(&self, text: String) {
        let now = crate::sim::harness::sim_now();
        self.trace.borrow_mut().record(now, format_args!("{text}"));
    }
}

fn members(scenario: &Scenario) -> BTreeMap<NodeId, Member> {
    scenario
        .nodes
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let member = Member {
                peer_addr: format!("{name}:{PEER_PORT}"),
                client_addr: format!("{name}:{CLIENT_PORT}"),
            };
            (NodeId(i as u64 + 1), member)
        })
        .collect()
}

fn ticks(d: Duration, tick: Duration) -> u32 {
    (d.as_nanos() / tick.as_nanos().max(1)).max(1) as u32
}

/// How long the cluster gets to converge after the scenario's end.
fn settle_time(scenario: &Scenario) -> Duration {
    let t = &scenario.timing;
    (t.failover_after + t.monitor_interval * 4)
        .max(t.election_timeout * 6)
        .max(Duration::from_secs(5))
}

/// Replays `scenario` against `system` from `seed`.
pub fn replay(scenario: &Scenario, system: System, seed: u64) -> ReplayReport {
    let wall = Instant::now();
    let mut rng = SplitMix64::new(seed);
    let timing = &scenario.timing;
    let settle = settle_time(scenario);
    let mut sim = turmoil::Builder::new()
        .simulation_duration(scenario.duration + settle + Duration::from_secs(60))
        .tick_duration(SIM_STEP)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(timing.default_latency.max.max(Duration::from_millis(1)))
        .tcp_capacity(1 << 16)
        .rng_seed(seed)
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .build();
    let checks = Rc::new(RefCell::new(Checks::default()));
    let trace = Rc::new(RefCell::new(Trace::new(true)));
    let events = Rc::new(RefCell::new(Vec::new()));
    let roles = Rc::new(RefCell::new(Roles::default()));
    let members = members(scenario);
    let n = scenario.nodes.len();
    let clocks: Vec<SimClock> =
        (0..n).map(|_| SimClock::new(Duration::ZERO, Duration::ZERO, 1.0)).collect();
    let tick = timing.tick;
    let params = SimParams {
        tick,
        election_ticks: ticks(timing.election_timeout, tick),
        heartbeat_ticks: ticks(timing.heartbeat, tick),
        latency_max: timing.default_latency.max,
        think_max: Duration::from_millis(10),
        compact_every: 1000,
        keys: 4,
        max_entries_per_message: 64,
        pre_vote: true,
        check_quorum: true,
        lease_reads: timing.lease,
        attempts: 2,
    };
    let options = SimOptions { nodes: n, ..SimOptions::new(seed) };
    let naive_probe = Rc::new(NaiveProbe { roles: roles.clone(), trace: trace.clone() });
    let mut disks = Vec::new();
    for (i, name) in scenario.nodes.iter().enumerate() {
        let id = NodeId(i as u64 + 1);
        let mut config = crate::sim::node_config(id, &options, &params, seed);
        config.members = members.clone();
        config.raft.voters = members.keys().copied().collect();
        config.raft.lease_drift_margin_ticks =
            ticks(timing.drift_margin, tick).min(params.election_ticks - 1);
        if timing.drift_margin.is_zero() {
            config.raft.lease_drift_margin_ticks = 0;
        }
        config.request_timeout = timing.request_timeout;
        config.transport.rpc_timeout =
            (timing.default_latency.max * 8).max(Duration::from_millis(200));
        config.campaign_first = i == scenario.leader;
        let host = name.clone();
        match system {
            System::Raft => {
                let probe: Rc<dyn Observer> = Rc::new(Probe {
                    checks: checks.clone(),
                    trace: trace.clone(),
                    events: events.clone(),
                });
                crate::sim::raft_host(&mut sim, name, config, clocks[i].clone(), probe);
            }
            System::NaiveFailover | System::NaiveFailoverFenced => {
                let disk = Rc::new(RefCell::new(Disk::new(id, NodeId(scenario.leader as u64 + 1))));
                disks.push(disk.clone());
                let naive =
                    NaiveConfig { node: config, fenced: system == System::NaiveFailoverFenced };
                let probe: Rc<dyn NaiveObserver> = naive_probe.clone();
                sim.host(name.as_str(), move || {
                    let (naive, disk, probe, host) =
                        (naive.clone(), disk.clone(), probe.clone(), host.clone());
                    async move {
                        naive::run_naive_node(naive, SimNet, disk, probe)
                            .await
                            .map_err(|e| format!("{host}: {e}").into())
                    }
                });
            }
        }
    }
    let mut hosts: Vec<String> = scenario.nodes.clone();
    if system != System::Raft {
        let params = monitor::MonitorParams {
            nodes: members.iter().map(|(id, m)| (*id, m.peer_addr.clone())).collect(),
            primary: NodeId(scenario.leader as u64 + 1),
            interval: timing.monitor_interval,
            failover_after: timing.failover_after,
        };
        let observer: Rc<dyn monitor::MonitorObserver> = naive_probe.clone();
        sim.client(MONITOR_HOST, monitor::run(SimNet, params, observer));
        hosts.push(MONITOR_HOST.into());
    }

    // Clients: one host per group; client numbers run across groups.
    let shared = Rc::new(Shared::default());
    let total = scenario.client_count() as u64;
    let mut groups = Vec::new();
    let mut next = 0u64;
    for group in &scenario.clients {
        let mix = [
            group.mix.put,
            group.mix.put + group.mix.get,
            group.mix.put + group.mix.get + group.mix.cas,
        ];
        let params = ClientParams {
            nodes: group
                .talk_to
                .iter()
                .map(|n| format!("{}:{CLIENT_PORT}", scenario.nodes[*n]))
                .collect(),
            keys: group.keys,
            think_max: Duration::from_secs_f64(2.0 / group.rate),
            timeout: group.timeout,
            attempts: 2,
            processes: total,
            lease_reads: 0.0,
            mix,
            read_consistency: Some(group.consistency),
            spread: false,
        };
        let clients: Vec<_> = (0..group.count)
            .map(|_| {
                let id = next;
                next += 1;
                groups.push(group.name.clone());
                workload::run(
                    id,
                    workload::Role::Mixed,
                    params.clone(),
                    rng.fork(),
                    shared.clone(),
                    trace.clone(),
                )
            })
            .collect();
        let host = group_host(&group.name);
        sim.client(host.as_str(), join_local(clients));
        hosts.push(host);
    }

    // Lock clients and the fenced resource.
    let fencing_log = Rc::new(RefCell::new(crate::sim::fencing::FencingLog::default()));
    let lock_stop = Rc::new(std::cell::Cell::new(false));
    if !scenario.locks.is_empty() {
        sim.client(
            RESOURCE_HOST,
            crate::sim::fencing::resource(fencing_log.clone(), trace.clone()),
        );
        hosts.push(RESOURCE_HOST.into());
        let mut next = 0u64;
        for group in &scenario.locks {
            let params = crate::sim::fencing::LockParams {
                nodes: group
                    .talk_to
                    .iter()
                    .map(|n| format!("{}:{CLIENT_PORT}", scenario.nodes[*n]))
                    .collect(),
                ttl: group.ttl,
                pause_chance: group.pause_chance,
            };
            let clients: Vec<_> = (0..group.count)
                .map(|_| {
                    next += 1;
                    crate::sim::fencing::lock_client(
                        next,
                        params.clone(),
                        rng.fork(),
                        fencing_log.clone(),
                        trace.clone(),
                        lock_stop.clone(),
                    )
                })
                .collect();
            let host = lock_host(&group.name);
            sim.client(host.as_str(), join_local(clients));
            hosts.push(host);
        }
    }

    // Latency and loss by site.
    let site_of_host = |host: &str| -> usize {
        if let Some(node) = scenario.nodes.iter().position(|n| n == host) {
            return scenario.site_of(node);
        }
        if host == MONITOR_HOST {
            return timing.monitor_site;
        }
        if host == RESOURCE_HOST {
            return scenario.locks[0].site;
        }
        if let Some(group) = scenario.locks.iter().find(|g| lock_host(&g.name) == host) {
            return group.site;
        }
        let group =
            scenario.clients.iter().find(|g| group_host(&g.name) == host).expect("a known host");
        group.site
    };
    let set_link =
        |sim: &mut turmoil::Sim<'_>, a: &str, b: &str, latency: super::Latency, loss: f64| {
            sim.set_link_latency(a, b, latency.min);
            if latency.max > latency.min {
                sim.set_link_max_message_latency(a, b, latency.max);
            }
            sim.set_link_fail_rate(a, b, loss);
        };
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            let (latency, loss) = scenario.latency(site_of_host(a), site_of_host(b));
            set_link(&mut sim, a, b, latency, loss);
        }
    }

    let mut h = Harness::new(
        sim,
        scenario.nodes.clone(),
        hosts.clone(),
        clocks,
        checks.clone(),
        trace.clone(),
        events.clone(),
        rng.fork(),
    );
    for node in 0..n {
        roles.borrow_mut().set(
            node,
            if system == System::Raft { "follower" } else { "replica" },
            Duration::ZERO,
        );
    }

    // The timeline.
    let mut cuts: Vec<(String, String)> = Vec::new();
    let mut windows: Vec<(Duration, Option<Duration>, String, WindowKind)> = Vec::new();
    let mut timeline = scenario.events.clone();
    timeline.reverse();
    let leader_now = |h: &Harness<'_>, roles: &Roles| -> Option<usize> {
        match system {
            System::Raft => h.leader_index(),
            _ => roles.naive_primary(),
        }
    };
    while h.now() < scenario.duration {
        let now = h.now();
        while timeline.last().is_some_and(|e| e.at <= now) {
            let event = timeline.pop().expect("checked");
            let leader = leader_now(&h, &roles.borrow());
            let label = apply(&mut h, scenario, &event.action, &mut cuts, &hosts, leader, system);
            close_windows(&mut windows, &event.action, now);
            if let Some((label, kind)) = label {
                windows.push((now, None, label, kind));
            }
        }
        h.step();
        drain_roles(&h, &roles, system);
    }

    // Settle: undo everything, stop the clients, let the cluster converge.
    let end = h.now();
    shared.stop.set(true);
    lock_stop.set(true);
    if !cuts.is_empty() {
        h.links.uncut(&cuts);
        h.links.apply(&h.sim, &hosts);
        h.record("heal (end of scenario)".into());
    }
    for node in std::mem::take(&mut h.paused) {
        h.clocks[node].resume();
        h.links.set_paused(&h.nodes[node], false);
        h.record(format!("resume {} (end of scenario)", h.nodes[node]));
    }
    h.links.apply(&h.sim, &hosts);
    for node in std::mem::take(&mut h.crashed) {
        h.record(format!("restart {} (end of scenario)", h.nodes[node]));
        h.sim.bounce(h.nodes[node].as_str());
        roles.borrow_mut().set(node, "follower", end);
    }
    for clock in &h.clocks {
        clock.set_rate(end, 1.0);
    }
    for window in &mut windows {
        window.1.get_or_insert(end);
    }
    while h.now() < end + settle {
        h.step();
        drain_roles(&h, &roles, system);
    }
    let stop = h.now();
    roles.borrow_mut().finish(stop);

    // What the cluster kept.
    let acked = shared.acked.borrow().clone();
    let acked_events = shared.acked_events.borrow().clone();
    let mut lost_events = Vec::new();
    match system {
        System::Raft => {
            let before = checks.borrow().violations().len();
            for (client, seq, index) in &acked {
                checks.borrow_mut().check_acked(*client, *seq, *index);
            }
            let checks = checks.borrow();
            for violation in &checks.violations()[before..] {
                if let Violation::AckedWriteLost { client, seq, .. } = violation
                    && let Some(i) = acked.iter().position(|(c, s, _)| c == client && s == seq)
                {
                    lost_events.push(acked_events[i]);
                }
            }
        }
        _ => {
            let survivor = roles.borrow().naive_primary().unwrap_or(scenario.leader);
            let kept: BTreeSet<(u64, u64)> =
                disks[survivor].borrow().binlog.iter().copied().collect();
            for (i, (client, seq, _)) in acked.iter().enumerate() {
                if !kept.contains(&(*client, *seq)) {
                    lost_events.push(acked_events[i]);
                }
            }
        }
    }
    let history = shared.history.borrow().clone();
    let linearizability = {
        let check = CheckOptions {
            timeout: Some(Duration::from_secs(60)),
            threads: 1,
            ..CheckOptions::default()
        };
        jepsen_lite::check(&RegisterModel::new(ModelKind::Kv), &history, &check)
            .map(|report| report.result)
            .unwrap_or_else(|e| CheckResult::Unknown(format!("history malformed: {e}")))
    };
    let roles_done = roles.borrow();
    let lease_overlaps: Vec<String> = checks
        .borrow()
        .violations()
        .iter()
        .filter(|v| matches!(v, Violation::LeaseOverlap { .. }))
        .map(|v| v.to_string())
        .collect();
    let other_violations: Vec<String> = checks
        .borrow()
        .violations()
        .iter()
        .filter(|v| !matches!(v, Violation::LeaseOverlap { .. } | Violation::AckedWriteLost { .. }))
        .map(|v| v.to_string())
        .collect();
    let findings = detect::detect(&detect::Evidence {
        history: &history,
        lost_events: &lost_events,
        roles: &roles_done.spans,
        lease_overlaps,
        violations: other_violations,
        fenced_rejections: roles_done.refused + fencing_log.borrow().refused() as u64,
        fencing: &fencing_log.borrow(),
        end,
    });
    let trace = h.trace.borrow();
    let faults =
        windows.into_iter().map(|(from, to, label, _)| (from, to.unwrap_or(end), label)).collect();
    ReplayReport {
        scenario: scenario.clone(),
        system,
        seed,
        trace_hash: format!("{:016x}", trace.hash()),
        trace: trace.lines().to_vec(),
        history,
        linearizability,
        findings,
        roles: roles_done.spans.clone(),
        faults,
        groups,
        processes: total,
        wall: wall.elapsed(),
        rerun: None,
    }
}

/// What a fault window closes on.
#[derive(Clone, Debug, PartialEq)]
enum WindowKind {
    Cut,
    Down(usize),
    Paused(usize),
    Clock(usize),
    Link,
}

fn close_windows(
    windows: &mut [(Duration, Option<Duration>, String, WindowKind)],
    action: &Action,
    now: Duration,
) {
    for window in windows.iter_mut().filter(|w| w.1.is_none()) {
        let closes = match (action, &window.3) {
            (Action::Heal, WindowKind::Cut) => true,
            (Action::Restart(a), WindowKind::Down(b))
            | (Action::Resume(a), WindowKind::Paused(b)) => a == b,
            (Action::Drift(a, _) | Action::Jump(a, _), WindowKind::Clock(b)) => a == b,
            (Action::Loss(..) | Action::SetLatency(..), WindowKind::Link) => true,
            _ => false,
        };
        if closes {
            window.1 = Some(now);
        }
    }
}

/// Applies one timeline event; returns the label of the fault window it opens, if any.
fn apply(
    h: &mut Harness<'_>,
    s: &Scenario,
    action: &Action,
    cuts: &mut Vec<(String, String)>,
    hosts: &[String],
    leader: Option<usize>,
    system: System,
) -> Option<(String, WindowKind)> {
    let now = h.now();
    let with_monitor = system != System::Raft;
    let hosts_of = |t: &Target| -> Vec<String> {
        match t {
            Target::Site(i) => s.site_hosts(*i, with_monitor),
            Target::Node(n) => vec![s.nodes[*n].clone()],
        }
    };
    match action {
        Action::Partition { sides, one_way } => {
            let sides_hosts: Vec<Vec<String>> =
                sides.iter().map(|side| side.iter().flat_map(hosts_of).collect()).collect();
            let mut pairs = Vec::new();
            for (i, a) in sides_hosts.iter().enumerate() {
                for (j, b) in sides_hosts.iter().enumerate() {
                    if i == j || (*one_way && i != 0) {
                        continue;
                    }
                    for x in a {
                        for y in b {
                            pairs.push((x.clone(), y.clone()));
                        }
                    }
                }
            }
            let label = describe_sides(s, sides, *one_way);
            h.record(format!("partition {label}"));
            h.links.cut(&pairs);
            h.links.apply(&h.sim, hosts);
            cuts.extend(pairs);
            Some((format!("partition {label}"), WindowKind::Cut))
        }
        Action::Heal => {
            h.record("heal".into());
            h.links.uncut(cuts);
            cuts.clear();
            h.links.apply(&h.sim, hosts);
            None
        }
        Action::IsolateLeader => {
            let Some(leader) = leader else {
                h.record("isolate the leader: there is none".into());
                return None;
            };
            let alone = s.nodes[leader].clone();
            let mut others: Vec<String> =
                s.nodes.iter().filter(|n| **n != alone).cloned().collect();
            if with_monitor {
                others.push(MONITOR_HOST.into());
            }
            let pairs: Vec<(String, String)> = others
                .iter()
                .flat_map(|o| [(alone.clone(), o.clone()), (o.clone(), alone.clone())])
                .collect();
            h.record(format!("isolate the leader {alone}"));
            h.links.cut(&pairs);
            h.links.apply(&h.sim, hosts);
            cuts.extend(pairs);
            Some((format!("{alone} isolated"), WindowKind::Cut))
        }
        Action::Crash(n) => {
            if system == System::Raft {
                h.crash(*n, "scenario");
            } else {
                h.record(format!("crash {}", s.nodes[*n]));
                h.sim.crash(s.nodes[*n].as_str());
                h.crashed.insert(*n);
            }
            Some((format!("{} down", s.nodes[*n]), WindowKind::Down(*n)))
        }
        Action::Restart(n) => {
            if h.crashed.remove(n) {
                h.record(format!("restart {}", s.nodes[*n]));
                h.sim.bounce(s.nodes[*n].as_str());
            }
            None
        }
        Action::Pause(n) => {
            h.record(format!("pause {}", s.nodes[*n]));
            h.clocks[*n].pause();
            h.links.set_paused(&s.nodes[*n], true);
            h.links.apply(&h.sim, hosts);
            h.paused.insert(*n);
            Some((format!("{} paused", s.nodes[*n]), WindowKind::Paused(*n)))
        }
        Action::Resume(n) => {
            h.record(format!("resume {}", s.nodes[*n]));
            h.clocks[*n].resume();
            h.links.set_paused(&s.nodes[*n], false);
            h.links.apply(&h.sim, hosts);
            h.paused.remove(n);
            None
        }
        Action::Drift(n, rate) => {
            h.record(format!("clock {} runs at x{rate}", s.nodes[*n]));
            h.clocks[*n].set_rate(now, *rate);
            (*rate != 1.0)
                .then(|| (format!("{} clock x{rate}", s.nodes[*n]), WindowKind::Clock(*n)))
        }
        Action::Jump(n, delta) => {
            h.record(format!("clock {} jumps {}", s.nodes[*n], super::show(*delta)));
            h.clocks[*n].jump(now, *delta);
            None
        }
        Action::Loss(a, b, rate) => {
            let (ha, hb) = (s.site_hosts(*a, with_monitor), s.site_hosts(*b, with_monitor));
            h.record(format!("loss {rate} between {} and {}", s.sites[*a].name, s.sites[*b].name));
            for x in &ha {
                for y in &hb {
                    h.sim.set_link_fail_rate(x.as_str(), y.as_str(), *rate);
                }
            }
            (*rate > 0.0).then(|| {
                (format!("loss {rate} {}-{}", s.sites[*a].name, s.sites[*b].name), WindowKind::Link)
            })
        }
        Action::SetLatency(a, b, latency) => {
            let (ha, hb) = (s.site_hosts(*a, with_monitor), s.site_hosts(*b, with_monitor));
            h.record(format!(
                "latency {latency} between {} and {}",
                s.sites[*a].name, s.sites[*b].name
            ));
            for x in &ha {
                for y in &hb {
                    h.sim.set_link_latency(x.as_str(), y.as_str(), latency.min);
                    if latency.max > latency.min {
                        h.sim.set_link_max_message_latency(x.as_str(), y.as_str(), latency.max);
                    }
                }
            }
            Some((
                format!("latency {latency} {}-{}", s.sites[*a].name, s.sites[*b].name),
                WindowKind::Link,
            ))
        }
    }
}

fn describe_sides(s: &Scenario, sides: &[Vec<Target>], one_way: bool) -> String {
    let names: Vec<String> = sides
        .iter()
        .map(|side| {
            let names: Vec<&str> = side
                .iter()
                .map(|t| match t {
                    Target::Site(i) => s.sites[*i].name.as_str(),
                    Target::Node(n) => s.nodes[*n].as_str(),
                })
                .collect();
            format!("{{{}}}", names.join(", "))
        })
        .collect();
    names.join(if one_way { " -/-> " } else { " | " })
}

/// Turns the Raft probes' role events (and crashes) into role spans.
fn drain_roles(h: &Harness<'_>, roles: &Rc<RefCell<Roles>>, system: System) {
    let now = h.now();
    let mut roles = roles.borrow_mut();
    if system == System::Raft {
        for event in std::mem::take(&mut *h.events.borrow_mut()) {
            if let CheckEvent::Role { node, role, .. } = event {
                let name = match role {
                    crate::raft::Role::Leader => "leader",
                    crate::raft::Role::Candidate | crate::raft::Role::PreCandidate => "candidate",
                    crate::raft::Role::Follower => "follower",
                };
                roles.set(node.0 as usize - 1, name, now);
            }
        }
    }
    for node in &h.crashed {
        roles.set(*node, "down", now);
    }
    for node in &h.paused {
        roles.set(*node, "paused", now);
    }
    for node in 0..h.nodes.len() {
        let down_or_paused =
            roles.current.get(&node).is_some_and(|(r, _)| r == "down" || r == "paused");
        if down_or_paused && !h.crashed.contains(&node) && !h.paused.contains(&node) {
            let back = match (system, roles.naive.get(&node)) {
                (System::Raft, _) => "follower",
                (_, Some((NaiveRole::Primary, _))) => "primary",
                _ => "replica",
            };
            roles.set(node, back, now);
        }
    }
}
