//! `raftbed node --system naive-failover[-fenced]`: a node of the comparison system as a real
//! process, serving the same etcd API on its client port and the naive system's own frames
//! (the monitor's commands, binlog replication) on its peer port. Its monitor is `raftbed
//! monitor`.
//!
//! Its disk is one file, `naive-disk`, rewritten (to a temporary file, then renamed) after
//! every change and before the change is answered: MySQL with `sync_binlog=1` acknowledges
//! only what it has written. The rename is atomic, so a SIGKILL leaves the old disk or the new
//! one, never a torn one. It is not fsynced: a killed process loses nothing the page cache
//! holds, and raftbed's real faults kill processes, not machines.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

use bytes::Bytes;
use prost::Message as _;

use crate::kv::KvStore;
use crate::naive::{Disk, NaiveConfig, NaiveObserver, NaiveRole};
use crate::raft::NodeId;
use crate::server::NodeConfig;
use crate::transport::net::TokioNet;

/// The disk file in a naive node's data dir.
pub const DISK_FILE: &str = "naive-disk";

/// A naive node's disk as saved.
#[derive(Clone, PartialEq, prost::Message)]
struct SavedDisk {
    #[prost(uint64, tag = "1")]
    epoch: u64,
    /// 0: primary; else the primary followed plus one (1: following nobody).
    #[prost(uint64, tag = "2")]
    role: u64,
    #[prost(uint64, tag = "3")]
    position: u64,
    #[prost(bytes = "bytes", tag = "4")]
    kv: Bytes,
    /// (client, seq) pairs, flattened.
    #[prost(uint64, repeated, tag = "5")]
    binlog: Vec<u64>,
}

fn encode(disk: &Disk) -> Vec<u8> {
    let role = match disk.role {
        NaiveRole::Primary => 0,
        NaiveRole::Replica(None) => 1,
        NaiveRole::Replica(Some(p)) => p.0 + 1,
    };
    SavedDisk {
        epoch: disk.epoch,
        role,
        position: disk.position,
        kv: disk.kv.encode(),
        binlog: disk.binlog.iter().flat_map(|(c, s)| [*c, *s]).collect(),
    }
    .encode_to_vec()
}

fn decode(data: &[u8]) -> Result<Disk, String> {
    let saved = SavedDisk::decode(data).map_err(|e| format!("not a naive node's disk: {e}"))?;
    let role = match saved.role {
        0 => NaiveRole::Primary,
        1 => NaiveRole::Replica(None),
        p => NaiveRole::Replica(Some(NodeId(p - 1))),
    };
    let kv = KvStore::decode(&saved.kv).map_err(|e| format!("its state does not decode: {e}"))?;
    if saved.binlog.len() % 2 != 0 {
        return Err("its binlog has an odd number of fields".into());
    }
    let binlog = saved.binlog.chunks_exact(2).map(|p| (p[0], p[1])).collect();
    Ok(Disk { epoch: saved.epoch, role, kv, position: saved.position, binlog })
}

/// The node's disk from its data dir, or a fresh one.
///
/// # Errors
/// A disk file that cannot be read or decoded: the data dir is left as it is.
pub fn load(dir: &Path, id: NodeId, first_primary: NodeId) -> Result<Disk, String> {
    let path = dir.join(DISK_FILE);
    match std::fs::read(&path) {
        Ok(data) => {
            decode(&data).map_err(|e| format!("{}: {e}; nothing was changed", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Disk::new(id, first_primary)),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Saves every change of the disk, and says what the node does on stderr.
struct Saver {
    path: PathBuf,
    tmp: PathBuf,
}

impl NaiveObserver for Saver {
    fn role(&self, node: NodeId, role: NaiveRole, epoch: u64) {
        let what = match role {
            NaiveRole::Primary => "primary".to_string(),
            NaiveRole::Replica(None) => "replica of nobody".to_string(),
            NaiveRole::Replica(Some(p)) => format!("replica of {p}"),
        };
        eprintln!("raftbed node {:x}: {what} at epoch {epoch}", node.0);
    }

    fn refused(&self, node: NodeId, from: NodeId, epoch: u64) {
        eprintln!("raftbed node {:x}: refuses {from}'s epoch {epoch}", node.0);
    }

    fn unstored(&self, node: NodeId, epoch: u64) {
        eprintln!("raftbed node {:x}: a write at epoch {epoch} was stored by no replica", node.0);
    }

    fn note(&self, node: NodeId, text: String) {
        eprintln!("raftbed node {:x}: {text}", node.0);
    }

    fn stored(&self, disk: &Disk) {
        let saved = std::fs::write(&self.tmp, encode(disk))
            .and_then(|()| std::fs::rename(&self.tmp, &self.path));
        if let Err(e) = saved {
            // A node that cannot keep what it acknowledges must not go on answering.
            eprintln!("raftbed node: cannot save {}: {e}", self.path.display());
            std::process::exit(1);
        }
    }
}

/// Runs a naive node with `config` (its members, addresses and timeouts) until SIGTERM.
pub fn run(config: NodeConfig, fenced: bool, first_primary: NodeId) -> ExitCode {
    let id = config.id;
    let dir = config.data_dir.clone();
    let disk = match load(&dir, id, first_primary) {
        Ok(disk) => disk,
        Err(e) => {
            eprintln!("raftbed node: {e}");
            return ExitCode::from(2);
        }
    };
    let saver = Saver { path: dir.join(DISK_FILE), tmp: dir.join(format!("{DISK_FILE}.tmp")) };
    saver.stored(&disk);
    let observer: Rc<dyn NaiveObserver> = Rc::new(saver);
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        eprintln!("raftbed node: cannot start the async runtime");
        return ExitCode::FAILURE;
    };
    let client = config.members[&id].client_addr.clone();
    let naive = NaiveConfig { node: config, fenced };
    let disk = Rc::new(std::cell::RefCell::new(disk));
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            eprintln!("raftbed node: cannot watch SIGTERM");
            return ExitCode::FAILURE;
        };
        let system = if fenced { "naive-failover-fenced" } else { "naive-failover" };
        eprintln!("raftbed node {:x} ({system}) serving clients on {client}", id.0);
        tokio::select! {
            result = crate::naive::run_naive_node(naive, TokioNet, disk, observer) => match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("raftbed node {:x}: {e}", id.0);
                    ExitCode::FAILURE
                }
            },
            _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
            _ = term.recv() => ExitCode::SUCCESS,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_survives_saving_and_a_corrupt_one_is_refused() {
        let mut disk = Disk::new(NodeId(2), NodeId(1));
        disk.epoch = 3;
        disk.position = 2;
        disk.binlog = vec![(7, 1), (7, 2)];
        let back = decode(&encode(&disk)).expect("decodes");
        assert_eq!(
            (back.epoch, back.role, back.position, back.binlog.clone()),
            (3, NaiveRole::Replica(Some(NodeId(1))), 2, vec![(7, 1), (7, 2)])
        );
        let err = decode(b"\xff\xff\xff").map(|_| ()).expect_err("garbage");
        assert!(err.contains("not a naive node's disk"), "{err}");
    }
}
