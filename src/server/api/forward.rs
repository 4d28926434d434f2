//! A follower's way to the leader: one lazily dialled gRPC channel per member, over the node's
//! `Net`. The forwarded request keeps the client's metadata (its session included, so a retry
//! through another node still applies once) and is marked so that it is not forwarded again.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use super::{DEFINITE_HEADER, FORWARDED_HEADER, status};
use crate::kv::ApiError;
use crate::raft::NodeId;
use crate::server::members::Directory;
use crate::transport::channel::RpcChannel;
use crate::transport::net::Net;

/// Channels to the other members' client APIs.
pub struct Forwarder<N: Net> {
    net: N,
    /// Where the members' client APIs are.
    directory: Arc<Directory>,
    /// Channels by member, with the client address each was dialled at.
    channels: Mutex<BTreeMap<NodeId, (String, RpcChannel)>>,
    timeout: Duration,
    /// The leader this node knows, as the driver publishes it.
    leader: watch::Receiver<Option<NodeId>>,
    /// Peers this node is cut off from.
    live: std::sync::Arc<crate::server::LiveFaults>,
}

impl<N: Net + Send + Sync> Forwarder<N> {
    /// Forwards to the client addresses `directory` knows, giving each request `timeout`;
    /// `leader` follows the leader this node knows; nothing goes to a peer `live` cuts off.
    pub fn new(
        net: N,
        directory: Arc<Directory>,
        timeout: Duration,
        leader: watch::Receiver<Option<NodeId>>,
        live: std::sync::Arc<crate::server::LiveFaults>,
    ) -> Forwarder<N> {
        Forwarder { net, directory, channels: Mutex::new(BTreeMap::new()), timeout, leader, live }
    }

    /// How long a forwarded request may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A channel to `to`, dialled on first use.
    pub fn channel(&self, to: NodeId) -> Option<RpcChannel> {
        let mut channels = self.channels.lock().expect("never poisoned: no panics under it");
        let known = channels.get(&to);
        let same = |addr: Option<&str>| known.is_some_and(|(at, _)| Some(at.as_str()) == addr);
        if self.directory.with_client_addr(to, same) {
            return known.map(|(_, channel)| channel.clone());
        }
        let addr = self.directory.client_addr(to)?;
        let channel = self.net.channel(&addr, self.timeout, Some(self.timeout)).ok()?;
        channels.insert(to, (addr, channel.clone()));
        Some(channel)
    }

    /// Sends `request` to `leader` through `call`. A failure on the way is indefinite for a
    /// write (it may have reached the leader) and definite for a read. When this node learns
    /// of another leader first, the wait ends at once: the old leader, cut off, would only
    /// have let the client time out, and a client with a session can safely retry.
    pub async fn unary<Req, Resp, Fut>(
        &self,
        leader: NodeId,
        request: Request<Req>,
        write: bool,
        call: impl FnOnce(RpcChannel, Request<Req>) -> Fut,
    ) -> Result<Response<Resp>, Status>
    where
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        if self.live.is_blocked(leader) {
            return Err(status(&ApiError::new(
                tonic::Code::Unavailable,
                format!("raftbed: the leader {leader} is cut off from this node"),
            )));
        }
        let Some(channel) = self.channel(leader) else {
            return Err(status(&ApiError::not_leader()));
        };
        let (mut metadata, _, message) = request.into_parts();
        metadata.insert(FORWARDED_HEADER, MetadataValue::from_static("1"));
        let mut forwarded = Request::from_parts(metadata, Default::default(), message);
        forwarded.set_timeout(self.timeout);
        let mut known = self.leader.clone();
        let deposed = async move {
            let _ = known.wait_for(|now| *now != Some(leader)).await;
        };
        let answer = tokio::select! {
            biased;
            answer = call(channel, forwarded) => answer,
            () = deposed => {
                let message = format!("etcdserver: leader changed (from {leader} while forwarding)");
                let error = if write {
                    ApiError::indefinite(tonic::Code::Unavailable, message)
                } else {
                    ApiError::new(tonic::Code::Unavailable, message)
                };
                return Err(status(&error));
            }
        };
        match answer {
            Ok(response) => Ok(response),
            // The leader answered: its verdict stands.
            Err(error) if error.metadata().contains_key(DEFINITE_HEADER) => Err(error),
            Err(error) => {
                let message = format!(
                    "raftbed: forwarding to the leader {leader} failed: {}",
                    error.message()
                );
                let error = if write {
                    ApiError::indefinite(tonic::Code::Unavailable, message)
                } else {
                    ApiError::new(tonic::Code::Unavailable, message)
                };
                Err(status(&error))
            }
        }
    }
}
