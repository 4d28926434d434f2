//! The Watch service on a real 3-node loopback cluster, for what etcdctl cannot show: progress
//! notifications at the configured interval, filters, duplicate watch ids, fragments of a
//! revision larger than etcd's request limit, and require-leader streams (watch and lease
//! keep-alive) ended with `etcdserver: no leader` when their member is cut off, while a plain
//! watch there stays open.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use raftbed::proto::etcdserverpb::kv_client::KvClient;
use raftbed::proto::etcdserverpb::lease_client::LeaseClient;
use raftbed::proto::etcdserverpb::watch_client::WatchClient;
use raftbed::proto::etcdserverpb::watch_create_request::FilterType;
use raftbed::proto::etcdserverpb::watch_request::RequestUnion;
use raftbed::proto::etcdserverpb::{
    DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest, WatchCreateRequest,
    WatchRequest, WatchResponse,
};
use raftbed::raft::NodeId;
use raftbed::server::LiveFaults;
use raftbed::server::local::LocalCluster;
use raftbed::transport::channel::RpcChannel;
use raftbed::transport::net::{Net, TokioNet};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Streaming};

fn channel(endpoint: &str) -> RpcChannel {
    TokioNet.channel(endpoint, Duration::from_secs(2), None).expect("a channel")
}

/// A watch stream with its request sender.
struct Watch {
    requests: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
}

impl Watch {
    async fn open(endpoint: &str, require_leader: bool) -> Result<Watch, tonic::Status> {
        let (requests, rx) = mpsc::channel(4);
        let mut request = Request::new(ReceiverStream::new(rx));
        if require_leader {
            request.metadata_mut().insert("hasleader", "true".parse().expect("ascii"));
        }
        let responses = WatchClient::new(channel(endpoint)).watch(request).await?.into_inner();
        Ok(Watch { requests, responses })
    }

    async fn create(&mut self, create: WatchCreateRequest) -> WatchResponse {
        let request = WatchRequest { request_union: Some(RequestUnion::CreateRequest(create)) };
        self.requests.send(request).await.expect("the stream is open");
        let created = self.next().await.expect("a response");
        assert!(created.created, "{created:?}");
        created
    }

