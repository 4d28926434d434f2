//! Replaying a scenario in the simulated world against one system: Raft (the real raftbed
//! server), naive-failover or naive-failover-fenced. The topology, clients, timeline and
//! detector are the same for all three; only the node program differs.
//!
//! A run has the scenario's own length, then a settling phase: every fault is undone, clients
//! stop, and the cluster gets time to converge (the naive monitor to demote an old primary,
//! replicas to copy the survivor). Then the detector compares what clients were told with what
//! the cluster kept.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use jepsen_lite::{CheckResult, History};

use super::detect::{self, Findings};
use super::naive_program::NaiveProgram;
use super::roles::{RoleSpan, Roles};
use super::timeline::Timeline;
use super::{MONITOR_HOST, RESOURCE_HOST, Scenario, group_host, lock_host};
use crate::faults::Faults;
use crate::rng::SplitMix64;
use crate::sim::SimBugs;
use crate::sim::checks::Violation;
use crate::sim::coverage::{Coverage, WorldEvent};
use crate::sim::fencing::LockParams;
use crate::sim::workload::{ClientParams, Role};
use crate::sim::{
    CheckBudget, ClientGroupSpec, LockGroupSpec, NetSpec, NodeProgram, NodeSpec, RaftProgram,
    World, WorldSpec, check_history,
};
use crate::verdict::{Check, Outcome, Verdict};

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

/// The situations a naive system's run can reach (`[expect]`): a replica promoted (its
/// `leader-elected`; the configured first primary is not counted), a write refused for a stale
/// epoch or token, a lock holder paused.
pub const NAIVE_SITUATIONS: [&str; 3] =
    ["leader-elected", "fenced-rejection", "lock-holder-paused"];

/// What ran: a scenario, or a real test.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// Its name.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// How long faults and clients ran.
    pub duration: Duration,
    /// The nodes' names.
    pub nodes: Vec<String>,
}

impl RunInfo {
    /// What `scenario` is.
    pub fn of(scenario: &Scenario) -> RunInfo {
        RunInfo {
            name: scenario.name.clone(),
            description: scenario.description.clone(),
            duration: scenario.duration,
            nodes: scenario.nodes.clone(),
        }
    }
}

/// What one replay found.
#[derive(Clone, Debug)]
pub struct ReplayReport {
    /// What ran.
    pub run: RunInfo,
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
    /// The fates of the history's writes from Raft's committed log (none for the naive
    /// systems, whose logs are not a single committed order), and what the checker did with
    /// them.
    pub resolved: Option<(jepsen_lite::Resolved, jepsen_lite::ResolvedCounts)>,
    /// What the detector found.
    pub findings: Findings,
    /// Why the detector could not decide, if it could not (a real test's final read failed).
    pub detector_undecided: Option<String>,
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
    /// The history checker's budget, when not the default (part of the replay command).
    pub check: CheckBudget,
    /// The bugs switched on (part of the replay command).
    pub bugs: SimBugs,
    /// What the watch checker found, when watchers ran (`raftbed test`).
    pub watch: Option<jepsen_lite::watch::WatchReport>,
    /// The watch check's input (`watches.jsonl` in the report directory).
    pub watch_log: Option<jepsen_lite::watch::WatchLog>,
    /// The situations the run reached (simulation only).
    pub coverage: Option<Coverage>,
    /// The situations it had to reach (`[expect]`), or its coverage check is undecided.
    pub expected: Vec<String>,
    /// What the transaction checker found, when the clients ran transactions (`raftbed test
    /// --workload append`).
    pub transactions: Option<Result<jepsen_lite::txn::TxnReport, String>>,
    /// Whether it ran on real processes (else in the simulator).
    pub real: bool,
}

