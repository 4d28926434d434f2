//! Bytes on the wire: the generated protobuf types and their conversion to the core's domain
//! types (the core never imports `pb`), the network facade, framing, and the peer transport.

pub mod convert;
pub mod frame;
pub mod grpc;
pub mod net;
pub mod peer;

pub use crate::proto::raft as pb;

use std::collections::BTreeMap;

use crate::raft::{Message, NodeId};

/// Which peer transport a node uses. Both carry the same `Envelope`s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PeerTransport {
    /// Length-prefixed prost frames over TCP with acknowledgements (`peer.rs`): the default.
    #[default]
    Framed,
    /// tonic client-streaming RPCs over HTTP/2 (`grpc.rs`), kept to repeat the comparison.
    Grpc,
}

/// The sending side of whichever transport runs.
#[derive(Debug)]
pub enum Outbound {
    /// Framed TCP.
    Framed(peer::Peers),
    /// gRPC.
    Grpc(grpc::GrpcPeers),
}

impl Outbound {
    /// Starts the senders of `kind` to `addrs`.
    pub fn start<N: net::Net + Send + Sync>(
        kind: PeerTransport,
        net: &N,
        addrs: &BTreeMap<NodeId, String>,
        config: &peer::TransportConfig,
    ) -> Outbound {
        match kind {
            PeerTransport::Framed => Outbound::Framed(peer::Peers::start(net, addrs, config)),
            PeerTransport::Grpc => Outbound::Grpc(grpc::GrpcPeers::start(net, addrs, config)),
        }
    }

    /// Queues a message for its receiver (dropped if its queue is full).
    pub fn send(&self, message: &Message) {
        match self {
            Outbound::Framed(peers) => peers.send(message),
            Outbound::Grpc(peers) => peers.send(message),
        }
    }
}
