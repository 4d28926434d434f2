//! The other peer transport: tonic client-streaming RPCs (`RaftPeer.Stream`) over HTTP/2,
//! served through hyper's HTTP/2 builder with `auto_date_header(false)` (a wall-clock `date`
//! header would break determinism) and kept healthy by HTTP/2 keepalive, which notices a dead
//! connection and lets the sender dial again.
//!
//! Raft messages travel in the same `Envelope`s as over framed TCP. raftbed measured both under
//! simulation and uses framed TCP (see the README); this one stays selectable
//! (`PeerTransport::Grpc`) so the measurement can be repeated.

use std::collections::BTreeMap;
use std::rc::Rc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::net::Net;
use super::pb::raft_peer_client::RaftPeerClient;
use super::pb::raft_peer_server::{RaftPeer, RaftPeerServer};
use super::pb::{Envelope, StreamAck};
use super::peer::TransportConfig;
use super::queues::{Dial, PeerQueues};
use crate::raft::{Message, NodeId};

struct PeerService {
    inbox: mpsc::Sender<Message>,
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn stream(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<StreamAck>, Status> {
        let mut stream = request.into_inner();
        while let Some(envelope) = stream.message().await? {
            let message =
                Message::try_from(envelope).map_err(|e| Status::invalid_argument(e.to_string()))?;
            // A full inbox drops the message; Raft retries.
            let _ = self.inbox.try_send(message);
        }
        Ok(Response::new(StreamAck {}))
    }
}

/// Serves `RaftPeer` on every accepted connection.
pub async fn serve<N: Net>(
    listener: N::Listener,
    inbox: mpsc::Sender<Message>,
    config: TransportConfig,
) {
    let service = RaftPeerServer::new(PeerService { inbox });
    let keepalive = config.rpc_timeout;
    crate::transport::net::serve_http2::<N, _>(listener, service, keepalive, keepalive).await;
}

/// The sending side: a queue per peer, drained into one long-lived `Stream` RPC.
#[derive(Debug)]
pub struct GrpcPeers {
    queues: PeerQueues<Envelope>,
    dropped: Rc<std::cell::Cell<u64>>,
}

impl GrpcPeers {
    /// Starts a sender task per peer.
    pub fn start<N: Net + Send + Sync>(
        net: &N,
        addrs: &BTreeMap<NodeId, String>,
        config: &TransportConfig,
    ) -> GrpcPeers {
        let (net, config) = (net.clone(), config.clone());
        let dial: Dial<Envelope> = Rc::new(move |addr: &str| {
            let (tx, rx) = mpsc::channel(config.queue_depth);
            tokio::task::spawn_local(send_loop(net.clone(), addr.to_string(), rx, config.clone()));
            tx
        });
        let dropped = Rc::new(std::cell::Cell::new(0));
        GrpcPeers { queues: PeerQueues::new(dial, addrs), dropped }
    }

    /// Sends to `addrs` from now on (peers not listed keep their senders).
    pub fn set_addrs(&mut self, addrs: &BTreeMap<NodeId, String>) {
        self.queues.set_addrs(addrs);
    }

    /// Queues `message`; drops it if the queue is full.
    pub fn send(&self, message: &Message) {
        let Some(queue) = self.queues.get(message.to) else { return };
        if queue.try_send(Envelope::from(message)).is_err() {
            self.dropped.set(self.dropped.get() + 1);
        }
    }
}

async fn send_loop<N: Net + Send + Sync>(
    net: N,
    addr: String,
    mut queue: mpsc::Receiver<Envelope>,
    config: TransportConfig,
) {
    loop {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("a host:port makes a URI")
            .connect_timeout(config.rpc_timeout)
            .executor(super::net::Spawner::of::<N>())
            .http2_keep_alive_interval(config.rpc_timeout)
            .keep_alive_timeout(config.rpc_timeout)
            .keep_alive_while_idle(true);
        let endpoint = if N::SIMULATED {
            endpoint.http2_reset_stream_duration(super::channel::NEVER)
        } else {
            endpoint
        };
        let dial = net.clone();
        let target = addr.clone();
        let connector = tower::service_fn(move |_: http::Uri| {
            let (dial, target) = (dial.clone(), target.clone());
            async move { dial.connect(&target).await.map(hyper_util::rt::TokioIo::new) }
        });
        let Ok(channel) = endpoint.connect_with_connector(connector).await else {
            tokio::time::sleep(config.rpc_timeout / 2).await;
            while queue.try_recv().is_ok() {}
            continue;
        };
        let (tx, rx) = mpsc::channel(config.queue_depth);
        let mut client = RaftPeerClient::new(channel);
        let call =
            tokio::task::spawn_local(async move { client.stream(ReceiverStream::new(rx)).await });
        while !call.is_finished() {
            tokio::select! {
                biased;
                next = queue.recv() => match next {
                    Some(envelope) => {
                        if tx.try_send(envelope).is_err() && tx.is_closed() {
                            break;
                        }
                    }
                    None => return,
                },
                () = tokio::time::sleep(config.rpc_timeout) => {}
            }
        }
        call.abort();
    }
}
