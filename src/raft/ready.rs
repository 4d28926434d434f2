//! The output side of the core: a `Ready` batches everything the driver must do, and `advance`
//! records that it was done.

use super::message::Message;
use super::node::{Node, Outstanding};
use super::read_only::ReadState;
use super::types::{Entry, HardState, Snapshot, SoftState};

/// Work for the driver, produced by `Node::ready`.
///
/// # Correctness
///
/// The driver performs these duties in this order, then calls `Node::advance`, and feeds the
/// node no input between `ready` and `advance`:
///
/// 1. **Persist** `snapshot`, `entries` and `hard_state`, and make them durable (fsync) when
///    `must_sync` is set. Entries replace any stored entries at or after `entries[0].index`.
///    A vote or an acknowledgement sent before this step could be forgotten by a crash, letting
///    a node vote twice in a term (§3.8) or a leader count a replica that does not exist.
/// 2. **Send** `messages`, in any order, possibly dropping some (the protocol tolerates loss).
/// 3. **Apply**: if `snapshot` is set, restore the state machine from it first; then apply
///    `committed_entries` in order. They are durable by step 1, so a commit index learned here
///    never outruns the local log.
/// 4. **Advance**: `Node::advance`.
///
/// `soft_state`, when set, reports a change of role or leader; it needs no persistence.
/// `read_states` are reads confirmed by a quorum: serve each once the state machine has applied
/// its index (after step 3 at the earliest). `failed_reads` can no longer be confirmed
/// (leadership was lost): they did not happen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Role or leader changed.
    pub soft_state: Option<SoftState>,
    /// Term, vote or commit changed and must be persisted.
    pub hard_state: Option<HardState>,
    /// A snapshot from the leader: persist it, then restore the state machine from it.
    pub snapshot: Option<Snapshot>,
    /// Entries to persist.
    pub entries: Vec<Entry>,
    /// Whether step 1 must fsync: the term, the vote, the entries or the snapshot changed. A
    /// commit-index change alone may be written lazily.
    pub must_sync: bool,
    /// Messages to send after persisting.
    pub messages: Vec<Message>,
    /// Entries to apply to the state machine, in order.
    pub committed_entries: Vec<Entry>,
    /// Confirmed reads (§6.4).
    pub read_states: Vec<ReadState>,
    /// Reads that will not be confirmed.
    pub failed_reads: Vec<u64>,
}

impl Node {
    /// Whether `ready` would return work.
    pub fn has_ready(&self) -> bool {
        self.outstanding.is_none()
            && (self.soft_state() != self.prev_soft_state
                || self.hard_state() != self.prev_hard_state
                || self.pending_snapshot.is_some()
                || self.log.stable() < self.log.last_index()
                || !self.messages.is_empty()
                || !self.read_states.is_empty()
                || !self.failed_reads.is_empty()
                || self.has_queued_reads()
                || self.log.has_next_committed_entries())
    }

    /// Takes the pending work, if any. See `Ready` for the duties and their order.
    ///
    /// # Panics
    /// If the previous `Ready` has not been advanced.
    pub fn ready(&mut self) -> Option<Ready> {
        assert!(self.outstanding.is_none(), "{}: ready() before advance()", self.id());
        if !self.has_ready() {
            return None;
        }
        self.flush_queued_reads();
        let hard_state = self.hard_state();
        let soft_state = self.soft_state();
        let snapshot = self.pending_snapshot.clone();
        let entries = self.log.unstable_entries();
        let committed_entries =
            self.log.next_committed_entries(self.config.max_apply_entries_per_ready);
        let must_sync = hard_state.term != self.prev_hard_state.term
            || hard_state.vote != self.prev_hard_state.vote
            || !entries.is_empty()
            || snapshot.is_some();
        self.outstanding = Some(Outstanding {
            last_entry: entries.last().map(|entry| entry.index),
            last_committed: committed_entries.last().map(|entry| entry.index),
            snapshot: snapshot.as_ref().map(|snapshot| snapshot.meta.index),
            hard_state,
            soft_state,
        });
        Some(Ready {
            soft_state: (soft_state != self.prev_soft_state).then_some(soft_state),
            hard_state: (hard_state != self.prev_hard_state).then_some(hard_state),
            snapshot,
            entries,
            must_sync,
            messages: std::mem::take(&mut self.messages),
            committed_entries,
            read_states: std::mem::take(&mut self.read_states),
            failed_reads: std::mem::take(&mut self.failed_reads),
        })
    }

    /// Records that the last `Ready` was persisted, sent and applied.
    ///
    /// # Panics
    /// If there is no outstanding `Ready`.
    pub fn advance(&mut self) {
        let done = self.outstanding.take().expect("advance() without an outstanding Ready");
        if let Some(index) = done.snapshot {
            self.log.snapshot_applied(index);
            self.pending_snapshot = None;
        }
        if let Some(index) = done.last_entry {
            self.log.stable_to(index);
        }
        if let Some(index) = done.last_committed {
            self.log.applied_to(index);
        }
        self.prev_hard_state = done.hard_state;
        self.prev_soft_state = done.soft_state;
        self.check_invariants();
    }
}
