//! A scenario's timeline lowered to the fault primitives: each event, when it is due, becomes
//! cuts, crashes, pauses, clock and link changes on whatever backend runs it, and opens or
//! closes a fault window for the report.

use std::time::Duration;

use super::run::System;
use super::{Action, Event, Scenario, Target, show};
use crate::faults::{Cut, Faults};

/// A fault window for the report's timeline.
#[derive(Clone, Debug, PartialEq)]
struct Window {
    from: Duration,
    to: Option<Duration>,
    label: String,
    closes_on: Closes,
}

/// What ends a window.
#[derive(Clone, Debug, PartialEq)]
enum Closes {
    Heal,
    Restart(usize),
    Resume(usize),
    Clock(usize),
    Link,
}

/// The timeline as it runs.
pub(crate) struct Timeline<'s> {
    scenario: &'s Scenario,
    system: System,
    /// Still to come, the next last.
    events: Vec<Event>,
    /// The partitions and isolations since the last heal.
    cut: Cut,
    windows: Vec<Window>,
}

impl<'s> Timeline<'s> {
    /// `scenario`'s timeline, run against `system`.
    pub(crate) fn new(scenario: &'s Scenario, system: System) -> Timeline<'s> {
        let mut events = scenario.events.clone();
        events.reverse();
        Timeline { scenario, system, events, cut: Cut::default(), windows: Vec::new() }
    }

    /// Applies every event that is due.
    pub(crate) fn advance(&mut self, f: &mut impl Faults) {
        let now = f.now();
        while self.events.last().is_some_and(|e| e.at <= now) {
            let event = self.events.pop().expect("checked");
            let opened = self.apply(f, &event.action);
            for window in self.windows.iter_mut().filter(|w| w.to.is_none()) {
                if closes(&event.action, &window.closes_on) {
                    window.to = Some(now);
                }
            }
            if let Some((label, closes_on)) = opened {
                self.windows.push(Window { from: now, to: None, label, closes_on });
            }
        }
    }

    /// The fault windows, those still open closed at `end`: (from, to, label).
    pub(crate) fn windows(&self, end: Duration) -> Vec<(Duration, Duration, String)> {
        self.windows.iter().map(|w| (w.from, w.to.unwrap_or(end), w.label.clone())).collect()
    }

    /// The hosts of a partition side's target.
    fn hosts_of(&self, target: &Target) -> Vec<String> {
        match target {
            Target::Site(i) => self.scenario.site_hosts(*i, self.system != System::Raft),
            Target::Node(n) => vec![self.scenario.nodes[*n].clone()],
        }
    }

    /// Every host of site `a` with every host of site `b`.
    fn site_pairs(&self, a: usize, b: usize) -> Vec<(String, String)> {
        let with_monitor = self.system != System::Raft;
        let (ha, hb) =
            (self.scenario.site_hosts(a, with_monitor), self.scenario.site_hosts(b, with_monitor));
        ha.iter().flat_map(|x| hb.iter().map(move |y| (x.clone(), y.clone()))).collect()
    }

    /// Applies one event; returns the label of the fault window it opens, if any.
    fn apply(&mut self, f: &mut impl Faults, action: &Action) -> Option<(String, Closes)> {
        let s = self.scenario;
        let name = |n: &usize| s.nodes[*n].clone();
        match action {
            Action::Partition { sides, one_way } => {
                let sides_hosts: Vec<Vec<String>> = sides
                    .iter()
                    .map(|side| side.iter().flat_map(|t| self.hosts_of(t)).collect())
                    .collect();
                let cut = Cut::between(&sides_hosts, *one_way);
                let label = format!("partition {}", describe_sides(s, sides, *one_way));
                f.note(&label);
                let _ = f.cut(&cut);
                self.cut.join(cut);
                Some((label, Closes::Heal))
            }
            Action::Heal => {
                f.note("heal");
                let _ = f.heal(&std::mem::take(&mut self.cut));
                None
            }
            Action::IsolateLeader => {
                let Some(leader) = f.leader() else {
                    f.note("isolate the leader: there is none");
                    return None;
                };
                f.note(&format!("isolate the leader {}", name(&leader)));
                let (cut, _) = f.isolate(leader);
                self.cut.join(cut);
                Some((format!("{} isolated", name(&leader)), Closes::Heal))
            }
            Action::Crash(n) => {
                if f.crash(*n).done() {
                    // Raft's trace has always said why; the comparison systems' never did.
                    let why = if self.system == System::Raft { " (scenario)" } else { "" };
                    f.note(&format!("crash {}{why}", name(n)));
                }
                Some((format!("{} down", name(n)), Closes::Restart(*n)))
            }
            Action::Restart(n) => {
                if f.restart(*n).done() {
                    f.note(&format!("restart {}", name(n)));
                }
                None
            }
            Action::Pause(n) => {
                if f.pause(*n).done() {
                    f.note(&format!("pause {}", name(n)));
                }
                Some((format!("{} paused", name(n)), Closes::Resume(*n)))
            }
            Action::Resume(n) => {
                if f.resume(*n).done() {
                    f.note(&format!("resume {}", name(n)));
                }
                None
            }
            Action::Drift(n, rate) => {
                f.note(&format!("clock {} runs at x{rate}", name(n)));
                let _ = f.clock_rate(*n, *rate);
                (*rate != 1.0).then(|| (format!("{} clock x{rate}", name(n)), Closes::Clock(*n)))
            }
            Action::Jump(n, by) => {
                f.note(&format!("clock {} jumps {}", name(n), show(*by)));
                let _ = f.clock_jump(*n, *by);
                None
            }
            Action::Loss(a, b, rate) => {
                let (sa, sb) = (&s.sites[*a].name, &s.sites[*b].name);
                f.note(&format!("loss {rate} between {sa} and {sb}"));
                for (x, y) in self.site_pairs(*a, *b) {
                    let _ = f.link_loss(&x, &y, *rate);
                }
                (*rate > 0.0).then(|| (format!("loss {rate} {sa}-{sb}"), Closes::Link))
            }
            Action::SetLatency(a, b, latency) => {
                let (sa, sb) = (&s.sites[*a].name, &s.sites[*b].name);
                f.note(&format!("latency {latency} between {sa} and {sb}"));
                for (x, y) in self.site_pairs(*a, *b) {
                    let _ = f.link_latency(&x, &y, *latency);
                }
                Some((format!("latency {latency} {sa}-{sb}"), Closes::Link))
            }
        }
    }
}

fn closes(action: &Action, on: &Closes) -> bool {
    match (action, on) {
        (Action::Heal, Closes::Heal) => true,
        (Action::Restart(a), Closes::Restart(b)) | (Action::Resume(a), Closes::Resume(b)) => a == b,
        (Action::Drift(a, _) | Action::Jump(a, _), Closes::Clock(b)) => a == b,
        (Action::Loss(..) | Action::SetLatency(..), Closes::Link) => true,
        _ => false,
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
