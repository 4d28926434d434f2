//! Whole-state validation of one node. `Node` runs it under `debug_assert!` after every input;
//! the simulator runs it on every node after every step, so there is one source of truth.
//!
//! The invariants:
//! 1. The log's own (see `log.rs`), and `snapshot.index <= applied` once a received snapshot is
//!    restored.
//! 2. No entry carries a term above the node's current term.
//! 3. A leader has voted for itself and knows itself as leader; a candidate has voted for
//!    itself; only a leader tracks progress or transfers leadership.
//! 4. A leader's own match index is its last index, and no follower's match index passes it;
//!    it tracks every member of the configuration in effect.
//! 5. The configuration in effect is the log's: the entry at its index is that configuration.

use std::fmt;

use super::node::Node;
use super::types::{EntryKind, NodeId, Role};

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
        self.validate_configuration()
    }

    fn validate_configuration(&self) -> Result<(), Violation> {
        let index = self.configs.latest_index();
        if index.0 == 0 {
            return Ok(());
        }
        let in_effect = self.membership().encode();
        match self.log.entry(index) {
            Some(entry) if entry.kind == EntryKind::Config && entry.data == in_effect => Ok(()),
            Some(entry) => Err(Violation {
                node: self.id(),
                detail: format!("configuration {} in effect, but entry {entry}", self.membership()),
            }),
            None if index <= self.log.snapshot().index => Ok(()),
            None => Err(Violation {
                node: self.id(),
                detail: format!(
                    "configuration {} from entry {index}, past the log's end {}",
                    self.membership(),
                    self.log.last_index()
                ),
            }),
        }
    }

    fn validate_progress(&self) -> Result<(), Violation> {
        let fail = |detail: String| Err(Violation { node: self.id(), detail });
        let last_index = self.log.last_index();
        for member in self.membership().each_member() {
            let Some(progress) = self.progress.get(&member) else {
                return fail(format!("leader has no progress for {member}"));
            };
            if progress.match_index > last_index {
                return fail(format!(
                    "{member} match {} past last index {last_index}",
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

/// One test per violation `validate` can report: each builds a state that breaks exactly that
/// invariant (the log's own are tested in `log.rs`) and checks that the report names it.
#[cfg(test)]
mod tests {
    use super::super::testkit::MemCluster;
    use super::super::types::{LogIndex, SnapshotMeta, Term};
    use super::*;

    /// A 3-node cluster whose node 1 leads with a few committed entries.
    fn led() -> MemCluster {
        let mut cluster = MemCluster::new(3, |config| config.validate_every = 1);
        cluster.node(NodeId(1)).campaign();
        cluster.stabilize();
        for i in 0..3u8 {
            cluster.node(NodeId(1)).propose(vec![i].into()).expect("the leader takes proposals");
            cluster.stabilize();
        }
        let leader = cluster.node(NodeId(1));
        assert_eq!(leader.role(), Role::Leader, "the fixture elects node 1");
        assert!(leader.validate().is_ok(), "the fixture starts valid: {:?}", leader.validate());
        cluster
    }

    fn violation(node: &Node) -> String {
        node.validate().expect_err("the state was broken on purpose").detail
    }

    #[test]
    fn applied_below_the_snapshot_without_a_pending_snapshot_is_reported() {
        let mut cluster = led();
        let node = cluster.node(NodeId(2));
        let term = node.term;
        node.log.restore_snapshot(SnapshotMeta { index: LogIndex(50), term });
        assert!(node.pending_snapshot.is_none());
        assert!(violation(node).contains("below snapshot 50"), "{}", violation(node));
    }

    #[test]
    fn an_entry_above_the_current_term_is_reported() {
        let mut cluster = led();
        let node = cluster.node(NodeId(3));
        let term = node.term;
        node.term = Term(term.0 - 1);
        let found = violation(node);
        assert!(found.contains(&format!("above term {}", term.0 - 1)), "{found}");
    }

    #[test]
    fn a_leader_that_did_not_vote_for_itself_is_reported() {
        let mut cluster = led();
        let node = cluster.node(NodeId(1));
        node.vote = Some(NodeId(2));
        assert!(violation(node).contains("leader with leader="), "{}", violation(node));
    }

    #[test]
    fn a_leader_that_names_another_leader_is_reported() {
        let mut cluster = led();
        let node = cluster.node(NodeId(1));
        node.leader = Some(NodeId(3));
        let expected = format!("leader={:?}", Some(NodeId(3)));
        assert!(violation(node).contains(&expected), "{}", violation(node));
    }

    #[test]
    fn a_candidate_that_voted_for_another_is_reported() {
        let mut cluster = led();
        let node = cluster.node(NodeId(2));
        node.role = Role::Candidate;
        node.vote = Some(NodeId(1));
        let expected = format!("candidate voted for {:?}", Some(NodeId(1)));
        assert!(violation(node).contains(&expected), "{}", violation(node));
    }

    #[test]
    fn a_follower_tracking_progress_is_reported() {
        let mut cluster = led();
        let progress = cluster.node(NodeId(1)).progress.clone();
        let node = cluster.node(NodeId(2));
        node.progress = progress;
        assert!(violation(node).contains("tracks progress or a transfer"), "{}", violation(node));
    }

    #[test]
    fn a_follower_transferring_leadership_is_reported() {
        let mut cluster = led();
        let node = cluster.node(NodeId(2));
        node.lead_transferee = Some(NodeId(3));
        assert!(violation(node).contains("tracks progress or a transfer"), "{}", violation(node));
    }

    #[test]
    fn a_leader_without_progress_for_a_voter_is_reported() {
        let mut cluster = led();
        let node = cluster.node(NodeId(1));
        node.progress.remove(&NodeId(3));
        assert!(violation(node).contains("no progress for n3"), "{}", violation(node));
    }

    #[test]
    fn a_match_index_past_the_leaders_log_is_reported() {
        let mut cluster = led();
        let node = cluster.node(NodeId(1));
        let past = node.log.last_index().0 + 5;
        node.progress.get_mut(&NodeId(2)).expect("a voter").match_index = LogIndex(past);
        assert!(violation(node).contains(&format!("n2 match {past} past")), "{}", violation(node));
    }

    #[test]
    fn a_leader_whose_own_match_lags_its_log_is_reported() {
        let mut cluster = led();
        let node = cluster.node(NodeId(1));
        node.progress.get_mut(&NodeId(1)).expect("itself").match_index = LogIndex(1);
        assert!(violation(node).contains("own match 1 is not last index"), "{}", violation(node));
    }

    #[test]
    #[should_panic(expected = "invariant broken on n1: own match 1 is not last index")]
    fn with_validate_every_set_the_next_input_panics_on_a_broken_state() {
        let mut cluster = led();
        let node = cluster.node(NodeId(1));
        node.progress.get_mut(&NodeId(1)).expect("itself").match_index = LogIndex(1);
        node.tick();
    }
}
