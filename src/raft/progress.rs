//! What a leader knows about each follower's log, and the flow control that follows from it.
//!
//! ```text
//!            +--------------------------------------------------------+
//!            |                  rejected / became leader              |
//!            v                                                        |
//!       +---------+  append acknowledged  +-----------+               |
//!  ---> |  Probe  | --------------------> | Replicate | --------------+
//!       +---------+                       +-----------+
//!         |    ^
//!  needs  |    | snapshot acknowledged (or stale)
//!  compacted entries
//!         v    |
//!       +----------+
//!       | Snapshot |
//!       +----------+
//! ```
//!
//! - Probe: one AppendEntries at a time, until the follower says where the logs match.
//! - Replicate: optimistic streaming, at most `max_inflight_messages` unacknowledged appends.
//! - Snapshot: an InstallSnapshot is in flight; nothing else is sent until it is acknowledged.

use std::collections::VecDeque;

use super::types::LogIndex;

/// The replication state of one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Looking for the point where the logs match.
    Probe,
    /// Streaming entries.
    Replicate,
    /// Waiting for a snapshot at `pending` to be installed.
    Snapshot {
        /// The index of the snapshot sent.
        pending: LogIndex,
    },
}

/// A leader's view of one follower (§3.5: `nextIndex` and `matchIndex`).
#[derive(Clone, Debug)]
pub struct Progress {
    /// The highest index known to match the leader's log.
    pub match_index: LogIndex,
    /// The next index to send.
    pub next_index: LogIndex,
    /// The flow-control state.
    pub state: ProgressState,
    /// In probe state: an append is outstanding, so wait for its answer or a heartbeat response.
    pub probe_sent: bool,
    /// In replicate state: the last index of each unacknowledged append, oldest first.
    pub inflight: VecDeque<LogIndex>,
    /// The follower answered since the last check-quorum round (§6.2).
    pub recent_active: bool,
    /// The highest commit index sent to the follower, so an acknowledgement can tell whether
    /// it still needs to hear about a newer one.
    pub sent_commit: LogIndex,
}

impl Progress {
    /// The progress a new leader starts with for a follower: probe from just after its own last
    /// index.
    pub fn new(last_index: LogIndex) -> Progress {
        Progress {
            match_index: LogIndex(0),
            next_index: last_index.next(),
            state: ProgressState::Probe,
            probe_sent: false,
            inflight: VecDeque::new(),
            recent_active: false,
            sent_commit: LogIndex(0),
        }
    }

    /// Whether the leader must wait before sending more entries.
    pub fn is_paused(&self, max_inflight: usize) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflight.len() >= max_inflight,
            ProgressState::Snapshot { .. } => true,
        }
    }

    /// Enters probe state from just after what is known to match (or after the snapshot just
    /// installed).
    pub fn become_probe(&mut self) {
        self.next_index = match self.state {
            ProgressState::Snapshot { pending } => self.match_index.max(pending).next(),
            _ => self.match_index.next(),
        };
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// Enters replicate state.
    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next_index = self.match_index.next();
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// Enters snapshot state after sending a snapshot at `index`.
    pub fn become_snapshot(&mut self, index: LogIndex) {
        self.state = ProgressState::Snapshot { pending: index };
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// Records that an append ending at `last` was sent (with `count` entries).
    pub fn sent_append(&mut self, last: LogIndex, count: usize) {
        match self.state {
            ProgressState::Replicate if count > 0 => {
                self.next_index = last.next();
                self.inflight.push_back(last);
            }
            ProgressState::Replicate => {}
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot { .. } => unreachable!("no appends in snapshot state"),
        }
    }

    /// Records a successful append through `index`. Returns whether the match index moved.
    pub fn maybe_update(&mut self, index: LogIndex) -> bool {
        let updated = index > self.match_index;
        if updated {
            self.match_index = index;
            self.probe_sent = false;
        }
        self.next_index = self.next_index.max(index.next());
        while self.inflight.front().is_some_and(|last| *last <= index) {
            self.inflight.pop_front();
        }
        updated
    }

    /// Handles a rejection of the append at `rejected` (its prev_log_index), where
    /// `probe_hint` is the highest index that may still match. Returns false if the rejection
    /// is stale (answers an append this state no longer waits for).
    pub fn maybe_decrease_to(&mut self, rejected: LogIndex, probe_hint: LogIndex) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.match_index {
                return false;
            }
            self.next_index = self.match_index.next();
            return true;
        }
        if self.next_index.prev() != rejected {
            return false;
        }
        self.next_index = rejected.min(probe_hint.next()).max(self.match_index.next());
        self.probe_sent = false;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicate_pauses_at_the_inflight_bound_and_frees_on_ack() {
        let mut progress = Progress::new(LogIndex(10));
        progress.match_index = LogIndex(10);
        progress.become_replicate();
        progress.sent_append(LogIndex(11), 1);
        progress.sent_append(LogIndex(12), 1);
        assert!(progress.is_paused(2));
        assert!(progress.maybe_update(LogIndex(11)));
        assert!(!progress.is_paused(2));
        assert_eq!(progress.next_index, LogIndex(13));
    }

    #[test]
    fn probe_ignores_a_stale_rejection() {
        let mut progress = Progress::new(LogIndex(10));
        assert_eq!(progress.next_index, LogIndex(11));
        assert!(!progress.maybe_decrease_to(LogIndex(9), LogIndex(3)));
        assert!(progress.maybe_decrease_to(LogIndex(10), LogIndex(3)));
        assert_eq!(progress.next_index, LogIndex(4));
    }

    #[test]
    fn leaving_snapshot_state_probes_after_the_snapshot() {
        let mut progress = Progress::new(LogIndex(10));
        progress.become_snapshot(LogIndex(8));
        assert!(progress.is_paused(100));
        progress.become_probe();
        assert_eq!(progress.next_index, LogIndex(9));
    }
}
