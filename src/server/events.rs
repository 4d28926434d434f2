//! The situations a node passes through that say what a run exercised: the one event source
//! the simulator's coverage counts and that logs and metrics read. The driver derives each one
//! from what it already handles (a `Ready`, a read it serves); the core is not asked.

use crate::raft::{Body, LogIndex, Message, Ready, Role, Term};

/// One situation on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeEvent {
    /// It won an election (§3.4).
    BecameLeader,
    /// As leader, it learned of a higher term and stepped down (§3.3).
    Deposed,
    /// As leader, it stepped down in its own term: check quorum found no live majority (§6.2).
    CheckQuorumStepDown,
    /// It refused a pre-vote (§9.6): the asker's log was behind, or a leader was heard lately.
    PreVoteRejected,
    /// It refused a vote (§3.6.1).
    VoteRejected,
    /// It served a lease read without a round of heartbeats (§6.4.1).
    LeaseRead,
    /// A lease read found no valid lease and fell back to ReadIndex.
    LeaseLapsed,
    /// It started a ReadIndex round (§6.4).
    ReadIndex,
    /// As leader, it sent a snapshot to a follower too far behind (§5.3).
    SnapshotSent,
    /// It replaced its state machine with a snapshot from the leader (§5.3).
    SnapshotInstalled,
    /// A new leader's entries replaced an uncommitted suffix of its stored log (§3.5).
    SuffixTruncated,
}

impl NodeEvent {
    /// Every event, in the order reports list them.
    pub const ALL: [NodeEvent; 11] = [
        NodeEvent::BecameLeader,
        NodeEvent::Deposed,
        NodeEvent::CheckQuorumStepDown,
        NodeEvent::PreVoteRejected,
        NodeEvent::VoteRejected,
        NodeEvent::LeaseRead,
        NodeEvent::LeaseLapsed,
        NodeEvent::ReadIndex,
        NodeEvent::SnapshotSent,
        NodeEvent::SnapshotInstalled,
        NodeEvent::SuffixTruncated,
    ];

    /// The name in reports, `--require` and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            NodeEvent::BecameLeader => "leader-elected",
            NodeEvent::Deposed => "leader-deposed",
            NodeEvent::CheckQuorumStepDown => "check-quorum-step-down",
            NodeEvent::PreVoteRejected => "pre-vote-rejected",
            NodeEvent::VoteRejected => "vote-rejected",
            NodeEvent::LeaseRead => "lease-read",
            NodeEvent::LeaseLapsed => "lease-lapsed",
            NodeEvent::ReadIndex => "read-index",
            NodeEvent::SnapshotSent => "snapshot-sent",
            NodeEvent::SnapshotInstalled => "snapshot-installed",
            NodeEvent::SuffixTruncated => "suffix-truncated",
        }
    }
}

/// What a node was before a `Ready`: enough to tell what the `Ready` changed.
#[derive(Clone, Copy, Debug)]
pub struct Before {
    /// Its role.
    pub role: Role,
    /// Its term.
    pub term: Term,
    /// The last index it had made durable.
    pub persisted: LogIndex,
}

/// The events a `Ready` shows, given what the node was before it and its term after.
pub fn of_ready(before: Before, term: Term, ready: &Ready) -> Vec<NodeEvent> {
    let mut events = Vec::new();
    if let Some(soft) = ready.soft_state {
        if soft.role == Role::Leader && before.role != Role::Leader {
            events.push(NodeEvent::BecameLeader);
        } else if before.role == Role::Leader && soft.role != Role::Leader {
            events.push(if term > before.term {
                NodeEvent::Deposed
            } else {
                NodeEvent::CheckQuorumStepDown
            });
        }
    }
    if ready.entries.first().is_some_and(|first| first.index <= before.persisted) {
        events.push(NodeEvent::SuffixTruncated);
    }
    if ready.snapshot.is_some() {
        events.push(NodeEvent::SnapshotInstalled);
    }
    events.extend(ready.messages.iter().filter_map(of_message));
    events
}

fn of_message(message: &Message) -> Option<NodeEvent> {
    match message.body {
        Body::RequestVoteResponse { pre_vote: true, granted: false } => {
            Some(NodeEvent::PreVoteRejected)
        }
        Body::RequestVoteResponse { pre_vote: false, granted: false } => {
            Some(NodeEvent::VoteRejected)
        }
        Body::InstallSnapshot { .. } => Some(NodeEvent::SnapshotSent),
        _ => None,
    }
}

/// The last index durable after `ready` is persisted, from `persisted` before it.
pub fn persisted_after(persisted: LogIndex, ready: &Ready) -> LogIndex {
    match (ready.entries.last(), &ready.snapshot) {
        (Some(last), _) => last.index,
        (None, Some(snapshot)) => snapshot.meta.index,
        (None, None) => persisted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Entry, NodeId, SoftState};
    use bytes::Bytes;

    fn ready() -> Ready {
        Ready {
            soft_state: None,
            hard_state: None,
            snapshot: None,
            entries: Vec::new(),
            must_sync: false,
            messages: Vec::new(),
            committed_entries: Vec::new(),
            read_states: Vec::new(),
            failed_reads: Vec::new(),
        }
    }

    fn leader(term: u64) -> Before {
        Before { role: Role::Leader, term: Term(term), persisted: LogIndex(5) }
    }

    #[test]
    fn a_leader_stepping_down_is_deposed_by_a_higher_term_and_by_check_quorum_in_its_own() {
        let mut r = ready();
        r.soft_state = Some(SoftState { role: Role::Follower, leader: None });
        assert_eq!(of_ready(leader(3), Term(4), &r), vec![NodeEvent::Deposed]);
        assert_eq!(of_ready(leader(3), Term(3), &r), vec![NodeEvent::CheckQuorumStepDown]);
        r.soft_state = Some(SoftState { role: Role::Leader, leader: Some(NodeId(1)) });
        let follower = Before { role: Role::Candidate, ..leader(3) };
        assert_eq!(of_ready(follower, Term(3), &r), vec![NodeEvent::BecameLeader]);
    }

    #[test]
    fn entries_at_or_below_the_persisted_index_truncate_a_suffix() {
        let mut r = ready();
        let entry = |index| Entry::command(Term(2), LogIndex(index), Bytes::new());
        r.entries = vec![entry(6), entry(7)];
        assert_eq!(of_ready(leader(2), Term(2), &r), vec![]);
        assert_eq!(persisted_after(LogIndex(5), &r), LogIndex(7));
        r.entries = vec![entry(5)];
        assert_eq!(of_ready(leader(2), Term(2), &r), vec![NodeEvent::SuffixTruncated]);
    }

    #[test]
    fn refused_votes_and_snapshots_are_read_from_the_messages() {
        let mut r = ready();
        let message = |body| Message { from: NodeId(1), to: NodeId(2), term: Term(1), body };
        r.messages = vec![
            message(Body::RequestVoteResponse { pre_vote: true, granted: false }),
            message(Body::RequestVoteResponse { pre_vote: false, granted: true }),
            message(Body::RequestVoteResponse { pre_vote: false, granted: false }),
        ];
        let events = of_ready(leader(1), Term(1), &r);
        assert_eq!(events, vec![NodeEvent::PreVoteRejected, NodeEvent::VoteRejected]);
    }
}
