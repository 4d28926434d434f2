//! Running a fault schedule: each scheduled fault lowered to the fault primitives when it is
//! due and undone when it ends, and election chaos, which reacts to the votes and wins the
//! nodes report by crashing or cutting off the node involved.

mod bridge;
mod figure8;
mod member;

use std::time::Duration;

use super::{Action, Fault, both_ways, cuts, shuffle};
use crate::faults::{Cut, Faults};
use crate::rng::SplitMix64;
use crate::sim::checks::Event;

/// How to undo a fault that was started.
enum Undo {
    Heal(Cut),
    Restart(usize),
    Resume(usize),
    Rate(usize),
    Rates,
    Unloss(Vec<(usize, usize)>),
    EndChaos,
    EndFigure8,
    EndBridge,
    Promote(usize),
    Nothing,
}

/// A reaction scheduled by election chaos or skewed isolation.
#[derive(Clone, Debug)]
enum Timed {
    /// Crash the node, and restart it after the given downtime.
    Crash(usize, Duration),
    /// Restart the node.
    Restart(usize),
    /// Cut the node off from every other node for the given time.
    Isolate(usize, Duration),
    /// Heal a cut made by `Isolate`.
    Heal(Cut),
}

/// The nemesis as it runs: the faults still to come, those active, and election chaos.
pub struct Nemesis {
    /// Still to come, the next last.
    schedule: Vec<Fault>,
    rng: SplitMix64,
    active: Vec<(Fault, Undo)>,
    /// While an election-chaos episode runs: (crash-after-vote, crash-after-win) chances.
    chaos: Option<(f64, f64)>,
    /// Crashes, restarts and cuts due at a time.
    timed: Vec<(Duration, Timed)>,
    /// A Figure 8 episode in progress.
    figure8: Option<figure8::Figure8>,
    /// A bridge election in progress.
    bridge: Option<bridge::Bridge>,
}

impl Nemesis {
    /// A nemesis that will run `schedule`, drawing partitions and reactions from `rng`.
    pub fn new(mut schedule: Vec<Fault>, rng: SplitMix64) -> Nemesis {
        schedule.reverse();
        Nemesis {
            schedule,
            rng,
            active: Vec::new(),
            chaos: None,
            timed: Vec::new(),
            figure8: None,
            bridge: None,
        }
    }

    /// Before a step: starts the faults that are due, undoes those that ended, and runs the
    /// reactions that are due.
    pub fn advance(&mut self, f: &mut impl Faults) {
        let now = f.now();
        while self.schedule.last().is_some_and(|fault| fault.start <= now) {
            let fault = self.schedule.pop().expect("checked");
            // A targeted episode needs its shape kept: it runs on a healed cluster, alone.
            if self.figure8.is_some() || self.bridge.is_some() {
                continue;
            }
            if matches!(fault.action, Action::Figure8 | Action::BridgeElection) {
                for (_, undo) in std::mem::take(&mut self.active) {
                    self.undo(f, undo);
                }
            }
            let undo = self.start(f, &fault);
            self.active.push((fault, undo));
        }
        let mut i = 0;
        while i < self.active.len() {
            if self.active[i].0.end <= now {
                let (_, undo) = self.active.remove(i);
                self.undo(f, undo);
            } else {
                i += 1;
            }
        }
        self.run_timed(f, false);
    }

    /// Forgets every active fault, election chaos, a Figure 8 or bridge episode and the
    /// reactions still due: at the heal, the world undoes every fault at once
    /// (`World::heal_all`), as it does for a scenario's timeline, so a run and the scenario
    /// written from it heal alike.
    pub fn stop(&mut self) {
        self.active.clear();
        self.chaos = None;
        self.figure8 = None;
        self.bridge = None;
        self.timed.clear();
    }

    /// The node a fault names, or the leader now (node 0 if there is none).
    fn target(f: &mut impl Faults, node: &Option<usize>) -> usize {
        node.or_else(|| f.leader()).unwrap_or(0)
    }

    /// The cut of these directed links, by node index.
    fn cut_of(f: &impl Faults, links: &[(usize, usize)]) -> Cut {
        let names = f.nodes();
        Cut::from_pairs(links.iter().map(|(a, b)| (names[*a].clone(), names[*b].clone())).collect())
    }

    fn crash(f: &mut impl Faults, node: usize, why: &str) -> bool {
        let done = f.crash(node).done();
        if done {
            f.note(&format!("crash {} ({why})", f.nodes()[node]));
        }
        done
    }

