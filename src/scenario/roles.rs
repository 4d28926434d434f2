//! Each node's role over time, for the detector and the report's timeline: Raft's from the
//! election events its probes report, the naive systems' from their own probe, and "down" or
//! "paused" from the fault backend.

use std::collections::BTreeMap;
use std::time::Duration;

use super::run::System;
use crate::faults::{Faults, NodeState};
use crate::naive::NaiveRole;
use crate::sim::World;
use crate::sim::checks::Event;

/// A node's role over a stretch of time.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleSpan {
    /// The node (index).
    pub node: usize,
    /// `leader`, `follower`, `candidate`, `primary`, `replica`, `down` or `paused`.
    pub role: String,
    /// From.
    pub from: Duration,
    /// Until.
    pub to: Duration,
}

/// Roles as the nodes report them.
#[derive(Default)]
pub(crate) struct Roles {
    current: BTreeMap<usize, (String, Duration)>,
    pub(crate) spans: Vec<RoleSpan>,
    /// naive: each node's (role, epoch).
    pub(crate) naive: BTreeMap<usize, (NaiveRole, u64)>,
    /// naive-failover-fenced: writes refused or left unstored for a stale epoch.
    pub(crate) refused: u64,
    /// naive: times the monitor's promotion made a node primary (the configured first primary
    /// is not counted: nothing elected it).
    pub(crate) promotions: u64,
}

impl Roles {
    /// Node `node` is in `role` from `at`.
    pub(crate) fn set(&mut self, node: usize, role: &str, at: Duration) {
        if self.current.get(&node).is_some_and(|(old, _)| old == role) {
            return;
        }
        if let Some((old, since)) = self.current.insert(node, (role.to_string(), at)) {
            self.spans.push(RoleSpan { node, role: old, from: since, to: at });
        }
    }

    /// Closes every span at `at`.
    pub(crate) fn finish(&mut self, at: Duration) {
        for (node, (role, since)) in std::mem::take(&mut self.current) {
            self.spans.push(RoleSpan { node, role, from: since, to: at });
        }
        self.spans.sort_by_key(|s| (s.node, s.from));
    }

    /// The naive system's primary of the newest epoch.
    pub(crate) fn naive_primary(&self) -> Option<usize> {
        self.naive
            .iter()
            .filter(|(_, (role, _))| *role == NaiveRole::Primary)
            .max_by_key(|(n, (_, epoch))| (*epoch, std::cmp::Reverse(**n)))
            .map(|(n, _)| *n)
    }

    /// Takes the step's role events (Raft) and each node's state from the world.
    pub(crate) fn drain(&mut self, w: &World<'_>, system: System) {
        let now = w.now();
        if system == System::Raft {
            for event in w.take_events() {
                if let Event::Role { node, role, .. } = event {
                    let name = match role {
                        crate::raft::Role::Leader => "leader",
                        crate::raft::Role::Candidate | crate::raft::Role::PreCandidate => {
                            "candidate"
                        }
                        crate::raft::Role::Follower => "follower",
                    };
                    self.set(node.0 as usize - 1, name, now);
                }
            }
        }
        let states: Vec<NodeState> = (0..w.nodes().len()).map(|n| w.state(n)).collect();
        for (node, state) in states.iter().enumerate() {
            match state {
                NodeState::Crashed => self.set(node, "down", now),
                NodeState::Paused => self.set(node, "paused", now),
                NodeState::Up => {}
            }
        }
        for (node, state) in states.iter().enumerate() {
            let down_or_paused =
                self.current.get(&node).is_some_and(|(r, _)| r == "down" || r == "paused");
            if down_or_paused && *state == NodeState::Up {
                let back = match (system, self.naive.get(&node)) {
                    (System::Raft, _) => "follower",
                    (_, Some((NaiveRole::Primary, _))) => "primary",
                    _ => "replica",
                };
                self.set(node, back, now);
            }
        }
    }
}
