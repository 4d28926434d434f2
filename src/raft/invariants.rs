//! Whole-state validation of one node. `Node` runs it under `debug_assert!` after every input;
//! the simulator runs it on every node after every step, so there is one source of truth.
//!
//! The invariants:
//! 1. The log's own (see `log.rs`), and `snapshot.index <= applied` once a received snapshot is
//!    restored.
//! 2. No entry carries a term above the node's current term.
//! 3. A leader has voted for itself and knows itself as leader; a candidate has voted for
//!    itself; only a leader tracks progress or transfers leadership.
//! 4. A leader's own match index is its last index, and no follower's match index passes it.

use std::fmt;

use super::node::Node;
use super::types::{NodeId, Role};

/// A broken invariant on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The node.
    pub node: NodeId,
    /// What is wrong, with the values involved.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.node, self.detail)
    }
}

impl Node {
    /// Checks the invariants listed in the module docs.
    ///
    /// # Errors
    /// The first invariant found broken.
    pub fn validate(&self) -> Result<(), Violation> {
        let fail = |detail: String| Err(Violation { node: self.id(), detail });
        if let Err(detail) = self.log.validate() {
            return fail(detail);
        }
        if self.pending_snapshot.is_none() && self.log.applied() < self.log.snapshot().index {
            return fail(format!(
                "applied {} below snapshot {}",
                self.log.applied(),
                self.log.snapshot().index
            ));
        }
        if self.log.last_term() > self.term {
            return fail(format!(
                "last log term {} above term {}",
                self.log.last_term(),
                self.term
            ));
        }
        let me = Some(self.id());
        if self.role == Role::Leader && (self.leader != me || self.vote != me) {
            return fail(format!("leader with leader={:?} vote={:?}", self.leader, self.vote));
        }
        if self.role == Role::Candidate && self.vote != me {
            return fail(format!("candidate voted for {:?}", self.vote));
        }
        if self.role != Role::Leader
            && (!self.progress.is_empty() || self.lead_transferee.is_some())
        {
            return fail(format!("{} tracks progress or a transfer", self.role));
        }
        if self.role == Role::Leader {
            self.validate_progress()?;
        }
        Ok(())
    }

    fn validate_progress(&self) -> Result<(), Violation> {
        let fail = |detail: String| Err(Violation { node: self.id(), detail });
        let last_index = self.log.last_index();
        for voter in &self.config.voters {
            let Some(progress) = self.progress.get(voter) else {
                return fail(format!("leader has no progress for {voter}"));
            };
            if progress.match_index > last_index {
                return fail(format!(
                    "{voter} match {} past last index {last_index}",
                    progress.match_index
                ));
            }
        }
        let own = self.progress[&self.id()].match_index;
        if own != last_index {
            return fail(format!("own match {own} is not last index {last_index}"));
        }
        Ok(())
    }
}
