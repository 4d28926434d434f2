//! Durable storage for one node: the Raft write-ahead log (`wal.rs`) over a small filesystem
//! facade (`fs.rs`). The state machine at rest lives elsewhere (in memory in simulation, where it
//! is rebuilt from the snapshot and the log after a crash).
//!
//! # Correctness
//!
//! `Wal::persist` returns only after what a `Ready` asks to persist is written, and, when the
//! `Ready` says `must_sync`, durable (`sync_data`): the driver sends the `Ready`'s messages only
//! after that. A crash then loses at most records that were never acknowledged to anyone.

pub mod backup;
pub mod fs;
pub mod state;
mod wal;

use std::path::PathBuf;

pub use wal::{Recovered, Wal, WalOptions, read_only};

/// A storage failure. An error while persisting a `Ready` is fatal for the node: it must stop
/// rather than act on state it could not make durable.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The filesystem refused.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Stored data is damaged somewhere other than a torn tail, so the node cannot trust it.
    #[error("{path}: corrupt at byte {offset}: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What.
        detail: String,
    },
}

impl StorageError {
    fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StorageError {
        let path = path.into();
        move |source| StorageError::Io { path, source }
    }
}
