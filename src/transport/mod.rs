//! Bytes on the wire: the generated protobuf types and their conversion to the core's domain
//! types (the core never imports `pb`), the network facade, framing, and the peer transport.

pub mod channel;
pub mod convert;
pub mod frame;
pub mod grpc;
pub mod msg;
pub mod net;
pub mod peer;
pub mod queues;

pub use crate::proto::raft as pb;

use crate::raft::Message;

/// Which peer transport a node uses. Both carry the same `Envelope`s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PeerTransport {
    /// Length-prefixed prost frames over TCP with acknowledgements (`peer.rs`): the default.
    #[default]
    Framed,
    /// tonic client-streaming RPCs over HTTP/2 (`grpc.rs`), kept to repeat the comparison.
    Grpc,
    /// One datagram per message (`msg/peers.rs`): the simulator's message transport only.
    Datagram,
}

impl PeerTransport {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            PeerTransport::Framed => "framed",
            PeerTransport::Grpc => "grpc",
            PeerTransport::Datagram => "datagram",
        }
    }
}

/// The sending side of whichever transport runs.
#[derive(Debug)]
pub enum Outbound {
    /// Framed TCP.
    Framed(peer::Peers),
    /// gRPC.
    Grpc(grpc::GrpcPeers),
    /// Datagrams.
    Datagram(msg::peers::DatagramPeers),
}

impl Outbound {
    /// Queues a message for its receiver (dropped if its queue is full).
    pub fn send(&self, message: &Message) {
        match self {
            Outbound::Framed(peers) => peers.send(message),
            Outbound::Grpc(peers) => peers.send(message),
            Outbound::Datagram(peers) => peers.send(message),
        }
    }

    /// Sends to `addrs` from now on: peers not known before get a sender, a changed address
    /// a new one; peers not listed keep theirs.
    pub fn set_addrs(&mut self, addrs: &std::collections::BTreeMap<crate::raft::NodeId, String>) {
        match self {
            Outbound::Framed(peers) => peers.set_addrs(addrs),
            Outbound::Grpc(peers) => peers.set_addrs(addrs),
            Outbound::Datagram(peers) => peers.set_addrs(addrs),
        }
    }
}
