//! Log replication (§3.5), the commit rule (§3.6.2), snapshots (§5.3) and the last step of a
//! leadership transfer (§3.10).

use bytes::Bytes;

use super::message::Body;
use super::node::Node;
use super::progress::ProgressState;
use super::types::{Entry, LogIndex, NodeId, Snapshot, Term};

impl Node {
    /// Appends entries of the current term to the leader's own log.
    pub(super) fn append_as_leader(&mut self, batch: impl IntoIterator<Item = Bytes>) {
        self.append_in_term(batch);
        let last_index = self.log.last_index();
        let id = self.config.id;
        self.progress.get_mut(&id).expect("leader tracks itself").maybe_update(last_index);
        // A single-voter cluster commits on its own append.
        self.maybe_commit();
    }

    /// Appends a batch to this node's own log, stamped with its current term: the leader's
    /// appends, and a deposed leader's under the `append_after_step_down` bug
    /// (camunda/camunda#5360).
    pub(super) fn append_in_term(&mut self, batch: impl IntoIterator<Item = Bytes>) {
        let term = self.term;
        let mut index = self.log.last_index();
        let entries = batch.into_iter().map(|data| {
            index = index.next();
            Entry::command(term, index, data)
        });
        self.log.append(entries);
    }

    /// Sends each follower what it is missing (or at least the commit index).
    pub(super) fn broadcast_append(&mut self) {
        for peer in self.peers() {
            self.send_append(peer, true);
        }
    }

    pub(super) fn broadcast_heartbeat(&mut self, context: u64) {
        for peer in self.peers() {
            // A follower may not have the leader's commit index in its log yet; it is only
            // told what it is known to hold (etcd-io/raft).
            let progress = self.progress.get_mut(&peer).expect("leader tracks every voter");
            let leader_commit = if self.config.bugs.commit_beyond_match {
                self.log.commit()
            } else {
                progress.match_index.min(self.log.commit())
            };
            progress.sent_commit = progress.sent_commit.max(leader_commit);
            self.send(peer, Body::Heartbeat { leader_commit, context });
        }
    }

