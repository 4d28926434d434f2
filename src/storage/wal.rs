//! The Raft write-ahead log: segment files of framed records, and snapshot files.
//!
//! ```text
//! dir/
//!   wal-00000000000000000001.log   records: [len u32 LE][crc32 u32 LE][prost WalRecord]
//!   wal-00000000000000000002.log   (a new segment starts with the current hard state)
//!   snap-<index>-<term>.snap       one framed prost SnapshotFile, written atomically
//! ```
//!
//! A new segment is zero-filled to its size before the first record (`WalOptions::preallocate`),
//! so appends change no file size and an fdatasync flushes data only; all-zero bytes after the
//! last record are unwritten space, not damage.
//!
//! Recovery replays the segments in order on top of the newest snapshot. A record that is cut
//! short or fails its CRC at the end of the last segment is a torn write from a crash: the file
//! is truncated there and the record is never applied. Damage anywhere else is an error.
//!
//! Invariants:
//! 1. Records are only ever appended; a record of entries replaces any stored entries at or
//!    after its first index (the follower side of §3.5).
//! 2. Every segment starts with the hard state current when it was opened, so deleting older
//!    segments never loses the latest term and vote.
//! 3. A segment is deleted only when a snapshot covers every entry in it.

use std::path::{Path, PathBuf};

use prost::Message as _;

use super::StorageError;
use super::fs::{AppendFile, Fs};
use crate::raft::{Entry, HardState, LogIndex, Ready, Restored, Snapshot, SnapshotMeta};
use crate::transport::pb;

/// Tuning of the log.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// A new segment starts once the current one passes this size.
    pub segment_bytes: u64,
    /// Whether `persist` syncs when a `Ready` asks for it. Turning it off is the `skip-fsync`
    /// bug: the driver then syncs only every `lazy_sync_interval` (as Redis's `appendfsync
    /// everysec` does), so acknowledgements can outlive a crash that loses the entries.
    pub sync: bool,
    /// With `sync` off, how often the driver syncs.
    pub lazy_sync_interval: std::time::Duration,
    /// Whether each new segment is zero-filled to `segment_bytes` first (on files that can be),
    /// so that an fdatasync after an append commits no new file size. Filling 8 MB takes a few
    /// milliseconds, once per segment.
    pub preallocate: bool,
    /// Whether the vote is written. Turning it off is the `forget-vote` bug: a restarted node
    /// may vote twice in one term.
    pub persist_vote: bool,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            segment_bytes: 8 << 20,
            sync: true,
            lazy_sync_interval: std::time::Duration::from_secs(1),
            preallocate: true,
            persist_vote: true,
        }
    }
}

/// What recovery found.
#[derive(Debug)]
pub struct Recovered {
    /// The state to start the Raft core from (the state machine is at the snapshot).
    pub restored: Restored,
    /// A torn tail that was cut off: (segment, offset, why).
    pub truncated_tail: Option<(PathBuf, u64, String)>,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    /// The highest entry index written to this segment (0 if none).
    last_index: LogIndex,
}

/// An open write-ahead log.
#[derive(Debug)]
pub struct Wal<F: Fs> {
    fs: F,
    dir: PathBuf,
    options: WalOptions,
    file: F::File,
    segments: Vec<Segment>,
    segment_len: u64,
    hard_state: HardState,
    scratch: Vec<u8>,
}

const HEADER: usize = 8;
/// No record may claim more than this: a longer length field is damage, not data.
const MAX_RECORD: u32 = 256 << 20;

impl<F: Fs> Wal<F> {
    /// Opens the log in `dir` (creating it if needed) and recovers its contents.
    ///
    /// # Errors
    /// If the filesystem fails, or stored data is damaged anywhere but a torn tail.
    pub fn open(
        fs: F,
        dir: &Path,
        options: WalOptions,
    ) -> Result<(Wal<F>, Recovered), StorageError> {
        fs.create_dir_all(dir).map_err(StorageError::io(dir))?;
        let (restored, segments, truncated_tail) = recover(&fs, dir, true)?;
        let next_seq = segments.last().map_or(1, |s| s.seq + 1);
        let mut wal = Wal {
            file: fs.open_append(&segment_path(dir, next_seq)).map_err(StorageError::io(dir))?,
            fs,
            dir: dir.to_path_buf(),
            options,
            segments,
            segment_len: 0,
            hard_state: restored.hard_state,
            scratch: Vec::new(),
        };
        // Always write into a fresh segment: appending after a truncated tail would bury the
        // repair point, and a fresh segment starts with the hard state (invariant 2).
        wal.start_segment(next_seq)?;
        Ok((wal, Recovered { restored, truncated_tail }))
    }

