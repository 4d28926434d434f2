//! The fault primitives: the operator's vocabulary that every fault in raftbed lowers to. The
//! simulator's nemesis, a scenario's timeline and `raftbed test` speak only these words, and
//! each backend (the turmoil world in `sim::World`, real node processes in `cli::real`)
//! implements them once. A new fault kind is a new method here and in each backend.
//!
//! The words follow turmoil's own (partition, hold, release, bounce), in an operator's terms:
//! a *cut* is a set of directed links that lose every message until it is healed; a *pause*
//! stops a node's process and clock, so messages to it queue; a *crash* loses what the node
//! had not synced, and *restart* starts it again from its disk.
//!
//! Primitives do not write to the record: the caller notes what it did, in its own words, so
//! that a fault reads the same in a trace whatever lowered it.

use std::fmt;
use std::time::Duration;

use crate::raft::{Membership, MembershipChange};

/// A one-way latency, fixed or a uniform range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    /// The least.
    pub min: Duration,
    /// The most.
    pub max: Duration,
}

impl Latency {
    /// A fixed latency.
    pub fn fixed(d: Duration) -> Latency {
        Latency { min: d, max: d }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = crate::scenario::show;
        if self.min == self.max {
            write!(f, "{}", show(self.min))
        } else {
            write!(f, "{}..{}", show(self.min), show(self.max))
        }
    }
}

/// Directed links (from host, to host) cut together, as `cut` applied them; `heal` undoes
/// exactly these. Cuts are counted, so overlapping cuts compose: a link stays cut until every
/// cut holding it is healed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use = "a cut is healed by passing it to `heal`"]
pub struct Cut {
    pairs: Vec<(String, String)>,
}

impl Cut {
    /// Every link from a host of one side to a host of another; with `one_way`, only from the
    /// first side's hosts.
    pub fn between(sides: &[Vec<String>], one_way: bool) -> Cut {
        let mut pairs = Vec::new();
        for (i, a) in sides.iter().enumerate() {
            for (j, b) in sides.iter().enumerate() {
                if i == j || (one_way && i != 0) {
                    continue;
                }
                for x in a {
                    for y in b {
                        pairs.push((x.clone(), y.clone()));
                    }
                }
            }
        }
        Cut { pairs }
    }

    /// Both directions between `alone` and each of `others`.
    pub fn around(alone: &str, others: &[String]) -> Cut {
        let pairs = others
            .iter()
            .filter(|o| o.as_str() != alone)
            .flat_map(|o| [(alone.to_string(), o.clone()), (o.clone(), alone.to_string())])
            .collect();
        Cut { pairs }
    }

    /// These directed links.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Cut {
        Cut { pairs }
    }

    /// Adds `other`'s links to this cut (healing the sum heals both).
    pub fn join(&mut self, other: Cut) {
        self.pairs.extend(other.pairs);
    }

    /// Takes `other`'s links out of this cut, one of each, and returns those it held (links
    /// this cut does not hold are left out: healing them would undo someone else's cut).
    pub fn take(&mut self, other: &Cut) -> Cut {
        let mut taken = Vec::new();
        for pair in &other.pairs {
            if let Some(i) = self.pairs.iter().position(|p| p == pair) {
                taken.push(self.pairs.remove(i));
            }
        }
        Cut { pairs: taken }
    }

    /// The directed links.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Whether it cuts nothing.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// A fault primitive that took effect, as a backend applied it (the simulated world keeps
/// them: `raftbed sim --emit-scenario` writes them back as a scenario's timeline).
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// These directed links were cut.
    Cut(Cut),
    /// These were healed.
    Heal(Cut),
    /// A node crashed.
    Crash(usize),
    /// A crashed node restarted.
    Restart(usize),
    /// A node paused.
    Pause(usize),
    /// A paused node resumed.
    Resume(usize),
    /// A node's clock rate set.
    ClockRate(usize, f64),
    /// A node's clock jumped forward.
    ClockJump(usize, Duration),
    /// A link's loss rate set.
    LinkLoss(String, String, f64),
    /// A link's latency set.
    LinkLatency(String, String, Latency),
    /// A membership change was asked of the cluster.
    Member(MembershipChange),
    /// A line the driver wrote into the trace, saying what it was doing.
    Note(String),
}

/// What a node is, as far as the fault backend knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Running.
    Up,
    /// Crashed (or killed), not yet restarted.
    Crashed,
    /// Paused (SIGSTOP), not yet resumed.
    Paused,
}

