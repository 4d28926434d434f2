//! The write-ahead log on a real filesystem and under turmoil's simulated one.
//!
//! Goal: what was synced survives, what was not may vanish, a torn tail is cut and never
//! applied, damage elsewhere is refused, snapshots let old segments go.
//! Method: write through `Wal::persist` with hand-made `Ready`s, reopen, compare; mangle files
//! between runs; crash a simulated host between a synced and an unsynced write.

const HEADER_LEN: usize = 8;

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use raftbed::raft::{
    Entry, HardState, LogIndex, Membership, NodeId, Ready, Snapshot, SnapshotMeta, Term,
};
use raftbed::storage::fs::{SimFs, StdFs};
use raftbed::storage::{StorageError, Wal, WalOptions};

fn entry(term: u64, index: u64) -> Entry {
    Entry::command(Term(term), LogIndex(index), Bytes::from(format!("e{index}")))
}

fn entries(term: u64, range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    range.map(|i| entry(term, i)).collect()
}

fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState { term: Term(term), vote: Some(NodeId(vote)), commit: LogIndex(commit) }
}

fn ready(hard_state: Option<HardState>, entries: Vec<Entry>) -> Ready {
    Ready { hard_state, must_sync: true, entries, ..Ready::default() }
}

fn open(dir: &Path) -> (Wal<StdFs>, raftbed::storage::Recovered) {
    Wal::open(StdFs, dir, WalOptions::default()).unwrap()
}

#[test]
fn entries_and_hard_state_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, recovered) = open(dir.path());
    assert!(recovered.restored.entries.is_empty());
    wal.persist(&ready(Some(hs(2, 1, 3)), entries(2, 1..=5))).unwrap();
    drop(wal);
    let (_, recovered) = open(dir.path());
    assert_eq!(recovered.restored.hard_state, hs(2, 1, 3));
    assert_eq!(recovered.restored.entries, entries(2, 1..=5));
    assert!(recovered.truncated_tail.is_none());
}

#[test]
fn a_later_record_replaces_the_conflicting_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    wal.persist(&ready(None, entries(1, 1..=5))).unwrap();
    wal.persist(&ready(Some(hs(3, 2, 2)), entries(3, 4..=6))).unwrap();
    drop(wal);
    let (_, recovered) = open(dir.path());
    let mut expected = entries(1, 1..=3);
    expected.extend(entries(3, 4..=6));
    assert_eq!(recovered.restored.entries, expected);
}

/// Where the records of a segment end: the first zero length field (the rest of a
/// preallocated segment) or the end of the file.
fn records_end(bytes: &[u8]) -> usize {
    let mut at = 0;
    while at + HEADER_LEN <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        at += HEADER_LEN + len;
    }
    at
}

fn torn_tail_is_cut_and_never_applied(preallocate: bool) {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions { preallocate, ..WalOptions::default() };
    let (mut wal, _) = Wal::open(StdFs, dir.path(), options.clone()).unwrap();
    wal.persist(&ready(Some(hs(1, 1, 0)), entries(1, 1..=3))).unwrap();
    wal.persist(&ready(None, entries(1, 4..=4))).unwrap();
    drop(wal);
    // Tear the last record, as a crash mid-write would: its final 3 bytes never reach the disk.
    // In a preallocated segment they read back as the zeros that were there; otherwise the
    // file ends early.
    let segment = newest_segment(dir.path());
    let mut bytes = std::fs::read(&segment).unwrap();
    let end = records_end(&bytes);
    if preallocate {
        bytes[end - 3..end].fill(0);
        std::fs::write(&segment, &bytes).unwrap();
    } else {
        assert_eq!(end, bytes.len());
        let file = std::fs::OpenOptions::new().write(true).open(&segment).unwrap();
        file.set_len(end as u64 - 3).unwrap();
    }
    let (mut wal, recovered) = Wal::open(StdFs, dir.path(), options.clone()).unwrap();
    assert_eq!(recovered.restored.entries, entries(1, 1..=3), "entry 4 was torn");
    let (path, _, why) = recovered.truncated_tail.expect("the tear is reported");
    assert_eq!(path, segment);
    let expected = if preallocate { "CRC" } else { "cut short" };
    assert!(why.contains(expected), "{why}");
    // The log goes on from the repair point.
    wal.persist(&ready(None, entries(2, 4..=5))).unwrap();
    drop(wal);
    let (_, recovered) = Wal::open(StdFs, dir.path(), options).unwrap();
    assert_eq!(recovered.restored.entries.last(), Some(&entry(2, 5)));
    assert_eq!(recovered.restored.entries.len(), 5);
}

#[test]
fn a_torn_tail_is_cut_and_never_applied() {
    torn_tail_is_cut_and_never_applied(true);
    torn_tail_is_cut_and_never_applied(false);
}

#[test]
fn a_preallocated_segment_ends_in_zeros_that_are_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    wal.persist(&ready(Some(hs(1, 1, 0)), entries(1, 1..=3))).unwrap();
    drop(wal);
    let segment = newest_segment(dir.path());
    let size = std::fs::metadata(&segment).unwrap().len();
    assert_eq!(size, WalOptions::default().segment_bytes, "zero-filled to the segment size");
    let (_, recovered) = open(dir.path());
    assert_eq!(recovered.restored.entries, entries(1, 1..=3));
    assert!(recovered.truncated_tail.is_none(), "zeros are unwritten space, not a torn tail");

    // A record beyond a stretch of zeros is not unwritten space: refused, nothing cut.
    let mut bytes = std::fs::read(&segment).unwrap();
    let end = records_end(&bytes);
    let records = bytes[..end].to_vec();
    bytes[end + 4096..end + 4096 + end].copy_from_slice(&records);
    std::fs::write(&segment, &bytes).unwrap();
    let err = Wal::open(StdFs, dir.path(), WalOptions::default()).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "left as it was");
}