impl ReplayReport {
    /// Each check's outcome: the history, the invariants, the split-brain detector, fencing.
    pub fn verdict(&self) -> Verdict {
        let f = &self.findings;
        let invariants = match f.violations.first() {
            None => Outcome::Held,
            Some(first) => Outcome::Violated(first.clone()),
        };
        let effects = [
            (f.overlapping_leadership.len(), "overlapping leadership"),
            (f.lost_writes.len(), "acknowledged writes lost"),
            (f.stale_reads.len(), "stale reads"),
        ];
        let seen: Vec<String> =
            effects.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
        let detector = match (&self.detector_undecided, seen.is_empty()) {
            (_, false) => Outcome::Violated(seen.join(", ")),
            (Some(why), true) => Outcome::Undecided(why.clone()),
            (None, true) => Outcome::Held,
        };
        let fencing = match f.stale_tokens.len() {
            0 => Outcome::Held,
            n => Outcome::Violated(format!("{n} stale tokens accepted")),
        };
        let verdict = Verdict::default()
            .with(Check::History, Outcome::of_history(&self.linearizability))
            .with(Check::Invariants, invariants)
            .with(Check::Detector, detector)
            .with(Check::Fencing, fencing);
        let verdict = match &self.watch {
            Some(watch) => verdict.with(Check::Watch, Outcome::of_watches(watch)),
            None => verdict,
        };
        let verdict = match &self.transactions {
            Some(checked) => verdict.with(Check::Transactions, Outcome::of_transactions(checked)),
            None => verdict,
        };
        if self.expected.is_empty() {
            return verdict;
        }
        let coverage = self.coverage.clone().unwrap_or_default();
        verdict.with(Check::Coverage, Outcome::of_coverage(&coverage.missing(&self.expected)))
    }

    /// The name of its run among `reports`: the system's, with the world when both worlds ran
    /// it (`raft-sim`, `raft-real`).
    pub fn label(&self, reports: &[ReplayReport]) -> String {
        let twice = reports.iter().filter(|r| r.system == self.system).count() > 1;
        match (twice, self.real) {
            (false, _) => self.system.name().to_string(),
            (true, false) => format!("{}-sim", self.system.name()),
            (true, true) => format!("{}-real", self.system.name()),
        }
    }

    /// Whether the design held: every check held.
    pub fn ok(&self) -> bool {
        self.verdict().held()
    }

    /// Whether the history is linearizable: `None` when the checker could not decide.
    pub fn linearizable(&self) -> Option<bool> {
        match self.linearizability {
            CheckResult::Linearizable => Some(true),
            CheckResult::NotLinearizable(_) => Some(false),
            CheckResult::Unknown(_) => None,
        }
    }

    /// The command that replays it.
    pub fn replay_command(&self, path: &str) -> String {
        if let Some(rerun) = &self.rerun {
            return rerun.clone();
        }
        let bugs: String = self.bugs.names().iter().map(|b| format!(" --bug {b}")).collect();
        format!(
            "raftbed replay {path} --system {} --seed {}{bugs}{}",
            self.system.name(),
            self.seed,
            self.check.flags()
        )
    }
}

/// How a client of `group` behaves, talking to `nodes`, one of `total` clients: the same in
/// the simulator and on real processes.
pub(crate) fn group_params(
    group: &super::ClientGroup,
    nodes: Vec<String>,
    total: u64,
) -> ClientParams {
    let mix = group.mix;
    ClientParams {
        nodes,
        keys: group.keys,
        think_max: Duration::from_secs_f64(2.0 / group.rate),
        timeout: group.timeout,
        attempts: 2,
        processes: total,
        lease_reads: 0.0,
        mix: [mix.put, mix.put + mix.get, mix.put + mix.get + mix.cas],
        read_consistency: Some(group.consistency),
        spread: false,
        workload: crate::sim::Workload::Kv,
    }
}

/// How long the cluster gets to converge after the scenario's end.
pub(crate) fn settle_time(scenario: &Scenario) -> Duration {
    let t = &scenario.timing;
    (t.failover_after + t.monitor_interval * 4)
        .max(t.raft.election_timeout * 6)
        .max(Duration::from_secs(5))
}