/// What a primitive did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Effect {
    /// It happened.
    Done,
    /// Nothing to do, and why: the node was already in that state, or is in one the fault does
    /// not apply to (a paused node is not crashed; a crashed one is not paused).
    Nothing(&'static str),
    /// The backend could not do it (a real node did not answer); the text says why.
    Failed(String),
}

impl Effect {
    /// Whether it happened.
    pub fn done(&self) -> bool {
        matches!(self, Effect::Done)
    }
}

/// What `heal_all` undid, for the caller to note.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Healed {
    /// Some links were cut.
    pub cuts: bool,
    /// Nodes resumed, in order.
    pub resumed: Vec<usize>,
    /// Nodes restarted, in order.
    pub restarted: Vec<usize>,
    /// Failures, if the backend could not undo everything.
    pub failed: Vec<String>,
}

/// The fault primitives. Nodes are indexes into `nodes()`; links are between host names (a
/// node's name, or another host of the backend: a client group, the failover monitor).
pub trait Faults {
    /// Time since the run began (simulated, or on the wall clock for real processes).
    fn now(&self) -> Duration;
    /// Writes one line to the run's record of faults (and its trace).
    fn note(&mut self, text: &str);
    /// The nodes' names.
    fn nodes(&self) -> &[String];
    /// The node that leads now, if the backend can tell.
    fn leader(&mut self) -> Option<usize>;
    /// What node `node` is.
    fn state(&self, node: usize) -> NodeState;

    /// Cuts `cut`'s links until it is healed.
    fn cut(&mut self, cut: &Cut) -> Effect;
    /// Heals the links of a cut applied before.
    fn heal(&mut self, cut: &Cut) -> Effect;
    /// Cuts node `node` off from every other node and from the backend's control hosts (the
    /// failover monitor); its clients still reach it. Returns the cut, for `heal`.
    fn isolate(&mut self, node: usize) -> (Cut, Effect);
    /// Crashes (kills) a running node; it loses what it had not synced.
    fn crash(&mut self, node: usize) -> Effect;
    /// Restarts a crashed node from its disk.
    fn restart(&mut self, node: usize) -> Effect;
    /// Pauses a running node: nothing runs, its clock stops, messages to it wait.
    fn pause(&mut self, node: usize) -> Effect;
    /// Resumes a paused node.
    fn resume(&mut self, node: usize) -> Effect;
    /// Runs a node's clock at `rate` from now (1.0: true).
    fn clock_rate(&mut self, node: usize, rate: f64) -> Effect;
    /// Jumps a node's clock forward.
    fn clock_jump(&mut self, node: usize, by: Duration) -> Effect;
    /// Loses messages on the link between two hosts (both ways) at `rate`; over TCP a lost
    /// message is a broken connection.
    fn link_loss(&mut self, a: &str, b: &str, rate: f64) -> Effect;
    /// Sets the one-way latency between two hosts (both ways).
    fn link_latency(&mut self, a: &str, b: &str, latency: Latency) -> Effect;
    /// Undoes every fault: heals every cut, resumes every paused node, restarts every crashed
    /// one, runs every clock true and puts every link back as it was built. Membership changes
    /// are not faults to undo: the cluster keeps its configuration.
    fn heal_all(&mut self) -> Healed;

    /// Asks the cluster's leader to make `change`, as an operator would: asked again while
    /// the leader cannot take it yet (no leader, a change in flight, a learner behind), until
    /// it is appended or refused for good.
    fn change_membership(&mut self, _change: MembershipChange) -> Effect {
        Effect::Nothing("this backend makes no membership changes")
    }
    /// The configuration the cluster last applied, if the backend knows it.
    fn membership(&self) -> Option<Membership> {
        None
    }
    /// A node that has never been a member and is running, to add; it is taken (not offered
    /// again).
    fn fresh_node(&mut self) -> Option<usize> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cuts_between_sides_and_around_a_node() {
        let sides = vec![names(&["a"]), names(&["b", "c"])];
        assert_eq!(Cut::between(&sides, false).pairs().len(), 4, "a<->b, a<->c");
        assert_eq!(Cut::between(&sides, true).pairs().len(), 2, "a->b, a->c only");
        let around = Cut::around("b", &names(&["a", "b", "c"]));
        let want = [("b", "a"), ("a", "b"), ("b", "c"), ("c", "b")];
        let got: Vec<(&str, &str)> =
            around.pairs().iter().map(|(x, y)| (x.as_str(), y.as_str())).collect();
        assert_eq!(got, want);
    }
}