    /// The next response within 5 s; `Err` for the stream's error or its end.
    async fn next(&mut self) -> Result<WatchResponse, String> {
        match tokio::time::timeout(Duration::from_secs(5), self.responses.message()).await {
            Err(_) => Err("nothing within 5s".into()),
            Ok(Ok(Some(response))) => Ok(response),
            Ok(Ok(None)) => Err("the stream ended".into()),
            Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}

fn key(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

async fn put(endpoint: &str, k: &str, value: Bytes) -> i64 {
    let request = PutRequest { key: key(k), value, ..PutRequest::default() };
    let response = KvClient::new(channel(endpoint)).put(request).await.expect("a put");
    response.into_inner().header.expect("a header").revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_behave_as_etcds() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let lives: Arc<Mutex<Vec<Arc<LiveFaults>>>> = Arc::default();
    let recorded = lives.clone();
    let cluster = tokio::task::spawn_blocking(move || {
        LocalCluster::start_with(3, dir.path(), move |config| {
            config.watch_progress = Duration::from_millis(200);
            recorded.lock().expect("not poisoned").push(config.live.clone());
        })
        .map(|cluster| (cluster, dir))
    })
    .await
    .expect("joined")
    .expect("a cluster");
    let (cluster, _dir) = cluster;
    let [one, _, three] = [0, 1, 2].map(|i| cluster.endpoints[i].clone());
    // The first write waits for a leader.
    let mut first = 0;
    for _ in 0..100 {
        let request = PutRequest { key: key("start"), ..PutRequest::default() };
        if let Ok(r) = KvClient::new(channel(&one)).put(request).await {
            first = r.into_inner().header.expect("a header").revision;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(first > 0, "no leader");

    // Progress notifications at the configured interval, at the revision delivered through.
    let mut watch = Watch::open(&one, false).await.expect("a stream");
    let create = WatchCreateRequest { key: key("p"), progress_notify: true, ..Default::default() };
    let created = watch.create(create).await;
    let progress = watch.next().await.expect("a progress notification");
    assert!(progress.events.is_empty() && progress.watch_id == created.watch_id, "{progress:?}");
    assert_eq!(progress.header.expect("a header").revision, first);

    // NOPUT: only the delete; a duplicate id is refused with etcd's message.
    let filters = vec![FilterType::Noput as i32];
    let create = WatchCreateRequest { key: key("f"), filters, watch_id: 7, ..Default::default() };
    assert_eq!(watch.create(create.clone()).await.watch_id, 7);
    let refused = watch.create(create).await;
    assert!(
        refused.canceled && refused.cancel_reason.contains("duplicate watch ID"),
        "{refused:?}"
    );
    put(&one, "f", key("v")).await;
    let delete = DeleteRangeRequest { key: key("f"), ..Default::default() };
    KvClient::new(channel(&one)).delete_range(delete).await.expect("a delete");
    let mut seen = watch.next().await.expect("the delete");
    while seen.watch_id != 7 {
        seen = watch.next().await.expect("the delete");
    }
    assert_eq!(seen.events.len(), 1, "{seen:?}");
    assert_eq!(seen.events[0].r#type, 1, "a DELETE");
    drop(watch);

    // One revision over 1.5 MiB: whole without fragments, in fragments when asked. No request
    // may be that large (etcd's --max-request-bytes), so it is one delete of two 900 KiB keys,
    // watched with their previous values.
    for k in ["big/1", "big/2"] {
        put(&one, k, Bytes::from(vec![b'x'; 900 * 1024])).await;
    }
    let delete =
        DeleteRangeRequest { key: key("big/"), range_end: key("big0"), ..Default::default() };
    let rev = KvClient::new(channel(&one)).delete_range(delete).await.expect("a delete");
    let rev = rev.into_inner().header.expect("a header").revision;
    for fragment in [false, true] {
        let mut watch = Watch::open(&one, false).await.expect("a stream");
        let create = WatchCreateRequest {
            key: key("big/"),
            range_end: key("big0"),
            start_revision: rev,
            fragment,
            prev_kv: true,
            ..Default::default()
        };
        watch.create(create).await;
        let mut parts = vec![watch.next().await.expect("events")];
        while parts.last().expect("one").fragment {
            parts.push(watch.next().await.expect("the next fragment"));
        }
        let events: usize = parts.iter().map(|p| p.events.len()).sum();
        assert_eq!((parts.len() > 1, events), (fragment, 2), "fragment={fragment}");
    }

    // Require-leader streams on a member cut off from the others end; a plain watch stays.
    let mut plain = Watch::open(&three, false).await.expect("a stream");
    plain.create(WatchCreateRequest { key: key("q"), ..Default::default() }).await;
    let mut leader_only = Watch::open(&three, true).await.expect("a stream");
    leader_only.create(WatchCreateRequest { key: key("q"), ..Default::default() }).await;
    let mut leases = LeaseClient::new(channel(&one));
    let lease = leases.lease_grant(LeaseGrantRequest { ttl: 60, id: 0 }).await;
    let lease = lease.expect("a lease").into_inner().id;
    let (keepalive_tx, keepalive_rx) = mpsc::channel(4);
    let mut request = Request::new(ReceiverStream::new(keepalive_rx));
    request.metadata_mut().insert("hasleader", "true".parse().expect("ascii"));
    let mut keepalives = LeaseClient::new(channel(&three))
        .lease_keep_alive(request)
        .await
        .expect("a stream")
        .into_inner();
    keepalive_tx.send(LeaseKeepAliveRequest { id: lease }).await.expect("open");
    assert!(keepalives.message().await.expect("an answer").expect("one").ttl > 0);

    let lives = lives.lock().expect("not poisoned").clone();
    lives[2].block([NodeId(1), NodeId(2)].into());
    lives[0].block([NodeId(3)].into());
    lives[1].block([NodeId(3)].into());
    // Three election timeouts without a leader (300-600 ms each), after losing it.
    let mut ended = Err(String::new());
    for _ in 0..4 {
        ended = leader_only.next().await;
        if ended.is_err() {
            break;
        }
    }
    let ended = ended.expect_err("the require-leader watch ended");
    assert!(ended.contains("Unavailable") && ended.contains("no leader"), "{ended}");
    let keepalive = tokio::time::timeout(Duration::from_secs(5), keepalives.message()).await;
    let keepalive = keepalive.expect("within 5s").expect_err("the keep-alive stream ended");
    assert!(keepalive.message().contains("no leader"), "{keepalive:?}");
    let quiet = plain.next().await;
    assert_eq!(quiet.err().as_deref(), Some("nothing within 5s"), "the plain watch stays open");
    drop(cluster);
}
