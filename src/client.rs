//! A client for raftbed's API (and etcd's: the same wire protocol), over any `Net`: the CLI uses
//! it on real TCP, the simulation's workload on turmoil's.
//!
//! Writes carry a session (a client id and a sequence number), so a write retried after a
//! timeout, through any node, applies at most once. An error says whether the request surely
//! did not happen (`definite`) or may have (a timeout, a lost connection): histories record the
//! first as `fail` and the second as `info`.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Response, Status};

use crate::proto::etcdserverpb::cluster_client::ClusterClient;
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseKeepAliveRequest, LeaseRevokeRequest, MemberAddRequest, MemberAddResponse,
    MemberListRequest, MemberListResponse, MemberPromoteRequest, MemberPromoteResponse,
    MemberRemoveRequest, MemberRemoveResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RequestOp, StatusRequest, StatusResponse, TxnRequest, TxnResponse,
};
use crate::proto::raftbed::lock_client::LockClient;
use crate::proto::raftbed::{
    GuardedPutRequest, GuardedPutResponse, LockRequest, LockResponse, UnlockRequest, UnlockResponse,
};
use crate::server::api::{
    CLIENT_HEADER, CONSISTENCY_HEADER, DEFINITE_HEADER, INDEX_HEADER, LEASE_HEADER, SEQ_HEADER,
};
use crate::server::calls::Consistency;
use crate::transport::channel::RpcChannel;
use crate::transport::net::Net;

/// A failed request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ClientError {
    /// The gRPC code.
    pub code: Code,
    /// What went wrong.
    pub message: String,
    /// The request certainly did not take effect.
    pub definite: bool,
}

impl ClientError {
    fn from_status(status: &Status) -> ClientError {
        let definite = status
            .metadata()
            .get(DEFINITE_HEADER)
            .is_some_and(|value| value.to_str().is_ok_and(|v| v == "true"));
        ClientError { code: status.code(), message: status.message().to_string(), definite }
    }
}

/// An answer, with the log index it applied at when the node said.
#[derive(Clone, Debug)]
pub struct Answered<T> {
    /// The response.
    pub response: T,
    /// The log index (writes only).
    pub index: Option<u64>,
    /// The leader lease's remaining milliseconds (status only, from a leader holding one).
    pub lease_ms: Option<u64>,
}

/// A client of a cluster. A clone shares the connections made so far.
#[derive(Clone)]
pub struct Client<N: Net> {
    net: N,
    endpoints: Vec<String>,
    channels: Vec<Option<RpcChannel>>,
    current: usize,
    client_id: u64,
    seq: u64,
    /// Each attempt's deadline.
    pub timeout: Duration,
    /// Attempts per request (a write is retried with its sequence number).
    pub attempts: usize,
}

impl<N: Net + Send + Sync> Client<N> {
    /// A client of `endpoints` (`host:port`), starting with the first, with session `client_id`
    /// (0: no session, so writes are not retried after an indefinite failure).
    pub fn new(net: N, endpoints: Vec<String>, client_id: u64) -> Client<N> {
        let channels = vec![None; endpoints.len()];
        Client {
            net,
            endpoints,
            channels,
            current: 0,
            client_id,
            seq: 0,
            timeout: Duration::from_secs(5),
            attempts: 3,
        }
    }

    /// Talks to endpoint `index` next.
    pub fn prefer(&mut self, index: usize) {
        self.current = index % self.endpoints.len().max(1);
    }

    /// The sequence number of this client's last write.
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// The endpoint requests go to next.
    pub fn current(&self) -> usize {
        self.current
    }

    fn channel(&mut self, index: usize) -> Result<RpcChannel, ClientError> {
        if let Some(channel) = &self.channels[index] {
            return Ok(channel.clone());
        }
        let channel =
            self.net.channel(&self.endpoints[index], self.timeout, None).map_err(|message| {
                ClientError { code: Code::InvalidArgument, message, definite: true }
            })?;
        self.channels[index] = Some(channel.clone());
        Ok(channel)
    }

