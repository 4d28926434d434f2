//! What the checks report: a broken property, naming nodes, terms, indexes and the simulated
//! time.

use std::fmt;
use std::time::Duration;

use crate::raft::{LogIndex, Membership, NodeId, Term};

/// A broken property, naming nodes, terms, indexes and the simulated time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Two leaders in one term (§3.6.3, Election Safety).
    ElectionSafety {
        /// The term.
        term: Term,
        /// Its first leader.
        first: NodeId,
        /// Another node leading the same term.
        second: NodeId,
        /// When.
        at: Duration,
    },
    /// Two logs hold an entry with the same index and term but differ before it (Log Matching).
    LogMatching {
        /// The node whose log disagrees with one seen before.
        node: NodeId,
        /// The entry.
        index: LogIndex,
        /// Its term.
        term: Term,
        /// When.
        at: Duration,
    },
    /// A node's committed prefix differs from what was committed before (committed entries are
    /// immutable).
    CommittedChanged {
        /// The node.
        node: NodeId,
        /// The first index checked that disagrees.
        index: LogIndex,
        /// When.
        at: Duration,
    },
    /// A node lacking a committed entry could still win an election and overwrite it: its log is
    /// at least as up-to-date (§3.6.1) as those of too many of the entry's holders. Correct Raft
    /// rules this out at the moment of commit; counting replicas of an older term's entry does
    /// not (the Figure 8 case, §3.6.2).
    CommittedNotSafe {
        /// The committed index.
        index: LogIndex,
        /// The node that lacks it.
        node: NodeId,
        /// That node's last log entry (term, index).
        last: (Term, LogIndex),
        /// Voters of its configuration whose logs are strictly more up-to-date than its own.
        outvoting: usize,
        /// When.
        at: Duration,
    },
    /// A leader lacks an entry committed in an earlier term (Leader Completeness).
    LeaderCompleteness {
        /// The leader.
        leader: NodeId,
        /// Its term.
        term: Term,
        /// The committed index it lacks or holds differently.
        index: LogIndex,
        /// The term in which that index was committed.
        committed_in: Term,
        /// When.
        at: Duration,
    },
    /// Two nodes applied different commands at one index (State Machine Safety).
    StateMachineSafety {
        /// The index.
        index: LogIndex,
        /// The node that applied it first, with the entry's term.
        first: (NodeId, Term),
        /// The node that applied something else.
        second: (NodeId, Term),
        /// When.
        at: Duration,
    },
    /// A node's commit index went backwards while it ran.
    CommitDecreased {
        /// The node.
        node: NodeId,
        /// From.
        from: LogIndex,
        /// To.
        to: LogIndex,
        /// When.
        at: Duration,
    },
    /// A write acknowledged to a client is not in the final committed log.
    AckedWriteLost {
        /// The client.
        client: u64,
        /// Its request number.
        seq: u64,
        /// The index it was acknowledged at.
        index: LogIndex,
        /// What the final log holds there.
        found: String,
    },
    /// A node held a valid leader lease by its own clock while another node already led a
    /// later term (§6.4.1): the lease holder answers reads locally, and the new leader may
    /// commit writes those reads miss.
    LeaseOverlap {
        /// The lease holder and its term.
        holder: (NodeId, Term),
        /// The newer leader and its term.
        leader: (NodeId, Term),
        /// How long the lease still had to run, on the holder's clock.
        left: Duration,
        /// When.
        at: Duration,
    },
    /// A lock grant carried a token no larger than one granted before it was asked for.
    FencingTokenOrder {
        /// The earlier grant: (lock client, token, when it completed).
        earlier: (u64, i64, Duration),
        /// The later one: (lock client, token, when it was invoked).
        later: (u64, i64, Duration),
    },
    /// A quorum fully connected, cut off from every other running node, and untouched by
    /// faults for the whole liveness window had, at its end, no leader known to all of it
    /// that had committed an entry of its term (`sim::liveness`).
    NoLeaderWhileConnected {
        /// The quorum.
        quorum: Vec<NodeId>,
        /// Since when it was connected and cut off.
        since: Duration,
        /// What each of its nodes knew at the end: (node, leader, term).
        views: Vec<(NodeId, Option<NodeId>, Term)>,
        /// When the window ended.
        at: Duration,
    },
    /// A node stopped with a fatal error or panicked.
    NodeFailed {
        /// The host.
        host: String,
        /// The error.
        error: String,
        /// When.
        at: Duration,
    },
    /// A leader appended a configuration whose quorums need not meet those of one that may
    /// still decide (§4.2, §4.3).
    QuorumsDisjoint {
        /// The leader.
        leader: NodeId,
        /// The new configuration and its index.
        config: (LogIndex, Membership),
        /// The configuration it need not overlap: the last committed, or one appended after it.
        other: (LogIndex, Membership),
        /// When.
        at: Duration,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = |at: &Duration| format!("t={:.3}s", at.as_secs_f64());
        match self {
            Violation::ElectionSafety { term, first, second, at } => {
                write!(f, "election safety: {first} and {second} both led term {term} ({})", t(at))
            }
            Violation::LogMatching { node, index, term, at } => write!(
                f,
                "log matching: {node} holds entry {term}/{index} on a different history than another node ({})",
                t(at)
            ),
            Violation::CommittedChanged { node, index, at } => {
                write!(
                    f,
                    "committed entry changed: {node} disagrees with the committed log at index {index} ({})",
                    t(at)
                )
            }
            Violation::CommittedNotSafe { index, node, last, outvoting, at } => write!(
                f,
                "committed entry not safe: index {index} is committed, but {node}, which lacks it, ends at {}/{} and only {outvoting} voters of its configuration hold a more up-to-date log and would refuse it their vote, so it could be elected and overwrite the entry ({})",
                last.0,
                last.1,
                t(at)
            ),
            Violation::LeaderCompleteness { leader, term, index, committed_in, at } => write!(
                f,
                "leader completeness: {leader}, leader of term {term}, lacks index {index} committed in term {committed_in} ({})",
                t(at)
            ),
            Violation::StateMachineSafety { index, first, second, at } => write!(
                f,
                "state machine safety: at index {index}, {} applied an entry of term {} and {} one of term {} ({})",
                first.0,
                first.1,
                second.0,
                second.1,
                t(at)
            ),
            Violation::CommitDecreased { node, from, to, at } => {
                write!(f, "commit index decreased on {node}: {from} -> {to} ({})", t(at))
            }
            Violation::AckedWriteLost { client, seq, index, found } => write!(
                f,
                "acknowledged write lost: client {client} request {seq} was acknowledged at index {index}, which now holds {found}"
            ),
            Violation::LeaseOverlap { holder, leader, left, at } => write!(
                f,
                "leader lease outlived its leadership: {} still held a lease of term {}, valid for {}ms more, while {} led term {} ({})",
                holder.0,
                holder.1,
                left.as_millis(),
                leader.0,
                leader.1,
                t(at)
            ),
            Violation::FencingTokenOrder { earlier, later } => write!(
                f,
                "fencing tokens out of order: l{} was granted token {} at {}, then l{} asked at {} and got token {}",
                earlier.0,
                earlier.1,
                t(&earlier.2),
                later.0,
                t(&later.2),
                later.1
            ),
            Violation::NoLeaderWhileConnected { quorum, since, views, at } => {
                let names: Vec<String> = quorum.iter().map(ToString::to_string).collect();
                let views: Vec<String> = views
                    .iter()
                    .map(|(node, leader, term)| match leader {
                        Some(l) => format!("{node} follows {l} in term {term}"),
                        None => format!("{node} knows no leader in term {term}"),
                    })
                    .collect();
                write!(
                    f,
                    "no leader while connected: {} fully connected and cut off from the rest since {}, yet no leader known to all of them committed in its term by {}: {}",
                    names.join(","),
                    t(since),
                    t(at),
                    views.join(", ")
                )
            }
            Violation::QuorumsDisjoint { leader, config, other, at } => write!(
                f,
                "configuration quorums disjoint: {leader} appended {} at index {} while {} (index {}) may still decide, and a majority of each can be found without a common member: two leaders, or two committed histories, become possible ({})",
                config.1,
                config.0,
                other.1,
                other.0,
                t(at)
            ),
            Violation::NodeFailed { host, error, at } => {
                write!(f, "{host} failed: {error} ({})", t(at))
            }
        }
    }
}
