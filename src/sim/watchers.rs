//! Watchers, in the simulator and in `raftbed test`: each watches the workload's keys (`k`..`l`, with previous values) on a
//! member drawn at random, for a while drawn at random, then resumes on another member from the
//! revision after the last it was sent, as clientv3 does after a reconnect; one cancelled
//! because its history was compacted starts again from the current revision, as an
//! application re-lists. Some ask for a leader (`hasleader`), so their streams end when their
//! member is cut off, and ask for progress now and then, which shows whether they were; the
//! others ask for progress at most once. Every stream, everything it received and when is
//! recorded for the watch checker (`jepsen_lite::watch`), which compares it with the committed
//! history and the members' leaders.

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

/// Applies committed `commands` (log index 1 on) to a fresh store, all but compactions, so it
/// keeps every revision; answers it with the revisions the history was compacted to. Stops at
/// the first command that does not decode.
pub fn replay_keeping_history<'a>(
    commands: impl IntoIterator<Item = &'a [u8]>,
) -> (crate::kv::KvStore, Vec<i64>) {
    use prost::Message;
    let mut kv = crate::kv::KvStore::default();
    let mut compactions: Vec<i64> = Vec::new();
    for (i, data) in commands.into_iter().enumerate() {
        let command = crate::proto::raftbed::Command::decode(data);
        if let Ok(crate::proto::raftbed::Command {
            op: Some(crate::proto::raftbed::command::Op::Compact(compact)),
            ..
        }) = command
        {
            // As `KvStore::apply_compact` accepts it: above the last, at most the current.
            let above = compactions.last().is_none_or(|last| compact.revision > *last);
            if above && compact.revision <= kv.revision() {
                compactions.push(compact.revision);
            }
            continue;
        }
        if kv.apply(i as u64 + 1, data).is_err() {
            break;
        }
    }
    (kv, compactions)
}

/// What the watch checker judges require-leader streams by, for members with `election`
/// timeouts: the API cancels them after three checks an election timeout apart
/// (`api::watches`), and `delivery` more is allowed for a request, its answer and scheduling;
/// `timelines` hold when each member knew a leader, in nanoseconds on the streams' clock.
pub fn leaders(
    election: Duration,
    delivery: Duration,
    timelines: std::collections::BTreeMap<String, Vec<(i64, bool)>>,
) -> jepsen_lite::watch::Leaders {
    jepsen_lite::watch::Leaders {
        bound: (election * crate::server::api::NO_LEADER_TIMEOUTS).as_nanos() as i64,
        slack: (election + delivery).as_nanos() as i64,
        timelines,
    }
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
        let progress_every = if require_leader {
            Some(rng.duration(Duration::from_millis(200), Duration::from_millis(800)))
        } else {
            rng.chance(0.5).then(|| rng.duration(Duration::ZERO, stay))
        };
        let open = Open { member, start: next, require_leader, stay, progress_every };
        if let Some(start) = watch_once(&net, &clock, id, &params, open, &shared, &streams).await {
            next = start;
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
    /// Ask for progress after this long (and again as often, with require-leader).
    progress_every: Option<Duration>,
}

/// Opens one stream and records it until it ends or `open.stay` passes; answers where the
/// next stream starts: the revision after the last it was sent everything through, or 0 (the
/// current revision) after its history was compacted.
async fn watch_once<N: Net + Send + Sync>(
    net: &N,
    clock: &Rc<dyn Fn() -> Duration>,
    id: u64,
    params: &WatcherParams,
    open: Open,
    shared: &Shared,
    streams: &RefCell<Vec<Stream>>,
) -> Option<i64> {
    let opened_at = clock().as_nanos() as i64;
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
            time: opened_at,
            require_leader: open.require_leader,
            responses: Vec::new(),
            received: Vec::new(),
        });
        streams.len() - 1
    };
    let mut through = None;
    let mut progress = open.progress_every.map(|every| tokio::time::Instant::now() + every);
    loop {
        // Past the deadline: never, as far as this stream goes.
        let ask_at = progress.unwrap_or(deadline + Duration::from_secs(1));
        let message = tokio::select! {
            message = responses.message() => message,
            () = tokio::time::sleep_until(deadline) => break,
            () = tokio::time::sleep_until(ask_at) => {
                progress = open
                    .progress_every
                    .filter(|_| open.require_leader)
                    .map(|every| tokio::time::Instant::now() + every);
                let ask = WatchRequest { request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})) };
                let _ = tx.try_send(ask);
                continue;
            }
        };
        if shared.stop.get() {
            break;
        }
        let at = clock().as_nanos() as i64;
        let stream = &mut streams.borrow_mut()[index];
        let recorded = match message {
            Ok(Some(response)) => record(&response, stream, &mut through),
            Ok(None) => false,
            Err(status) => {
                let reason = status.message().to_string();
                stream.responses.push(Response::Canceled { compact_revision: 0, reason });
                false
            }
        };
        // One time per response recorded (the creation answer records none).
        stream.received.resize(stream.responses.len(), at);
        if !recorded {
            break;
        }
    }
    let compacted = streams.borrow()[index].responses.last().is_some_and(
        |r| matches!(r, Response::Canceled { compact_revision, .. } if *compact_revision > 0),
    );
    if compacted { Some(0) } else { through.map(|last| last + 1) }
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
