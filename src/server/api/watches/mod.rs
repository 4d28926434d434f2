//! etcd's Watch service, served by every member from its own applied state.
//!
//! Each stream is a loop that pulls: whenever the member's revision moves, it asks the driver
//! for the changes each of its watches has not been sent (at most `BATCH_REVISIONS` revisions a
//! watch per question, so a watch from far back in the history neither holds the driver nor
//! fills memory) and sends them in revision order. A watch whose next revision was compacted
//! away is cancelled with `compact_revision`, as etcd does. Nothing is sent ahead of the
//! member's applied state, so a progress notification never claims a revision whose events
//! were not delivered.
//!
//! With `hasleader` metadata (clientv3's `WithRequireLeader`), the stream ends with
//! `etcdserver: no leader` once the member has known no leader for three election timeouts
//! (etcd's `monitorLeader`), so a watcher on a cut-off minority learns that its world froze.

mod watcher;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, interval_at};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::{Api, status};
use crate::kv::ApiError;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse};
use crate::raft::NodeId;
use crate::server::calls::{CallError, Consistency, Query, QueryAnswer};
use crate::transport::net::Net;
use watcher::Watcher;

/// At most this many revisions a watch per question to the driver.
const BATCH_REVISIONS: i64 = 1000;

/// etcd's `maxNoLeaderCnt`: election timeouts without a leader before require-leader streams end.
pub const NO_LEADER_TIMEOUTS: u32 = 3;

/// etcd's error for a watch id already in use on the stream.
const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

/// The metadata clientv3's `WithRequireLeader` sets.
pub const REQUIRE_LEADER_HEADER: &str = "hasleader";

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;
type Out = mpsc::Sender<Result<WatchResponse, Status>>;

/// Why a stream's loop stopped.
enum End {
    /// The client went away: nothing more to send.
    Gone,
    /// End the stream with this error.
    Failed(Status),
}

/// Whether a request asks for a leader (clientv3's `WithRequireLeader`).
pub fn requires_leader(metadata: &MetadataMap) -> bool {
    metadata.get(REQUIRE_LEADER_HEADER).and_then(|v| v.to_str().ok()) == Some("true")
}

/// Resolves once `leader` has been `None` at `NO_LEADER_TIMEOUTS` checks in a row, one check
/// per election timeout.
pub async fn leader_lost(mut leader: watch::Receiver<Option<NodeId>>, election: Duration) {
    let mut checks = interval_at(Instant::now() + election, election);
    let mut without = 0;
    loop {
        checks.tick().await;
        without = if leader.borrow_and_update().is_none() { without + 1 } else { 0 };
        if without >= NO_LEADER_TIMEOUTS {
            return;
        }
    }
}

/// One Watch stream's state.
struct Session<N: Net> {
    api: Arc<Api<N>>,
    watchers: BTreeMap<i64, Watcher>,
    /// etcd's auto ids start at 0 and skip ids the client chose.
    next_id: i64,
    /// The member's term at its last answer, for headers.
    term: u64,
    /// A progress request waits until every watch is caught up.
    progress_requested: bool,
    out: Out,
}

impl<N: Net + Send + Sync> Session<N> {
    fn header(&self, revision: i64) -> ResponseHeader {
        let mut header = self.api.header(None, self.term).unwrap_or_default();
        header.revision = revision;
        header
    }

    fn current(&self) -> i64 {
        *self.api.revision.borrow()
    }

    async fn send(&self, response: WatchResponse) -> Result<(), End> {
        self.out.send(Ok(response)).await.map_err(|_| End::Gone)
    }

    async fn run(mut self, mut requests: Streaming<WatchRequest>, require_leader: bool) {
        let mut revision = self.api.revision.clone();
        let period = self.api.watch_progress;
        let mut progress = interval_at(Instant::now() + period, period);
        let lost = leader_lost(self.api.leader.clone(), self.api.election_timeout);
        let require_leader = require_leader && !self.api.bugs.require_leader_ignored;
        tokio::pin!(lost);
        let end = loop {
            let behind = match self.catch_up().await {
                Ok(behind) => behind,
                Err(end) => break end,
            };
            let step = tokio::select! {
                biased;
                message = requests.message() => match message {
                    Ok(Some(request)) => self.handle(request).await,
                    Ok(None) | Err(_) => Err(End::Gone),
                },
                () = tokio::task::yield_now(), if behind => Ok(()),
                changed = revision.changed() => {
                    changed.map_err(|_| End::Failed(status(&ApiError::stopped())))
                }
                _ = progress.tick() => self.notify_progress().await,
                () = &mut lost, if require_leader => {
                    Err(End::Failed(status(&ApiError::no_leader())))
                }
            };
            if let Err(end) = step {
                break end;
            }
        };
        if let End::Failed(error) = end {
            let _ = self.out.send(Err(error)).await;
        }
    }

