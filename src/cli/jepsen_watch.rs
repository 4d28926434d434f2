//! Watchers in `raftbed test`: the simulator's watchers (`sim::watchers`) on real sockets, and
//! their check against the committed history, rebuilt from the stopped nodes' snapshots and
//! write-ahead logs, and against when each node knew a leader, as its admin port tells.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use jepsen_lite::watch::{Leaders, Stream, WatchLog};

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

/// Require-leader streams get this much beyond the bound: real processes on a busy machine
/// are scheduled late, and a response may wait in a socket.
const REAL_SLACK: Duration = Duration::from_secs(2);

/// When each node of `endpoints` knew a leader, asked through its admin port while it still
/// runs, on the run's clock (`started_unix`: the Unix time of its zero). A node that was
/// killed and restarted tells only of its last life; one that does not answer, nothing.
pub async fn leaders(dir: &std::path::Path, endpoints: &[String], started_unix: i64) -> Leaders {
    let election = crate::server::timing::Timing::loopback().election_timeout;
    let mut timelines = std::collections::BTreeMap::new();
    for endpoint in endpoints {
        let Ok(answer) = super::nemesis::admin(dir, endpoint, "leaders").await else { continue };
        if let Some(timeline) = parse_timeline(&answer, started_unix) {
            timelines.insert(endpoint.clone(), timeline);
        }
    }
    watchers::leaders(election, REAL_SLACK, timelines)
}

/// `ok UNIX_NANOS:0|1 ...`, shifted to the run's clock; `None` if it is anything else.
fn parse_timeline(answer: &str, started_unix: i64) -> Option<Vec<(i64, bool)>> {
    let entries = answer.strip_prefix("ok")?.split_whitespace();
    entries
        .map(|entry| {
            let (at, knows) = entry.split_once(':')?;
            let at = at.parse::<i64>().ok()? - started_unix;
            Some((at, knows == "1"))
        })
        .collect()
}

/// Checks `streams` against the committed history: the store of `best`, the node that
/// recorded the highest commit index (`jepsen::most_committed`), from its snapshot (which
/// keeps every revision: nothing is compacted in a test) and its log up to that commit index;
/// and their cancels against `leaders`: the check's whole input, for `WatchLog::check`.
///
/// # Errors
/// A snapshot or entry that does not decode.
pub fn check(
    best: Option<&Restored>,
    streams: &[Stream],
    leaders: Leaders,
) -> Result<WatchLog, String> {
    let Some(best) = best else { return Ok(WatchLog::default()) };
    let mut kv = match &best.snapshot {
        Some(snapshot) => {
            KvStore::decode(&snapshot.data).map_err(|e| format!("snapshot: {}", e.0))?
        }
        None => KvStore::default(),
    };
    let commit = best.hard_state.commit.0;
    let commands = best.entries.iter().filter(|e| e.kind == crate::raft::EntryKind::Command);
    for entry in commands.take_while(|e| e.index.0 <= commit) {
        kv.apply(entry.index.0, &entry.data)
            .map_err(|e| format!("entry {}: {}", entry.index.0, e.0))?;
    }
    let (committed, known) = watchers::committed(&kv);
    // Nothing is compacted in a test.
    Ok(WatchLog { committed, known, streams: streams.to_vec(), compactions: vec![], leaders })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_node_timeline_is_read_on_the_run_clock_and_garbage_is_refused() {
        let timeline = super::parse_timeline("ok 1000:0 1500:1 2500:0", 1000);
        assert_eq!(timeline, Some(vec![(0, false), (500, true), (1500, false)]));
        assert_eq!(super::parse_timeline("error: bad admin token", 0), None);
        assert_eq!(super::parse_timeline("ok 12:1 x:0", 0), None);
        assert_eq!(super::parse_timeline("ok", 0), Some(vec![]));
    }
}
