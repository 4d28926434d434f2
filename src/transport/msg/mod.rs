//! The message transport: the client API's gRPC calls carried as datagrams over turmoil's
//! simulated network, at the level of tonic's services, with no HTTP/2 and no TCP between.
//!
//! tonic's generated clients and servers are generic over a tower service of `http::Request`
//! and `http::Response`; [`MsgChannel`] is such a service on the client side and [`serve`]
//! drives the server's routes. The request and response bodies (gRPC's length-prefixed prost
//! messages, encoded by tonic as on the wire) travel as they are, so every unary, client,
//! server and bidirectional stream works unchanged. The network's faults still apply, datagram
//! by datagram: a cut link or a lossy one drops them, latency delays each on its own (so they
//! are put back in order), a crashed host resets its calls.
//!
//! Why: the HTTP/2 path (hyper, h2, HPACK, tonic's channel) was half of the simulator's time,
//! and h2 reads `std::time::Instant`, which the simulated clock cannot reach. `--transport
//! wire` keeps the real gRPC over turmoil's TCP for the sweeps that want it.

mod client;
pub(crate) mod datagram;
pub mod peers;
mod reorder;
mod server;

#[cfg(test)]
mod tests;

pub use client::MsgChannel;
pub use server::serve;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body::Body;
use turmoil::net::UdpSocket;

use datagram::{Datagram, Part};

/// A boxed error, as tonic's services take them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The sequence number of a reset: it overtakes any gap in the call's datagrams.
const RESET_SEQ: u32 = u32::MAX;

/// The next datagram for `socket`: one already waiting without a turn of the async lock that
/// `recv_datagram` takes, else the next to arrive.
async fn next_datagram(socket: &UdpSocket) -> std::io::Result<(turmoil::Datagram, SocketAddr)> {
    match socket.try_recv_datagram() {
        Some(waiting) => Ok(waiting),
        None => socket.recv_datagram().await,
    }
}

/// Sends one side of a call: its head with whatever of `body` is ready now in one datagram,
/// and the rest from a task of its own, whose handle it returns (none when the body is done).
async fn send_body<B>(
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
    call: u64,
    head: Part,
    body: B,
) -> Option<tokio::task::AbortHandle>
where
    B: Body<Data = Bytes> + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let mut sender = Sender { socket, dst, call, seq: 0, body };
    if sender.flush(vec![head]).await {
        return None;
    }
    Some(tokio::task::spawn_local(async move { sender.run().await }).abort_handle())
}

/// One direction of one call.
struct Sender<B> {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
    call: u64,
    seq: u32,
    body: B,
}

impl<B> Sender<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    /// Sends the rest of the body as it comes.
    async fn run(&mut self) {
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut self.body).poll_frame(cx)).await;
            let mut parts = Vec::new();
            if push(frame, &mut parts) {
                self.send(parts);
                return;
            }
            if self.flush(parts).await {
                return;
            }
        }
    }

    /// Sends `parts` with every frame of the body that is ready; true when the body ended.
    async fn flush(&mut self, mut parts: Vec<Part>) -> bool {
        let ended = std::future::poll_fn(|cx| {
            loop {
                match Pin::new(&mut self.body).poll_frame(cx) {
                    std::task::Poll::Pending => return std::task::Poll::Ready(false),
                    std::task::Poll::Ready(frame) => {
                        if push(frame, &mut parts) {
                            return std::task::Poll::Ready(true);
                        }
                    }
                }
            }
        })
        .await;
        self.send(parts);
        ended
    }

    fn send(&mut self, parts: Vec<Part>) {
        if parts.is_empty() {
            return;
        }
        // A lost datagram is the network's loss: the call stalls to its deadline.
        Datagram { call: self.call, seq: self.seq, parts }.send(&self.socket, self.dst);
        self.seq += 1;
    }
}

/// Adds a polled frame to `parts`; true when it ended the body (its end, or an error).
fn push<E: std::fmt::Display>(
    frame: Option<Result<http_body::Frame<Bytes>, E>>,
    parts: &mut Vec<Part>,
) -> bool {
    match frame {
        None => {
            parts.push(Part::End);
            true
        }
        Some(Err(_)) => {
            parts.push(Part::Reset);
            true
        }
        Some(Ok(frame)) => match frame.into_data() {
            Ok(bytes) => {
                parts.push(Part::Data(bytes));
                false
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    parts.push(Part::Trailers(trailers));
                }
                false
            }
        },
    }
}
