//! etcd's Maintenance service. Status and HashKV are answered by the member asked, from what
//! it holds; MoveLeader by the leader, once the transfer is done; Defragment and Alarm as
//! raftbed's store needs (sled compacts itself; raftbed raises no alarm); Snapshot streams the
//! member's state machine in etcd's frame. Hash answers Unimplemented, saying why.

use std::time::Duration;

use tonic::{Request, Response, Status};

use super::{Api, status};
use crate::kv::ApiError;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    ResponseHeader, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use crate::raft::{Error as RaftError, NodeId};
use crate::server::calls::{Call, CallError, Consistency, Query, QueryAnswer};
use crate::transport::net::Net;

impl<N: Net + Send + Sync> Api<N> {
    pub(super) async fn local_status(
        &self,
    ) -> Result<(StatusResponse, u64, Option<std::time::Duration>), Status> {
        match self.call(|reply| Call::Status { reply }).await {
            Ok(served) => Ok((served.value.status, served.term, served.value.lease_left)),
            Err(e) => Err(call_status(e)),
        }
    }

    /// This member's header, as of now.
    async fn now_header(&self) -> Result<Option<ResponseHeader>, Status> {
        let (response, term, _) = self.local_status().await?;
        Ok(self.header(response.header, term))
    }
}

fn call_status(error: CallError) -> Status {
    match error {
        CallError::Api(error) => status(&error),
        CallError::NotLeader(_) => status(&ApiError::not_leader()),
    }
}

/// A header at `revision`, for `Api::header` to complete.
fn at_revision(revision: i64) -> ResponseHeader {
    ResponseHeader { revision, ..ResponseHeader::default() }
}

fn failed(message: &str) -> Status {
    status(&ApiError::new(tonic::Code::FailedPrecondition, message))
}

#[tonic::async_trait]
impl<N: Net + Send + Sync> Maintenance for Api<N> {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let (mut response, term, lease) = self.local_status().await?;
        response.header = self.header(response.header, term);
        let mut response = Response::new(response);
        // raftbed's addition: the leader lease's remaining milliseconds, on the node's clock.
        if let Some(lease) = lease
            && let Ok(value) =
                tonic::metadata::MetadataValue::try_from(lease.as_millis().to_string())
        {
            response.metadata_mut().insert(super::LEASE_HEADER, value);
        }
        Ok(response)
    }

    /// No alarm is ever raised (raftbed has no backend quota yet), so the list is empty and
    /// disarming has nothing to do, as on an etcd with no alarm.
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        use crate::proto::etcdserverpb::alarm_request::AlarmAction;
        match AlarmAction::try_from(request.get_ref().action) {
            Ok(AlarmAction::Get | AlarmAction::Deactivate) => {}
            Ok(AlarmAction::Activate) => {
                return Err(Status::unimplemented(
                    "raftbed: alarms are not raised through the API (raftbed raises no alarm yet)",
                ));
            }
            Err(_) => return Err(Status::invalid_argument("unknown alarm action")),
        }
        Ok(Response::new(AlarmResponse { header: self.now_header().await?, alarms: Vec::new() }))
    }

    /// sled reclaims space as it goes; there is no file to rewrite.
    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Ok(Response::new(DefragmentResponse { header: self.now_header().await? }))
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(Status::unimplemented(
            "raftbed: Hash hashes etcd's whole bbolt file, which raftbed does not have; HashKV hashes the key-value history as etcd does",
        ))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let rev = request.get_ref().revision;
        let query = Query::HashKv(rev);
        let consistency = Consistency::Serializable;
        let served = self
            .call(|reply| Call::Read { query, consistency, reply })
            .await
            .map_err(call_status)?;
        let QueryAnswer::HashKv(hash, current, compact_revision) = served.value else {
            return Err(Status::internal("HashKV answered with something else"));
        };
        let header = self.header(Some(at_revision(current)), served.term);
        Ok(Response::new(HashKvResponse { header, hash, compact_revision }))
    }

    type SnapshotStream = tokio_stream::Iter<std::vec::IntoIter<Result<SnapshotResponse, Status>>>;

    /// This member's state machine as a raftbed snapshot file (`storage::backup`), in etcd's
    /// frame: 32 KiB blobs counting down `remaining_bytes`, the first with the header of the
    /// revision it holds, then the SHA-256 digest alone.
    async fn snapshot(
        &self,
        _: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        const CHUNK: usize = 32 << 10;
        let (query, consistency) = (Query::Snapshot, Consistency::Serializable);
        let served = self
            .call(|reply| Call::Read { query, consistency, reply })
            .await
            .map_err(call_status)?;
        let QueryAnswer::Snapshot(state, revision) = served.value else {
            return Err(Status::internal("Snapshot answered with something else"));
        };
        let file = crate::storage::backup::encode(&state);
        let (body, digest) = file.split_at(file.len() - 32);
        let header = self.header(Some(at_revision(revision)), served.term);
        let mut sent = 0;
        let mut parts = Vec::new();
        for chunk in body.chunks(CHUNK) {
            sent += chunk.len();
            parts.push(Ok(SnapshotResponse {
                header: if parts.is_empty() { header } else { None },
                remaining_bytes: (body.len() - sent) as u64,
                blob: bytes::Bytes::copy_from_slice(chunk),
            }));
        }
        let blob = bytes::Bytes::copy_from_slice(digest);
        parts.push(Ok(SnapshotResponse { header: None, remaining_bytes: 0, blob }));
        Ok(Response::new(tokio_stream::iter(parts)))
    }

    /// Leader only (etcdctl sends it to the leader): hands leadership to `targetID` and
    /// answers once this member sees it lead, within the request timeout (§3.10).
    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        let target = NodeId(request.get_ref().target_id);
        let (reply, answer) = tokio::sync::oneshot::channel();
        if self.calls.try_send(Call::TransferLeader { target, reply }).is_err() {
            return Err(status(&ApiError::too_many_requests()));
        }
        match answer.await.map_err(|_| status(&ApiError::stopped()))? {
            Ok(()) => {}
            Err(RaftError::NotLeader { .. }) => return Err(status(&ApiError::not_leader())),
            Err(RaftError::UnknownNode(_)) => {
                return Err(failed("etcdserver: bad leader transferee"));
            }
            Err(other) => return Err(failed(&format!("etcdserver: {other}"))),
        }
        let deadline = tokio::time::Instant::now() + self.forward.timeout();
        loop {
            let (response, term, _) = self.local_status().await?;
            if response.leader == target.0 {
                let header = self.header(response.header, term);
                return Ok(Response::new(MoveLeaderResponse { header }));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(status(&ApiError::new(
                    tonic::Code::Unavailable,
                    "etcdserver: request timed out, leader transfer took too long",
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
