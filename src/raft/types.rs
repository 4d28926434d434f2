//! The nouns of the Raft paper as newtypes, so an index is never mistaken for a term or a count.

use std::fmt;

use bytes::Bytes;

/// A member of the cluster. Ids start at 1; 0 is never a node (it means "none" on the wire).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

/// A Raft term (§3.3): a logical clock that only grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Term(pub u64);

/// A position in the replicated log. Index 0 is the empty prefix; entries start at 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogIndex(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl LogIndex {
    /// The next index.
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The previous index, saturating at 0.
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

/// One log entry. Empty `data` is the no-op a new leader appends to commit its term (§6.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: LogIndex,
    /// The command, opaque to Raft; a configuration's encoding (`Membership::encode`) in a
    /// configuration entry.
    pub data: Bytes,
    /// A client command, or a configuration (§4.1).
    pub kind: EntryKind,
}

/// What an entry carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EntryKind {
    /// A command for the state machine (or the no-op, with empty data).
    #[default]
    Command,
    /// A cluster configuration, which Raft reads and the state machine skips.
    Config,
}

impl Entry {
    /// A command (or no-op) entry.
    pub fn command(term: Term, index: LogIndex, data: Bytes) -> Entry {
        Entry { term, index, data, kind: EntryKind::Command }
    }

    /// A configuration entry.
    pub fn config(term: Term, index: LogIndex, membership: &super::Membership) -> Entry {
        Entry { term, index, data: membership.encode(), kind: EntryKind::Config }
    }

    /// Bytes this entry counts for when batching messages.
    pub fn size(&self) -> usize {
        self.data.len() + 16
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.term, self.index)?;
        if self.kind == EntryKind::Config {
            return match super::Membership::decode(&self.data) {
                Ok(membership) => write!(f, " config {membership}"),
                Err(e) => write!(f, " config <{e}>"),
            };
        }
        if self.data.is_empty() {
            return write!(f, " no-op");
        }
        match std::str::from_utf8(&self.data) {
            Ok(text) if text.len() <= 32 && !text.contains(char::is_control) => {
                write!(f, " {text:?}")
            }
            _ => write!(f, " <{} bytes>", self.data.len()),
        }
    }
}

/// The state a node must make durable before it sends any message that depends on it (§3.8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// The highest index known committed. Persisting it is an optimisation (restart applies
    /// less); losing it is safe.
    pub commit: LogIndex,
}

/// Where a snapshot sits in the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The last index the snapshot covers.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
}

/// A state-machine snapshot with the log position it covers (§5.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The log position covered.
    pub meta: SnapshotMeta,
    /// The serialized state machine, opaque to Raft.
    pub data: Bytes,
    /// The configuration as of `meta.index` (§5.1: a snapshot carries the latest
    /// configuration it covers). Empty in a snapshot written before membership changes: the
    /// node's bootstrap configuration stands for it.
    pub membership: super::Membership,
}

/// The roles of §3.3, plus the pre-candidate of §9.6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Follows a leader, or waits for one.
    Follower,
    /// Asks whether it could win an election, without raising its term (§9.6).
    PreCandidate,
    /// Has raised its term and asks for votes.
    Candidate,
    /// Replicates its log.
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        })
    }
}

/// The volatile view of who leads: reported in a `Ready` whenever it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftState {
    /// This node's role.
    pub role: Role,
    /// The leader this node knows of in its current term.
    pub leader: Option<NodeId>,
}
