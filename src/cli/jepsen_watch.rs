//! Watchers in `raftbed test`: the simulator's watchers (`sim::watchers`) on real sockets, and
//! their check against the committed history, rebuilt from the stopped nodes' snapshots and
//! write-ahead logs.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use jepsen_lite::watch::{Stream, WatchReport};

use crate::kv::{KeyRange, KvStore};
use crate::rng::SplitMix64;
use crate::sim::watchers::{self, WatcherParams};
use crate::sim::workload::Shared;
use crate::transport::net::TokioNet;

/// What `raftbed test`'s watchers recorded.
pub type Streams = Rc<RefCell<Vec<Stream>>>;

/// Starts `count` watchers over `endpoints` until the workload stops.
pub fn start(
    count: u64,
    endpoints: &[String],
    clock: Rc<dyn Fn() -> Duration>,
    shared: &Rc<Shared>,
    rng: &mut SplitMix64,
) -> (Vec<tokio::task::JoinHandle<()>>, Streams) {
    let streams: Streams = Rc::default();
    let params = WatcherParams {
        nodes: endpoints.to_vec(),
        stay_max: Duration::from_secs(8),
        connect_timeout: Duration::from_secs(1),
    };
    let tasks = (0..count)
        .map(|id| {
            let task = watchers::run_on(
                TokioNet,
                clock.clone(),
                id,
                params.clone(),
                rng.fork(),
                shared.clone(),
                streams.clone(),
            );
            tokio::task::spawn_local(task)
        })
        .collect();
    (tasks, streams)
}

/// Checks `streams` against the committed history: the store of the node that recorded the
/// highest commit index (Log Matching, §3.5: its log holds the committed prefix), from its
/// snapshot (which keeps every revision: nothing is compacted in a test) and its log up to
/// that commit index.
///
/// # Errors
/// A data dir that cannot be read, or a snapshot or entry that does not decode.
pub fn check(dir: &Path, nodes: usize, streams: &[Stream]) -> Result<WatchReport, String> {
    let mut best: Option<crate::raft::Restored> = None;
    for id in 1..=nodes {
        let path = dir.join(format!("n{id}"));
        let restored = crate::storage::read_only(&crate::storage::fs::StdFs, &path)
            .map_err(|e| format!("n{id}: {e}"))?;
        if best.as_ref().is_none_or(|b| restored.hard_state.commit > b.hard_state.commit) {
            best = Some(restored);
        }
    }
    let Some(best) = best else { return Ok(WatchReport::default()) };
    let mut kv = match &best.snapshot {
        Some(snapshot) => {
            KvStore::decode(&snapshot.data).map_err(|e| format!("snapshot: {}", e.0))?
        }
        None => KvStore::default(),
    };
    let commit = best.hard_state.commit.0;
    for entry in best.entries.iter().take_while(|e| e.index.0 <= commit) {
        kv.apply(entry.index.0, &entry.data)
            .map_err(|e| format!("entry {}: {}", entry.index.0, e.0))?;
    }
    let range = KeyRange::Between("k".into(), "l".into());
    let changes = kv.changes(&range, 1, i64::MAX).map(|(c, _)| c).unwrap_or_default();
    Ok(jepsen_lite::watch::check(&watchers::revisions(&changes), kv.revision(), streams))
}