    /// Sends `to` the next entries it needs, or the snapshot when they are compacted away.
    /// Returns whether anything was sent. An empty append (to carry the commit index or probe)
    /// is sent only if `send_if_empty`.
    pub(super) fn send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        let progress = &self.progress[&to];
        if progress.is_paused(self.config.max_inflight_messages) {
            return false;
        }
        let prev_log_index = progress.next_index.prev();
        let prev_log_term = self.log.term(prev_log_index);
        let entries = self.log.entries_from(
            progress.next_index,
            self.config.max_entries_per_message,
            self.config.max_bytes_per_message,
        );
        let (Some(prev_log_term), Some(entries)) = (prev_log_term, entries) else {
            return self.send_snapshot(to);
        };
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let last = entries.last().map_or(prev_log_index, |entry| entry.index);
        let progress = self.progress.get_mut(&to).expect("checked above");
        progress.sent_append(last, entries.len());
        let leader_commit = self.log.commit();
        progress.sent_commit = progress.sent_commit.max(leader_commit);
        self.send(
            to,
            Body::AppendEntries { prev_log_index, prev_log_term, entries, leader_commit },
        );
        true
    }

    fn send_snapshot(&mut self, to: NodeId) -> bool {
        let snapshot = self.snapshot.clone().expect("a compacted log always has its snapshot");
        assert!(
            snapshot.meta.index >= self.log.snapshot().index,
            "{}: snapshot {} older than compaction point {}",
            self.id(),
            snapshot.meta.index,
            self.log.snapshot().index
        );
        self.progress
            .get_mut(&to)
            .expect("leader tracks every voter")
            .become_snapshot(snapshot.meta.index);
        self.snapshot_ticks.insert(to, 0);
        self.send(to, Body::InstallSnapshot { snapshot });
        true
    }

    /// A snapshot or its answer may be lost; after an election timeout without an answer the
    /// leader probes again, which resends the snapshot if it is still needed.
    pub(super) fn tick_snapshot_retries(&mut self) {
        let limit = self.config.election_timeout_ticks_min;
        let mut expired = Vec::new();
        for (peer, ticks) in self.snapshot_ticks.iter_mut() {
            *ticks += 1;
            if *ticks >= limit {
                expired.push(*peer);
            }
        }
        for peer in expired {
            self.snapshot_ticks.remove(&peer);
            let progress = self.progress.get_mut(&peer).expect("leader tracks every voter");
            if matches!(progress.state, ProgressState::Snapshot { .. }) {
                progress.become_probe();
            }
        }
    }

    /// The follower side of AppendEntries (§3.5).
    pub(super) fn handle_append_entries(
        &mut self,
        from: NodeId,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: &[Entry],
        leader_commit: LogIndex,
    ) {
        let commit = self.log.commit();
        if prev_log_index < commit {
            // Everything through the commit index already matches the leader's log.
            self.send_append_ok(from, commit);
            return;
        }
        let last_before = self.log.last_index();
        match self.log.maybe_append(prev_log_index, prev_log_term, entries) {
            Some(last_new) => {
                self.follow_configs(prev_log_index, last_new);
                // Only what is known to match the leader's log may be committed here.
                let matched = if self.config.bugs.commit_beyond_match {
                    self.log.last_index()
                } else {
                    last_new
                };
                self.log.commit_to(leader_commit.min(matched));
                let truncated = self.log.last_index() < last_before;
                let ack = if truncated && self.config.bugs.stale_ack_after_truncation {
                    last_before
                } else {
                    last_new
                };
                self.send_append_ok(from, ack);
            }
            None => {
                let hint = prev_log_index.min(self.log.last_index());
                let (reject_hint_index, reject_hint_term) =
                    self.log.find_conflict_by_term(hint, prev_log_term);
                let body = Body::AppendEntriesResponse {
                    success: false,
                    index: prev_log_index,
                    reject_hint_index,
                    reject_hint_term,
                };
                self.send(from, body);
            }
        }
    }

    fn send_append_ok(&mut self, to: NodeId, index: LogIndex) {
        let body = Body::AppendEntriesResponse {
            success: true,
            index,
            reject_hint_index: LogIndex(0),
            reject_hint_term: Term(0),
        };
        self.send(to, body);
    }

    pub(super) fn handle_heartbeat(&mut self, from: NodeId, leader_commit: LogIndex, context: u64) {
        if self.config.bugs.commit_beyond_match {
            self.log.commit_to(leader_commit.min(self.log.last_index()));
        } else {
            self.log.commit_to(leader_commit);
        }
        self.send(from, Body::HeartbeatResponse { context });
    }

    /// The follower side of InstallSnapshot (§5.3).
    pub(super) fn handle_install_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        let meta = snapshot.meta;
        if meta.index <= self.log.commit() {
            let commit = self.log.commit();
            self.send_append_ok(from, commit);
            return;
        }
        if self.log.matches(meta.index, meta.term) {
            // The log already holds the snapshot's last entry, so it holds everything the
            // snapshot covers: keep the log and just learn the commit index.
            self.log.commit_to(meta.index);
        } else {
            self.log.restore_snapshot(meta);
            self.restore_configs(&snapshot);
            self.pending_snapshot = Some(snapshot.clone());
            self.snapshot = Some(snapshot);
        }
        self.send_append_ok(from, meta.index);
    }

    /// The leader side of an AppendEntries (or InstallSnapshot) answer.
    pub(super) fn handle_append_response(
        &mut self,
        from: NodeId,
        success: bool,
        index: LogIndex,
        reject_hint_index: LogIndex,
        reject_hint_term: Term,
    ) {
        self.progress.get_mut(&from).expect("leader tracks every voter").recent_active = true;
        if !success {
            self.handle_append_reject(from, index, reject_hint_index, reject_hint_term);
            return;
        }
        // A correct follower never acknowledges past what this leader sent it; one that does
        // is counted as holding this leader's whole log, not past it (the leader's bookkeeping
        // must not point beyond its own log).
        let index = index.min(self.log.last_index());
        let progress = self.progress.get_mut(&from).expect("leader tracks every voter");
        if !progress.maybe_update(index) {
            return;
        }
        match progress.state {
            ProgressState::Probe => progress.become_replicate(),
            ProgressState::Snapshot { pending } if progress.match_index >= pending => {
                progress.become_probe();
                progress.become_replicate();
                self.snapshot_ticks.remove(&from);
            }
            ProgressState::Snapshot { .. } | ProgressState::Replicate => {}
        }
        if self.maybe_commit() {
            self.broadcast_append();
        } else if self.progress[&from].sent_commit < self.log.commit() {
            // The follower may not know the latest commit index; tell it now rather than at
            // the next heartbeat.
            self.send_append(from, true);
        }
        // Stream whatever else the follower is missing, as far as flow control allows.
        while self.send_append(from, false) {}
        if self.lead_transferee == Some(from)
            && self.progress[&from].match_index == self.log.last_index()
        {
            self.send(from, Body::TimeoutNow);
        }
    }

    fn handle_append_reject(
        &mut self,
        from: NodeId,
        rejected: LogIndex,
        hint_index: LogIndex,
        hint_term: Term,
    ) {
        // The follower's hint names the last index where its term is at most the probed one;
        // the leader skips back to the last index where its own log could agree with that
        // (etcd-io/raft's two-sided findConflictByTerm), skipping whole terms per round trip.
        let probe = if hint_term.0 > 0 {
            self.log.find_conflict_by_term(hint_index, hint_term).0
        } else {
            hint_index
        };
        let progress = self.progress.get_mut(&from).expect("leader tracks every voter");
        if progress.maybe_decrease_to(rejected, probe) {
            if progress.state == ProgressState::Replicate {
                progress.become_probe();
            }
            self.send_append(from, true);
        }
    }

    pub(super) fn handle_heartbeat_response(&mut self, from: NodeId, context: u64) {
        if context != 0 {
            self.handle_round_ack(from, context);
        }
        let max_inflight = self.config.max_inflight_messages;
        let last_index = self.log.last_index();
        let progress = self.progress.get_mut(&from).expect("leader tracks every voter");
        progress.recent_active = true;
        progress.probe_sent = false;
        // An append may have been lost; free a slot so the follower cannot stall for good.
        if progress.state == ProgressState::Replicate && progress.inflight.len() >= max_inflight {
            progress.inflight.pop_front();
        }
        if progress.match_index < last_index || progress.state == ProgressState::Probe {
            self.send_append(from, true);
        }
    }

    /// Advances the commit index to what a quorum holds, if that entry is from the current term
    /// (§3.6.2). Returns whether it moved.
    pub(super) fn maybe_commit(&mut self) -> bool {
        let progress = &self.progress;
        let candidate = self
            .configs
            .current()
            .committed_index(|voter| progress.get(&voter).map_or(LogIndex(0), |p| p.match_index));
        if candidate <= self.log.commit() {
            return false;
        }
        // Raft §3.6.2: commit by counting replicas only for entries from the current term.
        // An older entry on a majority can still be overwritten (Figure 3.7); it commits
        // indirectly, once an entry of this term above it does.
        if self.log.term(candidate) != Some(self.term) && !self.config.bugs.commit_old_term {
            return false;
        }
        let moved = self.log.commit_to(candidate);
        self.release_deferred_reads();
        moved
    }
}

