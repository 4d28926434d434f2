//! One datagram of the message transport: a call's number, its place in that call's stream of
//! datagrams one way, and the parts it carries. It crosses the simulated network as an object
//! (turmoil's datagrams carry one, patched in `vendor/`), never encoded: the simulation is one
//! process, and bytes would only be made to be parsed again.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use turmoil::net::UdpSocket;

/// What a datagram carries, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// A request's path and headers (client to server).
    Request(String, HeaderMap),
    /// A response's status and headers (server to client).
    Response(u16, HeaderMap),
    /// A chunk of the body: gRPC's length-prefixed messages, as tonic encoded them.
    Data(Bytes),
    /// The response's trailers (gRPC's status).
    Trailers(HeaderMap),
    /// The sender's side of the call is complete.
    End,
    /// The call is abandoned: the client gave up, or the server dropped it (a crash).
    Reset,
}

/// A datagram.
#[derive(Clone, Debug, PartialEq)]
pub struct Datagram {
    /// The call, numbered by the client's socket.
    pub call: u64,
    /// Its place among the call's datagrams in this direction, from 0.
    pub seq: u32,
    /// What it carries.
    pub parts: Vec<Part>,
}

impl Datagram {
    /// Sends it from `socket` to `dst`; the network may lose it.
    pub fn send(self, socket: &UdpSocket, dst: SocketAddr) {
        let _ = socket.send_object_to(Arc::new(self), dst);
    }

    /// The datagram `received` carries, if it is one (anything else is dropped).
    pub fn take(received: turmoil::Datagram) -> Option<Datagram> {
        take(received)
    }
}

/// The object of type `T` that `received` carries, if it does.
pub fn take<T: Clone + Send + Sync + 'static>(received: turmoil::Datagram) -> Option<T> {
    let object = received.1?.downcast::<T>().ok()?;
    // The sender kept no reference: this is the only one, and nothing is copied.
    Some(Arc::try_unwrap(object).unwrap_or_else(|shared| (*shared).clone()))
}
