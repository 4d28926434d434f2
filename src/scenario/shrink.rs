//! Shrinking a failing replay: remove timeline events, shorten the time between an event and
//! the next, cut the tail of the scenario, and reduce clients, keeping each change only while
//! the run still fails. Every candidate is written out and parsed again, so a shrunk scenario
//! is always a valid file.

use std::time::Duration;

use super::Scenario;
use super::file::{parse, to_toml};
use super::run::{ReplayReport, System, replay};
use crate::sim::CheckBudget;
use crate::verdict::EXIT_VIOLATED;

/// Shrinks `scenario` while a replay against `system` from `seed` is still violated (an
/// undecided check is not a failure to keep), within `budget` replays. Returns the smallest
/// failing scenario and its report, or `None` if the scenario is not violated to begin with.
/// `progress` hears of each step.
pub fn shrink(
    scenario: &Scenario,
    system: System,
    seed: u64,
    budget: usize,
    check: CheckBudget,
    mut progress: impl FnMut(&str),
) -> Option<(Scenario, ReplayReport)> {
    let violated = |r: &ReplayReport| r.verdict().exit_code() == EXIT_VIOLATED;
    let first = replay(scenario, system, seed, check);
    if !violated(&first) {
        return None;
    }
    let mut best = (scenario.clone(), first);
    let runs = std::cell::Cell::new(1);
    let mut try_candidate =
        |candidate: Scenario, what: String, best: &mut (Scenario, ReplayReport)| -> bool {
            if runs.get() >= budget {
                return false;
            }
            // Round-trip through the file format: a candidate must be a valid scenario.
            let Ok(candidate) = parse(&to_toml(&candidate), "shrunk") else { return false };
            runs.set(runs.get() + 1);
            let report = replay(&candidate, system, seed, check);
            if !violated(&report) {
                return false;
            }
            progress(&format!("still fails: {what}"));
            *best = (candidate, report);
            true
        };
    let mut changed = true;
    while changed && runs.get() < budget {
        changed = false;
        // Remove events, latest first.
        let mut i = best.0.events.len();
        while i > 0 {
            i -= 1;
            let mut candidate = best.0.clone();
            if i >= candidate.events.len() {
                continue;
            }
            let removed = candidate.events.remove(i);
            let what = format!("without the event at {}", super::show(removed.at));
            changed |= try_candidate(candidate, what, &mut best);
        }
        // Pull each event halfway towards the one before it.
        for i in 1..best.0.events.len() {
            let mut candidate = best.0.clone();
            let (before, at) = (candidate.events[i - 1].at, candidate.events[i].at);
            let pulled = before + (at - before) / 2;
            if at - pulled < Duration::from_millis(100) {
                continue;
            }
            let shift = at - round(pulled);
            for later in candidate.events.iter_mut().skip(i) {
                later.at -= shift;
            }
            let what = format!("event {} at {}", i + 1, super::show(candidate.events[i].at));
            changed |= try_candidate(candidate, what, &mut best);
        }
        // Cut the tail.
        let last = best.0.events.last().map_or(Duration::ZERO, |e| e.at);
        let tail = best.0.duration - last;
        if tail > Duration::from_secs(2) {
            let mut candidate = best.0.clone();
            candidate.duration = round(last + tail / 2);
            let what = format!("duration {}", super::show(candidate.duration));
            changed |= try_candidate(candidate, what, &mut best);
        }
        // Fewer clients.
        for g in 0..best.0.clients.len() {
            if best.0.clients[g].count > 1 {
                let mut candidate = best.0.clone();
                candidate.clients[g].count =
                    candidate.clients[g].count.div_ceil(2).min(candidate.clients[g].count - 1);
                let what = format!(
                    "{} clients in {}",
                    candidate.clients[g].count, candidate.clients[g].name
                );
                changed |= try_candidate(candidate, what, &mut best);
            }
        }
    }
    Some(best)
}

/// To the millisecond, so the file shows what ran.
fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