    /// Persists what `ready` asks for (duty 1 of `raft::Ready`): a snapshot from the leader, the
    /// hard state, the entries; then syncs if the `Ready` must be durable. The hard state goes
    /// before the entries, so a write cut short can leave a term without its entries but not
    /// entries without their term.
    ///
    /// # Errors
    /// Any filesystem failure; the node must stop.
    pub fn persist(&mut self, ready: &Ready) -> Result<(), StorageError> {
        if let Some(snapshot) = &ready.snapshot {
            self.save_snapshot(snapshot)?;
            let meta =
                pb::SnapshotMeta { index: snapshot.meta.index.0, term: snapshot.meta.term.0 };
            self.append(pb::wal_record::Kind::Restored(meta))?;
            self.mark_last_index(snapshot.meta.index);
        }
        if let Some(hard_state) = ready.hard_state {
            self.write_hard_state(hard_state)?;
        }
        if let Some(last) = ready.entries.last() {
            let entries = ready.entries.iter().map(pb::Entry::from).collect();
            self.append(pb::wal_record::Kind::Entries(pb::WalEntries { entries }))?;
            self.mark_last_index(last.index);
        }
        if ready.must_sync && self.options.sync {
            self.sync()?;
        }
        if self.segment_len >= self.options.segment_bytes {
            let next = self.segments.last().map_or(1, |s| s.seq + 1);
            self.start_segment(next)?;
        }
        Ok(())
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &WalOptions {
        &self.options
    }

    /// Makes everything written so far durable.
    ///
    /// # Errors
    /// If the filesystem fails.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        let path = &self.segments.last().expect("a segment is open").path;
        self.file.sync().map_err(StorageError::io(path))
    }

    /// Writes a snapshot file atomically, then deletes segments and older snapshots it makes
    /// unnecessary (invariant 3). Call it after the state machine reached `snapshot.meta.index`
    /// and before `raft::Node::compact`.
    ///
    /// # Errors
    /// If the filesystem fails.
    pub fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        let meta = snapshot.meta;
        let file = pb::SnapshotFile {
            meta: Some(pb::SnapshotMeta { index: meta.index.0, term: meta.term.0 }),
            data: snapshot.data.clone(),
            membership: Some(pb::Membership::from(&snapshot.membership)),
        };
        let mut framed = Vec::new();
        frame(&file.encode_to_vec(), &mut framed);
        let path = self.dir.join(format!("snap-{:020}-{:020}.snap", meta.index.0, meta.term.0));
        self.fs.write_atomic(&path, &framed).map_err(StorageError::io(&path))?;
        self.remove_covered(meta.index)
    }

    fn remove_covered(&mut self, index: LogIndex) -> Result<(), StorageError> {
        let current = self.segments.len() - 1;
        let mut keep = Vec::new();
        for (i, segment) in std::mem::take(&mut self.segments).into_iter().enumerate() {
            if i < current && segment.last_index <= index {
                self.fs.remove(&segment.path).map_err(StorageError::io(&segment.path))?;
            } else {
                keep.push(segment);
            }
        }
        self.segments = keep;
        let files = self.fs.list(&self.dir).map_err(StorageError::io(&self.dir))?;
        let mut snapshots: Vec<&PathBuf> = files.iter().filter(|p| snapshot_name(p)).collect();
        snapshots.pop(); // The newest stays.
        for old in snapshots {
            self.fs.remove(old).map_err(StorageError::io(old))?;
        }
        self.fs.sync_dir(&self.dir).map_err(StorageError::io(&self.dir))
    }

    fn write_hard_state(&mut self, mut hard_state: HardState) -> Result<(), StorageError> {
        self.hard_state = hard_state;
        if !self.options.persist_vote {
            hard_state.vote = None;
        }
        let record = pb::HardState {
            term: hard_state.term.0,
            vote: hard_state.vote.map_or(0, |v| v.0),
            commit: hard_state.commit.0,
        };
        self.append(pb::wal_record::Kind::HardState(record))
    }

    fn append(&mut self, kind: pb::wal_record::Kind) -> Result<(), StorageError> {
        let record = pb::WalRecord { kind: Some(kind) };
        self.scratch.clear();
        frame(&record.encode_to_vec(), &mut self.scratch);
        let path = &self.segments.last().expect("a segment is open").path;
        self.file.append(&self.scratch).map_err(StorageError::io(path))?;
        self.segment_len += self.scratch.len() as u64;
        Ok(())
    }

    fn mark_last_index(&mut self, index: LogIndex) {
        self.segments.last_mut().expect("a segment is open").last_index = index;
    }

    /// Opens segment `seq`, durably (a new file must survive a crash to be found), starting
    /// with the hard state.
    fn start_segment(&mut self, seq: u64) -> Result<(), StorageError> {
        let path = segment_path(&self.dir, seq);
        self.file = self.fs.open_append(&path).map_err(StorageError::io(&path))?;
        if self.options.preallocate {
            self.file.preallocate(self.options.segment_bytes).map_err(StorageError::io(&path))?;
        }
        self.segments.push(Segment { seq, path, last_index: LogIndex(0) });
        self.segment_len = 0;
        self.write_hard_state(self.hard_state)?;
        self.sync()?;
        self.fs.sync_dir(&self.dir).map_err(StorageError::io(&self.dir))
    }
}

