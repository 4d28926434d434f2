//! etcd's KV service: Range, Put, DeleteRange, Txn.

use tonic::{Request, Response, Status};

use super::{Api, CONSISTENCY_HEADER, session, status, unless_forwardable, written};
use crate::kv::{ApiError, check_delete, check_put, check_txn};
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use crate::proto::raftbed::outcome::Result as Answer;
use crate::proto::raftbed::{Command, command::Op};
use crate::server::calls::{Consistency, Query, QueryAnswer};
use crate::transport::net::Net;

impl<N: Net + Send + Sync> Api<N> {
    /// Proposes `op` under the request's session; answers the outcome `pick` extracts, or
    /// forwards the request to the leader through `forward`.
    pub(super) async fn write<Req, Resp, Fut>(
        &self,
        request: Request<Req>,
        op: Op,
        pick: impl FnOnce(Answer) -> Option<Resp>,
        forward: impl FnOnce(crate::transport::channel::RpcChannel, Request<Req>) -> Fut,
    ) -> Result<Response<Resp>, Status>
    where
        Fut: std::future::Future<Output = Result<Response<Resp>, Status>>,
        Resp: HasHeader,
    {
        let (client_id, seq) = session(request.metadata())?;
        let command = Command { client_id, seq, op: Some(op) };
        match self.propose(command).await {
            Ok(served) => match served.value.result {
                Some(Answer::Refusal(refusal)) => Err(status(&ApiError::from(&refusal))),
                Some(answer) => {
                    let mut response = pick(answer).ok_or_else(|| {
                        status(&ApiError::invalid(
                            "raftbed: the session's last answer was for another request",
                        ))
                    })?;
                    let header = self.header(response.header(), served.term);
                    response.set_header(header);
                    Ok(written(response, served.index))
                }
                None => Err(status(&ApiError::invalid("raftbed: empty outcome"))),
            },
            Err(error) => {
                let leader = unless_forwardable(error, request.metadata())?;
                self.forward.unary(leader, request, true, forward).await
            }
        }
    }
}

impl<N: Net + Send + Sync> Api<N> {
    /// Answers `query` here at `consistency` with the response `pick` makes of the answer, or
    /// forwards the request to the leader through `forward`.
    pub(super) async fn read_or_forward<Req, Resp, Fut>(
        &self,
        request: Request<Req>,
        query: Query,
        consistency: Consistency,
        pick: impl FnOnce(QueryAnswer) -> Option<Resp>,
        forward: impl FnOnce(crate::transport::channel::RpcChannel, Request<Req>) -> Fut,
    ) -> Result<Response<Resp>, Status>
    where
        Fut: std::future::Future<Output = Result<Response<Resp>, Status>>,
        Resp: HasHeader,
    {
        match self.read(query, consistency).await {
            Ok(served) => {
                let mut response = pick(served.value)
                    .ok_or_else(|| status(&ApiError::invalid("raftbed: mismatched answer")))?;
                let header = self.header(response.header(), served.term);
                response.set_header(header);
                Ok(Response::new(response))
            }
            Err(error) => {
                let leader = unless_forwardable(error, request.metadata())?;
                self.forward.unary(leader, request, false, forward).await
            }
        }
    }
}

/// Responses whose header the API fills in.
pub(super) trait HasHeader {
    fn header(&self) -> Option<crate::proto::etcdserverpb::ResponseHeader>;
    fn set_header(&mut self, header: Option<crate::proto::etcdserverpb::ResponseHeader>);
}

macro_rules! has_header {
    ($($t:ty),*) => {$(
        impl HasHeader for $t {
            fn header(&self) -> Option<crate::proto::etcdserverpb::ResponseHeader> {
                self.header
            }
            fn set_header(&mut self, header: Option<crate::proto::etcdserverpb::ResponseHeader>) {
                self.header = header;
            }
        }
    )*};
}

has_header!(
    RangeResponse,
    PutResponse,
    DeleteRangeResponse,
    TxnResponse,
    CompactionResponse,
    crate::proto::etcdserverpb::LeaseGrantResponse,
    crate::proto::etcdserverpb::LeaseRevokeResponse,
    crate::proto::etcdserverpb::LeaseTimeToLiveResponse,
    crate::proto::etcdserverpb::LeaseLeasesResponse,
    crate::proto::raftbed::LockResponse,
    crate::proto::raftbed::UnlockResponse,
    crate::proto::raftbed::GuardedPutResponse
);

/// The consistency a Range asks for.
fn consistency(request: &Request<RangeRequest>) -> Result<Consistency, Status> {
    if request.get_ref().serializable {
        return Ok(Consistency::Serializable);
    }
    match request.metadata().get(CONSISTENCY_HEADER) {
        None => Ok(Consistency::Linearizable),
        Some(value) => value.to_str().ok().and_then(Consistency::parse).ok_or_else(|| {
            status(&ApiError::invalid(format!(
                "raftbed: {CONSISTENCY_HEADER} must be linearizable, lease or serializable"
            )))
        }),
    }
}

#[tonic::async_trait]
impl<N: Net + Send + Sync> Kv for Api<N> {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let mut consistency = consistency(&request)?;
        if consistency == Consistency::Serializable
            && request.get_ref().revision > *self.revision.borrow()
        {
            // A revision this member has not reached may exist already: ask as a linearizable
            // read (one ReadIndex round at the leader, which has applied at least as far as it
            // committed), so "future revision" means the cluster has not reached it. clientv3's
            // STMs read at the revision of their first read, from any member. etcd 3.4 answers
            // from the lagging member and fails them.
            consistency = Consistency::Linearizable;
        }
        let query = Query::Range(request.get_ref().clone());
        let pick = |answer| match answer {
            QueryAnswer::Range(response) => Some(response),
            _ => None,
        };
        self.read_or_forward(request, query, consistency, pick, |channel, request| async move {
            KvClient::new(channel).range(request).await
        })
        .await
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        check_put(request.get_ref()).map_err(|e| status(&e))?;
        let op = Op::Put(request.get_ref().clone());
        let pick = |answer| match answer {
            Answer::Put(response) => Some(response),
            _ => None,
        };
        self.write(request, op, pick, |channel, request| async move {
            KvClient::new(channel).put(request).await
        })
        .await
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        check_delete(request.get_ref()).map_err(|e| status(&e))?;
        let op = Op::DeleteRange(request.get_ref().clone());
        let pick = |answer| match answer {
            Answer::DeleteRange(response) => Some(response),
            _ => None,
        };
        self.write(request, op, pick, |channel, request| async move {
            KvClient::new(channel).delete_range(request).await
        })
        .await
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        check_txn(request.get_ref()).map_err(|e| status(&e))?;
        let op = Op::Txn(request.get_ref().clone());
        let pick = |answer| match answer {
            Answer::Txn(response) => Some(response),
            _ => None,
        };
        self.write(request, op, pick, |channel, request| async move {
            KvClient::new(channel).txn(request).await
        })
        .await
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        // Applied in memory when it commits: `physical` is always true here.
        let op = Op::Compact(*request.get_ref());
        let pick = |answer| match answer {
            Answer::Compact(response) => Some(response),
            _ => None,
        };
        self.write(request, op, pick, |channel, request| async move {
            KvClient::new(channel).compact(request).await
        })
        .await
    }
}
