//! The client API: etcd v3's KV, Watch, Lease, Cluster and Maintenance services and raftbed's Lock
//! service, served over HTTP/2 on the node's `Net` (real TCP or turmoil), so the simulation
//! runs the very code real clients talk to.
//!
//! Each handler turns a request into a `Call` to the driver. What only the leader can serve
//! (writes, linearizable reads, lease renewals) is forwarded by a follower to the leader it
//! knows, once: a forwarded request that finds no leader fails definitely rather than hop on.
//!
//! raftbed's additions travel as request metadata, so plain etcd clients need none of them:
//! - `x-raftbed-client` and `x-raftbed-seq`: a session (a retry with the same pair applies once);
//! - `x-raftbed-consistency: lease|linearizable|serializable` for Range;
//! - on errors, `x-raftbed-definite: true|false` (false: the request may still take effect);
//! - on answers to writes, `x-raftbed-index`: the log index the command applied at.

mod cluster;
pub mod compactor;
mod forward;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod watches;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Response, Status};

use super::calls::{Call, CallError, Consistency, Query, QueryAnswer, Reply, Served};
use super::members::Directory;
use super::{Member, NodeConfig};
use crate::kv::ApiError;
use crate::proto::etcdserverpb::ResponseHeader;
use crate::proto::etcdserverpb::cluster_server::ClusterServer;
use crate::proto::etcdserverpb::kv_server::KvServer;
use crate::proto::etcdserverpb::lease_server::LeaseServer;
use crate::proto::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::proto::etcdserverpb::watch_server::WatchServer;
use crate::proto::raftbed::Outcome;
use crate::proto::raftbed::lock_server::LockServer;
use crate::raft::NodeId;
use crate::transport::net::Net;
pub use forward::Forwarder;
pub use watches::NO_LEADER_TIMEOUTS;

/// Request metadata: the client id of a session.
pub const CLIENT_HEADER: &str = "x-raftbed-client";
/// Request metadata: the sequence number within the session.
pub const SEQ_HEADER: &str = "x-raftbed-seq";
/// Request metadata: the read consistency.
pub const CONSISTENCY_HEADER: &str = "x-raftbed-consistency";
/// Error metadata: whether the request certainly did not take effect.
pub const DEFINITE_HEADER: &str = "x-raftbed-definite";
/// Response metadata: the log index a write applied at.
pub const INDEX_HEADER: &str = "x-raftbed-index";
/// Response metadata on Maintenance.Status: the leader lease's remaining milliseconds.
pub const LEASE_HEADER: &str = "x-raftbed-lease-ms";
/// Request metadata: set on a request a follower forwarded.
pub const FORWARDED_HEADER: &str = "x-raftbed-forwarded";

/// What every handler shares.
pub struct Api<N: Net> {
    id: NodeId,
    cluster_id: u64,
    /// The members of this node's latest configuration, as the driver follows them.
    directory: Arc<Directory>,
    calls: mpsc::Sender<Call>,
    revision: watch::Receiver<i64>,
    forward: Forwarder<N>,
    leader: watch::Receiver<Option<NodeId>>,
    min_lease_ttl: i64,
    election_timeout: Duration,
    watch_progress: Duration,
    bugs: super::ServerBugs,
    /// The largest write proposed, encoded (etcd's `--max-request-bytes`).
    max_request_bytes: usize,
    /// This API itself, for tasks that outlive a handler's borrow.
    me: std::sync::Weak<Api<N>>,
}

impl<N: Net + Send + Sync> Api<N> {
    /// The API of the node `config` describes, calling its driver through `calls` and
    /// following what it publishes: the state machine's `revision` and the `leader` it knows.
    pub fn new(
        config: &NodeConfig,
        calls: mpsc::Sender<Call>,
        revision: watch::Receiver<i64>,
        leader: watch::Receiver<Option<NodeId>>,
        net: N,
        directory: Arc<Directory>,
    ) -> Arc<Api<N>> {
        let forward = Forwarder::new(
            net,
            directory.clone(),
            config.request_timeout,
            leader.clone(),
            config.live.clone(),
        );
        Arc::new_cyclic(|me| Api {
            id: config.id,
            cluster_id: config.cluster_id.unwrap_or_else(|| cluster_id(&config.members)),
            directory,
            calls,
            revision,
            forward,
            leader,
            min_lease_ttl: config.timing.min_lease_ttl(),
            election_timeout: config.timing.election_timeout,
            watch_progress: config.watch_progress,
            bugs: config.bugs,
            max_request_bytes: config.max_request_bytes,
            me: me.clone(),
        })
    }

    fn shared(&self) -> Arc<Api<N>> {
        self.me.upgrade().expect("an API is used only while it is alive")
    }

