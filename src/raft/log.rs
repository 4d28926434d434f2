//! The in-memory view of the replicated log: a compacted prefix (the snapshot), the entries after
//! it, and the stable, commit and applied marks.
//!
//! The core holds every entry since the last compaction; storage mirrors them on disk. Entries in
//! `(stable, last]` have been handed to the driver in a `Ready` but not yet acknowledged durable.
//!
//! Invariants, checked by `validate`:
//! 1. `snapshot.index <= commit <= last_index` and `applied <= commit`.
//! 2. Entry `i` sits at `snapshot.index + 1 + i`; terms never decrease along the log and start
//!    at or above the snapshot's term.
//! 3. `stable <= last_index`.
//! 4. The commit index never decreases, and nothing at or below it is ever truncated.

use std::collections::VecDeque;

use super::types::{Entry, LogIndex, SnapshotMeta, Term};

/// The replicated log as one node sees it.
#[derive(Clone, Debug)]
pub struct RaftLog {
    snapshot: SnapshotMeta,
    entries: VecDeque<Entry>,
    stable: LogIndex,
    commit: LogIndex,
    applied: LogIndex,
    /// Entries through this index were found to follow one another by `validate`. Only
    /// truncation (a conflict, a snapshot) changes entries already held, and it lowers this,
    /// so `validate` checks the chain from here on: the check after every input then costs
    /// the entries appended since, not the whole log.
    chained: std::cell::Cell<LogIndex>,
    /// The `keep_conflicting_tail` bug (`raft::Bugs`): a conflicting suffix is overwritten in
    /// place and what follows the leader's entries stays.
    pub(super) keep_conflicting_tail: bool,
}

impl RaftLog {
    /// A log restored from storage: a snapshot position, the entries after it (all durable), the
    /// persisted commit index and the state machine's applied index.
    pub fn restore(
        snapshot: SnapshotMeta,
        entries: Vec<Entry>,
        commit: LogIndex,
        applied: LogIndex,
    ) -> Result<RaftLog, String> {
        let log = RaftLog {
            snapshot,
            stable: LogIndex(snapshot.index.0 + entries.len() as u64),
            entries: entries.into(),
            commit: commit.max(snapshot.index),
            applied,
            chained: std::cell::Cell::new(snapshot.index),
            keep_conflicting_tail: false,
        };
        log.validate()?;
        if applied < snapshot.index {
            return Err(format!(
                "applied index {applied} is below the snapshot index {}",
                snapshot.index
            ));
        }
        Ok(log)
    }

    /// The position of the compacted prefix.
    pub fn snapshot(&self) -> SnapshotMeta {
        self.snapshot
    }

    /// The first index still held as an entry.
    pub fn first_index(&self) -> LogIndex {
        self.snapshot.index.next()
    }

    /// The last index in the log (the snapshot's if no entries follow it).
    pub fn last_index(&self) -> LogIndex {
        LogIndex(self.snapshot.index.0 + self.entries.len() as u64)
    }

