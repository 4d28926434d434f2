//! raftbed's Lock service: etcd's v3lock recipe, plus fencing. Lock joins the queue (creates
//! `name/<lease>` under the caller's lease) through the log, then waits, with linearizable
//! reads, until that key is the oldest under the prefix; its create revision is the token.

use std::time::Duration;

use tonic::{Request, Response, Status};

use super::{Api, status, unless_forwardable};
use crate::kv::ApiError;
use crate::proto::raftbed::command::Op;
use crate::proto::raftbed::lock_client::LockClient;
use crate::proto::raftbed::lock_server::Lock;
use crate::proto::raftbed::outcome::Result as Answer;
use crate::proto::raftbed::{
    GuardedPutRequest, GuardedPutResponse, LockRequest, LockResponse, UnlockRequest, UnlockResponse,
};
use crate::server::calls::{CallError, Consistency, Query, QueryAnswer};
use crate::transport::net::Net;

/// How often a waiter looks again when nothing was applied here (a follower that hears nothing
/// still notices a lost leadership).
const RECHECK: Duration = Duration::from_millis(100);

impl<N: Net + Send + Sync> Api<N> {
    /// Waits until `key` holds lock `name`; answers the token.
    async fn wait_for_lock(
        &self,
        name: &bytes::Bytes,
        key: &bytes::Bytes,
    ) -> Result<(i64, u64), ApiError> {
        let mut revision = self.revision.clone();
        loop {
            let query = Query::LockHolder { name: name.clone(), key: key.clone() };
            match self.read(query, Consistency::Linearizable).await {
                Ok(served) => match served.value {
                    QueryAnswer::LockHolder(Some((holder, token)), _) if holder == *key => {
                        return Ok((token, served.term));
                    }
                    QueryAnswer::LockHolder(_, false) => {
                        return Err(ApiError::new(
                            tonic::Code::FailedPrecondition,
                            "raftbed: the lock key was deleted while waiting (its lease expired or was revoked)",
                        ));
                    }
                    _ => {}
                },
                // The key was created: the caller may retry with the same lease and keep its
                // place in the queue.
                Err(CallError::NotLeader(_)) => {
                    return Err(ApiError::indefinite(
                        tonic::Code::Unavailable,
                        "etcdserver: leader changed",
                    ));
                }
                Err(CallError::Api(error)) if error.message.contains("timed out") => {}
                Err(CallError::Api(error)) => return Err(error),
            }
            let _ = tokio::time::timeout(RECHECK, revision.changed()).await;
        }
    }
}

#[tonic::async_trait]
impl<N: Net + Send + Sync> Lock for Api<N> {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let name = request.get_ref().name.clone();
        if name.is_empty() {
            return Err(status(&ApiError::invalid("raftbed: a lock needs a name")));
        }
        let op = Op::Lock(request.get_ref().clone());
        let (client_id, seq) = super::session(request.metadata())?;
        let command = crate::proto::raftbed::Command { client_id, seq, op: Some(op) };
        let joined = match self.propose(command).await {
            Ok(served) => match served.value.result {
                Some(Answer::Lock(joined)) => joined,
                Some(Answer::Refusal(refusal)) => return Err(status(&ApiError::from(&refusal))),
                _ => return Err(status(&ApiError::invalid("raftbed: mismatched answer"))),
            },
            Err(error) => {
                // The whole wait runs at the leader.
                let leader = unless_forwardable(error, request.metadata())?;
                return self
                    .forward
                    .unary(leader, request, true, |channel, mut request| async move {
                        // Waiting for a lock takes as long as the holder keeps it.
                        request.set_timeout(Duration::from_secs(24 * 3600));
                        LockClient::new(channel).lock(request).await
                    })
                    .await;
            }
        };
        let (token, term) = self.wait_for_lock(&name, &joined.key).await.map_err(|e| status(&e))?;
        Ok(Response::new(LockResponse {
            header: self.header(joined.header, term),
            key: joined.key,
            token,
        }))
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let op = Op::Unlock(request.get_ref().clone());
        let pick = |answer| match answer {
            Answer::Unlock(response) => Some(response),
            _ => None,
        };
        self.write(request, op, pick, |channel, request| async move {
            LockClient::new(channel).unlock(request).await
        })
        .await
    }

    async fn guarded_put(
        &self,
        request: Request<GuardedPutRequest>,
    ) -> Result<Response<GuardedPutResponse>, Status> {
        if request.get_ref().key.is_empty() {
            return Err(status(&ApiError::empty_key()));
        }
        let op = Op::GuardedPut(request.get_ref().clone());
        let pick = |answer| match answer {
            Answer::GuardedPut(response) => Some(response),
            _ => None,
        };
        self.write(request, op, pick, |channel, request| async move {
            LockClient::new(channel).guarded_put(request).await
        })
        .await
    }
}
