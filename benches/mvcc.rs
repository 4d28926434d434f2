//! What a key revision costs: 200,000 puts of 256-byte values over 1,000 8-byte keys (etcd-bench's
//! value size) applied to a `KvStore`, every revision kept.
//!
//! - memory: the process's resident set before and after, per revision kept;
//! - at rest: sled's allocated size on disk (`StateStore`, as a real node keeps it, saved every
//!   1,000 puts and flushed) per revision;
//! - in a snapshot: the encoded state's size per revision;
//! - after compacting to the newest revision: what is left (the 1,000 current keys).
//!
//! Run: `cargo bench --bench mvcc` (`RAFTBED_BENCH_REVISIONS` sets the puts).

use std::os::unix::fs::MetadataExt;

use bytes::Bytes;
use prost::Message;
use raftbed::kv::KvStore;
use raftbed::proto::etcdserverpb::{CompactionRequest, PutRequest};
use raftbed::proto::raftbed::{Command, command::Op};
use raftbed::storage::state::StateStore;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()));
    kb.unwrap_or(0) * 1024
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = entry.metadata().expect("metadata");
        // Allocated blocks, not lengths: sled preallocates its segments.
        total += if meta.is_dir() { dir_bytes(&entry.path()) } else { meta.blocks() * 512 };
    }
    total
}

fn command(op: Op) -> Vec<u8> {
    Command { client_id: 0, seq: 0, op: Some(op) }.encode_to_vec()
}

fn main() {
    let revisions: u64 = std::env::var("RAFTBED_BENCH_REVISIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let value = Bytes::from(vec![b'v'; 256]);
    let put = |i: u64| {
        let key = Bytes::from(format!("{:08}", i % 1000));
        command(Op::Put(PutRequest { key, value: value.clone(), ..PutRequest::default() }))
    };
    // The state machine alone, in memory.
    let before_rss = rss_bytes();
    let mut kv = KvStore::default();
    for i in 0..revisions {
        kv.apply(i + 1, &put(i)).expect("applies");
    }
    let rss = rss_bytes().saturating_sub(before_rss);
    // The same puts at rest, as a real node saves them.
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = StateStore::open(dir.path()).expect("sled opens");
    store.flush().expect("flush");
    let before_disk = dir_bytes(dir.path());
    let mut saved = KvStore::default();
    saved.track_changes();
    for i in 0..revisions {
        saved.apply(i + 1, &put(i)).expect("applies");
        if i % 1000 == 999 {
            store.save(i + 1, &saved.take_changes()).expect("saves");
        }
    }
    store.save(revisions, &saved.take_changes()).expect("saves");
    store.flush().expect("flush");
    let disk = dir_bytes(dir.path()).saturating_sub(before_disk);
    drop(saved);
    let snapshot = kv.encode().len() as u64;
    let per = |bytes: u64| bytes as f64 / revisions as f64;
    println!("{revisions} revisions of 256-byte values over 1,000 keys, every revision kept:");
    println!("  memory (resident set growth): {:.0} bytes per revision", per(rss));
    println!("  at rest (sled on disk, flushed): {:.0} bytes per revision", per(disk));
    println!("  in a snapshot: {:.0} bytes per revision", per(snapshot));
    let compact = CompactionRequest { revision: kv.revision(), physical: false };
    kv.apply(revisions + 1, &command(Op::Compact(compact))).expect("compacts");
    println!(
        "  after compacting to revision {}: {} revisions kept, snapshot {} bytes",
        kv.revision(),
        kv.kept_revisions(),
        kv.encode().len()
    );
}
