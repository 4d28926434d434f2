//! What the API layer asks of the driver, and what it answers. Every call carries a oneshot for
//! the answer; the driver never blocks on one.

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::kv::{ApiError, Change, KeyRange};
use crate::proto::etcdserverpb::{
    LeaseTimeToLiveResponse, RangeRequest, RangeResponse, StatusResponse,
};
use crate::proto::raftbed::{Command, Outcome};
use crate::raft::{Error as RaftError, MembershipChange, NodeId};

/// How a read is served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Confirmed by a heartbeat round (ReadIndex, §6.4). etcd's default.
    #[default]
    Linearizable,
    /// From the leader's state while its lease holds (§6.4.1); ReadIndex otherwise.
    Lease,
    /// From this node's state, possibly stale.
    Serializable,
}

impl Consistency {
    /// The name used on the command line and in request metadata.
    pub fn name(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Lease => "lease",
            Consistency::Serializable => "serializable",
        }
    }

    /// Parses `name` (or its first letter, as etcdctl's `--consistency l|s`).
    pub fn parse(name: &str) -> Option<Consistency> {
        match name {
            "l" | "linearizable" => Some(Consistency::Linearizable),
            "lease" => Some(Consistency::Lease),
            "s" | "serializable" => Some(Consistency::Serializable),
            _ => None,
        }
    }
}

/// A read-only question for the state machine.
#[derive(Clone, Debug)]
pub enum Query {
    /// A Range request.
    Range(RangeRequest),
    /// Who holds a lock, and whether `key` (the caller's lock key) still exists.
    LockHolder {
        /// The lock's name.
        name: Bytes,
        /// The caller's lock key.
        key: Bytes,
    },
    /// Renew a lease (leader only, after confirming leadership).
    KeepAlive(i64),
    /// A lease's remaining time (leader only).
    TimeToLive {
        /// The lease.
        id: i64,
        /// List its keys too.
        keys: bool,
    },
    /// Every lease id.
    Leases,
    /// For each watch, `(range, from)`: the changes to its keys in revisions `from` on, at most
    /// `limit` revisions (served from this node's applied state, at any consistency).
    Changes {
        /// The watches.
        watches: Vec<(KeyRange, i64)>,
        /// At most this many revisions a watch.
        limit: i64,
    },
    /// etcd's HashKV of this node's store at a revision (0: the current one), always local.
    HashKv(i64),
    /// This node's whole state machine, encoded as its Raft snapshots hold it, always local.
    Snapshot,
}

/// What a query answers.
#[derive(Clone, Debug)]
pub enum QueryAnswer {
    /// For `Query::Range`.
    Range(RangeResponse),
    /// For `Query::LockHolder`: the holder's key and token, and whether the caller's key exists.
    LockHolder(Option<(Bytes, i64)>, bool),
    /// For `Query::KeepAlive`: the renewed TTL in seconds; 0 when the lease does not exist.
    KeepAlive(i64),
    /// For `Query::TimeToLive`.
    TimeToLive(LeaseTimeToLiveResponse),
    /// For `Query::Leases`.
    Leases(Vec<i64>),
    /// For `Query::Changes`: the store's revision, and per watch its changes and the revision
    /// read through, or the compaction point its `from` is below.
    Changes {
        /// The store's revision.
        revision: i64,
        /// Per watch, in the order asked.
        watches: Vec<Result<(Vec<Change>, i64), i64>>,
    },
    /// For `Query::HashKv`: the hash, the store's revision and its compaction point.
    HashKv(u32, i64, i64),
    /// For `Query::Snapshot`: the encoded state and its revision.
    Snapshot(bytes::Bytes, i64),
}

/// Why the driver did not answer a call itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// Only the leader can serve it; the leader this node knows of, if any.
    NotLeader(Option<NodeId>),
    /// A final answer.
    Api(ApiError),
}

impl From<ApiError> for CallError {
    fn from(error: ApiError) -> CallError {
        CallError::Api(error)
    }
}

/// An answer, with the Raft facts the response header needs.
#[derive(Clone, Debug)]
pub struct Served<T> {
    /// The answer.
    pub value: T,
    /// The node's term when it answered.
    pub term: u64,
    /// For a proposal: the log index it applied at.
    pub index: u64,
}

/// A node's status: etcd's, and how long its leader lease still holds.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    /// As etcd's Maintenance.Status answers.
    pub status: StatusResponse,
    /// The leader lease's remaining time on this node's clock, if it holds one.
    pub lease_left: Option<std::time::Duration>,
}

/// Where an answer goes.
pub type Reply<T> = oneshot::Sender<Result<Served<T>, CallError>>;

/// A call to the driver.
#[derive(Debug)]
pub enum Call {
    /// Replicate a command and answer what applying it gave.
    Propose {
        /// The command, session fields set.
        command: Command,
        /// The answer.
        reply: Reply<Outcome>,
    },
    /// Answer a query at a consistency level.
    Read {
        /// The question.
        query: Query,
        /// How fresh the answer must be.
        consistency: Consistency,
        /// The answer.
        reply: Reply<QueryAnswer>,
    },
    /// This node's status (any node, at once).
    Status {
        /// The answer.
        reply: Reply<NodeStatus>,
    },
    /// Make a membership change (leader only). Answered as soon as the configuration entry is
    /// appended, with its index: a configuration takes effect when appended (§4.1), and the
    /// leader refuses the next change until this one is committed. Refusals are the core's.
    ChangeMembership {
        /// The change.
        change: MembershipChange,
        /// Every member's attributes in the new configuration (`None`: the current ones).
        attrs: Option<std::collections::BTreeMap<NodeId, String>>,
        /// The entry's index, or why the leader refused.
        reply: oneshot::Sender<Result<u64, RaftError>>,
    },
    /// Hand leadership to a voter (leader only, §3.10): answered when the transfer starts, or
    /// with the core's refusal; the caller watches for the new leader.
    TransferLeader {
        /// The voter to lead.
        target: NodeId,
        /// Started, or why not.
        reply: oneshot::Sender<Result<(), RaftError>>,
    },
}

impl Call {
    /// Whether a learner serves it (etcd 3.4: its status and serializable reads).
    pub fn learner_may(&self) -> bool {
        match self {
            Call::Status { .. } => true,
            Call::Read { consistency, .. } => *consistency == Consistency::Serializable,
            Call::Propose { .. } | Call::ChangeMembership { .. } | Call::TransferLeader { .. } => {
                false
            }
        }
    }
}
