//! The key-value history, as etcd's mvcc keeps it: every revision of every key until it is
//! compacted. A key index (per key, its versions in revision order, a deletion as a tombstone)
//! over an index by revision (what the watch history and compaction walk).
//!
//! A revision is (main, sub): main is the store's revision after the command, sub the write's
//! place within it (a transaction's writes, a lease's expired keys, share one main revision).

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use super::range::KeyRange;
use crate::proto::mvccpb::event::EventType;
use crate::proto::mvccpb::{Event, KeyValue};
use crate::proto::raftbed::Revision as PbRevision;

/// A revision: the store's revision after the command, and the write's place within it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rev {
    /// The store's revision.
    pub main: i64,
    /// The write's place within the command.
    pub sub: i64,
}

/// One version of a key: what a put wrote, or a tombstone.
#[derive(Clone, Debug, PartialEq)]
struct Version {
    rev: Rev,
    /// `None`: the key was deleted at `rev`.
    kv: Option<KeyValue>,
}

/// Every kept revision of every key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    keys: BTreeMap<Bytes, Vec<Version>>,
    revs: BTreeMap<Rev, Bytes>,
    /// Revisions below this cannot be read (0: never compacted).
    compacted: i64,
}

/// A watch event with the revision it happened at.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Where it happened.
    pub rev: Rev,
    /// etcd's event: a PUT with the new key-value, or a DELETE with the key and the deletion's
    /// revision as `mod_revision`; `prev_kv` the version before, if it is still kept.
    pub event: Event,
}

impl History {
    /// The lowest revision that can be read (1 when nothing was compacted).
    pub fn compacted(&self) -> i64 {
        self.compacted.max(1)
    }

    /// The revision of the last compaction, if there was one.
    pub fn compacted_at(&self) -> Option<i64> {
        (self.compacted > 0).then_some(self.compacted)
    }

    /// How many revisions are kept.
    pub fn len(&self) -> usize {
        self.revs.len()
    }

    /// The newest revision recorded.
    pub fn last_revision(&self) -> Option<Rev> {
        self.revs.last_key_value().map(|(rev, _)| *rev)
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    /// Records a put of `kv` at `rev`.
    pub fn put(&mut self, rev: Rev, kv: KeyValue) {
        self.record(rev, kv.key.clone(), Some(kv));
    }

    /// Records the deletion of `key` at `rev`.
    pub fn delete(&mut self, rev: Rev, key: Bytes) {
        self.record(rev, key, None);
    }

    fn record(&mut self, rev: Rev, key: Bytes, kv: Option<KeyValue>) {
        if let Some((last, _)) = self.revs.last_key_value() {
            assert!(*last < rev, "revision {rev:?} recorded after {last:?}");
        }
        self.revs.insert(rev, key.clone());
        self.keys.entry(key).or_default().push(Version { rev, kv });
    }

    /// `key` as of revision `main`: its newest version at or below it, unless that is a
    /// tombstone.
    pub fn get_at(&self, key: &[u8], main: i64) -> Option<&KeyValue> {
        at(self.keys.get(key)?, main)
    }

    /// The keys in `range` as of revision `main`, in key order.
    pub fn range_at<'a>(
        &'a self,
        range: &KeyRange,
        main: i64,
    ) -> impl Iterator<Item = &'a KeyValue> + 'a {
        range.select(&self.keys).filter_map(move |(_, versions)| at(versions, main))
    }

    /// The changes at revisions `from..=to` to keys in `range`, in revision order.
    pub fn changes(&self, range: &KeyRange, from: i64, to: i64) -> Vec<Change> {
        let start = Rev { main: from, sub: 0 };
        let end = Rev { main: to, sub: i64::MAX };
        if start > end {
            return Vec::new();
        }
        self.revs
            .range((Bound::Included(start), Bound::Included(end)))
            .filter(|(_, key)| range.contains(key))
            .map(|(rev, key)| self.change(*rev, key))
            .collect()
    }