#[test]
fn a_flipped_byte_in_the_tail_fails_the_crc() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    wal.persist(&ready(None, entries(1, 1..=2))).unwrap();
    wal.persist(&ready(None, entries(1, 3..=3))).unwrap();
    drop(wal);
    let segment = newest_segment(dir.path());
    let mut bytes = std::fs::read(&segment).unwrap();
    let last = records_end(&bytes) - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&segment, bytes).unwrap();
    let (_, recovered) = open(dir.path());
    assert_eq!(recovered.restored.entries, entries(1, 1..=2));
    assert!(recovered.truncated_tail.unwrap().2.contains("CRC"));
}

#[test]
fn damage_in_the_middle_of_the_last_segment_is_refused_and_nothing_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    wal.persist(&ready(None, entries(1, 1..=2))).unwrap();
    wal.persist(&ready(None, entries(1, 3..=3))).unwrap();
    wal.persist(&ready(None, entries(1, 4..=4))).unwrap();
    drop(wal);
    let segment = newest_segment(dir.path());
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[HEADER_LEN + 2] ^= 0xff; // early in the segment: intact records follow
    std::fs::write(&segment, &bytes).unwrap();
    let err = Wal::open(StdFs, dir.path(), WalOptions::default()).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "the damaged log is left as it was");
}

#[test]
fn damage_before_the_last_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    wal.persist(&ready(None, entries(1, 1..=2))).unwrap();
    drop(wal);
    let (mut wal, _) = open(dir.path()); // starts a second segment
    wal.persist(&ready(None, entries(1, 3..=3))).unwrap();
    drop(wal);
    let first = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&first).unwrap();
    let middle = records_end(&bytes) / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&first, bytes).unwrap();
    let err = Wal::open(StdFs, dir.path(), WalOptions::default()).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("wal-00000000000000000001.log"), "{err}");
}

#[test]
fn a_snapshot_lets_covered_segments_go() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions { segment_bytes: 200, ..WalOptions::default() };
    let (mut wal, _) = Wal::open(StdFs, dir.path(), options.clone()).unwrap();
    for i in 1..=40 {
        wal.persist(&ready(Some(hs(1, 1, i - 1)), entries(1, i..=i))).unwrap();
    }
    let segments_before = count(dir.path(), "log");
    assert!(segments_before > 5, "small segments rotate: {segments_before}");
    let snapshot = Snapshot {
        meta: SnapshotMeta { index: LogIndex(30), term: Term(1) },
        data: Bytes::from_static(b"state at 30"),
        membership: Membership::of_voters([NodeId(1), NodeId(2), NodeId(3)]),
    };
    wal.save_snapshot(&snapshot).unwrap();
    assert!(count(dir.path(), "log") < segments_before);
    drop(wal);
    let (_, recovered) = Wal::open(StdFs, dir.path(), options).unwrap();
    assert_eq!(recovered.restored.snapshot, Some(snapshot));
    assert_eq!(recovered.restored.entries, entries(1, 31..=40));
    assert_eq!(recovered.restored.applied, LogIndex(30));
    assert_eq!(recovered.restored.hard_state, hs(1, 1, 39));
}

#[test]
fn a_snapshot_from_the_leader_replaces_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    wal.persist(&ready(None, entries(1, 1..=9))).unwrap();
    let snapshot = Snapshot {
        meta: SnapshotMeta { index: LogIndex(5), term: Term(2) },
        data: Bytes::from_static(b"leader state"),
        membership: Membership {
            voters: [NodeId(4), NodeId(5)].into(),
            outgoing: [NodeId(1), NodeId(2), NodeId(3)].into(),
            learners: [NodeId(6)].into(),
            // What the server keeps of its members travels with the snapshot too.
            attrs: [(NodeId(6), r#"{"name":"n6"}"#.to_string())].into(),
        },
    };
    let restore = Ready { snapshot: Some(snapshot.clone()), must_sync: true, ..Ready::default() };
    wal.persist(&restore).unwrap();
    // A configuration entry after it (§4.1) keeps its kind.
    let config = Entry::config(Term(2), LogIndex(6), &snapshot.membership.leave_joint());
    wal.persist(&ready(None, vec![config.clone()])).unwrap();
    drop(wal);
    let (_, recovered) = open(dir.path());
    assert_eq!(recovered.restored.snapshot, Some(snapshot));
    assert_eq!(recovered.restored.entries, [config], "entries 6..9 disagreed with the snapshot");
}

#[test]
fn a_simulated_crash_loses_exactly_the_unsynced_records() {
    let recovered: Rc<RefCell<Vec<Vec<Entry>>>> = Rc::default();
    let mut sim = turmoil::Builder::new().build();
    let seen = recovered.clone();
    sim.host("n1", move || {
        let seen = seen.clone();
        async move {
            let (mut wal, found) =
                Wal::open(SimFs, Path::new("/data"), WalOptions::default()).unwrap();
            seen.borrow_mut().push(found.restored.entries.clone());
            if found.restored.entries.is_empty() {
                wal.persist(&ready(Some(hs(1, 1, 0)), entries(1, 1..=3))).unwrap();
                let unsynced = Ready { must_sync: false, ..ready(None, entries(1, 4..=6)) };
                wal.persist(&unsynced).unwrap();
            }
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    sim.step().unwrap();
    sim.crash("n1");
    sim.bounce("n1");
    sim.step().unwrap();
    let runs = recovered.borrow();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1], entries(1, 1..=3), "the synced entries survive, the unsynced do not");
}

fn count(dir: &Path, extension: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|e| e == extension))
        .count()
}

fn newest_segment(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max()
        .unwrap()
}