    /// Sends `message` through `call`, moving on to the next endpoint when a node cannot serve
    /// it. A write keeps its sequence number across attempts, so it applies at most once.
    async fn unary<Req, Resp, Fut>(
        &mut self,
        message: Req,
        write: bool,
        consistency: Option<Consistency>,
        call: impl Fn(RpcChannel, Request<Req>) -> Fut,
    ) -> Result<Answered<Resp>, ClientError>
    where
        Req: Clone,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let session = write && self.client_id != 0;
        if write {
            self.seq += 1;
        }
        let mut maybe_happened = false;
        let mut last = None;
        for _ in 0..self.attempts.max(1) {
            let channel = self.channel(self.current)?;
            let mut request = Request::new(message.clone());
            if session {
                let metadata = request.metadata_mut();
                metadata.insert(CLIENT_HEADER, MetadataValue::from(self.client_id));
                metadata.insert(SEQ_HEADER, MetadataValue::from(self.seq));
            }
            if let Some(consistency) = consistency {
                let value = MetadataValue::from_static(consistency.name());
                request.metadata_mut().insert(CONSISTENCY_HEADER, value);
            }
            request.set_timeout(self.timeout);
            let error = match tokio::time::timeout(self.timeout, call(channel, request)).await {
                Ok(Ok(response)) => {
                    let number = |name: &str| {
                        response.metadata().get(name).and_then(|v| v.to_str().ok()?.parse().ok())
                    };
                    let (index, lease_ms) = (number(INDEX_HEADER), number(LEASE_HEADER));
                    return Ok(Answered { response: response.into_inner(), index, lease_ms });
                }
                Ok(Err(status)) => ClientError::from_status(&status),
                Err(_) => ClientError {
                    code: Code::DeadlineExceeded,
                    message: format!(
                        "no answer from {} within {:?}",
                        self.endpoints[self.current], self.timeout
                    ),
                    definite: false,
                },
            };
            // A node that could not serve it (no leader, not reachable, timed out) is worth
            // trying another; a refusal on the merits is final.
            let elsewhere = matches!(
                error.code,
                Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::Unknown
                    | Code::ResourceExhausted
                    | Code::Cancelled
            );
            maybe_happened |= write && !error.definite;
            last = Some(error);
            if !elsewhere || (maybe_happened && !session) {
                break;
            }
            self.current = (self.current + 1) % self.endpoints.len();
        }
        let mut error = last.expect("at least one attempt");
        // After an attempt that may have happened, no later refusal proves it did not.
        error.definite = if write { !maybe_happened && error.definite } else { true };
        Err(error)
    }

    /// Writes `key`.
    pub async fn put(
        &mut self,
        key: Bytes,
        value: Bytes,
    ) -> Result<Answered<PutResponse>, ClientError> {
        let request = PutRequest { key, value, ..PutRequest::default() };
        self.unary(request, true, None, |c, r| async move { KvClient::new(c).put(r).await }).await
    }

    /// Writes `key` attached to `lease`.
    pub async fn put_with_lease(
        &mut self,
        key: Bytes,
        value: Bytes,
        lease: i64,
    ) -> Result<Answered<PutResponse>, ClientError> {
        let request = PutRequest { key, value, lease, ..PutRequest::default() };
        self.unary(request, true, None, |c, r| async move { KvClient::new(c).put(r).await }).await
    }

    /// Reads `key` (to `range_end`, etcd-style, when not empty) at `consistency`.
    pub async fn get(
        &mut self,
        key: Bytes,
        range_end: Bytes,
        consistency: Consistency,
    ) -> Result<RangeResponse, ClientError> {
        let request = RangeRequest {
            key,
            range_end,
            serializable: consistency == Consistency::Serializable,
            ..RangeRequest::default()
        };
        let answered = self
            .unary(request, false, Some(consistency), |c, r| async move {
                KvClient::new(c).range(r).await
            })
            .await?;
        Ok(answered.response)
    }

    /// Deletes `key` (to `range_end` when not empty).
    pub async fn delete(
        &mut self,
        key: Bytes,
        range_end: Bytes,
    ) -> Result<Answered<DeleteRangeResponse>, ClientError> {
        let request = DeleteRangeRequest { key, range_end, prev_kv: false };
        self.unary(
            request,
            true,
            None,
            |c, r| async move { KvClient::new(c).delete_range(r).await },
        )
        .await
    }

    /// Runs a transaction.
    pub async fn txn(&mut self, request: TxnRequest) -> Result<Answered<TxnResponse>, ClientError> {
        self.unary(request, true, None, |c, r| async move { KvClient::new(c).txn(r).await }).await
    }

    /// Compare-and-set: sets `key` to `to` if its value is `from` (`None`: if it does not
    /// exist). The answer says whether it did, and the transaction's reply (whose failure
    /// branch read the key).
    pub async fn cas(
        &mut self,
        key: Bytes,
        from: Option<Bytes>,
        to: Bytes,
    ) -> Result<Answered<TxnResponse>, ClientError> {
        let compare = match from {
            Some(value) => Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Value as i32,
                key: key.clone(),
                target_union: Some(TargetUnion::Value(value)),
                range_end: Bytes::new(),
            },
            None => Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Version as i32,
                key: key.clone(),
                target_union: Some(TargetUnion::Version(0)),
                range_end: Bytes::new(),
            },
        };
        let put = PutRequest { key: key.clone(), value: to, ..PutRequest::default() };
        let get = RangeRequest { key, ..RangeRequest::default() };
        self.txn(TxnRequest {
            compare: vec![compare],
            success: vec![RequestOp { request: Some(Op::RequestPut(put)) }],
            failure: vec![RequestOp { request: Some(Op::RequestRange(get)) }],
        })
        .await
    }

    /// Grants a lease of `ttl` seconds.
    pub async fn lease_grant(&mut self, ttl: i64) -> Result<LeaseGrantResponse, ClientError> {
        let request = LeaseGrantRequest { ttl, id: 0 };
        let answered =
            self.unary(request, true, None, |c, r| async move {
                LeaseClient::new(c).lease_grant(r).await
            })
            .await?;
        Ok(answered.response)
    }

    /// Renews lease `id` once; the renewed TTL (0 or less: the lease is gone).
    pub async fn keep_alive_once(&mut self, id: i64) -> Result<i64, ClientError> {
        let answered = self
            .unary(id, false, None, |c, r| async move {
                let (metadata, extensions, id) = r.into_parts();
                let once = tokio_stream::iter([LeaseKeepAliveRequest { id }]);
                let mut stream = LeaseClient::new(c)
                    .lease_keep_alive(Request::from_parts(metadata, extensions, once))
                    .await?;
                let first = stream.get_mut().message().await?;
                first
                    .map(Response::new)
                    .ok_or_else(|| Status::unavailable("the keep-alive stream closed"))
            })
            .await?;
        Ok(answered.response.ttl)
    }

    /// Revokes lease `id`, deleting its keys.
    pub async fn lease_revoke(&mut self, id: i64) -> Result<(), ClientError> {
        let request = LeaseRevokeRequest { id };
        self.unary(
            request,
            true,
            None,
            |c, r| async move { LeaseClient::new(c).lease_revoke(r).await },
        )
        .await
        .map(|_| ())
    }

    /// Waits for lock `name` under `lease`; answers the key and the fencing token.
    pub async fn lock(&mut self, name: Bytes, lease: i64) -> Result<LockResponse, ClientError> {
        let request = LockRequest { name, lease };
        let answered = self
            .unary(request, true, None, |c, r| async move { LockClient::new(c).lock(r).await })
            .await?;
        Ok(answered.response)
    }

    /// Releases a lock by its key.
    pub async fn unlock(&mut self, key: Bytes) -> Result<UnlockResponse, ClientError> {
        let request = UnlockRequest { key };
        let answered = self
            .unary(request, true, None, |c, r| async move { LockClient::new(c).unlock(r).await })
            .await?;
        Ok(answered.response)
    }

    /// Writes `key` if `token` is still lock `lock`'s newest.
    pub async fn guarded_put(
        &mut self,
        lock: Bytes,
        token: i64,
        key: Bytes,
        value: Bytes,
    ) -> Result<GuardedPutResponse, ClientError> {
        let request = GuardedPutRequest { lock, token, key, value };
        let answered =
            self.unary(request, true, None, |c, r| async move {
                LockClient::new(c).guarded_put(r).await
            })
            .await?;
        Ok(answered.response)
    }

    /// The status of endpoint `index` (that node only, no retries elsewhere).
    pub async fn status(&mut self, index: usize) -> Result<StatusResponse, ClientError> {
        Ok(self.status_and_lease(index).await?.0)
    }

    /// The status of endpoint `index`, and its leader lease's remaining milliseconds if it
    /// holds one (raftbed only).
    pub async fn status_and_lease(
        &mut self,
        index: usize,
    ) -> Result<(StatusResponse, Option<u64>), ClientError> {
        let (attempts, current) = (self.attempts, self.current);
        self.attempts = 1;
        self.current = index;
        let answer = self
            .unary(StatusRequest {}, false, None, |c, r| async move {
                MaintenanceClient::new(c).status(r).await
            })
            .await;
        self.attempts = attempts;
        self.current = current;
        let answer = answer?;
        Ok((answer.response, answer.lease_ms))
    }

    /// The cluster's members, as the endpoint tried answers (a learner refuses).
    pub async fn member_list(&mut self) -> Result<MemberListResponse, ClientError> {
        let list = |c, r| async move { ClusterClient::new(c).member_list(r).await };
        Ok(self.unary(MemberListRequest::default(), false, None, list).await?.response)
    }

    /// Adds a member reached at `peer_urls` (a learner if `learner`).
    pub async fn member_add(
        &mut self,
        peer_urls: Vec<String>,
        learner: bool,
    ) -> Result<MemberAddResponse, ClientError> {
        let request = MemberAddRequest { peer_ur_ls: peer_urls, is_learner: learner };
        let add = |c, r| async move { ClusterClient::new(c).member_add(r).await };
        Ok(self.unary(request, true, None, add).await?.response)
    }

    /// Removes member `id`.
    pub async fn member_remove(&mut self, id: u64) -> Result<MemberRemoveResponse, ClientError> {
        let remove = |c, r| async move { ClusterClient::new(c).member_remove(r).await };
        Ok(self.unary(MemberRemoveRequest { id }, true, None, remove).await?.response)
    }

    /// Promotes learner `id` to a voter.
    pub async fn member_promote(&mut self, id: u64) -> Result<MemberPromoteResponse, ClientError> {
        let promote = |c, r| async move { ClusterClient::new(c).member_promote(r).await };
        Ok(self.unary(MemberPromoteRequest { id }, true, None, promote).await?.response)
    }
}
