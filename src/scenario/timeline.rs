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
    /// Whether it notes what each event does in the trace; a drawn scenario's timeline notes
    /// only its `note` events, which carry the nemesis's own words.
    says: bool,
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
        let says = scenario.sim.is_none();
        Timeline { scenario, system, events, says, cut: Cut::default(), windows: Vec::new() }
    }

    /// Notes `text` in the trace, unless this timeline keeps quiet.
    fn say(&self, f: &mut impl Faults, text: &str) {
        if self.says {
            f.note(text);
        }
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

    /// Every host of `a` with every host of `b`.
    fn host_pairs(&self, a: &Target, b: &Target) -> Vec<(String, String)> {
        let (ha, hb) = (self.hosts_of(a), self.hosts_of(b));
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
                self.say(f, &label);
                let _ = f.cut(&cut);
                self.cut.join(cut);
                Some((label, Closes::Heal))
            }
            Action::Cut(links) => {
                let cut = Cut::from_pairs(links.iter().map(|(a, b)| (name(a), name(b))).collect());
                let label = format!("cut {}", describe_links(s, links));
                self.say(f, &label);
                let _ = f.cut(&cut);
                self.cut.join(cut);
                Some((label, Closes::Heal))
            }
            Action::Uncut(links) => {
                let pairs = links.iter().map(|(a, b)| (name(a), name(b))).collect();
                let healed = self.cut.take(&Cut::from_pairs(pairs));
                self.say(f, &format!("uncut {}", describe_links(s, links)));
                let _ = f.heal(&healed);
                None
            }
            Action::Heal => {
                self.say(f, "heal");
                let _ = f.heal(&std::mem::take(&mut self.cut));
                None
            }
            Action::IsolateLeader => {
                let Some(leader) = f.leader() else {
                    self.say(f, "isolate the leader: there is none");
                    return None;
                };
                self.say(f, &format!("isolate the leader {}", name(&leader)));
                let (cut, _) = f.isolate(leader);
                self.cut.join(cut);
                Some((format!("{} isolated", name(&leader)), Closes::Heal))
            }
            Action::Crash(n) => {
                if f.crash(*n).done() {
                    // Raft's trace has always said why; the comparison systems' never did.
                    let why = if self.system == System::Raft { " (scenario)" } else { "" };
                    self.say(f, &format!("crash {}{why}", name(n)));
                }
                Some((format!("{} down", name(n)), Closes::Restart(*n)))
            }
            Action::Restart(n) => {
                if f.restart(*n).done() {
                    self.say(f, &format!("restart {}", name(n)));
                }
                None
            }
            Action::Pause(n) => {
                if f.pause(*n).done() {
                    self.say(f, &format!("pause {}", name(n)));
                }
                Some((format!("{} paused", name(n)), Closes::Resume(*n)))
            }
            Action::Resume(n) => {
                if f.resume(*n).done() {
                    self.say(f, &format!("resume {}", name(n)));
                }
                None
            }
            Action::Drift(n, rate) => {
                self.say(f, &format!("clock {} runs at x{rate}", name(n)));
                let _ = f.clock_rate(*n, *rate);
                (*rate != 1.0).then(|| (format!("{} clock x{rate}", name(n)), Closes::Clock(*n)))
            }
            Action::Jump(n, by) => {
                self.say(f, &format!("clock {} jumps {}", name(n), show(*by)));
                let _ = f.clock_jump(*n, *by);
                None
            }
            Action::Loss(a, b, rate) => {
                let (sa, sb) = (s.target_name(a), s.target_name(b));
                self.say(f, &format!("loss {rate} between {sa} and {sb}"));
                for (x, y) in self.host_pairs(a, b) {
                    let _ = f.link_loss(&x, &y, *rate);
                }
                (*rate > 0.0).then(|| (format!("loss {rate} {sa}-{sb}"), Closes::Link))
            }
            Action::SetLatency(a, b, latency) => {
                let (sa, sb) = (s.target_name(a), s.target_name(b));
                self.say(f, &format!("latency {latency} between {sa} and {sb}"));
                for (x, y) in self.host_pairs(a, b) {
                    let _ = f.link_latency(&x, &y, *latency);
                }
                Some((format!("latency {latency} {sa}-{sb}"), Closes::Link))
            }
            Action::Note(text) => {
                f.note(text);
                None
            }
            Action::Member(change) => {
                self.say(f, &format!("ask the leader: {change}"));
                let _ = f.change_membership(change.clone());
                None
            }
            Action::Replace(old, new) => {
                self.say(f, &format!("replace {} with {}", name(old), name(new)));
                let id = |n: &usize| crate::raft::NodeId(*n as u64 + 1);
                let _ = f.change_membership(crate::raft::MembershipChange::Remove(id(old)));
                let _ = f.change_membership(crate::raft::MembershipChange::AddVoter(id(new)));
                None
            }
        }
    }
}

fn closes(action: &Action, on: &Closes) -> bool {
    match (action, on) {
        (Action::Heal | Action::Uncut(_), Closes::Heal) => true,
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

fn describe_links(s: &Scenario, links: &[(usize, usize)]) -> String {
    let names: Vec<String> =
        links.iter().map(|(a, b)| format!("{}->{}", s.nodes[*a], s.nodes[*b])).collect();
    names.join(" ")
}

impl crate::sim::Driver for Timeline<'_> {
    fn advance(&mut self, w: &mut crate::sim::World<'_>) {
        Timeline::advance(self, w);
    }

    fn stop(&mut self) {
        self.events.clear();
    }
}