/// Reads the log in `dir` without changing anything: a torn tail is left out, not cut off.
/// For looking at a stopped node's log (`raftbed test` reads what its cluster committed).
///
/// # Errors
/// If the directory cannot be read, or stored data is damaged anywhere but a torn tail.
pub fn read_only<F: Fs>(fs: &F, dir: &Path) -> Result<Restored, StorageError> {
    recover(fs, dir, false).map(|(restored, _, _)| restored)
}

type Recovery = (Restored, Vec<Segment>, Option<(PathBuf, u64, String)>);

/// Replays the segments in `dir` on top of the newest snapshot; `repair` truncates a torn tail.
fn recover<F: Fs>(fs: &F, dir: &Path, repair: bool) -> Result<Recovery, StorageError> {
    let files = fs.list(dir).map_err(StorageError::io(dir))?;
    let snapshot = newest_snapshot(fs, &files);
    let base = snapshot.as_ref().map_or_else(SnapshotMeta::default, |s| s.meta);
    let mut replay = Replay { hard_state: HardState::default(), base, entries: Vec::new() };
    let mut segments = Vec::new();
    let mut truncated_tail = None;
    let wal_files: Vec<&PathBuf> = files.iter().filter(|p| segment_seq(p).is_some()).collect();
    for (i, path) in wal_files.iter().enumerate() {
        let data = fs.read(path).map_err(StorageError::io(*path))?;
        let (good, last_index, damage) = replay.segment(&data);
        if let Some(detail) = damage {
            // A torn write is the last thing in the file: an intact record after the damage
            // means the middle of the log is damaged, and cutting there would lose it.
            if i + 1 < wal_files.len() || intact_record_after(&data, good as usize) {
                return Err(StorageError::Corrupt { path: (*path).clone(), offset: good, detail });
            }
            if repair {
                fs.truncate(path, good).map_err(StorageError::io(*path))?;
            }
            truncated_tail = Some(((*path).clone(), good, detail));
        }
        let seq = segment_seq(path).expect("filtered");
        segments.push(Segment { seq, path: (*path).clone(), last_index });
    }
    let Replay { mut hard_state, entries, .. } = replay;
    // Unsynced records may survive a crash out of order. Entries of a term the hard state
    // never reached were written by a Ready that never finished syncing, so nothing of it
    // (a vote included) was acknowledged: adopt the term, with no vote.
    let last_term = entries
        .last()
        .map(|e| e.term)
        .max(snapshot.as_ref().map(|s| s.meta.term))
        .unwrap_or_default();
    if last_term > hard_state.term {
        hard_state = HardState { term: last_term, vote: None, commit: hard_state.commit };
    }
    let restored = Restored { hard_state, snapshot, entries, applied: base.index };
    Ok((restored, segments, truncated_tail))
}

/// The log being rebuilt during recovery.
struct Replay {
    hard_state: HardState,
    /// The snapshot recovery started from: entries at or below it are covered.
    base: SnapshotMeta,
    entries: Vec<Entry>,
}

impl Replay {
    /// Applies one segment's records. Returns the length of its good prefix, the highest entry
    /// index it holds, and why it stopped early (if it did).
    fn segment(&mut self, data: &[u8]) -> (u64, LogIndex, Option<String>) {
        let mut offset = 0usize;
        let mut last_index = LogIndex(0);
        while offset < data.len() {
            if data[offset..].iter().all(|&byte| byte == 0) {
                break; // The preallocated rest of the segment, never written.
            }
            let payload = match unframe(&data[offset..]) {
                Ok(payload) => payload,
                Err(why) => return (offset as u64, last_index, Some(why)),
            };
            let record = match pb::WalRecord::decode(payload) {
                Ok(record) => record,
                Err(e) => {
                    return (offset as u64, last_index, Some(format!("undecodable record: {e}")));
                }
            };
            if let Err(why) = self.apply(record, &mut last_index) {
                return (offset as u64, last_index, Some(why));
            }
            offset += HEADER + payload.len();
        }
        (offset as u64, last_index, None)
    }