    fn start(&mut self, f: &mut impl Faults, fault: &Fault) -> Undo {
        let now = f.now();
        match &fault.action {
            Action::Partition(shape) => {
                // The sides are drawn from the cluster's members: a spare not yet added (or a
                // node removed) on a side of its own would cut nothing that matters.
                let n = f.nodes().len();
                let members: Vec<usize> = match f.membership() {
                    Some(m) => {
                        m.members().iter().map(|id| id.0 as usize - 1).filter(|i| *i < n).collect()
                    }
                    None => (0..n).collect(),
                };
                let leader = f.leader().and_then(|l| members.iter().position(|m| *m == l));
                let cuts: Vec<(usize, usize)> = cuts(*shape, members.len(), leader, &mut self.rng)
                    .into_iter()
                    .map(|(a, b)| (members[a], members[b]))
                    .collect();
                let cut = Self::cut_of(f, &cuts);
                f.note(&format!("start partition {shape:?}: {}", describe_cuts(&cuts, n)));
                let _ = f.cut(&cut);
                Undo::Heal(cut)
            }
            Action::Crash(n) => {
                let node = Self::target(f, n);
                let why = if n.is_some() { "scheduled" } else { "the leader" };
                if Self::crash(f, node, why) { Undo::Restart(node) } else { Undo::Nothing }
            }
            Action::Pause(n) => {
                let node = Self::target(f, n);
                if !f.pause(node).done() {
                    return Undo::Nothing;
                }
                f.note(&format!("pause {}", f.nodes()[node]));
                Undo::Resume(node)
            }
            Action::Drift(node, rate) => {
                f.note(&format!("clock {} runs at x{rate:.3}", f.nodes()[*node]));
                let _ = f.clock_rate(*node, *rate);
                Undo::Rate(*node)
            }
            Action::SkewedIsolation(slow, fast) => {
                let Some(leader) = f.leader() else { return Undo::Nothing };
                f.note(&format!(
                    "clock {} runs at x{slow:.3}, the others at x{fast:.3}",
                    f.nodes()[leader]
                ));
                for node in 0..f.nodes().len() {
                    let _ = f.clock_rate(node, if node == leader { *slow } else { *fast });
                }
                // Cut the slow leader off after a moment, while clients still reach it: the
                // others elect a leader as fast as their clocks allow, while the old one counts
                // its lease down slowly.
                let ms = Duration::from_millis;
                let time = self.rng.duration(ms(500), ms(3000));
                let at = now + self.rng.duration(ms(50), ms(500));
                self.timed.push((at, Timed::Isolate(leader, time)));
                Undo::Rates
            }
            Action::ElectionChaos { after_vote, after_win } => {
                f.note(&format!("start {}", fault.action));
                self.chaos = Some((*after_vote, *after_win));
                // Open with the leader cut off while clients still write to it: it keeps an
                // uncommitted tail for later leaders to disagree with.
                if let Some(leader) = f.leader() {
                    let ms = Duration::from_millis;
                    let time = self.rng.duration(ms(300), ms(1500));
                    self.timed.push((now, Timed::Isolate(leader, time)));
                }
                Undo::EndChaos
            }
            Action::Figure8 => self.start_figure8(f),
            Action::BridgeElection => self.start_bridge(f),
            Action::Member(fault) => self.start_member(f, *fault),
            Action::Loss(pairs, rate) => {
                let names = f.nodes().to_vec();
                let links: Vec<String> =
                    pairs.iter().map(|(a, b)| format!("{}-{}", names[*a], names[*b])).collect();
                f.note(&format!("lossy links at {rate:.3}: {}", links.join(" ")));
                for (a, b) in pairs {
                    let _ = f.link_loss(&names[*a], &names[*b], *rate);
                }
                Undo::Unloss(pairs.clone())
            }
        }
    }