    /// The term of the last entry.
    pub fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snapshot.term, |entry| entry.term)
    }

    /// The highest committed index.
    pub fn commit(&self) -> LogIndex {
        self.commit
    }

    /// The highest index the state machine has applied.
    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    /// The highest index known durable.
    pub fn stable(&self) -> LogIndex {
        self.stable
    }

    /// The term at `index`, or `None` if it is compacted away or past the end.
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|entry| entry.term)
    }

    /// The entry at `index`, if held.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index < self.first_index() {
            return None;
        }
        self.entries.get((index.0 - self.first_index().0) as usize)
    }

    /// Whether the log holds an entry at `index` with `term` (the log matching check, §3.5).
    pub fn matches(&self, index: LogIndex, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// Whether a log ending at (`last_term`, `last_index`) is at least as up-to-date as this one
    /// (§3.6.1): a later last term wins; with equal terms, the longer log wins.
    pub fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Appends entries created by this node as leader.
    ///
    /// # Panics
    /// If the entries do not follow the last index.
    pub fn append(&mut self, entries: impl IntoIterator<Item = Entry>) {
        for entry in entries {
            let expected = self.last_index().next();
            assert!(
                entry.index == expected,
                "append at {} but next index is {expected}",
                entry.index
            );
            self.entries.push_back(entry);
        }
    }

    /// The follower side of AppendEntries (§3.5): if the log matches at (`prev_index`,
    /// `prev_term`), drops any conflicting suffix, appends what is new, and returns the index of
    /// the last entry the leader sent. Returns `None` when the log does not match there.
    pub fn maybe_append(
        &mut self,
        prev_index: LogIndex,
        prev_term: Term,
        entries: &[Entry],
    ) -> Option<LogIndex> {
        if !self.matches(prev_index, prev_term) {
            return None;
        }
        let last_new = LogIndex(prev_index.0 + entries.len() as u64);
        if let Some(conflict) = self.find_conflict(entries) {
            let start = (conflict.0 - prev_index.0 - 1) as usize;
            self.truncate_and_append(&entries[start..]);
        }
        Some(last_new)
    }

    /// The first of `entries` that is missing here or differs in term, if any. Entries already
    /// present are skipped, so a duplicated or reordered message never truncates.
    fn find_conflict(&self, entries: &[Entry]) -> Option<LogIndex> {
        entries.iter().find(|entry| !self.matches(entry.index, entry.term)).map(|entry| entry.index)
    }

    /// Replaces everything from `entries[0].index` on with `entries`.
    ///
    /// # Panics
    /// If that would remove a committed entry: a leader sent a log that contradicts what a
    /// quorum accepted, so safety is already lost.
    fn truncate_and_append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        assert!(
            first.index > self.commit,
            "truncating at {} would remove committed entries (commit {})",
            first.index,
            self.commit
        );
        assert!(
            first.index <= self.last_index().next(),
            "append at {} leaves a gap after {}",
            first.index,
            self.last_index()
        );
        let keep = (first.index.0 - self.first_index().0) as usize;
        let tail: Vec<Entry> = if self.keep_conflicting_tail {
            self.entries.iter().skip(keep + entries.len()).cloned().collect()
        } else {
            Vec::new()
        };
        self.entries.truncate(keep);
        self.chained.set(self.chained.get().min(first.index.prev()));
        if self.stable >= first.index {
            self.stable = first.index.prev();
        }
        self.entries.extend(entries.iter().cloned());
        self.entries.extend(tail);
    }

    /// Fast backtracking (etcd-io/raft `findConflictByTerm`): the largest index at or below
    /// `index` whose term is at most `term`, with that term. A leader probing at (`index`,
    /// `term`) can skip every entry above it, since those cannot match. Stops at the compacted
    /// prefix, whose entries are committed and therefore match any leader's.
    pub fn find_conflict_by_term(&self, index: LogIndex, term: Term) -> (LogIndex, Term) {
        let mut index = index.min(self.last_index());
        loop {
            match self.term(index) {
                Some(t) if t <= term => return (index, t),
                Some(_) if index > self.snapshot.index => index = index.prev(),
                _ => return (index, Term(0)),
            }
        }
    }

    /// Up to `max_entries` entries (and about `max_bytes`, at least one) from `from` on, or
    /// `None` if `from` is compacted away.
    pub fn entries_from(
        &self,
        from: LogIndex,
        max_entries: usize,
        max_bytes: usize,
    ) -> Option<Vec<Entry>> {
        if from < self.first_index() {
            return None;
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut index = from;
        while let Some(entry) = self.entry(index) {
            if out.len() == max_entries || (!out.is_empty() && bytes + entry.size() > max_bytes) {
                break;
            }
            bytes += entry.size();
            out.push(entry.clone());
            index = index.next();
        }
        Some(out)
    }

    /// Entries not yet acknowledged durable.
    pub fn unstable_entries(&self) -> Vec<Entry> {
        self.entries_from(self.stable.next(), usize::MAX, usize::MAX).unwrap_or_default()
    }

    /// Marks everything through `index` durable.
    pub fn stable_to(&mut self, index: LogIndex) {
        assert!(index <= self.last_index(), "stable_to({index}) past last {}", self.last_index());
        self.stable = self.stable.max(index);
    }

    /// Committed entries the state machine has not applied, at most `max`.
    pub fn next_committed_entries(&self, max: usize) -> Vec<Entry> {
        let from = self.applied.next();
        if from > self.commit {
            return Vec::new();
        }
        let count = ((self.commit.0 - self.applied.0) as usize).min(max);
        self.entries_from(from, count, usize::MAX).unwrap_or_default()
    }

    /// Whether committed entries wait to be applied.
    pub fn has_next_committed_entries(&self) -> bool {
        self.applied < self.commit
    }

    /// Advances the commit index; never moves it backwards (§3.5).
    ///
    /// # Panics
    /// If `index` is past the last index: a quorum was counted over entries this node does not
    /// have, so its log was lost or corrupted.
    pub fn commit_to(&mut self, index: LogIndex) -> bool {
        if index <= self.commit {
            return false;
        }
        let last_index = self.last_index();
        assert!(
            index <= last_index,
            "commit_to({index}) past last_index({last_index}): the log was lost or corrupted"
        );
        self.commit = index;
        true
    }

    /// Records that the state machine applied through `index`.
    pub fn applied_to(&mut self, index: LogIndex) {
        assert!(index <= self.commit, "applied_to({index}) past commit {}", self.commit);
        self.applied = self.applied.max(index);
    }

    /// Replaces the whole log by a snapshot received from the leader (§5.3). The entries after
    /// it are discarded: the leader will send them.
    pub fn restore_snapshot(&mut self, meta: SnapshotMeta) {
        assert!(
            meta.index > self.commit,
            "snapshot {} not past commit {}",
            meta.index,
            self.commit
        );
        self.snapshot = meta;
        self.entries.clear();
        self.chained.set(meta.index);
        self.stable = meta.index;
        self.commit = meta.index;
    }

    /// Records that the state machine now reflects a restored snapshot.
    pub fn snapshot_applied(&mut self, index: LogIndex) {
        self.applied = self.applied.max(index);
    }

    /// Drops every entry through `index`, which the state machine has applied and a snapshot
    /// covers.
    ///
    /// # Panics
    /// If `index` has not been applied or is already compacted.
    pub fn compact(&mut self, index: LogIndex) -> SnapshotMeta {
        assert!(index <= self.applied, "compact({index}) past applied {}", self.applied);
        assert!(index >= self.snapshot.index, "compact({index}) below {}", self.snapshot.index);
        let term = self.term(index).expect("an applied index is held");
        let drop = (index.0 - self.snapshot.index.0) as usize;
        self.entries.drain(..drop);
        self.snapshot = SnapshotMeta { index, term };
        self.snapshot
    }

    /// Checks the invariants listed in the module docs.
    pub fn validate(&self) -> Result<(), String> {
        if self.commit < self.snapshot.index || self.commit > self.last_index() {
            return Err(format!(
                "commit {} outside snapshot {}..=last {}",
                self.commit,
                self.snapshot.index,
                self.last_index()
            ));
        }
        if self.applied > self.commit {
            return Err(format!("applied {} past commit {}", self.applied, self.commit));
        }
        if self.stable > self.last_index() {
            return Err(format!("stable {} past last {}", self.stable, self.last_index()));
        }
        let from = self.chained.get().max(self.snapshot.index);
        let mut previous = match self.term(from) {
            Some(term) => SnapshotMeta { index: from, term },
            None => self.snapshot,
        };
        let skip = (previous.index.0 - self.snapshot.index.0) as usize;
        for entry in self.entries.iter().skip(skip) {
            if entry.index != previous.index.next() || entry.term < previous.term {
                return Err(format!(
                    "entry {}/{} does not follow {}/{}",
                    entry.term, entry.index, previous.term, previous.index
                ));
            }
            previous = SnapshotMeta { index: entry.index, term: entry.term };
        }
        self.chained.set(previous.index);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn entry(term: u64, index: u64) -> Entry {
        Entry::command(Term(term), LogIndex(index), Bytes::from(format!("{index}")))
    }

    fn log_with_terms(terms: &[u64]) -> RaftLog {
        let entries = terms.iter().enumerate().map(|(i, t)| entry(*t, i as u64 + 1)).collect();
        RaftLog::restore(SnapshotMeta::default(), entries, LogIndex(0), LogIndex(0)).unwrap()
    }

    /// Each of the log's invariants, broken on its own, is named by `validate`.
    #[test]
    fn a_commit_index_outside_the_log_is_reported() {
        let mut log = log_with_terms(&[1, 1]);
        log.commit = LogIndex(3);
        assert_eq!(log.validate(), Err("commit 3 outside snapshot 0..=last 2".into()));
    }

    #[test]
    fn an_applied_index_past_the_commit_index_is_reported() {
        let mut log = log_with_terms(&[1, 1]);
        log.commit = LogIndex(1);
        log.applied = LogIndex(2);
        assert_eq!(log.validate(), Err("applied 2 past commit 1".into()));
    }

    #[test]
    fn a_stable_index_past_the_log_is_reported() {
        let mut log = log_with_terms(&[1, 1]);
        log.stable = LogIndex(5);
        assert_eq!(log.validate(), Err("stable 5 past last 2".into()));
    }

    #[test]
    fn an_entry_that_does_not_follow_its_predecessor_is_reported() {
        let mut gap = log_with_terms(&[1, 1]);
        gap.entries.push_back(entry(1, 4));
        gap.stable = LogIndex(2);
        assert_eq!(gap.validate(), Err("entry 1/4 does not follow 1/2".into()));
        let mut older = log_with_terms(&[2, 2]);
        older.entries.push_back(entry(1, 3));
        older.stable = LogIndex(2);
        assert_eq!(older.validate(), Err("entry 1/3 does not follow 2/2".into()));
    }

    #[test]
    fn the_chain_is_checked_again_below_a_truncation() {
        let mut log = log_with_terms(&[1, 1, 2, 2]);
        assert_eq!(log.validate(), Ok(()));
        assert_eq!(log.chained.get(), LogIndex(4), "a valid chain is remembered");
        log.maybe_append(LogIndex(2), Term(1), &[entry(3, 3)]);
        assert_eq!(log.chained.get(), LogIndex(2), "a truncation lowers it");
        log.entries[2].term = Term(0);
        assert_eq!(log.validate(), Err("entry 0/3 does not follow 1/2".into()));
    }

    #[test]
    fn maybe_append_rejects_a_mismatched_prev() {
        let mut log = log_with_terms(&[1, 1, 2]);
        assert_eq!(log.maybe_append(LogIndex(3), Term(3), &[entry(3, 4)]), None);
        assert_eq!(log.maybe_append(LogIndex(4), Term(2), &[entry(3, 5)]), None);
        assert_eq!(log.last_index(), LogIndex(3));
    }

    #[test]
    fn maybe_append_truncates_only_a_conflicting_suffix() {
        let mut log = log_with_terms(&[1, 1, 2, 2]);
        log.stable_to(LogIndex(4));
        let last = log.maybe_append(LogIndex(2), Term(1), &[entry(2, 3), entry(3, 4)]);
        assert_eq!(last, Some(LogIndex(4)));
        assert_eq!(log.term(LogIndex(4)), Some(Term(3)));
        assert_eq!(log.stable(), LogIndex(3), "the replaced entry is no longer durable");
    }

    #[test]
    fn the_keep_conflicting_tail_bug_leaves_a_term_going_backwards() {
        let mut log = log_with_terms(&[1, 2, 2, 2]);
        log.keep_conflicting_tail = true;
        assert_eq!(log.maybe_append(LogIndex(1), Term(1), &[entry(3, 2)]), Some(LogIndex(2)));
        assert_eq!(log.last_index(), LogIndex(4), "entries 3 and 4 of term 2 stay");
        let broken = log.validate().expect_err("a term goes backwards");
        assert!(broken.contains("entry 2/3 does not follow 3/2"), "{broken}");
    }

    #[test]
    fn maybe_append_of_an_old_message_keeps_newer_entries() {
        let mut log = log_with_terms(&[1, 1, 2, 2]);
        assert_eq!(log.maybe_append(LogIndex(1), Term(1), &[entry(1, 2)]), Some(LogIndex(2)));
        assert_eq!(log.last_index(), LogIndex(4));
    }

    #[test]
    #[should_panic(expected = "would remove committed entries")]
    fn truncating_a_committed_entry_panics() {
        let mut log = log_with_terms(&[1, 1, 2]);
        log.commit_to(LogIndex(3));
        log.maybe_append(LogIndex(2), Term(1), &[entry(3, 3)]);
    }

    #[test]
    fn find_conflict_by_term_skips_a_whole_term() {
        let log = log_with_terms(&[1, 1, 2, 2, 2, 5, 5]);
        assert_eq!(log.find_conflict_by_term(LogIndex(7), Term(4)), (LogIndex(5), Term(2)));
        assert_eq!(log.find_conflict_by_term(LogIndex(9), Term(5)), (LogIndex(7), Term(5)));
        assert_eq!(log.find_conflict_by_term(LogIndex(7), Term(1)), (LogIndex(2), Term(1)));
        assert_eq!(log.find_conflict_by_term(LogIndex(7), Term(0)), (LogIndex(0), Term(0)));
    }

    #[test]
    fn up_to_date_compares_last_term_then_length() {
        let log = log_with_terms(&[1, 2, 2]);
        assert!(log.is_up_to_date(LogIndex(1), Term(3)));
        assert!(log.is_up_to_date(LogIndex(3), Term(2)));
        assert!(!log.is_up_to_date(LogIndex(2), Term(2)));
        assert!(!log.is_up_to_date(LogIndex(9), Term(1)));
    }

    #[test]
    fn compaction_keeps_terms_answerable_at_the_boundary() {
        let mut log = log_with_terms(&[1, 1, 2, 3]);
        log.commit_to(LogIndex(3));
        log.applied_to(LogIndex(3));
        let meta = log.compact(LogIndex(3));
        assert_eq!(meta, SnapshotMeta { index: LogIndex(3), term: Term(2) });
        assert_eq!(log.term(LogIndex(3)), Some(Term(2)));
        assert_eq!(log.term(LogIndex(2)), None);
        assert_eq!(log.entries_from(LogIndex(3), 10, 10), None);
        assert_eq!(log.entries_from(LogIndex(4), 10, 10).unwrap().len(), 1);
        log.validate().unwrap();
    }

    #[test]
    fn entries_from_bounds_count_and_bytes_but_sends_one() {
        let log = log_with_terms(&[1, 1, 1, 1]);
        assert_eq!(log.entries_from(LogIndex(1), 2, usize::MAX).unwrap().len(), 2);
        assert_eq!(log.entries_from(LogIndex(1), 10, 1).unwrap().len(), 1);
        assert_eq!(log.entries_from(LogIndex(5), 10, 10).unwrap().len(), 0);
    }

    #[test]
    fn restore_rejects_a_commit_past_the_log() {
        let err =
            RaftLog::restore(SnapshotMeta::default(), vec![entry(1, 1)], LogIndex(5), LogIndex(0));
        assert!(err.unwrap_err().contains("commit 5"));
    }
}
