//! What a run reports, and how it reads.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use jepsen_lite::CheckResult;

use super::checks::Violation;
use super::coverage::{Coverage, Margins};
use super::world::World;
use super::{SimOptions, SimParams};
use crate::faults::Faults;
use crate::raft::{NodeId, Term};
use crate::verdict::{Check, Outcome, Verdict};

/// Why liveness has no outcome when safety failed first.
pub(crate) const LIVENESS_NOT_RUN: &str = "not run: safety failed";

/// Locks and fencing in a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FencingStats {
    /// Lock grants.
    pub grants: usize,
    /// Writes the fenced resource received.
    pub writes: usize,
    /// Writes it refused for carrying a superseded token: each one a write a holder made
    /// after pausing past its lease, which without fencing would have clobbered newer data.
    pub refused: usize,
    /// Holders that paused past their lease.
    pub pauses: usize,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct SimReport {
    /// What ran.
    pub options: SimOptions,
    /// The parameters the seed chose.
    pub params: SimParams,
    /// Client operations: invoked, ok, failed, indeterminate.
    pub ops: (usize, usize, usize, usize),
    /// The leader of each term.
    pub leaders: BTreeMap<Term, NodeId>,
    /// Faults injected, with their simulated start times.
    pub faults: Vec<(Duration, String)>,
    /// The fault primitives that took effect during the fault phase, when.
    pub applied: Vec<(Duration, crate::faults::Applied)>,
    /// Safety violations (the run stops at the first step that has any).
    pub violations: Vec<Violation>,
    /// Liveness: how long recovery took, or why it failed.
    pub liveness: Result<Duration, String>,
    /// Windows in which a quorum stayed connected and cut off from the rest during the
    /// faults, each judged for a leader (`sim::liveness`).
    pub connected_windows: usize,
    /// The history's verdict, when the run got that far.
    pub linearizability: Option<CheckResult>,
    /// The fates of the history's writes, from the committed log (`raftbed sim --resolved`).
    pub resolved: jepsen_lite::Resolved,
    /// What the checker did with them.
    pub resolved_counts: jepsen_lite::ResolvedCounts,
    /// What the lock clients and the fenced resource saw.
    pub fencing: FencingStats,
    /// The trace's hash.
    pub trace_hash: u64,
    /// The trace's lines, when kept.
    pub trace: Vec<String>,
    /// Simulated time covered.
    pub sim_time: Duration,
    /// Wall time the simulation took (without the history check).
    pub wall_time: Duration,
    /// Wall time the history check took.
    pub check_time: Duration,
    /// The clients' history.
    pub history: jepsen_lite::History,
    /// What the watch checker found, when watchers ran.
    pub watch: Option<jepsen_lite::watch::WatchReport>,
    /// What it checked (`raftbed sim --watches`).
    pub watch_log: Option<jepsen_lite::watch::WatchLog>,
    /// How often the run reached each situation that matters.
    pub coverage: Coverage,
    /// How close it came to a violation.
    pub margins: Margins,
    /// What the transaction checker found, when the clients ran transactions (`--workload
    /// append`); an error when their events could not be read.
    pub transactions: Option<Result<jepsen_lite::txn::TxnReport, String>>,
}

impl SimReport {
    /// Each check's outcome: the invariants (fencing-token order apart), liveness, the
    /// history.
    pub fn verdict(&self) -> Verdict {
        let fencing = |v: &&Violation| matches!(v, Violation::FencingTokenOrder { .. });
        let stuck = |v: &&Violation| matches!(v, Violation::NoLeaderWhileConnected { .. });
        let outcome = |found: Vec<&Violation>| match found.first() {
            None => Outcome::Held,
            Some(first) if found.len() == 1 => Outcome::Violated(first.to_string()),
            Some(first) => Outcome::Violated(format!("{first} (and {} more)", found.len() - 1)),
        };
        let liveness = match &self.liveness {
            _ if self.violations.iter().any(|v| stuck(&v)) => {
                outcome(self.violations.iter().filter(stuck).collect())
            }
            Ok(_) => Outcome::Held,
            Err(why) if why == LIVENESS_NOT_RUN => Outcome::Undecided(why.clone()),
            Err(why) => Outcome::Violated(why.clone()),
        };
        let history = match &self.linearizability {
            Some(result) => Outcome::of_history(result),
            None => Outcome::Undecided("not checked".into()),
        };
        let mut verdict = Verdict::default()
            .with(
                Check::Invariants,
                outcome(self.violations.iter().filter(|v| !fencing(v) && !stuck(v)).collect()),
            )
            .with(Check::Fencing, outcome(self.violations.iter().filter(fencing).collect()))
            .with(Check::Liveness, liveness)
            .with(Check::History, history);
        if let Some(watch) = &self.watch {
            verdict.add(Check::Watch, Outcome::of_watches(watch));
        }
        if let Some(transactions) = &self.transactions {
            verdict.add(Check::Transactions, Outcome::of_transactions(transactions));
        }
        if !self.options.required.is_empty() {
            let missing = self.coverage.missing(&self.options.required);
            verdict.add(Check::Coverage, Outcome::of_coverage(&missing));
        }
        verdict
    }

