//! Watchers in `raftbed test`: the simulator's watchers (`sim::watchers`) on real sockets, and
//! their check against the committed history, rebuilt from the stopped nodes' snapshots and
//! write-ahead logs.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use jepsen_lite::watch::{Stream, WatchReport};

use crate::kv::KvStore;
use crate::raft::Restored;
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

/// Checks `streams` against the committed history: the store of `best`, the node that
/// recorded the highest commit index (`jepsen::most_committed`), from its snapshot (which
/// keeps every revision: nothing is compacted in a test) and its log up to that commit index.
///
/// # Errors
/// A snapshot or entry that does not decode.
pub fn check(best: Option<&Restored>, streams: &[Stream]) -> Result<WatchReport, String> {
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
    let (committed, known) = watchers::committed(&kv);
    Ok(jepsen_lite::watch::check(&committed, known, streams))
}