#[cfg(test)]
mod tests {
    //! One event in, exact output out: a follower with a known log receives one AppendEntries.

    use bytes::Bytes;

    use crate::raft::{
        Body, Config, Entry, HardState, LogIndex, Message, Node, NodeId, Ready, Restored, Term,
    };

    fn entry(term: u64, index: u64) -> Entry {
        Entry::command(Term(term), LogIndex(index), Bytes::from(format!("{index}")))
    }

    /// Node 2 of three, following node 1 in term 3, with the given log and commit index.
    fn follower(log_terms: &[u64], commit: u64) -> Node {
        let entries = log_terms.iter().enumerate().map(|(i, t)| entry(*t, i as u64 + 1)).collect();
        let restored = Restored {
            hard_state: HardState {
                term: Term(3),
                vote: Some(NodeId(1)),
                commit: LogIndex(commit),
            },
            entries,
            applied: LogIndex(commit),
            ..Restored::default()
        };
        Node::new(Config::new(NodeId(2), (1..=3).map(NodeId).collect()), restored).unwrap()
    }

    fn append(prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> Message {
        Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(3),
            body: Body::AppendEntries {
                prev_log_index: LogIndex(prev.1),
                prev_log_term: Term(prev.0),
                entries,
                leader_commit: LogIndex(commit),
            },
        }
    }