    /// Whether every safety check held, the cluster recovered, and the history is
    /// linearizable.
    pub fn ok(&self) -> bool {
        self.verdict().held()
    }

    /// A one-word verdict.
    pub fn headline(&self) -> &'static str {
        let stuck = |v: &Violation| matches!(v, Violation::NoLeaderWhileConnected { .. });
        if self.violations.iter().any(|v| !stuck(v)) {
            "SAFETY VIOLATION"
        } else if !self.violations.is_empty() {
            "LIVENESS FAILURE"
        } else if matches!(self.linearizability, Some(CheckResult::NotLinearizable(_))) {
            "NOT LINEARIZABLE"
        } else if self.watch.as_ref().is_some_and(|w| !w.violations.is_empty()) {
            "WATCH GUARANTEE BROKEN"
        } else if matches!(&self.transactions, Some(Ok(t)) if !t.valid()) {
            "ISOLATION ANOMALY"
        } else if self.liveness.is_err() {
            "LIVENESS FAILURE"
        } else if !self.ok() {
            "UNDECIDED"
        } else {
            "OK"
        }
    }

    /// Simulated seconds per wall second.
    pub fn speed(&self) -> f64 {
        self.sim_time.as_secs_f64() / self.wall_time.as_secs_f64().max(1e-9)
    }

    /// Wall time of the simulation (the history check apart) per invoked client operation.
    pub fn us_per_op(&self) -> f64 {
        self.wall_time.as_secs_f64() * 1e6 / self.ops.0.max(1) as f64
    }
}