    /// The change at `rev` to `key` (both recorded).
    fn change(&self, rev: Rev, key: &Bytes) -> Change {
        let versions = &self.keys[key];
        let i = versions.partition_point(|v| v.rev < rev);
        let version = &versions[i];
        let prev_kv = i.checked_sub(1).and_then(|p| versions[p].kv.clone());
        let event = match &version.kv {
            Some(kv) => Event { r#type: EventType::Put as i32, kv: Some(kv.clone()), prev_kv },
            None => Event {
                r#type: EventType::Delete as i32,
                kv: Some(KeyValue {
                    key: key.clone(),
                    mod_revision: rev.main,
                    ..KeyValue::default()
                }),
                prev_kv,
            },
        };
        Change { rev, event }
    }

    /// Drops what no read at or above `main` can see, as etcd's compaction: per key, every
    /// version below the newest one at or below `main`, and that one too if it is a tombstone.
    /// Answers the revisions dropped.
    pub fn compact(&mut self, main: i64) -> Vec<Rev> {
        let mut dropped = Vec::new();
        let mut emptied = Vec::new();
        for (key, versions) in &mut self.keys {
            let below = versions.partition_point(|v| v.rev.main <= main);
            if below == 0 {
                continue;
            }
            let keep_from = if versions[below - 1].kv.is_some() { below - 1 } else { below };
            dropped.extend(versions.drain(..keep_from).map(|v| v.rev));
            if versions.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.keys.remove(&key);
        }
        for rev in &dropped {
            self.revs.remove(rev);
        }
        self.compacted = self.compacted.max(main);
        dropped.sort_unstable();
        dropped
    }

    /// The revision at `rev` as the snapshot and sled keep it.
    pub fn message(&self, rev: Rev) -> Option<PbRevision> {
        let key = self.revs.get(&rev)?;
        let version = &self.keys[key][self.keys[key].partition_point(|v| v.rev < rev)];
        Some(revision_message(rev, key, version.kv.as_ref()))
    }

    /// Every kept revision, in order.
    pub fn messages(&self) -> impl Iterator<Item = PbRevision> + '_ {
        self.revs.keys().filter_map(|rev| self.message(*rev))
    }

    /// Rebuilds a history from its revisions (in any order) and compaction point.
    ///
    /// # Errors
    /// A revision without its key, or one recorded twice.
    pub fn restore(
        mut revisions: Vec<PbRevision>,
        compacted: i64,
    ) -> Result<History, &'static str> {
        revisions.sort_by_key(|r| (r.main, r.sub));
        let mut history = History { compacted, ..History::default() };
        for r in revisions {
            let rev = Rev { main: r.main, sub: r.sub };
            if history.revs.contains_key(&rev) {
                return Err("a revision recorded twice");
            }
            match (r.tombstone, r.kv) {
                (true, _) if r.key.is_empty() => return Err("a tombstone without its key"),
                (true, _) => history.record(rev, r.key, None),
                (false, Some(kv)) if !kv.key.is_empty() => history.put(rev, kv),
                (false, _) => return Err("a put without its key"),
            }
        }
        Ok(history)
    }

    /// etcd's HashKV at `rev`: CRC-32C over `key` (its bucket's name), then, in revision order,
    /// each kept record up to `rev` as etcd's backend holds it — the revision as 8 bytes of
    /// main and of sub, big-endian, joined by `_` (with `t` after a tombstone), then the
    /// encoded `KeyValue` (a tombstone's holds only its key). Records at or below the
    /// compaction point count only if they are the newest put of their key at `rev` (etcd's
    /// `kvindex.Keep`). So equal puts and deletes hash equal in raftbed and etcd.
    pub fn hash_kv(&self, rev: i64) -> u32 {
        use prost::Message as _;
        let keep: std::collections::BTreeSet<Rev> = self
            .keys
            .values()
            .filter_map(|versions| {
                let newest = &versions[..versions.partition_point(|v| v.rev.main <= rev)];
                newest.last().filter(|v| v.kv.is_some()).map(|v| v.rev)
            })
            .collect();
        let mut crc = super::crc32c::Crc32c::default();
        crc.write(b"key");
        let upper = Rev { main: rev.saturating_add(1), sub: 0 };
        for (r, key) in self.revs.range(..upper) {
            if r.main <= self.compacted && !keep.is_empty() && !keep.contains(r) {
                continue;
            }
            let versions = &self.keys[key];
            let version = &versions[versions.partition_point(|v| v.rev < *r)];
            let mut record = Vec::with_capacity(18);
            record.extend_from_slice(&r.main.to_be_bytes());
            record.push(b'_');
            record.extend_from_slice(&r.sub.to_be_bytes());
            let value = match &version.kv {
                Some(kv) => kv.encode_to_vec(),
                None => {
                    record.push(b't');
                    KeyValue { key: key.clone(), ..KeyValue::default() }.encode_to_vec()
                }
            };
            crc.write(&record);
            crc.write(&value);
        }
        crc.sum()
    }

    /// The current version of every key, in key order (what the newest revision shows).
    pub fn current(&self) -> impl Iterator<Item = &KeyValue> {
        self.keys.values().filter_map(|versions| versions.last()?.kv.as_ref())
    }
}