    /// Sends a call to the driver and waits for its answer. A learner serves its status and
    /// serializable reads only, as etcd 3.4's.
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Call) -> Result<Served<T>, CallError> {
        let (tx, rx) = oneshot::channel();
        let call = make(tx);
        if !call.learner_may() {
            self.refuse_learner().map_err(CallError::Api)?;
        }
        if self.calls.try_send(call).is_err() {
            return Err(ApiError::too_many_requests().into());
        }
        rx.await.unwrap_or(Err(CallError::Api(ApiError::stopped())))
    }

    async fn propose(
        &self,
        command: crate::proto::raftbed::Command,
    ) -> Result<Served<Outcome>, CallError> {
        // etcd's two layers, on whichever member the request arrives at (both definite:
        // nothing was proposed): gRPC refuses a message more than its overhead past
        // --max-request-bytes, the server one past --max-request-bytes.
        let (size, max) = (prost::Message::encoded_len(&command), self.max_request_bytes);
        if size > max + super::GRPC_OVERHEAD_BYTES {
            return Err(ApiError::message_too_large(size, max + super::GRPC_OVERHEAD_BYTES).into());
        }
        if size > max {
            return Err(ApiError::request_too_large().into());
        }
        self.call(|reply| Call::Propose { command, reply }).await
    }

    async fn read(
        &self,
        query: Query,
        consistency: Consistency,
    ) -> Result<Served<QueryAnswer>, CallError> {
        self.call(|reply| Call::Read { query, consistency, reply }).await
    }

    /// etcd's refusal of what a learner does not serve.
    fn refuse_learner(&self) -> Result<(), ApiError> {
        if self.directory.is_learner() {
            return Err(ApiError::new(
                tonic::Code::FailedPrecondition,
                "etcdserver: rpc not supported for learner",
            ));
        }
        Ok(())
    }

    /// A response header for an answer given in `term`.
    fn header(&self, header: Option<ResponseHeader>, term: u64) -> Option<ResponseHeader> {
        let revision = header.map_or(0, |h| h.revision);
        Some(ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.id.0,
            revision,
            raft_term: term,
        })
    }
}

/// The cluster's id: a hash of its members, the same on every node.
pub fn cluster_id(members: &BTreeMap<NodeId, Member>) -> u64 {
    // FNV-1a: stable across builds and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (id, member) in members {
        for byte in id.0.to_le_bytes().iter().chain(member.peer_addr.as_bytes()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The gRPC status for an API error, with its definiteness.
pub fn status(error: &ApiError) -> Status {
    let mut metadata = MetadataMap::new();
    let definite = if error.definite { "true" } else { "false" };
    metadata.insert(DEFINITE_HEADER, MetadataValue::from_static(definite));
    Status::with_metadata(error.code, error.message.clone(), metadata)
}

/// What a handler answers when the driver would not: `Ok(leader)` to forward to.
fn unless_forwardable(error: CallError, metadata: &MetadataMap) -> Result<NodeId, Status> {
    match error {
        CallError::NotLeader(Some(leader)) if !metadata.contains_key(FORWARDED_HEADER) => {
            Ok(leader)
        }
        CallError::NotLeader(Some(_)) => Err(status(&ApiError::not_leader())),
        CallError::NotLeader(None) => Err(status(&ApiError::no_leader())),
        CallError::Api(error) => Err(status(&error)),
    }
}

/// The session fields of a request (0, 0: none).
fn session(metadata: &MetadataMap) -> Result<(u64, u64), Status> {
    let field = |name: &str| -> Result<u64, Status> {
        match metadata.get(name) {
            None => Ok(0),
            Some(value) => value.to_str().ok().and_then(|v| v.parse().ok()).ok_or_else(|| {
                status(&ApiError::invalid(format!("raftbed: {name} must be an unsigned integer")))
            }),
        }
    };
    Ok((field(CLIENT_HEADER)?, field(SEQ_HEADER)?))
}

/// A successful answer to a write, with the index it applied at.
fn written<T>(message: T, index: u64) -> Response<T> {
    let mut response = Response::new(message);
    if let Ok(value) = MetadataValue::try_from(index.to_string()) {
        response.metadata_mut().insert(INDEX_HEADER, value);
    }
    response
}

/// Serves the API on every connection `listener` accepts, and compacts on `auto_compaction`'s
/// schedule while this node leads.
pub async fn serve<N: Net + Send + Sync>(
    net: N,
    addr: String,
    listener: N::Listener,
    api: Arc<Api<N>>,
    keepalive: Duration,
    auto_compaction: Option<compactor::AutoCompaction>,
) {
    // etcd's gRPC limit (--max-request-bytes and gRPC's overhead) is enforced in `propose`,
    // with grpc-go's code: tonic's own refusal says OutOfRange. tonic's limit stays above it,
    // at twice, so that only a message no etcd would take meets it.
    let limit = 2 * (api.max_request_bytes + super::GRPC_OVERHEAD_BYTES);
    let routes = tonic::service::Routes::new(
        KvServer::from_arc(api.clone()).max_decoding_message_size(limit),
    )
    .add_service(LeaseServer::from_arc(api.clone()).max_decoding_message_size(limit))
    .add_service(ClusterServer::from_arc(api.clone()).max_decoding_message_size(limit))
    .add_service(MaintenanceServer::from_arc(api.clone()).max_decoding_message_size(limit))
    .add_service(WatchServer::from_arc(api.clone()).max_decoding_message_size(limit))
    .add_service(LockServer::from_arc(api.clone()).max_decoding_message_size(limit))
    .prepare();
    if let Some(mode) = auto_compaction {
        hyper::rt::Executor::execute(
            &crate::transport::net::Spawner::of::<N>(),
            compactor::run(api, mode),
        );
    }
    net.serve_rpc(&addr, listener, routes, keepalive, keepalive * 4).await;
}