    /// Sends every watch what it has not been sent, up to `BATCH_REVISIONS` revisions each;
    /// answers whether some watch is still behind the member.
    async fn catch_up(&mut self) -> Result<bool, End> {
        let current = self.current();
        let due: Vec<i64> =
            self.watchers.iter().filter(|(_, w)| !w.synced(current)).map(|(id, _)| *id).collect();
        if due.is_empty() {
            return self.answer_progress(current).await.map(|()| false);
        }
        let watches =
            due.iter().map(|id| (self.watchers[id].range.clone(), self.watchers[id].next));
        let query = Query::Changes { watches: watches.collect(), limit: BATCH_REVISIONS };
        let (revision, results) = match self.api.read(query, Consistency::Serializable).await {
            Ok(served) => match served.value {
                QueryAnswer::Changes { revision, watches } => {
                    self.term = served.term;
                    (revision, watches)
                }
                _ => {
                    return Err(End::Failed(status(&ApiError::invalid(
                        "raftbed: mismatched answer",
                    ))));
                }
            },
            Err(CallError::Api(error)) if error.code == tonic::Code::ResourceExhausted => {
                // The driver's queue is full: let it drain.
                tokio::time::sleep(Duration::from_millis(10)).await;
                return Ok(true);
            }
            Err(CallError::Api(error)) => return Err(End::Failed(status(&error))),
            Err(CallError::NotLeader(_)) => {
                return Err(End::Failed(status(&ApiError::no_leader())));
            }
        };
        for (id, result) in due.into_iter().zip(results) {
            match result {
                Ok((changes, reached)) => {
                    let header = self.header(0);
                    let watcher = self.watchers.get_mut(&id).expect("due watches exist");
                    for response in watcher.responses(id, changes, reached, header) {
                        self.send(response).await?;
                    }
                }
                Err(compacted) => {
                    self.watchers.remove(&id);
                    let response = WatchResponse {
                        header: Some(self.header(revision)),
                        watch_id: id,
                        canceled: true,
                        compact_revision: compacted,
                        ..WatchResponse::default()
                    };
                    self.send(response).await?;
                }
            }
        }
        Ok(self.watchers.values().any(|w| !w.synced(revision)))
    }

    async fn handle(&mut self, request: WatchRequest) -> Result<(), End> {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(&create).await,
            Some(RequestUnion::CancelRequest(cancel)) => {
                // etcd answers nothing for an id it does not know.
                if self.watchers.remove(&cancel.watch_id).is_some() {
                    let response = WatchResponse {
                        header: Some(self.header(self.current())),
                        watch_id: cancel.watch_id,
                        canceled: true,
                        ..WatchResponse::default()
                    };
                    self.send(response).await?;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                self.progress_requested = true;
                Ok(())
            }
            // etcd ignores a request it does not understand rather than end the stream.
            None => Ok(()),
        }
    }

    async fn create(&mut self, create: &WatchCreateRequest) -> Result<(), End> {
        let current = self.current();
        let made = Watcher::new(create, current).and_then(|mut watcher| {
            if self.api.bugs.watch_resume_skips && create.start_revision > 0 {
                watcher.next = watcher.next.max(current + 1);
            }
            let id = match create.watch_id {
                0 => {
                    while self.watchers.contains_key(&self.next_id) {
                        self.next_id += 1;
                    }
                    self.next_id += 1;
                    self.next_id - 1
                }
                id if self.watchers.contains_key(&id) => return Err(DUPLICATE_ID),
                id => id,
            };
            Ok((id, watcher))
        });
        let response = match made {
            Ok((id, watcher)) => {
                self.watchers.insert(id, watcher);
                WatchResponse { watch_id: id, created: true, ..WatchResponse::default() }
            }
            Err(reason) => WatchResponse {
                watch_id: -1,
                created: true,
                canceled: true,
                cancel_reason: reason.into(),
                ..WatchResponse::default()
            },
        };
        let header = Some(self.header(current));
        self.send(WatchResponse { header, ..response }).await
    }

    /// Answers a progress request once every watch is caught up with the member at `current`:
    /// one response for the whole stream (watch id -1), as etcd's.
    async fn answer_progress(&mut self, current: i64) -> Result<(), End> {
        if !std::mem::take(&mut self.progress_requested) {
            return Ok(());
        }
        let response = WatchResponse {
            header: Some(self.header(current)),
            watch_id: -1,
            ..Default::default()
        };
        self.send(response).await
    }

    /// A progress notification to each watch that asked for them and is caught up (etcd sends
    /// them to synced watches only), at the revision it has been sent everything through.
    async fn notify_progress(&mut self) -> Result<(), End> {
        let current = self.current();
        let notified: Vec<(i64, i64)> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.progress_notify && w.synced(current))
            .map(|(id, w)| (*id, w.next - 1))
            .collect();
        for (id, through) in notified {
            let header = Some(self.header(through.min(current)));
            self.send(WatchResponse { header, watch_id: id, ..Default::default() }).await?;
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl<N: Net + Send + Sync> Watch for Api<N> {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        let require_leader = requires_leader(request.metadata());
        if require_leader && self.leader.borrow().is_none() {
            return Err(status(&ApiError::no_leader()));
        }
        let (out, rx) = mpsc::channel(16);
        let session = Session {
            api: self.shared(),
            watchers: BTreeMap::new(),
            next_id: 0,
            term: 0,
            progress_requested: false,
            out,
        };
        let requests = request.into_inner();
        // The handler must return the stream before it is fed, so the loop runs on its own.
        hyper::rt::Executor::execute(
            &crate::transport::net::Spawner::of::<N>(),
            session.run(requests, require_leader),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
