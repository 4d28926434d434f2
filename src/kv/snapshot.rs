//! The store as a snapshot (what the log's compaction keeps and a lagging follower installs),
//! and the changes a node keeps at rest in sled since its last save.
//!
//! The snapshot carries its format: 0 on the wire is format 1 (the current key-values only,
//! written before revisions were kept), which is read as a history compacted at its revision;
//! 2 is every kept revision and the compaction point; anything newer is refused rather than
//! misread.

use std::collections::BTreeSet;

use bytes::Bytes;
use prost::Message as _;

use super::mvcc::{History, Rev};
use super::{BadCommand, KvStore, Lease, Session};
use crate::proto::raftbed::{Fence, KvSnapshot, LeaseState, Session as PbSession};

/// The snapshot format this build writes.
pub const FORMAT: u32 = 2;

/// What changed since the last `take_changes`: marks kept while tracking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Dirty {
    pub(super) revisions: BTreeSet<Rev>,
    pub(super) leases: BTreeSet<i64>,
    pub(super) sessions: BTreeSet<u64>,
    pub(super) fences: BTreeSet<Bytes>,
}

/// What changed in a store since the last `take_changes`: each item's new encoding (the
/// snapshot's message types), or `None` where it was removed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// The store's revision now.
    pub revision: i64,
    /// The compaction point now.
    pub compacted: i64,
    /// Revisions recorded (an encoded `Revision`) or compacted away (`None`).
    pub revisions: Vec<(Rev, Option<Vec<u8>>)>,
    /// Leases: an encoded `LeaseState`.
    pub leases: Vec<(i64, Option<Vec<u8>>)>,
    /// Sessions: an encoded `Session`.
    pub sessions: Vec<(u64, Option<Vec<u8>>)>,
    /// Fences: an encoded `Fence`.
    pub fences: Vec<(Bytes, Option<Vec<u8>>)>,
}

impl KvStore {
    /// Starts recording what changes, for `take_changes`.
    pub fn track_changes(&mut self) {
        self.dirty.get_or_insert_with(Dirty::default);
    }

    /// What changed since the last call (or since tracking began).
    pub fn take_changes(&mut self) -> Changes {
        let mut changes = Changes {
            revision: self.revision,
            compacted: self.history.compacted_at().unwrap_or(0),
            ..Changes::default()
        };
        let Some(dirty) = &mut self.dirty else { return changes };
        let dirty = std::mem::take(dirty);
        let encode = |rev| self.history.message(rev).map(|m| m.encode_to_vec());
        changes.revisions = dirty.revisions.into_iter().map(|rev| (rev, encode(rev))).collect();
        changes.leases = dirty
            .leases
            .into_iter()
            .map(|id| (id, self.leases.get(&id).map(|l| lease_message(id, l).encode_to_vec())))
            .collect();
        changes.sessions = dirty
            .sessions
            .into_iter()
            .map(|c| (c, self.sessions.get(&c).map(|s| session_message(c, s).encode_to_vec())))
            .collect();
        changes.fences = dirty
            .fences
            .into_iter()
            .map(|name| {
                let fence = self.fences.get(&name).map(|t| Fence { name: name.clone(), token: *t });
                (name, fence.map(|f| f.encode_to_vec()))
            })
            .collect();
        changes
    }

    pub(super) fn touch(&mut self, mark: impl FnOnce(&mut Dirty)) {
        if let Some(dirty) = &mut self.dirty {
            mark(dirty);
        }
    }

    /// The state as snapshot bytes.
    pub fn encode(&self) -> Bytes {
        Bytes::from(self.to_snapshot().encode_to_vec())
    }

    /// The whole state as a snapshot message (what `encode` encodes).
    pub fn to_snapshot(&self) -> KvSnapshot {
        KvSnapshot {
            revision: self.revision,
            kvs: Vec::new(),
            leases: self.leases.iter().map(|(id, l)| lease_message(*id, l)).collect(),
            sessions: self.sessions.iter().map(|(client, s)| session_message(*client, s)).collect(),
            fences: self
                .fences
                .iter()
                .map(|(name, token)| Fence { name: name.clone(), token: *token })
                .collect(),
            format: FORMAT,
            history: self.history.messages().collect(),
            compacted: self.history.compacted_at().unwrap_or(0),
        }
    }

    /// Restores from `encode`'s bytes.
    ///
    /// # Errors
    /// If the bytes are not a snapshot, or contradict themselves.
    pub fn decode(data: &[u8]) -> Result<KvStore, BadCommand> {
        let snapshot = KvSnapshot::decode(data).map_err(|e| BadCommand(e.to_string()))?;
        KvStore::from_snapshot(snapshot)
    }

    /// Restores from a snapshot message of format 1 or 2.
    ///
    /// # Errors
    /// A newer format, or a snapshot that contradicts itself.
    pub fn from_snapshot(snapshot: KvSnapshot) -> Result<KvStore, BadCommand> {
        let history = match snapshot.format {
            0 => legacy_history(snapshot.kvs, snapshot.revision),
            FORMAT => History::restore(snapshot.history, snapshot.compacted)
                .map_err(|e| BadCommand(format!("snapshot history: {e}")))?,
            newer => {
                return Err(BadCommand(format!(
                    "state machine format {newer} was written by a newer raftbed (this build reads formats 1 and {FORMAT}); refusing to misread it"
                )));
            }
        };
        let mut store = KvStore { revision: snapshot.revision, ..KvStore::default() };
        if let Some(last) = history.last_revision()
            && last.main > store.revision
        {
            return Err(BadCommand(format!(
                "snapshot revision {} is below its history's newest revision {}",
                store.revision, last.main
            )));
        }
        for lease in snapshot.leases {
            store.leases.insert(lease.id, Lease { ttl: lease.ttl, keys: BTreeSet::new() });
        }
        for kv in history.current() {
            if kv.lease != 0 {
                let lease = store.leases.get_mut(&kv.lease).ok_or_else(|| {
                    BadCommand(format!("snapshot key attached to missing lease {}", kv.lease))
                })?;
                lease.keys.insert(kv.key.clone());
            }
            store.kvs.insert(kv.key.clone(), kv.clone());
        }
        store.history = history;
        for session in snapshot.sessions {
            let outcome = session.outcome.unwrap_or_default();
            store.sessions.insert(
                session.client_id,
                Session { seq: session.seq, outcome, index: session.index },
            );
        }
        store.fences = snapshot.fences.into_iter().map(|f| (f.name, f.token)).collect();
        Ok(store)
    }
}

/// A format-1 snapshot's keys as a history compacted at its revision: each key's one version
/// at its mod revision (keys a transaction wrote together numbered in key order).
fn legacy_history(mut kvs: Vec<crate::proto::mvccpb::KeyValue>, revision: i64) -> History {
    kvs.sort_by(|a, b| (a.mod_revision, &a.key).cmp(&(b.mod_revision, &b.key)));
    let mut history = History::default();
    let mut last = Rev::default();
    for kv in kvs {
        let sub = if kv.mod_revision == last.main { last.sub + 1 } else { 0 };
        last = Rev { main: kv.mod_revision, sub };
        history.put(last, kv);
    }
    history.compact(revision);
    history
}

fn lease_message(id: i64, lease: &Lease) -> LeaseState {
    LeaseState { id, ttl: lease.ttl }
}

pub(super) fn session_message(client: u64, s: &Session) -> PbSession {
    PbSession { client_id: client, seq: s.seq, outcome: Some(s.outcome.clone()), index: s.index }
}
