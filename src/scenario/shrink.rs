//! Shrinking a failing replay: end where a run that stopped at its violation stopped, remove
//! timeline events (halves of the timeline first, then smaller runs of events, down to one
//! at a time), shorten the time between an event and the next, cut the tail of the
//! scenario, and reduce clients, keeping each change only while the run still fails. Every
//! candidate is written out and parsed again, so a shrunk scenario is always a valid file.

use std::time::Duration;

use super::Scenario;
use super::file::{parse, to_toml};
use super::run::{ReplayReport, System, replay};
use crate::sim::{CheckBudget, SimBugs, SimReport};
use crate::verdict::EXIT_VIOLATED;

/// Shrinks `scenario` while a replay against `system` from `seed` is still violated (an
/// undecided check is not a failure to keep), within `budget` replays. Returns the smallest
/// failing scenario and its report, or `None` if the scenario is not violated to begin with.
/// `bugs` stay switched on throughout.
/// `progress` hears of each step.
pub fn shrink(
    scenario: &Scenario,
    system: System,
    seed: u64,
    budget: usize,
    check: CheckBudget,
    bugs: SimBugs,
    progress: impl FnMut(&str),
) -> Option<(Scenario, ReplayReport)> {
    let run = |s: &Scenario| {
        let report = replay(s, system, seed, check, bugs);
        (report.verdict().exit_code() == EXIT_VIOLATED).then_some(report)
    };
    // A replay runs its whole length whatever it finds: none stops early.
    shrink_with(scenario, budget, run, |_| None, progress)
}

/// Shrinks a scenario with `[sim]` (`path` names it in the replay command) the same way.
pub fn shrink_drawn(
    scenario: &Scenario,
    path: &str,
    seed: u64,
    budget: usize,
    check: CheckBudget,
    bugs: SimBugs,
    progress: impl FnMut(&str),
) -> Option<(Scenario, SimReport)> {
    let run = |s: &Scenario| {
        let report = super::replay_drawn(s, path, seed, check, bugs);
        (report.verdict().exit_code() == EXIT_VIOLATED).then_some(report)
    };
    // A simulation stops at the step that broke an invariant: nothing after it ran.
    let stopped = |r: &SimReport| (!r.violations.is_empty()).then_some(r.sim_time);
    shrink_with(scenario, budget, run, stopped, progress)
}

/// The shrinking loop: `run` replays a candidate and returns its report when it still fails;
/// `stopped` says when a failing run stopped early, if it did (what comes later never ran).
fn shrink_with<R>(
    scenario: &Scenario,
    budget: usize,
    mut run: impl FnMut(&Scenario) -> Option<R>,
    stopped: impl Fn(&R) -> Option<Duration>,
    mut progress: impl FnMut(&str),
) -> Option<(Scenario, R)> {
    let first = run(scenario)?;
    let mut best = (scenario.clone(), first);
    let mut runs = 1;
    let mut try_candidate = |candidate: Scenario, what: String, best: &mut (Scenario, R)| {
        if runs >= budget {
            return false;
        }
        // Round-trip through the file format: a candidate must be a valid scenario.
        let Ok(candidate) = parse(&to_toml(&candidate), "shrunk") else { return false };
        runs += 1;
        let Some(report) = run(&candidate) else { return false };
        progress(&format!("still fails: {what}"));
        *best = (candidate, report);
        true
    };
    if let Some(end) = stopped(&best.1).filter(|end| *end < best.0.duration) {
        let mut candidate = best.0.clone();
        candidate.duration = round_up(end).min(candidate.duration);
        candidate.events.retain(|e| e.at < candidate.duration);
        let what = format!("ends at {}, where the run stopped", super::show(candidate.duration));
        try_candidate(candidate, what, &mut best);
    }
    let mut changed = true;
    while changed {
        changed = remove_events(&mut best, &mut try_candidate);
        changed |= pull_events(&mut best, &mut try_candidate);
        changed |= cut_tail(&mut best, &mut try_candidate);
        for (candidate, what) in fewer_clients(&best.0) {
            changed |= try_candidate(candidate, what, &mut best);
        }
    }
    Some(best)
}

type Try<'a, R> = dyn FnMut(Scenario, String, &mut (Scenario, R)) -> bool + 'a;

/// Removes runs of faults, latest first: half the timeline at a time, then quarters, down to
/// one fault (a long timeline — hundreds of primitives from a swarm run — shrinks in a few
/// dozen replays instead of one per event). A fault here is the events at one instant (a
/// nemesis's action: its note and its primitives), then, once those are as few as they get,
/// each primitive alone. Notes left with no primitive at their instant go last.
fn remove_events<R>(best: &mut (Scenario, R), try_candidate: &mut Try<'_, R>) -> bool {
    let mut changed = remove_runs(best, try_candidate, instants);
    changed |= remove_runs(best, try_candidate, primitives);
    let events = &best.0.events;
    let kept = |at| events.iter().any(|e| e.at == at && !is_note(e));
    let orphans: Vec<usize> =
        (0..events.len()).filter(|i| is_note(&events[*i]) && !kept(events[*i].at)).collect();
    if !orphans.is_empty() {
        let candidate = without(&best.0, &orphans);
        changed |= try_candidate(candidate, "without notes of faults gone".into(), best);
    }
    changed
}