/// The world `scenario` describes: the program is the caller's; the rest is the same for
/// every system. Returns the spec and each client's group.
fn world_spec(scenario: &Scenario, seed: u64) -> (WorldSpec, Vec<String>) {
    let timing = &scenario.timing;
    let endpoints = |talk_to: &[usize]| -> Vec<String> {
        talk_to
            .iter()
            .map(|n| format!("{}:{}", scenario.nodes[*n], crate::sim::CLIENT_PORT))
            .collect()
    };
    // Clients: one host per group; client numbers run across groups.
    let total = scenario.client_count() as u64;
    let mut groups = Vec::new();
    let mut next = 0u64;
    let mut clients = Vec::new();
    for group in &scenario.clients {
        let params = group_params(group, endpoints(&group.talk_to), total);
        let ids = (next..next + group.count as u64).map(|id| (id, Role::Mixed)).collect();
        next += group.count as u64;
        groups.extend(std::iter::repeat_n(group.name.clone(), group.count));
        clients.push(ClientGroupSpec { host: group_host(&group.name), params, clients: ids });
    }
    let mut next = 0u64;
    let mut locks = Vec::new();
    for group in &scenario.locks {
        let params = LockParams {
            nodes: endpoints(&group.talk_to),
            ttl: group.ttl,
            pause_chance: group.pause_chance,
        };
        let ids = (next + 1..=next + group.count as u64).collect();
        next += group.count as u64;
        locks.push(LockGroupSpec { host: lock_host(&group.name), params, ids });
    }
    let spec = WorldSpec {
        seed,
        nodes: scenario.nodes.clone(),
        voters: scenario.voters(),
        node: NodeSpec {
            timing: timing.raft,
            lease_reads: timing.lease,
            pre_vote: scenario.raft.pre_vote,
            check_quorum: scenario.raft.check_quorum,
            max_entries_per_message: scenario.raft.max_entries_per_message,
            compact_every: scenario.raft.snapshot_every,
            request_timeout: timing.request_timeout,
            rpc_timeout: (timing.default_latency.max * 8).max(Duration::from_millis(200)),
            first_leader: Some(scenario.leader),
            auto_compaction: None,
            peer_transport: crate::transport::PeerTransport::Framed,
            bugs: SimBugs::default(),
        },
        net: NetSpec {
            run_for: scenario.duration + settle_time(scenario) + Duration::from_secs(60),
            max_latency: timing.default_latency.max.max(Duration::from_millis(1)),
            repair_rate: 1.0,
        },
        clients,
        locks,
        watchers: None,
        watcher_count: 0,
        keep_trace: true,
        sim_net: crate::transport::net::SimNet::MESSAGES,
    };
    (spec, groups)
}

/// The site a host of the world is in.
pub(crate) fn site_of_host(scenario: &Scenario, host: &str) -> usize {
    if let Some(node) = scenario.nodes.iter().position(|n| n == host) {
        return scenario.site_of(node);
    }
    if host == MONITOR_HOST {
        return scenario.timing.monitor_site;
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
}

/// Replays `scenario` against `system` from `seed`, the history checked within `budget`, with
/// `bugs` switched on in Raft's code (they change nothing else, and nothing in the naive
/// systems).
pub fn replay(
    scenario: &Scenario,
    system: System,
    seed: u64,
    budget: CheckBudget,
    bugs: SimBugs,
) -> ReplayReport {
    let wall = Instant::now();
    let mut rng = SplitMix64::new(seed);
    let roles = Rc::new(RefCell::new(Roles::default()));
    let naive = Rc::new(NaiveProgram {
        fenced: system == System::NaiveFailoverFenced,
        primary: scenario.leader,
        monitor: (scenario.timing.monitor_interval, scenario.timing.failover_after),
        roles: roles.clone(),
        disks: RefCell::default(),
    });
    let program: Rc<dyn NodeProgram> =
        if system == System::Raft { Rc::new(RaftProgram) } else { naive.clone() };
    let (mut spec, groups) = world_spec(scenario, seed);
    spec.node.bugs = bugs;
    let mut w = World::build(&spec, program, &mut rng);
    let hosts = w.hosts().to_vec();
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            let sites = (site_of_host(scenario, a), site_of_host(scenario, b));
            let (latency, loss) = scenario.latency(sites.0, sites.1);
            w.build_link(a, b, latency, loss);
        }
    }
    let first = if system == System::Raft { "follower" } else { "replica" };
    for node in 0..scenario.nodes.len() {
        roles.borrow_mut().set(node, first, Duration::ZERO);
    }

    let mut timeline = Timeline::new(scenario, system);
    while w.now() < scenario.duration && !w.broken() {
        timeline.advance(&mut w);
        w.step();
        roles.borrow_mut().drain(&w, system);
    }

    // Settle: undo everything, stop the clients, let the cluster converge.
    let end = w.now();
    w.stop_clients();
    settle(&mut w, &roles, end, first);
    while w.now() < end + settle_time(scenario) && !w.broken() {
        w.step();
        roles.borrow_mut().drain(&w, system);
    }
    roles.borrow_mut().finish(w.now());

    let lost_events = lost_writes(&w, system, &naive, scenario.leader);
    let history = w.workload().history.borrow().clone();
    let resolved = (system == System::Raft)
        .then(|| crate::resolved::resolve(&history, w.checks().borrow().committed_log()));
    let (linearizability, counts) = check_history(&history, budget, resolved.as_ref());
    let resolved = resolved.map(|r| (r, counts));
    let findings = findings(&w, &history, &lost_events, &roles.borrow(), end);
    let mut coverage = w.coverage();
    if system != System::Raft {
        let roles = roles.borrow();
        coverage.world(WorldEvent::FencedRejection, roles.refused);
        coverage.naive_promotions(roles.promotions);
    }
    let trace = w.trace().borrow();
    ReplayReport {
        run: RunInfo::of(scenario),
        system,
        seed,
        trace_hash: format!("{:016x}", trace.hash()),
        trace: trace.lines().to_vec(),
        history,
        linearizability,
        resolved,
        findings,
        detector_undecided: None,
        roles: roles.borrow().spans.clone(),
        faults: timeline.windows(end),
        groups,
        processes: scenario.client_count() as u64,
        wall: wall.elapsed(),
        rerun: None,
        check: budget,
        bugs,
        watch: None,
        watch_log: None,
        coverage: Some(coverage),
        expected: scenario.expect.of(system).to_vec(),
        transactions: None,
        real: false,
    }
}

