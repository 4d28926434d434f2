//! `raftbed node --restore FILE`: a fresh single-member cluster from a snapshot that etcd's
//! Maintenance.Snapshot streamed (`etcdctl snapshot save`). The file's digest is checked, the
//! data dir must be new or empty, and the cluster gets a new id, written beside the identity
//! (`raftbed-restored`) so the node starts on it again without the flag. The state machine
//! becomes the node's first Raft snapshot (index 1, term 1, the node alone a voter); revisions,
//! leases and history are the snapshot's.

use std::path::Path;

use crate::raft::{HardState, LogIndex, Membership, NodeId, Ready, Snapshot, SnapshotMeta, Term};
use crate::storage::fs::StdFs;
use crate::storage::{Wal, WalOptions};

/// The file naming the cluster id a restore minted.
pub const RESTORED_FILE: &str = "raftbed-restored";

/// The cluster id a restore minted for the data dir `dir`, if it was restored.
pub fn restored_cluster(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join(RESTORED_FILE)).ok()?;
    u64::from_str_radix(text.trim(), 16).ok()
}

fn random_id() -> Result<u64, String> {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Restores `file` into the data dir `dir` as node `id`, alone in its cluster; returns the new
/// cluster id.
///
/// # Errors
/// A file that is not an intact raftbed snapshot, more than one member, or a data dir that
/// holds anything; nothing is written then.
pub fn restore(file: &Path, dir: &Path, id: NodeId, members: usize) -> Result<u64, String> {
    if members != 1 {
        return Err(format!(
            "--restore starts a single-member cluster, but --peers lists {members} members"
        ));
    }
    let used = std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false);
    if used {
        return Err(format!(
            "--data-dir {}: not empty; --restore needs a new or empty data dir, and nothing was changed",
            dir.display()
        ));
    }
    let bytes = std::fs::read(file).map_err(|e| format!("--restore {}: {e}", file.display()))?;
    let kv = crate::storage::backup::decode(&bytes)
        .map_err(|e| format!("--restore {}: {e}; nothing was changed", file.display()))?;
    let cluster = random_id()?;
    super::node::claim_data_dir(dir, cluster, id)?;
    std::fs::write(dir.join(RESTORED_FILE), format!("{cluster:016x}\n"))
        .map_err(|e| format!("--data-dir {}: {e}", dir.display()))?;
    let (mut wal, _) = Wal::open(StdFs, dir, WalOptions::default())
        .map_err(|e| format!("--data-dir {}: {e}", dir.display()))?;
    let first = LogIndex(1);
    let snapshot = Snapshot {
        meta: SnapshotMeta { index: first, term: Term(1) },
        data: kv.encode(),
        membership: Membership::of_voters([id]),
    };
    let ready = Ready {
        snapshot: Some(snapshot),
        hard_state: Some(HardState { term: Term(1), vote: None, commit: first }),
        must_sync: true,
        ..Ready::default()
    };
    wal.persist(&ready).map_err(|e| format!("--data-dir {}: {e}", dir.display()))?;
    Ok(cluster)
}
