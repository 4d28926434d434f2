//! The Raft core: a pure, sans-IO state machine (after etcd-io/raft and tikv/raft-rs).
//!
//! No clocks, sockets, files, threads or OS randomness live here. Time arrives as `tick`s,
//! messages through `step`, client commands through `propose`; randomness is a generator seeded
//! from the configuration. Both the simulator and the real server drive this same code.
//!
//! # The contract
//!
//! ```text
//!   tick() / step(msg) / propose(data) / read_index(id) / transfer_leadership(id) / compact(..)
//!                               |
//!                               v
//!                        +-------------+
//!                        |    Node     |   role, term, vote, log, per-follower progress
//!                        +-------------+
//!                               |  ready()
//!                               v
//!   Ready { hard_state, entries, snapshot, must_sync, messages, committed_entries, read_states }
//!                               |
//!     1. persist (fsync if must_sync)  2. send  3. apply  4. advance()
//! ```
//!
//! The order of the duties is spelled out on [`Ready`]. Between `ready()` and `advance()` the
//! node takes no input; that keeps the bookkeeping exact and is checked by assertion.
//!
//! # What it implements
//!
//! - Leader election with randomized timeouts (§3.4), the up-to-date rule (§3.6.1), pre-vote
//!   (§9.6) and check-quorum with leader stickiness (§6.2).
//! - Log replication (§3.5) with fast conflict backtracking and per-follower flow control
//!   (probe / replicate / snapshot, bounded in-flight appends, several entries per message).
//! - The commit rule of §3.6.2: replicas are counted only for entries of the current term.
//! - Leadership transfer with TimeoutNow (§3.10).
//! - Log compaction and InstallSnapshot (§5).
//! - Reads without log writes: ReadIndex (§6.4), batched per heartbeat round, and the leader
//!   lease (§6.4.1), shortened by a clock-drift margin.
//!
//! - Membership changes (chapter 4): configurations as log entries in effect once appended,
//!   single-server changes one at a time after the leader commits in its term, joint
//!   consensus, learners, removing the leader, and removed servers kept from disrupting.

mod config;
mod election;
mod invariants;
mod log;
mod membership;
mod message;
mod node;
mod progress;
mod quorum;
mod read_only;
mod ready;
mod reconfig;
mod replication;
mod types;

pub mod testkit;

pub use config::{Bugs, Config, ConfigError};
pub use invariants::Violation;
pub use log::RaftLog;
pub use membership::{Membership, MembershipChange};
pub use message::{Body, Message};
pub use node::{Error, Node, Proposal, Restored};
pub use progress::{Progress, ProgressState};
pub use quorum::{VoteResult, committed_index, vote_result};
pub use read_only::ReadState;
pub use ready::Ready;
pub use types::{
    Entry, EntryKind, HardState, LogIndex, NodeId, Role, Snapshot, SnapshotMeta, SoftState, Term,
};