/// Undoes every fault at the scenario's end, noting what it undid.
fn settle(w: &mut World<'_>, roles: &Rc<RefCell<Roles>>, end: Duration, back: &str) {
    let healed = w.heal_all();
    if healed.cuts {
        w.note("heal (end of scenario)");
    }
    for node in healed.resumed {
        let text = format!("resume {} (end of scenario)", w.nodes()[node]);
        w.note(&text);
    }
    for node in healed.restarted {
        let text = format!("restart {} (end of scenario)", w.nodes()[node]);
        w.note(&text);
        roles.borrow_mut().set(node, back, end);
    }
}

/// The `ok` events of acknowledged writes the cluster did not keep: for Raft, those missing
/// from the committed log; for the naive systems, from the surviving primary's binlog.
fn lost_writes(w: &World<'_>, system: System, naive: &NaiveProgram, first: usize) -> Vec<usize> {
    let acked = w.workload().acked.borrow().clone();
    let acked_events = w.workload().acked_events.borrow().clone();
    let mut lost = Vec::new();
    if system == System::Raft {
        let checks = w.checks();
        let before = checks.borrow().violations().len();
        for (client, seq, index) in &acked {
            checks.borrow_mut().check_acked(*client, *seq, *index);
        }
        for violation in &checks.borrow().violations()[before..] {
            if let Violation::AckedWriteLost { client, seq, .. } = violation
                && let Some(i) = acked.iter().position(|(c, s, _)| c == client && s == seq)
            {
                lost.push(acked_events[i]);
            }
        }
        return lost;
    }
    let survivor = naive.roles.borrow().naive_primary().unwrap_or(first);
    let kept: BTreeSet<(u64, u64)> =
        naive.disks.borrow()[survivor].borrow().binlog.iter().copied().collect();
    for (i, (client, seq, _)) in acked.iter().enumerate() {
        if !kept.contains(&(*client, *seq)) {
            lost.push(acked_events[i]);
        }
    }
    lost
}

/// Runs the split-brain detector over what the world recorded.
fn findings(
    w: &World<'_>,
    history: &History,
    lost_events: &[usize],
    roles: &Roles,
    end: Duration,
) -> Findings {
    let checks = w.checks().borrow();
    let lease_overlaps: Vec<String> = checks
        .violations()
        .iter()
        .filter(|v| matches!(v, Violation::LeaseOverlap { .. }))
        .map(|v| v.to_string())
        .collect();
    let other_violations: Vec<String> = checks
        .violations()
        .iter()
        .filter(|v| !matches!(v, Violation::LeaseOverlap { .. } | Violation::AckedWriteLost { .. }))
        .map(|v| v.to_string())
        .collect();
    let fencing = w.fencing().borrow();
    detect::detect(&detect::Evidence {
        history,
        lost_events,
        roles: &roles.spans,
        lease_overlaps,
        violations: other_violations,
        fenced_rejections: roles.refused + fencing.refused() as u64,
        fencing: &fencing,
        end,
    })
}