/// The report of a finished world.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build(
    options: &SimOptions,
    params: SimParams,
    world: &World<'_>,
    liveness: Result<Duration, String>,
    checked: (CheckResult, jepsen_lite::ResolvedCounts, jepsen_lite::Resolved),
    history: jepsen_lite::History,
    sim_wall: Duration,
    wall: std::time::Instant,
) -> SimReport {
    let (linearizability, resolved_counts, resolved) = checked;
    let log = world.fencing().borrow();
    let fencing = FencingStats {
        grants: log.grants.len(),
        writes: log.writes.len(),
        refused: log.refused(),
        pauses: log.pauses,
    };
    let coverage = world.coverage();
    let ops = history.ops().unwrap_or_default();
    let count = |o: jepsen_lite::Outcome| ops.iter().filter(|op| op.outcome == o).count();
    let checks = world.checks().borrow();
    let trace = world.trace().borrow();
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
        faults: world.notes().to_vec(),
        applied: world.applied().iter().filter(|(at, _)| *at < options.duration).cloned().collect(),
        violations: checks.violations().to_vec(),
        liveness,
        connected_windows: 0,
        linearizability: Some(linearizability),
        resolved,
        resolved_counts,
        fencing,
        trace_hash: trace.hash(),
        trace: trace.lines().to_vec(),
        sim_time: world.now(),
        wall_time: sim_wall,
        check_time: wall.elapsed() - sim_wall,
        history,
        watch: None,
        watch_log: None,
        transactions: None,
        coverage,
        margins: Margins {
            lease_slack_us: checks.leases().slack_us(),
            fence_gap: log.closest_refusal(),
        },
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        let p = &self.params;
        let faults = match &o.scenario {
            Some(path) => format!("faults: the timeline of {path}"),
            None => {
                let kinds: Vec<&str> = o.faults.iter().map(|k| k.name()).collect();
                format!("faults [{}]", kinds.join(","))
            }
        };
        let clients = match (o.workload, o.append_clients) {
            (super::Workload::Append, _) => format!("{} list-append clients", o.clients),
            (_, 0) => format!("{} clients", o.clients),
            (_, appenders) => format!("{} clients and {appenders} list-append", o.clients),
        };
        let nodes = match o.spares() {
            0 => format!("{} nodes", o.nodes),
            spares => format!("{} nodes and {spares} spares", o.nodes),
        };
        writeln!(
            f,
            "seed {}: {nodes}, {clients}, {:.0}s, {faults}{}",
            o.seed,
            o.duration.as_secs_f64(),
            if o.bugs.names().is_empty() {
                String::new()
            } else {
                format!(", bugs [{}]", o.bugs.names().join(","))
            }
        )?;
        if o.swarm.is_some() {
            writeln!(f, "{}", super::swarm::describe(o))?;
        }
        writeln!(
            f,
            "params: tick {}ms, election {}-{} ticks, heartbeat {} ticks, latency <= {}ms, {} entries per append, snapshot every {} entries, {} keys, pre-vote {}, check-quorum {}, lease reads {}, {} attempts per request",
            p.timing.tick.as_millis(),
            p.timing.election_ticks(),
            2 * p.timing.election_ticks(),
            p.timing.heartbeat_ticks(),
            p.latency_max.as_millis(),
            p.max_entries_per_message,
            p.compact_every,
            p.keys,
            if p.pre_vote { "on" } else { "off" },
            if p.check_quorum { "on" } else { "off" },
            if p.lease_reads { "on" } else { "off" },
            p.attempts
        )?;
        let (invoked, ok, fail, info) = self.ops;
        writeln!(f, "ops: {invoked} invoked, {ok} ok, {fail} failed, {info} indeterminate")?;
        let leaders: Vec<String> = self.leaders.iter().map(|(t, n)| format!("{t}:{n}")).collect();
        writeln!(
            f,
            "leaders by term: {}",
            if leaders.is_empty() { "none".into() } else { leaders.join(" ") }
        )?;
        writeln!(f, "faults applied: {}", self.faults.len())?;
        for (at, fault) in self.faults.iter().take(12) {
            writeln!(f, "  {:>8.3}s {fault}", at.as_secs_f64())?;
        }
        if self.faults.len() > 12 {
            writeln!(f, "  ... {} more", self.faults.len() - 12)?;
        }
        if self.violations.is_empty() {
            writeln!(f, "safety: every invariant held after every step")?;
        } else {
            for violation in self.violations.iter().take(10) {
                writeln!(f, "safety: VIOLATED: {violation}")?;
            }
            if self.violations.len() > 10 {
                writeln!(f, "safety: ... {} more violations", self.violations.len() - 10)?;
            }
        }
        match &self.liveness {
            Ok(took) => writeln!(
                f,
                "liveness: one leader and a fresh write committed {:.3}s after the heal; {} connected quorums during the faults had a leader in time",
                took.as_secs_f64(),
                self.connected_windows
            )?,
            Err(why) => writeln!(f, "liveness: FAILED: {why}")?,
        }
        let fencing = &self.fencing;
        if fencing.grants > 0 {
            writeln!(
                f,
                "fencing: {} lock grants, tokens increasing; {} holders paused past their lease; the resource refused {} of {} writes as stale",
                fencing.grants, fencing.pauses, fencing.refused, fencing.writes
            )?;
        }
        match &self.linearizability {
            Some(CheckResult::Linearizable) => writeln!(f, "history: linearizable")?,
            Some(CheckResult::NotLinearizable(c)) => write!(f, "history: NOT linearizable\n{c}")?,
            Some(CheckResult::Unknown(why)) => writeln!(f, "history: undecided ({why})")?,
            None => writeln!(f, "history: not checked (the run stopped early)")?,
        }
        let r = &self.resolved_counts;
        if r.mandatory + r.dropped + r.conditional > 0 {
            writeln!(
                f,
                "history: {} indeterminate writes resolved from the committed log ({} committed, {} not, {} committed cas left open)",
                r.mandatory + r.dropped + r.conditional,
                r.mandatory,
                r.dropped,
                r.conditional
            )?;
        }
        if r.contradicted > 0 {
            writeln!(
                f,
                "history: {} completed writes disagree with the committed log",
                r.contradicted
            )?;
        }
        writeln!(f, "coverage: {}", self.coverage)?;
        let missing = self.coverage.missing(&self.options.required);
        if !missing.is_empty() {
            writeln!(f, "coverage: NEVER REACHED (required): {}", missing.join(", "))?;
        }
        writeln!(f, "margins: {}", self.margins)?;
        for line in self.transactions.iter().flat_map(super::append::summary) {
            writeln!(f, "transactions: {line}")?;
        }
        if let Some(watch) = &self.watch {
            writeln!(f, "watch: {}", watch.summary())?;
            for violation in watch.violations.iter().take(5) {
                writeln!(f, "watch: BROKEN: {violation}")?;
            }
        }
        writeln!(
            f,
            "simulated {:.1}s in {:.2}s wall ({:.0}x real time, {}); history checked in {:.2}s",
            self.sim_time.as_secs_f64(),
            self.wall_time.as_secs_f64(),
            self.speed(),
            match self.ops.0 {
                0 => "no client operations".to_string(),
                _ => format!("{:.0} µs per invoked operation", self.us_per_op()),
            },
            self.check_time.as_secs_f64()
        )?;
        writeln!(f, "{}", self.verdict())?;
        writeln!(f, "verdict: {}", self.headline())?;
        if !self.ok() {
            writeln!(f, "replay: {}", self.options.replay_command())?;
        }
        write!(f, "trace-hash: {:016x}", self.trace_hash)
    }
}
