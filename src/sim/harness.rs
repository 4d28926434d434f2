//! The running simulation as the harness drives it: applying and undoing faults, reacting to
//! elections (election chaos), one step at a time; and the probe through which every node
//! reports to the checks.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::Duration;

use super::checks::{Checks, Event, Violation};
use super::nemesis::{self, Action, Fault, Links};
use super::trace::Trace;
use crate::clock::SimClock;
use crate::raft::{Entry, Node, NodeId, Ready};
use crate::rng::SplitMix64;
use crate::server::Observer;

/// The simulator's view of one node, called by its driver.
pub(crate) struct Probe {
    pub(crate) checks: Rc<RefCell<Checks>>,
    pub(crate) trace: Rc<RefCell<Trace>>,
    /// Election events for the nemesis to react to.
    pub(crate) events: Rc<RefCell<Vec<Event>>>,
}

pub(crate) fn sim_now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

impl Observer for Probe {
    fn started(&self, node: &Node) {
        let now = sim_now();
        let log = node.log();
        self.trace.borrow_mut().record(
            now,
            format_args!(
                "{} started term={} commit={} last={}",
                node.id(),
                node.term(),
                log.commit(),
                log.last_index()
            ),
        );
        self.checks.borrow_mut().started(node, now);
    }

    fn ready(&self, node: &Node, ready: &Ready) {
        let now = sim_now();
        let events = self.checks.borrow_mut().ready(node, ready, now);
        let mut trace = self.trace.borrow_mut();
        for event in events {
            match &event {
                Event::Role { node, role, term, leader } => {
                    let leader = leader.map_or("none".to_string(), |l| l.to_string());
                    trace.record(now, format_args!("{node} {role} term={term} leader={leader}"));
                }
                Event::Commit { node, commit } => {
                    trace.record(now, format_args!("{node} commit={commit}"))
                }
                Event::Vote { node, term, candidate } => {
                    trace.record(now, format_args!("{node} votes {candidate} term={term}"));
                }
            }
            if !matches!(event, Event::Commit { .. }) {
                self.events.borrow_mut().push(event);
            }
        }
    }

    fn applied(&self, node: NodeId, entry: &Entry) {
        self.checks.borrow_mut().applied(node, entry, sim_now());
    }

    fn lease(&self, node: NodeId, term: crate::raft::Term, until: Option<Duration>) {
        self.checks.borrow_mut().lease(node, term, until);
    }
}

/// The running simulation and everything the harness tracks about it.
pub(crate) struct Harness<'a> {
    pub(crate) sim: turmoil::Sim<'a>,
    pub(crate) nodes: Vec<String>,
    pub(crate) hosts: Vec<String>,
    pub(crate) clocks: Vec<SimClock>,
    pub(crate) checks: Rc<RefCell<Checks>>,
    pub(crate) trace: Rc<RefCell<Trace>>,
    pub(crate) links: Links,
    pub(crate) crashed: BTreeSet<usize>,
    pub(crate) paused: BTreeSet<usize>,
    pub(crate) rng: SplitMix64,
    pub(crate) faults: Vec<(Duration, String)>,
    /// Active faults with what is needed to undo them.
    pub(crate) active: Vec<(Fault, Undo)>,
    /// Election events from the probes, drained after every step.
    pub(crate) events: Rc<RefCell<Vec<Event>>>,
    /// While an election-chaos episode runs: (crash-after-vote, crash-after-win) chances.
    pub(crate) chaos: Option<(f64, f64)>,
    /// Crashes and restarts due at a time, from election chaos.
    pub(crate) timed: Vec<(Duration, Timed)>,
}

/// A reaction scheduled by election chaos.
#[derive(Clone, Debug)]
pub(crate) enum Timed {
    /// Crash the node, and restart it after the given downtime.
    Crash(usize, Duration),
    /// Restart the node.
    Restart(usize),
    /// Cut the node off from every other node for the given time.
    Isolate(usize, Duration),
    /// Restore links cut by `Isolate`.
    Uncut(Vec<(String, String)>),
}

