//! etcd's Maintenance.Status: answered by any node from what it knows.

use tonic::{Request, Response, Status};

use super::{Api, status};
use crate::kv::ApiError;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::{StatusRequest, StatusResponse};
use crate::server::calls::{Call, CallError};
use crate::transport::net::Net;

impl<N: Net + Send + Sync> Api<N> {
    pub(super) async fn local_status(
        &self,
    ) -> Result<(StatusResponse, u64, Option<std::time::Duration>), Status> {
        match self.call(|reply| Call::Status { reply }).await {
            Ok(served) => Ok((served.value.status, served.term, served.value.lease_left)),
            Err(CallError::Api(error)) => Err(status(&error)),
            Err(CallError::NotLeader(_)) => Err(status(&ApiError::not_leader())),
        }
    }
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
}
