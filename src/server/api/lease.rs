//! etcd's Lease service. Grants and revokes go through the log; renewals and time-to-live are
//! answered by the leader, after a heartbeat round confirms it still leads (a deposed leader
//! renewing a lease would promise the client time the real leader does not give).

use std::pin::Pin;

use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{Api, status, unless_forwardable};
use crate::kv::{ApiError, MAX_LEASE_TTL};
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::proto::raftbed::command::Op;
use crate::proto::raftbed::outcome::Result as Answer;
use crate::server::calls::{Consistency, Query, QueryAnswer};
use crate::transport::net::Net;

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

impl<N: Net + Send + Sync> Api<N> {
    /// Renews lease `id` here, or at the leader.
    async fn keep_alive_once(
        &self,
        id: i64,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<LeaseKeepAliveResponse, Status> {
        match self.read(Query::KeepAlive(id), Consistency::Linearizable).await {
            Ok(served) => match served.value {
                QueryAnswer::KeepAlive(ttl) => {
                    Ok(LeaseKeepAliveResponse { header: self.header(None, served.term), id, ttl })
                }
                _ => Err(status(&ApiError::invalid("raftbed: mismatched answer"))),
            },
            Err(error) => {
                let leader = unless_forwardable(error, metadata)?;
                let mut request = Request::new(());
                *request.metadata_mut() = metadata.clone();
                let response = self
                    .forward
                    .unary(leader, request, false, |channel, request| async move {
                        let (metadata, extensions, ()) = request.into_parts();
                        let once = tokio_stream::iter([LeaseKeepAliveRequest { id }]);
                        let request = Request::from_parts(metadata, extensions, once);
                        let mut responses =
                            LeaseClient::new(channel).lease_keep_alive(request).await?;
                        let first = responses.get_mut().message().await?;
                        first.map(Response::new).ok_or_else(|| Status::unavailable("no answer"))
                    })
                    .await?;
                Ok(response.into_inner())
            }
        }
    }
}

#[tonic::async_trait]
impl<N: Net + Send + Sync> Lease for Api<N> {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let mut grant = *request.get_ref();
        if grant.ttl > MAX_LEASE_TTL {
            return Err(status(&ApiError::lease_ttl_too_large()));
        }
        // etcd's rule: a lease shorter than the time an election may take would expire
        // during one, so it is raised to that minimum.
        grant.ttl = grant.ttl.max(self.min_lease_ttl);
        let pick = |answer| match answer {
            Answer::LeaseGrant(response) => Some(response),
            _ => None,
        };
        self.write(request, Op::LeaseGrant(grant), pick, |channel, request| async move {
            LeaseClient::new(channel).lease_grant(request).await
        })
        .await
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let op = Op::LeaseRevoke(*request.get_ref());
        let pick = |answer| match answer {
            Answer::LeaseRevoke(response) => Some(response),
            _ => None,
        };
        self.write(request, op, pick, |channel, request| async move {
            LeaseClient::new(channel).lease_revoke(request).await
        })
        .await
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        let metadata = request.metadata().clone();
        let require_leader = super::watches::requires_leader(&metadata);
        if require_leader && self.leader.borrow().is_none() {
            return Err(status(&ApiError::no_leader()));
        }
        let mut requests = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        // The handler must return the stream before it is fed, so the loop runs on its own;
        // the API is shared, not borrowed.
        let api = self.shared();
        let lost = super::watches::leader_lost(self.leader.clone(), self.election_timeout);
        hyper::rt::Executor::execute(&crate::transport::net::Spawner::of::<N>(), async move {
            tokio::pin!(lost);
            loop {
                let next = tokio::select! {
                    next = requests.message() => next,
                    // etcd ends require-leader streams, keep-alives too, when the member has
                    // had no leader for a while (see `watches`).
                    () = &mut lost, if require_leader => {
                        let _ = tx.send(Err(status(&ApiError::no_leader()))).await;
                        return;
                    }
                };
                let Ok(Some(next)) = next else { return };
                let answer = api.keep_alive_once(next.id, &metadata).await;
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let query = Query::TimeToLive { id: request.get_ref().id, keys: request.get_ref().keys };
        let pick = |answer| match answer {
            QueryAnswer::TimeToLive(response) => Some(response),
            _ => None,
        };
        let consistency = Consistency::Linearizable;
        self.read_or_forward(request, query, consistency, pick, |channel, request| async move {
            LeaseClient::new(channel).lease_time_to_live(request).await
        })
        .await
    }

    async fn lease_leases(
        &self,
        request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let pick = |answer| match answer {
            QueryAnswer::Leases(ids) => Some(LeaseLeasesResponse {
                header: None,
                leases: ids.into_iter().map(|id| LeaseStatus { id }).collect(),
            }),
            _ => None,
        };
        let (query, consistency) = (Query::Leases, Consistency::Linearizable);
        self.read_or_forward(request, query, consistency, pick, |channel, request| async move {
            LeaseClient::new(channel).lease_leases(request).await
        })
        .await
    }
}
