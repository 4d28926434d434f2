//! The messages nodes exchange. These are domain types: the wire form lives in `proto/raft.proto`
//! and `transport::convert` maps between the two, so the core never sees protobuf.

use std::fmt;

use super::types::{Entry, LogIndex, NodeId, Snapshot, Term};

/// One message from `from` to `to`, stamped with the sender's term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The receiver.
    pub to: NodeId,
    /// The sender's term, except for a granted pre-vote response, which carries the term the
    /// pre-candidate asked about (§9.6).
    pub term: Term,
    /// What the message says.
    pub body: Body,
}

/// The message kinds: the RPCs of §3 and §9.6 with their responses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// RequestVote (§3.4), or PreVote (§9.6) when `pre_vote` is set.
    RequestVote {
        /// A pre-vote asks "would you vote for me?" and changes no term.
        pre_vote: bool,
        /// The candidate's last log index, for the up-to-date check of §3.6.1.
        last_log_index: LogIndex,
        /// The candidate's last log term.
        last_log_term: Term,
        /// Set when the election follows a TimeoutNow (§3.10): voters skip leader stickiness.
        leadership_transfer: bool,
    },
    /// The answer to a RequestVote.
    RequestVoteResponse {
        /// Answers a pre-vote.
        pre_vote: bool,
        /// Whether the vote was granted.
        granted: bool,
    },
    /// AppendEntries (§3.5).
    AppendEntries {
        /// The index just before `entries`.
        prev_log_index: LogIndex,
        /// The term of the entry at `prev_log_index`.
        prev_log_term: Term,
        /// Entries to append, possibly none (a probe).
        entries: Vec<Entry>,
        /// The leader's commit index.
        leader_commit: LogIndex,
    },
    /// The answer to AppendEntries or InstallSnapshot.
    AppendEntriesResponse {
        /// Whether the follower's log now matches the leader's through `index`.
        success: bool,
        /// On success, the follower's last matching index; on rejection, the rejected
        /// `prev_log_index`.
        index: LogIndex,
        /// On rejection: the largest index at which the follower's term is at most the rejected
        /// `prev_log_term` (fast backtracking, etcd-io/raft's `findConflictByTerm`).
        reject_hint_index: LogIndex,
        /// The follower's term at `reject_hint_index`.
        reject_hint_term: Term,
    },
    /// A heartbeat (§3.4): an AppendEntries with no entries and no consistency check.
    Heartbeat {
        /// The commit index, capped at what this follower is known to have.
        leader_commit: LogIndex,
        /// Echoed in the response; ReadIndex (§6.4) uses it to match quorum acknowledgements.
        context: u64,
    },
    /// The answer to a heartbeat.
    HeartbeatResponse {
        /// The heartbeat's context.
        context: u64,
    },
    /// InstallSnapshot (§5.3): the leader's latest snapshot, whole.
    InstallSnapshot {
        /// The snapshot.
        snapshot: Snapshot,
    },
    /// TimeoutNow (§3.10): start an election now.
    TimeoutNow,
}

impl Body {
    /// A short name for logs and golden output.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::RequestVote { pre_vote: true, .. } => "PreVote",
            Body::RequestVote { pre_vote: false, .. } => "RequestVote",
            Body::RequestVoteResponse { pre_vote: true, .. } => "PreVoteResponse",
            Body::RequestVoteResponse { pre_vote: false, .. } => "RequestVoteResponse",
            Body::AppendEntries { .. } => "AppendEntries",
            Body::AppendEntriesResponse { .. } => "AppendEntriesResponse",
            Body::Heartbeat { .. } => "Heartbeat",
            Body::HeartbeatResponse { .. } => "HeartbeatResponse",
            Body::InstallSnapshot { .. } => "InstallSnapshot",
            Body::TimeoutNow => "TimeoutNow",
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{} {} term={}", self.from, self.to, self.body.kind(), self.term)?;
        match &self.body {
            Body::RequestVote { last_log_index, last_log_term, leadership_transfer, .. } => {
                write!(f, " last={last_log_term}/{last_log_index}")?;
                if *leadership_transfer {
                    write!(f, " transfer")?;
                }
                Ok(())
            }
            Body::RequestVoteResponse { granted, .. } => {
                f.write_str(if *granted { " granted" } else { " rejected" })
            }
            Body::AppendEntries { prev_log_index, prev_log_term, entries, leader_commit } => {
                write!(f, " prev={prev_log_term}/{prev_log_index} commit={leader_commit}")?;
                if !entries.is_empty() {
                    f.write_str(" entries=[")?;
                    for (i, entry) in entries.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{entry}")?;
                    }
                    f.write_str("]")?;
                }
                Ok(())
            }
            Body::AppendEntriesResponse { success: true, index, .. } => {
                write!(f, " ok match={index}")
            }
            Body::AppendEntriesResponse {
                success: false,
                index,
                reject_hint_index,
                reject_hint_term,
            } => write!(f, " rejected prev={index} hint={reject_hint_term}/{reject_hint_index}"),
            Body::Heartbeat { leader_commit, context } => {
                write!(f, " commit={leader_commit}")?;
                if *context != 0 {
                    write!(f, " ctx={context}")?;
                }
                Ok(())
            }
            Body::HeartbeatResponse { context } => {
                if *context != 0 {
                    write!(f, " ctx={context}")?;
                }
                Ok(())
            }
            Body::InstallSnapshot { snapshot } => write!(
                f,
                " snapshot={}/{} ({} bytes)",
                snapshot.meta.term,
                snapshot.meta.index,
                snapshot.data.len()
            ),
            Body::TimeoutNow => Ok(()),
        }
    }
}