/// How to undo a fault that was applied.
pub(crate) enum Undo {
    Uncut(Vec<(String, String)>),
    Restart(usize),
    Resume(usize),
    Rate(usize),
    Rates,
    Unloss(Vec<(usize, usize)>),
    EndChaos,
    Nothing,
}

impl<'a> Harness<'a> {
    /// A harness for a built simulation, with nothing faulted yet.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        sim: turmoil::Sim<'a>,
        nodes: Vec<String>,
        hosts: Vec<String>,
        clocks: Vec<SimClock>,
        checks: Rc<RefCell<Checks>>,
        trace: Rc<RefCell<Trace>>,
        events: Rc<RefCell<Vec<Event>>>,
        rng: SplitMix64,
    ) -> Harness<'a> {
        Harness {
            sim,
            nodes,
            hosts,
            clocks,
            checks,
            trace,
            links: Links::default(),
            crashed: BTreeSet::new(),
            paused: BTreeSet::new(),
            rng,
            faults: Vec::new(),
            active: Vec::new(),
            events,
            chaos: None,
            timed: Vec::new(),
        }
    }

    pub(crate) fn now(&self) -> Duration {
        self.sim.elapsed()
    }

    pub(crate) fn record(&mut self, text: String) {
        let now = self.now();
        self.trace.borrow_mut().record(now, format_args!("nemesis {text}"));
        self.faults.push((now, text));
    }

    pub(crate) fn leader_index(&self) -> Option<usize> {
        self.checks.borrow().current_leader().map(|(id, _)| id.0 as usize - 1)
    }

    /// Starts a fault; returns how to undo it.
    pub(crate) fn start(&mut self, fault: &Fault) -> Undo {
        let now = self.now();
        let target =
            |h: &Harness<'_>, n: &Option<usize>| n.or_else(|| h.leader_index()).unwrap_or(0);
        match &fault.action {
            Action::Partition(shape) => {
                let leader = self.leader_index();
                let cuts = nemesis::cuts(*shape, self.nodes.len(), leader, &mut self.rng);
                let pairs: Vec<(String, String)> = cuts
                    .iter()
                    .map(|(a, b)| (self.nodes[*a].clone(), self.nodes[*b].clone()))
                    .collect();
                let sides = describe_cuts(&cuts, self.nodes.len());
                self.record(format!("start partition {shape:?}: {sides}"));
                self.links.cut(&pairs);
                self.links.apply(&self.sim, &self.hosts);
                Undo::Uncut(pairs)
            }
            Action::Crash(n) => {
                let node = target(self, n);
                if self.crash(node, if n.is_some() { "scheduled" } else { "the leader" }) {
                    Undo::Restart(node)
                } else {
                    Undo::Nothing
                }
            }
            Action::Pause(n) => {
                let node = target(self, n);
                if self.crashed.contains(&node) || self.paused.contains(&node) {
                    return Undo::Nothing;
                }
                self.record(format!("pause {}", self.nodes[node]));
                self.clocks[node].pause();
                self.links.set_paused(&self.nodes[node], true);
                self.links.apply(&self.sim, &self.hosts);
                self.paused.insert(node);
                Undo::Resume(node)
            }
            Action::Drift(node, rate) => {
                self.record(format!("clock {} runs at x{rate:.3}", self.nodes[*node]));
                self.clocks[*node].set_rate(now, *rate);
                Undo::Rate(*node)
            }
            Action::SkewedIsolation(slow, fast) => {
                let Some(leader) = self.leader_index() else { return Undo::Nothing };
                self.record(format!(
                    "clock {} runs at x{slow:.3}, the others at x{fast:.3}",
                    self.nodes[leader]
                ));
                for (i, clock) in self.clocks.iter().enumerate() {
                    clock.set_rate(now, if i == leader { *slow } else { *fast });
                }
                // Cut the slow leader off after a moment, while clients still reach it: the
                // others elect a leader as fast as their clocks allow, while the old one counts
                // its lease down slowly.
                let time =
                    self.rng.duration(Duration::from_millis(500), Duration::from_millis(3000));
                let at =
                    now + self.rng.duration(Duration::from_millis(50), Duration::from_millis(500));
                self.timed.push((at, Timed::Isolate(leader, time)));
                Undo::Rates
            }
            Action::ElectionChaos { after_vote, after_win } => {
                self.record(format!("start {}", fault.action));
                self.chaos = Some((*after_vote, *after_win));
                // Open with the leader cut off while clients still write to it: it keeps an
                // uncommitted tail for later leaders to disagree with.
                if let Some(leader) = self.leader_index() {
                    let time =
                        self.rng.duration(Duration::from_millis(300), Duration::from_millis(1500));
                    self.timed.push((now, Timed::Isolate(leader, time)));
                }
                Undo::EndChaos
            }
            Action::Loss(pairs, rate) => {
                let names: Vec<String> = pairs
                    .iter()
                    .map(|(a, b)| format!("{}-{}", self.nodes[*a], self.nodes[*b]))
                    .collect();
                self.record(format!("lossy links at {rate:.3}: {}", names.join(" ")));
                for (a, b) in pairs {
                    self.sim.set_link_fail_rate(
                        self.nodes[*a].as_str(),
                        self.nodes[*b].as_str(),
                        *rate,
                    );
                }
                Undo::Unloss(pairs.clone())
            }
        }
    }

    pub(crate) fn undo(&mut self, undo: Undo) {
        let now = self.now();
        match undo {
            Undo::Uncut(pairs) => {
                self.record("heal partition".into());
                self.links.uncut(&pairs);
                self.links.apply(&self.sim, &self.hosts);
            }
            Undo::Restart(node) => {
                if self.crashed.remove(&node) {
                    self.record(format!("restart {}", self.nodes[node]));
                    self.sim.bounce(self.nodes[node].as_str());
                }
            }
            Undo::Resume(node) => {
                self.record(format!("resume {}", self.nodes[node]));
                self.clocks[node].resume();
                self.links.set_paused(&self.nodes[node], false);
                self.links.apply(&self.sim, &self.hosts);
                self.paused.remove(&node);
            }
            Undo::Rate(node) => {
                self.record(format!("clock {} runs true", self.nodes[node]));
                self.clocks[node].set_rate(now, 1.0);
            }
            Undo::Rates => {
                self.record("clocks run true".into());
                for clock in &self.clocks {
                    clock.set_rate(now, 1.0);
                }
            }
            Undo::Unloss(pairs) => {
                self.record("links stop losing".into());
                for (a, b) in pairs {
                    self.sim.set_link_fail_rate(
                        self.nodes[a].as_str(),
                        self.nodes[b].as_str(),
                        0.0,
                    );
                }
            }
            Undo::EndChaos => {
                self.record("end election chaos".into());
                self.chaos = None;
            }
            Undo::Nothing => {}
        }
    }

    /// Crashes node `node` now, unless it is down or paused; returns whether it did.
    pub(crate) fn crash(&mut self, node: usize, why: &str) -> bool {
        if self.crashed.contains(&node) || self.paused.contains(&node) {
            return false;
        }
        self.record(format!("crash {} ({why})", self.nodes[node]));
        self.sim.crash(self.nodes[node].as_str());
        self.checks.borrow_mut().crashed(NodeId(node as u64 + 1));
        self.crashed.insert(node);
        true
    }

    /// Election chaos: reacts to the votes and wins of the last step.
    pub(crate) fn react(&mut self) {
        let events = std::mem::take(&mut *self.events.borrow_mut());
        let Some((after_vote, after_win)) = self.chaos else { return };
        let now = self.now();
        let mut immediate = false;
        for event in events {
            match event {
                Event::Vote { node, .. } if self.rng.chance(after_vote) => {
                    let node = node.0 as usize - 1;
                    if self.crash(node, "right after voting") {
                        let down = self
                            .rng
                            .duration(Duration::from_millis(10), Duration::from_millis(100));
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
                        (
                            Duration::ZERO,
                            Timed::Isolate(
                                node,
                                self.rng.duration(
                                    Duration::from_millis(500),
                                    Duration::from_millis(2000),
                                ),
                            ),
                        )
                    } else {
                        let down = self
                            .rng
                            .duration(Duration::from_millis(100), Duration::from_millis(600));
                        (
                            self.rng.duration(Duration::ZERO, Duration::from_millis(60)),
                            Timed::Crash(node, down),
                        )
                    };
                    immediate |= delay.is_zero();
                    self.timed.push((now + delay, reaction));
                }
                _ => {}
            }
        }
        if immediate {
            self.run_timed(false);
        }
    }

    /// Runs the timed crashes and restarts that are due (all of them if `all`).
    pub(crate) fn run_timed(&mut self, all: bool) {
        let now = self.now();
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
                // At the heal, pending crashes are dropped; restarts still happen.
                Timed::Crash(..) if all => {}
                Timed::Crash(node, down) => {
                    if self.crash(node, "right after winning an election") {
                        self.timed.push((now + down, Timed::Restart(node)));
                    }
                }
                Timed::Restart(node) if self.crashed.contains(&node) => {
                    self.record(format!("restart {}", self.nodes[node]));
                    self.sim.bounce(self.nodes[node].as_str());
                    self.crashed.remove(&node);
                }
                Timed::Restart(_) => {}
                Timed::Isolate(..) if all => {}
                Timed::Isolate(node, time) => {
                    let alone = &self.nodes[node];
                    let pairs: Vec<(String, String)> = self
                        .nodes
                        .iter()
                        .filter(|n| *n != alone)
                        .flat_map(|n| [(alone.clone(), n.clone()), (n.clone(), alone.clone())])
                        .collect();
                    self.record(format!("cut off {alone} (election chaos)"));
                    self.links.cut(&pairs);
                    self.links.apply(&self.sim, &self.hosts);
                    self.timed.push((now + time, Timed::Uncut(pairs)));
                }
                Timed::Uncut(pairs) => {
                    self.record("heal the cut-off leader".into());
                    self.links.uncut(&pairs);
                    self.links.apply(&self.sim, &self.hosts);
                }
            }
        }
    }

    /// One simulation step; a host error or panic becomes a violation.
    pub(crate) fn step(&mut self) -> bool {
        let now = self.now();
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.sim.step())) {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                self.checks.borrow_mut().violate(Violation::NodeFailed {
                    host: "a node".into(),
                    error: error.to_string(),
                    at: now,
                });
            }
            Err(panic) => {
                let error = panic_message(&panic);
                self.checks.borrow_mut().violate(Violation::NodeFailed {
                    host: "a node".into(),
                    error: format!("panicked: {error}"),
                    at: now,
                });
            }
        }
        let clocks = &self.clocks;
        let now = self.now();
        self.checks
            .borrow_mut()
            .check_leases(now, |node| clocks[node.0 as usize - 1].local_at(now));
        self.checks.borrow().violations().is_empty()
    }
}

thread_local! {
    /// The first panic message seen on this thread since the last `take_panic`: a node's panic
    /// reaches the harness wrapped by tokio, which loses the message.
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records a panic message for the harness (installed as part of the panic hook).
pub fn note_panic(info: &std::panic::PanicHookInfo<'_>) {
    let message = info
        .payload()
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    let location =
        info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
    PANIC.with(|p| {
        p.borrow_mut().get_or_insert(format!("{message}{location}"));
    });
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into())
    })
}

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