fn at(versions: &[Version], main: i64) -> Option<&KeyValue> {
    let i = versions.partition_point(|v| v.rev.main <= main);
    versions.get(i.checked_sub(1)?)?.kv.as_ref()
}

fn revision_message(rev: Rev, key: &Bytes, kv: Option<&KeyValue>) -> PbRevision {
    PbRevision {
        main: rev.main,
        sub: rev.sub,
        tombstone: kv.is_none(),
        key: if kv.is_none() { key.clone() } else { Bytes::new() },
        kv: kv.cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    fn kv(key: &str, value: &str, main: i64) -> KeyValue {
        KeyValue { key: b(key), value: b(value), mod_revision: main, ..KeyValue::default() }
    }

    fn rev(main: i64, sub: i64) -> Rev {
        Rev { main, sub }
    }

    fn value_at(h: &History, key: &str, main: i64) -> Option<String> {
        h.get_at(key.as_bytes(), main).map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
    }

    /// a=1 at 2, b=1 at 3, a=2 at 4, a deleted at 5, a=3 at 6.
    fn sample() -> History {
        let mut h = History::default();
        h.put(rev(2, 0), kv("a", "1", 2));
        h.put(rev(3, 0), kv("b", "1", 3));
        h.put(rev(4, 0), kv("a", "2", 4));
        h.delete(rev(5, 0), b("a"));
        h.put(rev(6, 0), kv("a", "3", 6));
        h
    }

    #[test]
    fn a_key_reads_as_of_any_kept_revision() {
        let h = sample();
        let got: Vec<_> = (1..=7).map(|m| value_at(&h, "a", m)).collect();
        let want = [None, Some("1"), Some("1"), Some("2"), None, Some("3"), Some("3")];
        assert_eq!(got, want.map(|v| v.map(String::from)));
        let all = KeyRange::From(b("a"));
        assert_eq!(h.range_at(&all, 5).map(|kv| kv.key.clone()).collect::<Vec<_>>(), [b("b")]);
        assert_eq!(h.current().count(), 2);
    }

    #[test]
    fn changes_come_in_revision_order_with_the_version_before() {
        let h = sample();
        let changes = h.changes(&KeyRange::One(b("a")), 4, 6);
        let types: Vec<i32> = changes.iter().map(|c| c.event.r#type).collect();
        assert_eq!(types, [0, 1, 0], "put, delete, put");
        let deleted = &changes[1].event;
        assert_eq!(deleted.kv.as_ref().unwrap().mod_revision, 5);
        assert_eq!(deleted.prev_kv.as_ref().unwrap().value, b("2"));
        assert_eq!(changes[2].event.prev_kv, None, "after a tombstone there is no previous");
        assert!(h.changes(&KeyRange::One(b("a")), 7, 6).is_empty());
    }

    #[test]
    fn compaction_keeps_what_reads_at_or_above_it_can_see() {
        let mut h = sample();
        let dropped = h.compact(4);
        assert_eq!(dropped, [rev(2, 0)], "a=1 is hidden by a=2; b=1 is still visible");
        assert_eq!(
            (value_at(&h, "a", 4), value_at(&h, "b", 4)),
            (Some("2".into()), Some("1".into()))
        );
        let dropped = h.compact(5);
        assert_eq!(dropped, [rev(4, 0), rev(5, 0)], "a's tombstone and what it hid");
        assert_eq!(h.compacted(), 5);
        assert_eq!(value_at(&h, "a", 6), Some("3".into()));
        let restored = History::restore(h.messages().collect(), h.compacted).unwrap();
        assert_eq!(restored, h, "the snapshot form restores the same history");
    }

    #[test]
    #[should_panic(expected = "recorded after")]
    fn revisions_only_go_up() {
        let mut h = sample();
        h.put(rev(6, 0), kv("c", "1", 6));
    }
}