    fn response(success: bool, index: u64, hint: (u64, u64)) -> Message {
        Message {
            from: NodeId(2),
            to: NodeId(1),
            term: Term(3),
            body: Body::AppendEntriesResponse {
                success,
                index: LogIndex(index),
                reject_hint_index: LogIndex(hint.1),
                reject_hint_term: Term(hint.0),
            },
        }
    }

    fn step(node: &mut Node, message: Message) -> Ready {
        node.step(message).unwrap();
        node.ready().unwrap()
    }

    #[test]
    fn matching_prev_appends_and_commits_what_matches() {
        let mut node = follower(&[1, 3], 1);
        let ready = step(&mut node, append((3, 2), vec![entry(3, 3), entry(3, 4)], 3));
        assert_eq!(ready.entries, vec![entry(3, 3), entry(3, 4)]);
        assert!(ready.must_sync);
        assert_eq!(ready.hard_state.map(|hs| hs.commit), Some(LogIndex(3)));
        assert_eq!(ready.committed_entries, vec![entry(3, 2), entry(3, 3)]);
        assert_eq!(ready.messages, vec![response(true, 4, (0, 0))]);
    }

    #[test]
    fn leader_commit_past_the_sent_entries_is_capped() {
        let mut node = follower(&[1, 1, 1], 0);
        // The leader committed 9, but only 2 is known to match: entries 3.. may differ.
        let ready = step(&mut node, append((1, 1), vec![entry(1, 2)], 9));
        assert_eq!(ready.hard_state.map(|hs| hs.commit), Some(LogIndex(2)));
        assert_eq!(ready.messages, vec![response(true, 2, (0, 0))]);
    }

    #[test]
    fn mismatched_prev_is_rejected_with_a_hint() {
        let mut node = follower(&[1, 1, 2, 2], 1);
        let ready = step(&mut node, append((3, 4), vec![entry(3, 5)], 4));
        assert!(ready.entries.is_empty());
        assert_eq!(ready.hard_state, None);
        // The last index with a term at most 3 is 4 (term 2): the leader may skip past term 3.
        assert_eq!(ready.messages, vec![response(false, 4, (2, 4))]);
    }

    #[test]
    fn missing_prev_is_rejected_with_the_last_index() {
        let mut node = follower(&[1, 1], 1);
        let ready = step(&mut node, append((3, 7), vec![], 4));
        assert_eq!(ready.messages, vec![response(false, 7, (1, 2))]);
    }

    #[test]
    fn conflicting_suffix_is_replaced_from_the_conflict_on() {
        let mut node = follower(&[1, 2, 2, 2], 1);
        let ready = step(&mut node, append((1, 1), vec![entry(2, 2), entry(3, 3)], 1));
        // Entry 2 matches and is not rewritten; 3 and 4 are replaced by the new 3.
        assert_eq!(ready.entries, vec![entry(3, 3)]);
        assert_eq!(node.log().last_index(), LogIndex(3));
        assert_eq!(ready.messages, vec![response(true, 3, (0, 0))]);
    }

    #[test]
    fn append_below_commit_is_acknowledged_at_commit() {
        let mut node = follower(&[1, 1, 3], 3);
        let ready = step(&mut node, append((1, 1), vec![entry(1, 2)], 3));
        assert!(ready.entries.is_empty());
        assert_eq!(ready.messages, vec![response(true, 3, (0, 0))]);
    }
}
