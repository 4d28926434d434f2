//! The fault primitives on the simulated world: what the nemesis and a scenario's timeline
//! do to it.

use std::time::Duration;

use super::{World, link_key};
use crate::faults::{Applied, Cut, Effect, Faults, Healed, Latency, NodeState};
use crate::raft::{Membership, MembershipChange, NodeId};

const NO_SUCH_NODE: Effect = Effect::Nothing("no such node");

impl Faults for World<'_> {
    fn now(&self) -> Duration {
        self.sim.elapsed()
    }

    fn note(&mut self, text: &str) {
        self.tell(text);
        self.record(Applied::Note(text.to_string()));
    }

    fn nodes(&self) -> &[String] {
        &self.nodes
    }

    fn leader(&mut self) -> Option<usize> {
        self.program.leader(&self.checks.borrow())
    }

    fn state(&self, node: usize) -> NodeState {
        if self.crashed.contains(&node) {
            NodeState::Crashed
        } else if self.paused.contains(&node) {
            NodeState::Paused
        } else {
            NodeState::Up
        }
    }

    fn cut(&mut self, cut: &Cut) -> Effect {
        self.record(Applied::Cut(cut.clone()));
        self.generation += 1;
        self.links.cut(cut.pairs());
        self.links.apply(&self.sim, &self.hosts);
        Effect::Done
    }

    fn heal(&mut self, cut: &Cut) -> Effect {
        self.record(Applied::Heal(cut.clone()));
        self.generation += 1;
        self.links.uncut(cut.pairs());
        self.links.apply(&self.sim, &self.hosts);
        Effect::Done
    }

    fn isolate(&mut self, node: usize) -> (Cut, Effect) {
        if !self.index_ok(node) {
            return (Cut::default(), NO_SUCH_NODE);
        }
        let mut others = self.nodes.clone();
        others.extend(self.control.iter().cloned());
        let cut = Cut::around(&self.nodes[node], &others);
        let effect = self.cut(&cut);
        (cut, effect)
    }

    fn crash(&mut self, node: usize) -> Effect {
        self.generation += 1;
        match self.state(node) {
            _ if !self.index_ok(node) => return NO_SUCH_NODE,
            NodeState::Crashed => return Effect::Nothing("already down"),
            NodeState::Paused => return Effect::Nothing("paused"),
            NodeState::Up => {}
        }
        self.sim.crash(self.nodes[node].as_str());
        let now = self.now();
        self.checks.borrow_mut().crashed(NodeId(node as u64 + 1), now);
        self.crashed.insert(node);
        self.record(Applied::Crash(node));
        Effect::Done
    }

    fn restart(&mut self, node: usize) -> Effect {
        self.generation += 1;
        if !self.crashed.remove(&node) {
            return Effect::Nothing("not down");
        }
        self.sim.bounce(self.nodes[node].as_str());
        self.record(Applied::Restart(node));
        Effect::Done
    }

    fn pause(&mut self, node: usize) -> Effect {
        self.generation += 1;
        match self.state(node) {
            _ if !self.index_ok(node) => return NO_SUCH_NODE,
            NodeState::Crashed => return Effect::Nothing("down"),
            NodeState::Paused => return Effect::Nothing("already paused"),
            NodeState::Up => {}
        }
        self.clocks[node].pause();
        self.links.set_paused(&self.nodes[node], true);
        self.links.apply(&self.sim, &self.hosts);
        self.paused.insert(node);
        self.record(Applied::Pause(node));
        Effect::Done
    }

    fn resume(&mut self, node: usize) -> Effect {
        self.generation += 1;
        if !self.paused.remove(&node) {
            return Effect::Nothing("not paused");
        }
        self.clocks[node].resume();
        self.links.set_paused(&self.nodes[node], false);
        self.links.apply(&self.sim, &self.hosts);
        self.record(Applied::Resume(node));
        Effect::Done
    }

    fn clock_rate(&mut self, node: usize, rate: f64) -> Effect {
        if !self.index_ok(node) {
            return NO_SUCH_NODE;
        }
        self.note_clock_fault(node);
        self.clocks[node].set_rate(self.now(), rate);
        self.record(Applied::ClockRate(node, rate));
        Effect::Done
    }

    fn clock_jump(&mut self, node: usize, by: Duration) -> Effect {
        if !self.index_ok(node) {
            return NO_SUCH_NODE;
        }
        self.note_clock_fault(node);
        self.clocks[node].jump(self.now(), by);
        self.record(Applied::ClockJump(node, by));
        Effect::Done
    }

    fn link_loss(&mut self, a: &str, b: &str, rate: f64) -> Effect {
        self.record(Applied::LinkLoss(a.into(), b.into(), rate));
        self.generation += 1;
        self.sim.set_link_fail_rate(a, b, rate);
        self.changed_links.insert(link_key(a, b));
        if rate > 0.0 {
            self.lossy_links.insert(link_key(a, b));
        } else {
            self.lossy_links.remove(&link_key(a, b));
        }
        Effect::Done
    }

    fn link_latency(&mut self, a: &str, b: &str, latency: Latency) -> Effect {
        self.record(Applied::LinkLatency(a.into(), b.into(), latency));
        self.generation += 1;
        self.set_latency(a, b, latency);
        self.changed_links.insert(link_key(a, b));
        self.slowed_links.insert(link_key(a, b));
        Effect::Done
    }

    fn heal_all(&mut self) -> Healed {
        self.generation += 1;
        let mut healed = Healed { cuts: self.links.has_cuts(), ..Healed::default() };
        if healed.cuts {
            self.links.clear_cuts();
            self.links.apply(&self.sim, &self.hosts);
        }
        for node in std::mem::take(&mut self.paused) {
            self.clocks[node].resume();
            self.links.set_paused(&self.nodes[node], false);
            healed.resumed.push(node);
        }
        self.links.apply(&self.sim, &self.hosts);
        for node in std::mem::take(&mut self.crashed) {
            self.sim.bounce(self.nodes[node].as_str());
            healed.restarted.push(node);
        }
        let now = self.now();
        for clock in &self.clocks {
            clock.set_rate(now, 1.0);
        }
        self.lossy_links.clear();
        self.slowed_links.clear();
        for (a, b) in std::mem::take(&mut self.changed_links) {
            let (latency, loss) = self
                .built_links
                .get(&(a.clone(), b.clone()))
                .copied()
                .unwrap_or((self.default_latency, 0.0));
            self.set_latency(&a, &b, latency);
            self.sim.set_link_fail_rate(a.as_str(), b.as_str(), loss);
        }
        healed
    }

    fn change_membership(&mut self, change: MembershipChange) -> Effect {
        if let MembershipChange::AddLearner(id) | MembershipChange::AddVoter(id) = &change {
            self.ever_members.insert(id.0 as usize - 1);
        }
        self.record(Applied::Member(change.clone()));
        let now = self.now();
        self.changes.push(change, now);
        self.drive_changes();
        Effect::Done
    }

    fn membership(&self) -> Option<Membership> {
        Some(self.checks.borrow().membership().clone())
    }

    fn fresh_node(&mut self) -> Option<usize> {
        let fresh = (0..self.nodes.len())
            .find(|n| !self.ever_members.contains(n) && self.state(*n) == NodeState::Up)?;
        self.ever_members.insert(fresh);
        Some(fresh)
    }
}
