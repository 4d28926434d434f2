//! A real replay's verdict, from what the processes left: for Raft, the acknowledged writes
//! looked up in the stopped nodes' stored log (and the writes' fates from it); for the naive
//! systems, in the surviving primary's binlog. Then the same history check and detector as
//! the simulator's.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use super::real_replay::Recorded;
use crate::resolved::LogSlot;
use crate::scenario::{self, Evidence, ReplayReport, RoleSpan, RunInfo, Scenario, System};
use crate::sim::fencing::FencingLog;
use crate::sim::{CheckBudget, SimBugs, check_history};

/// What the run left, once its nodes stopped.
pub(super) struct Parts {
    pub(super) windows: Vec<(Duration, Duration, String)>,
    pub(super) end: Duration,
    pub(super) roles: Vec<RoleSpan>,
    /// The naive survivor's binlog, or why it is not known (`None` for Raft).
    pub(super) binlog: Option<Result<BTreeSet<(u64, u64)>, String>>,
    /// Fenced rejections the naive nodes logged.
    pub(super) fenced: u64,
    /// The scenario file, for the replay command.
    pub(super) path: String,
}

/// The `ok` events of acknowledged writes the cluster did not keep, or why that is not known.
fn lost_writes(
    recorded: &Recorded,
    parts: &Parts,
    log: &Result<Vec<LogSlot>, String>,
) -> Result<Vec<usize>, String> {
    let acked = recorded.shared.acked.borrow();
    let events = recorded.shared.acked_events.borrow();
    let kept: Box<dyn Fn(u64, u64, u64) -> bool> = match &parts.binlog {
        Some(Ok(binlog)) => Box::new(move |c, s, _| binlog.contains(&(c, s))),
        Some(Err(e)) => return Err(format!("the surviving primary's binlog: {e}")),
        None => {
            let log = log.as_ref().map_err(|e| format!("the stored Raft log: {e}"))?;
            // Committed at the index it was acknowledged at (§3.5: the committed prefix is
            // the same on every node); a compacted slot is not known, so not called lost.
            Box::new(move |c, s, index| match log.get(index as usize - 1) {
                Some(LogSlot::Request(lc, ls)) => (*lc, *ls) == (c, s),
                Some(LogSlot::Unknown) => true,
                Some(LogSlot::Other) | None => false,
            })
        }
    };
    Ok(acked
        .iter()
        .zip(events.iter())
        .filter(|((c, s, index), _)| index.0 > 0 && !kept(*c, *s, index.0))
        .map(|(_, e)| *e)
        .collect())
}

/// The report of a real replay.
#[allow(clippy::too_many_arguments)]
pub(super) fn report(
    scenario: &Scenario,
    system: System,
    seed: u64,
    budget: CheckBudget,
    dir: &Path,
    parts: Parts,
    recorded: Recorded,
    wall: Instant,
) -> ReplayReport {
    let history = recorded.shared.history.borrow().clone();
    let log = if system == System::Raft {
        super::jepsen::most_committed_in(dir, &scenario.nodes)
            .map(|best| super::jepsen::committed_log(best.as_ref()))
    } else {
        Err("not Raft".into())
    };
    let resolved = match (&log, system) {
        (Ok(log), System::Raft) => Some(crate::resolved::resolve(&history, log.clone())),
        _ => None,
    };
    let (linearizability, counts) = check_history(&history, budget, resolved.as_ref());
    let (lost_events, undecided) = match lost_writes(&recorded, &parts, &log) {
        Ok(lost) => (lost, None),
        Err(why) => (Vec::new(), Some(why)),
    };
    let findings = scenario::detect(&Evidence {
        history: &history,
        lost_events: &lost_events,
        roles: &parts.roles,
        lease_overlaps: Vec::new(),
        violations: Vec::new(),
        fenced_rejections: parts.fenced,
        fencing: &FencingLog::default(),
        end: parts.end,
    });
    let mut groups = Vec::new();
    for group in &scenario.clients {
        groups.extend(std::iter::repeat_n(group.name.clone(), group.count));
    }
    let trace = recorded.trace.borrow();
    ReplayReport {
        run: RunInfo::of(scenario),
        system,
        seed,
        trace_hash: format!("{:016x}", trace.hash()),
        trace: trace.lines().to_vec(),
        history,
        linearizability,
        resolved: resolved.map(|r| (r, counts)),
        findings,
        detector_undecided: undecided,
        roles: parts.roles,
        faults: parts.windows,
        groups,
        processes: scenario.client_count() as u64,
        wall: wall.elapsed(),
        rerun: Some(format!(
            "raftbed replay {} --real --system {} --seed {} (real processes: timing differs run to run; data dirs and logs were in {})",
            parts.path,
            system.name(),
            seed,
            dir.display()
        )),
        check: budget,
        bugs: SimBugs::default(),
        watch: None,
        watch_log: None,
        coverage: None,
        expected: Vec::new(),
        transactions: None,
        real: true,
    }
}