/// `scenario` without the events at `gone` (indexes, ascending).
fn without(scenario: &Scenario, gone: &[usize]) -> Scenario {
    let mut candidate = scenario.clone();
    candidate.events = (scenario.events.iter().enumerate())
        .filter(|(i, _)| gone.binary_search(i).is_err())
        .map(|(_, e)| e.clone())
        .collect();
    candidate
}

fn is_note(e: &super::Event) -> bool {
    matches!(e.action, super::Action::Note(_))
}

/// The timeline's faults as runs of event indexes: the events at each instant.
fn instants(events: &[super::Event]) -> Vec<Vec<usize>> {
    let mut units: Vec<Vec<usize>> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match units.last_mut() {
            Some(unit) if events[unit[0]].at == e.at => unit.push(i),
            _ => units.push(vec![i]),
        }
    }
    units
}

/// Each primitive alone (notes cost nothing to keep: they only write the trace).
fn primitives(events: &[super::Event]) -> Vec<Vec<usize>> {
    (0..events.len()).filter(|i| !is_note(&events[*i])).map(|i| vec![i]).collect()
}

/// Removes runs of the units `units` makes of the timeline, halving the run's length down
/// to one unit.
fn remove_runs<R>(
    best: &mut (Scenario, R),
    try_candidate: &mut Try<'_, R>,
    units: fn(&[super::Event]) -> Vec<Vec<usize>>,
) -> bool {
    let mut changed = false;
    let mut size = units(&best.0.events).len().div_ceil(2).max(1);
    loop {
        let mut end = units(&best.0.events).len();
        while end > 0 {
            let start = end.saturating_sub(size);
            let all = units(&best.0.events);
            let gone: Vec<usize> = all[start..end.min(all.len())].concat();
            let candidate = without(&best.0, &gone);
            let (first, last) = (best.0.events[gone[0]].at, best.0.events[gone[gone.len() - 1]].at);
            let what = match (gone.len(), first == last) {
                (1, _) => format!("without the event at {}", super::show(first)),
                (n, true) => format!("without the {n} events at {}", super::show(first)),
                (n, false) => {
                    format!(
                        "without the {n} events from {} to {}",
                        super::show(first),
                        super::show(last)
                    )
                }
            };
            changed |= try_candidate(candidate, what, best);
            end = start.min(units(&best.0.events).len());
        }
        if size == 1 {
            return changed;
        }
        size = size.div_ceil(2);
    }
}

/// Pulls each event halfway towards the one before it.
fn pull_events<R>(best: &mut (Scenario, R), try_candidate: &mut Try<'_, R>) -> bool {
    let mut changed = false;
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
        changed |= try_candidate(candidate, what, best);
    }
    changed
}

/// Halves the time after the last event.
fn cut_tail<R>(best: &mut (Scenario, R), try_candidate: &mut Try<'_, R>) -> bool {
    let last = best.0.events.last().map_or(Duration::ZERO, |e| e.at);
    let tail = best.0.duration - last;
    if tail <= Duration::from_secs(2) {
        return false;
    }
    let mut candidate = best.0.clone();
    candidate.duration = round(last + tail / 2);
    let what = format!("duration {}", super::show(candidate.duration));
    try_candidate(candidate, what, best)
}

/// Smaller client groups, or a drawn world with fewer clients, append clients, lock clients
/// and watchers.
fn fewer_clients(s: &Scenario) -> Vec<(Scenario, String)> {
    let halve = |n: usize| n.div_ceil(2).min(n - 1);
    let mut candidates = Vec::new();
    if let Some(world) = &s.sim {
        let fewer = [
            ("clients", world.clients, 1),
            ("append clients", world.append_clients, 0),
            ("lock clients", world.lock_clients, 0),
            ("watchers", world.watchers, 0),
        ];
        for (what, n, least) in fewer {
            if n > least {
                let mut candidate = s.clone();
                let w = candidate.sim.as_mut().expect("a drawn world");
                let slot = match what {
                    "clients" => &mut w.clients,
                    "append clients" => &mut w.append_clients,
                    "lock clients" => &mut w.lock_clients,
                    _ => &mut w.watchers,
                };
                *slot = halve(n).max(least);
                let text = format!("{} {what}", *slot);
                candidates.push((candidate, text));
            }
        }
    }
    for (g, group) in s.clients.iter().enumerate() {
        if group.count > 1 {
            let mut candidate = s.clone();
            candidate.clients[g].count = halve(group.count);
            let what = format!("{} clients in {}", candidate.clients[g].count, group.name);
            candidates.push((candidate, what));
        }
    }
    candidates
}

/// To the millisecond, so the file shows what ran.
fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// Up to the next whole millisecond.
fn round_up(d: Duration) -> Duration {
    Duration::from_nanos(d.as_nanos().div_ceil(1_000_000) as u64 * 1_000_000)
}