    fn undo(&mut self, f: &mut impl Faults, undo: Undo) {
        match undo {
            Undo::Heal(cut) => {
                f.note("heal partition");
                let _ = f.heal(&cut);
            }
            Undo::Restart(node) => {
                if f.restart(node).done() {
                    f.note(&format!("restart {}", f.nodes()[node]));
                }
            }
            Undo::Resume(node) => {
                if f.resume(node).done() {
                    f.note(&format!("resume {}", f.nodes()[node]));
                }
            }
            Undo::Rate(node) => {
                f.note(&format!("clock {} runs true", f.nodes()[node]));
                let _ = f.clock_rate(node, 1.0);
            }
            Undo::Rates => {
                f.note("clocks run true");
                for node in 0..f.nodes().len() {
                    let _ = f.clock_rate(node, 1.0);
                }
            }
            Undo::Unloss(pairs) => {
                f.note("links stop losing");
                let names = f.nodes().to_vec();
                for (a, b) in pairs {
                    let _ = f.link_loss(&names[a], &names[b], 0.0);
                }
            }
            Undo::EndChaos => {
                f.note("end election chaos");
                self.chaos = None;
            }
            Undo::EndFigure8 => self.end_figure8(f),
            Undo::EndBridge => self.end_bridge(f),
            Undo::Promote(node) => Self::promote(f, node),
            Undo::Nothing => {}
        }
    }

    /// Election chaos, the Figure 8 sequence and the bridge election: react to the votes and
    /// wins of the last step.
    pub fn react(&mut self, f: &mut impl Faults, events: Vec<Event>) {
        if self.figure8.is_some() {
            self.react_figure8(f, &events);
        }
        if self.bridge.is_some() {
            self.react_bridge(f, &events);
        }
        let Some((after_vote, after_win)) = self.chaos else { return };
        let now = f.now();
        let ms = Duration::from_millis;
        let mut immediate = false;
        for event in events {
            match event {
                Event::Vote { node, .. } if self.rng.chance(after_vote) => {
                    let node = node.0 as usize - 1;
                    if Self::crash(f, node, "right after voting") {
                        let down = self.rng.duration(ms(10), ms(100));
                        self.timed.push((now + down, Timed::Restart(node)));
                    }
                }
                Event::Role { node, role: crate::raft::Role::Leader, .. }
                    if self.rng.chance(after_win) =>
                {
                    // Cut off at once (its first appends are dropped in flight), or crashed a
                    // little later, after it may have heard its followers.
                    let node = node.0 as usize - 1;
                    let (delay, reaction) = if self.rng.chance(0.5) {
                        (Duration::ZERO, Timed::Isolate(node, self.rng.duration(ms(500), ms(2000))))
                    } else {
                        let down = self.rng.duration(ms(100), ms(600));
                        (self.rng.duration(Duration::ZERO, ms(60)), Timed::Crash(node, down))
                    };
                    immediate |= delay.is_zero();
                    self.timed.push((now + delay, reaction));
                }
                _ => {}
            }
        }
        if immediate {
            self.run_timed(f, false);
        }
    }

    /// Runs the timed reactions that are due (all of them if `all`: at the heal, pending
    /// crashes and cuts are dropped, restarts and heals still happen).
    fn run_timed(&mut self, f: &mut impl Faults, all: bool) {
        let now = f.now();
        let mut due: Vec<(Duration, Timed)> = Vec::new();
        self.timed.retain(|(at, timed)| {
            let ready = all || *at <= now;
            if ready {
                due.push((*at, timed.clone()));
            }
            !ready
        });
        due.sort_by_key(|(at, _)| *at);
        for (_, timed) in due {
            match timed {
                Timed::Crash(..) | Timed::Isolate(..) if all => {}
                Timed::Crash(node, down) => {
                    if Self::crash(f, node, "right after winning an election") {
                        self.timed.push((now + down, Timed::Restart(node)));
                    }
                }
                Timed::Restart(node) => {
                    if f.restart(node).done() {
                        f.note(&format!("restart {}", f.nodes()[node]));
                    }
                }
                Timed::Isolate(node, time) => {
                    f.note(&format!("cut off {} (election chaos)", f.nodes()[node]));
                    let (cut, _) = f.isolate(node);
                    self.timed.push((now + time, Timed::Heal(cut)));
                }
                Timed::Heal(cut) => {
                    f.note("heal the cut-off leader");
                    let _ = f.heal(&cut);
                }
            }
        }
    }
}

/// `n1-/->{n3,n4} ...`: who cannot send to whom.
fn describe_cuts(cuts: &[(usize, usize)], nodes: usize) -> String {
    let mut text = Vec::new();
    for a in 0..nodes {
        let mut targets: Vec<usize> =
            cuts.iter().filter(|(x, _)| *x == a).map(|(_, y)| *y).collect();
        targets.sort_unstable();
        let cut_to: Vec<String> = targets.iter().map(|y| format!("n{}", y + 1)).collect();
        if !cut_to.is_empty() {
            text.push(format!("n{}-/->{{{}}}", a + 1, cut_to.join(",")));
        }
    }
    text.join(" ")
}