    fn apply(&mut self, record: pb::WalRecord, last_index: &mut LogIndex) -> Result<(), String> {
        match record.kind {
            Some(pb::wal_record::Kind::HardState(hs)) => {
                self.hard_state = HardState {
                    term: crate::raft::Term(hs.term),
                    vote: (hs.vote != 0).then_some(crate::raft::NodeId(hs.vote)),
                    commit: LogIndex(hs.commit),
                };
            }
            Some(pb::wal_record::Kind::Entries(batch)) => {
                for entry in batch.entries.into_iter().map(Entry::from) {
                    *last_index = entry.index;
                    self.append(entry)?;
                }
            }
            Some(pb::wal_record::Kind::Restored(meta)) => {
                // Everything before is replaced by the snapshot; entries after it follow.
                self.entries.clear();
                *last_index = LogIndex(meta.index);
                if meta.index > self.base.index.0 {
                    return Err(format!(
                        "log restored to snapshot {} but no such snapshot file",
                        meta.index
                    ));
                }
            }
            None => return Err("record without a kind".into()),
        }
        Ok(())
    }

    fn append(&mut self, entry: Entry) -> Result<(), String> {
        if entry.index <= self.base.index {
            return Ok(());
        }
        let first = self.base.index.next();
        let position = (entry.index.0 - first.0) as usize;
        if position > self.entries.len() {
            return Err(format!(
                "entry {} leaves a gap after {}",
                entry.index,
                LogIndex(first.0 + self.entries.len() as u64).prev()
            ));
        }
        self.entries.truncate(position);
        self.entries.push(entry);
        Ok(())
    }
}

fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Whether an intact record (framing and CRC) starts anywhere after the damaged record at
/// `damaged`: first where that record's own length says the next one starts, then at every
/// offset (garbage lengths are rejected before any CRC is computed).
fn intact_record_after(data: &[u8], damaged: usize) -> bool {
    let intact = |at: usize| {
        data.get(at..).is_some_and(|rest| {
            rest.len() > HEADER
                && unframe(rest).is_ok_and(|payload| pb::WalRecord::decode(payload).is_ok())
        })
    };
    if let Some(header) = data.get(damaged..damaged + 4) {
        let len = u32::from_le_bytes(header.try_into().expect("4 bytes")) as usize;
        if intact(damaged + HEADER + len) {
            return true;
        }
    }
    (damaged + 1..data.len().saturating_sub(HEADER)).any(intact)
}

/// The payload of the record at the start of `data`, or why there is none.
fn unframe(data: &[u8]) -> Result<&[u8], String> {
    if data.len() < HEADER {
        return Err(format!("record header cut short ({} of {HEADER} bytes)", data.len()));
    }
    let len = u32::from_le_bytes(data[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(data[4..8].try_into().expect("4 bytes"));
    if len == 0 {
        // Every record has a kind, so no payload is empty: zeros are unwritten space.
        return Err("zeros where a record should start".into());
    }
    if len > MAX_RECORD {
        return Err(format!("record length {len} is implausible"));
    }
    let Some(payload) = data.get(HEADER..HEADER + len as usize) else {
        return Err(format!("record cut short ({} of {len} bytes)", data.len() - HEADER));
    };
    if crc32fast::hash(payload) != crc {
        return Err("record fails its CRC".into());
    }
    Ok(payload)
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("wal-{seq:020}.log"))
}

fn segment_seq(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("wal-")?.strip_suffix(".log")?.parse().ok()
}

fn snapshot_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("snap-") && n.ends_with(".snap"))
}

/// The newest snapshot file that reads back intact (names sort by index).
fn newest_snapshot<F: Fs>(fs: &F, files: &[PathBuf]) -> Option<Snapshot> {
    files.iter().rev().filter(|p| snapshot_name(p)).find_map(|path| {
        let data = fs.read(path).ok()?;
        let payload = unframe(&data).ok()?;
        let file = pb::SnapshotFile::decode(payload).ok()?;
        let meta = file.meta?;
        Some(Snapshot {
            meta: SnapshotMeta { index: LogIndex(meta.index), term: crate::raft::Term(meta.term) },
            data: file.data,
            membership: file.membership.map(crate::raft::Membership::from).unwrap_or_default(),
        })
    })
}
