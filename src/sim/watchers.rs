//! Watchers, in the simulator and in `raftbed test`: each watches the workload's keys (`k`..`l`, with previous values) on a
//! member drawn at random, for a while drawn at random, then resumes on another member from the
//! revision after the last it was sent, as clientv3 does after a reconnect. Some ask for a
//! leader (`hasleader`), so their streams end when their member is cut off; some send progress
//! requests. Every stream and everything it received is recorded for the watch checker
//! (`jepsen_lite::watch`), which compares it with the committed history.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use jepsen_lite::watch::{Response, Stream, WatchEvent};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;

use super::workload::Shared;
use crate::kv::Change;
use crate::proto::etcdserverpb::watch_client::WatchClient;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{
    WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use crate::proto::mvccpb::Event;
use crate::proto::mvccpb::event::EventType;
use crate::rng::SplitMix64;
use crate::transport::net::Net;

/// How the watchers behave.
#[derive(Clone, Debug)]
pub struct WatcherParams {
    /// Client addresses of the members.
    pub nodes: Vec<String>,
    /// A stream stays open this long at most before the watcher moves on.
    pub stay_max: Duration,
    /// Connecting gives up after this.
    pub connect_timeout: Duration,
}

/// The watched keys: the workload's.
const RANGE: (&str, &str) = ("k", "l");

/// The event as the watch checker reads it.
pub fn event(event: &Event) -> WatchEvent {
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    let kv = event.kv.clone().unwrap_or_default();
    let put = event.r#type == EventType::Put as i32;
    WatchEvent {
        rev: kv.mod_revision,
        key: text(&kv.key),
        value: put.then(|| text(&kv.value)),
        prev: event.prev_kv.as_ref().map(|p| text(&p.value)),
    }
}

/// The watched keys' committed history in `kv` (every revision kept), one entry a revision,
/// as the watch checker reads it; and the revision it is known through.
pub fn committed(kv: &crate::kv::KvStore) -> (Vec<jepsen_lite::watch::Revision>, i64) {
    let range = crate::kv::KeyRange::Between(RANGE.0.into(), RANGE.1.into());
    let changes: Vec<Change> = kv.changes(&range, 1, i64::MAX).map(|(c, _)| c).unwrap_or_default();
    let mut revisions: Vec<jepsen_lite::watch::Revision> = Vec::new();
    for change in &changes {
        let event = event(&change.event);
        match revisions.last_mut() {
            Some(last) if last.rev == change.rev.main => last.events.push(event),
            _ => revisions
                .push(jepsen_lite::watch::Revision { rev: change.rev.main, events: vec![event] }),
        }
    }
    (revisions, kv.revision())
}

/// Runs watcher `id` in the simulation until the workload stops, recording its streams.
pub async fn run(
    net: crate::transport::net::SimNet,
    id: u64,
    params: WatcherParams,
    rng: SplitMix64,
    shared: Rc<Shared>,
    streams: Rc<RefCell<Vec<Stream>>>,
) -> turmoil::Result {
    let clock: Rc<dyn Fn() -> Duration> = Rc::new(|| turmoil::sim_elapsed().unwrap_or_default());
    run_on(net, clock, id, params, rng, shared, streams).await;
    Ok(())
}

/// Runs watcher `id` on `net` until the workload stops, recording its streams in `streams`
/// with their opening times by `clock`.
pub async fn run_on<N: Net + Send + Sync>(
    net: N,
    clock: Rc<dyn Fn() -> Duration>,
    id: u64,
    params: WatcherParams,
    mut rng: SplitMix64,
    shared: Rc<Shared>,
    streams: Rc<RefCell<Vec<Stream>>>,
) {
    let require_leader = id % 2 == 1;
    // 0: from the member's next revision (the first stream only).
    let mut next = 0i64;
    while !shared.stop.get() {
        let member = rng.below(params.nodes.len() as u64) as usize;
        let stay = rng.duration(Duration::from_millis(500), params.stay_max);
        let progress_at = rng.chance(0.5).then(|| rng.duration(Duration::ZERO, stay));
        let open = Open { member, start: next, require_leader, stay, progress_at, at: clock() };
        if let Some(last) = watch_once(&net, id, &params, open, &shared, &streams).await {
            next = last + 1;
        }
        tokio::time::sleep(rng.duration(Duration::from_millis(10), Duration::from_millis(300)))
            .await;
    }
}

/// One stream's plan.
struct Open {
    member: usize,
    start: i64,
    require_leader: bool,
    stay: Duration,
    progress_at: Option<Duration>,
    /// When it opens, on the run's clock.
    at: Duration,
}

/// Opens one stream and records it until it ends or `open.stay` passes; answers the last
/// revision it was sent everything through.
async fn watch_once<N: Net + Send + Sync>(
    net: &N,
    id: u64,
    params: &WatcherParams,
    open: Open,
    shared: &Shared,
    streams: &RefCell<Vec<Stream>>,
) -> Option<i64> {
    let channel = net.channel(&params.nodes[open.member], params.connect_timeout, None).ok()?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let create = WatchCreateRequest {
        key: Bytes::from_static(RANGE.0.as_bytes()),
        range_end: Bytes::from_static(RANGE.1.as_bytes()),
        start_revision: open.start,
        prev_kv: true,
        ..WatchCreateRequest::default()
    };
    tx.try_send(WatchRequest { request_union: Some(RequestUnion::CreateRequest(create)) }).ok()?;
    let mut request = Request::new(ReceiverStream::new(rx));
    if open.require_leader {
        request
            .metadata_mut()
            .insert("hasleader", tonic::metadata::MetadataValue::from_static("true"));
    }
    let deadline = tokio::time::Instant::now() + open.stay;
    let opened = tokio::time::timeout_at(deadline, WatchClient::new(channel).watch(request)).await;
    let mut responses = match opened {
        Ok(Ok(response)) => response.into_inner(),
        _ => return None,
    };
    let index = {
        let mut streams = streams.borrow_mut();
        streams.push(Stream {
            watcher: id,
            member: params.nodes[open.member].clone(),
            start: open.start,
            range: (RANGE.0.into(), RANGE.1.into()),
            prev_kv: true,
            time: open.at.as_nanos() as i64,
            responses: Vec::new(),
        });
        streams.len() - 1
    };
    let mut through = None;
    let mut progress = open.progress_at.map(|at| tokio::time::Instant::now() + at);
    loop {
        // Past the deadline: never, as far as this stream goes.
        let ask_at = progress.unwrap_or(deadline + Duration::from_secs(1));
        let message = tokio::select! {
            message = responses.message() => message,
            () = tokio::time::sleep_until(deadline) => break,
            () = tokio::time::sleep_until(ask_at) => {
                progress = None;
                let ask = WatchRequest { request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})) };
                let _ = tx.try_send(ask);
                continue;
            }
        };
        if shared.stop.get() {
            break;
        }
        let recorded = match message {
            Ok(Some(response)) => record(&response, &mut streams.borrow_mut()[index], &mut through),
            Ok(None) => false,
            Err(status) => {
                let reason = status.message().to_string();
                let canceled = Response::Canceled { compact_revision: 0, reason };
                streams.borrow_mut()[index].responses.push(canceled);
                false
            }
        };
        if !recorded {
            break;
        }
    }
    through
}

/// Records one response; false when the stream is over.
fn record(response: &WatchResponse, stream: &mut Stream, through: &mut Option<i64>) -> bool {
    let header = response.header.map_or(0, |h| h.revision);
    if response.created {
        if stream.start == 0 {
            stream.start = header + 1;
        }
        *through = Some(stream.start - 1);
        return !response.canceled;
    }
    if response.canceled {
        let reason = response.cancel_reason.clone();
        let compact_revision = response.compact_revision;
        stream.responses.push(Response::Canceled { compact_revision, reason });
        return false;
    }
    if response.events.is_empty() {
        stream.responses.push(Response::Progress { header });
        *through = Some(through.unwrap_or(0).max(header));
        return true;
    }
    let events: Vec<WatchEvent> = response.events.iter().map(event).collect();
    let last = events.last().map_or(0, |e| e.rev);
    if !response.fragment {
        *through = Some(through.unwrap_or(0).max(last));
    }
    stream.responses.push(Response::Events { header, events, fragment: response.fragment });
    true
}
