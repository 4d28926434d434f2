//! The calling side: [`MsgChannel`], a tower service with the request and response types of
//! tonic's `Channel`, so every generated client (`KvClient`, `LeaseClient`, ...) runs over it
//! unchanged, unary and streaming calls alike.
//!
//! A call sends its request's head with every body chunk already encoded in one datagram (one
//! datagram for a unary request), and the rest, for a client stream, as the body yields it. The
//! response's head resolves the call; its body follows as datagrams arrive, in order. Dropping
//! the response, or its body before the end, resets the call at the server, as HTTP/2's
//! RST_STREAM does; a server that drops the call (its host crashed) resets it here, as the FIN
//! of a crashed host's TCP connection ends every HTTP/2 stream on it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::mpsc;
use tonic::Status;
use turmoil::net::UdpSocket;

use super::datagram::{Datagram, Part};
use super::reorder::Reorder;
use super::{BoxError, RESET_SEQ, send_body};

/// A lazily bound client socket to one server address; a clone shares the socket.
#[derive(Clone)]
pub struct MsgChannel {
    conn: Arc<Conn>,
    addr: String,
    timeout: Option<Duration>,
}

struct Conn {
    socket: tokio::sync::OnceCell<Arc<UdpSocket>>,
    dst: std::sync::OnceLock<SocketAddr>,
    next_call: AtomicU64,
    calls: Mutex<BTreeMap<u64, Incoming>>,
    dispatcher: Mutex<Option<tokio::task::AbortHandle>>,
}

struct Incoming {
    parts: mpsc::UnboundedSender<Part>,
    order: Reorder,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(task) = self.dispatcher.lock().expect("never poisoned").take() {
            task.abort();
        }
    }
}

impl MsgChannel {
    /// A channel to `addr` (`host:port`); a call with no head back within `timeout` fails.
    pub fn new(addr: &str, timeout: Option<Duration>) -> MsgChannel {
        let conn = Conn {
            socket: tokio::sync::OnceCell::new(),
            dst: std::sync::OnceLock::new(),
            next_call: AtomicU64::new(1),
            calls: Mutex::new(BTreeMap::new()),
            dispatcher: Mutex::new(None),
        };
        MsgChannel { conn: Arc::new(conn), addr: addr.to_string(), timeout }
    }

    /// Starts a call.
    pub fn call(
        &self,
        request: http::Request<tonic::body::Body>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, BoxError>> + Send>>
    {
        let this = self.clone();
        Box::pin(async move {
            match this.timeout {
                Some(limit) => match tokio::time::timeout(limit, this.start(request)).await {
                    Ok(answer) => answer,
                    Err(_) => Err(Status::deadline_exceeded("raftbed: no answer in time").into()),
                },
                None => this.start(request).await,
            }
        })
    }

    async fn start(
        self,
        request: http::Request<tonic::body::Body>,
    ) -> Result<http::Response<tonic::body::Body>, BoxError> {
        let socket = self.socket().await?;
        let dst = self.dst()?;
        let call = self.conn.next_call.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let incoming = Incoming { parts: tx, order: Reorder::default() };
        self.conn.calls.lock().expect("never poisoned").insert(call, incoming);
        let mut guard = CallGuard { conn: self.conn.clone(), socket, dst, call, sender: None };
        let (head, body) = request.into_parts();
        let first = Part::Request(head.uri.path().to_string(), head.headers);
        guard.sender = send_body(guard.socket.clone(), dst, call, first, body).await;
        let (status, headers) = loop {
            match rx.recv().await {
                Some(Part::Response(status, headers)) => break (status, headers),
                Some(Part::Reset) | None => return Err(reset(&self.addr)),
                Some(_) => {}
            }
        };
        let mut response = http::Response::new(tonic::body::Body::empty());
        *response.status_mut() = http::StatusCode::from_u16(status).map_err(|_| {
            Status::internal(format!("raftbed: status {status} from {}", self.addr))
        })?;
        *response.headers_mut() = headers;
        let body = MsgBody { parts: rx, _guard: guard, addr: self.addr.clone(), ended: false };
        *response.body_mut() = tonic::body::Body::new(body);
        Ok(response)
    }

    fn dst(&self) -> Result<SocketAddr, Status> {
        if let Some(dst) = self.conn.dst.get() {
            return Ok(*dst);
        }
        let (host, port) = self
            .addr
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
            .ok_or_else(|| Status::invalid_argument(format!("bad address {}", self.addr)))?;
        let dst = SocketAddr::new(turmoil::lookup(host), port);
        Ok(*self.conn.dst.get_or_init(|| dst))
    }

    async fn socket(&self) -> Result<Arc<UdpSocket>, Status> {
        let conn = &self.conn;
        let socket = conn
            .socket
            .get_or_try_init(|| async {
                let bound = UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)).await;
                let socket = Arc::new(bound.map_err(|e| Status::unavailable(e.to_string()))?);
                let task = tokio::task::spawn_local(dispatch(socket.clone(), Arc::downgrade(conn)));
                *conn.dispatcher.lock().expect("never poisoned") = Some(task.abort_handle());
                Ok::<_, Status>(socket)
            })
            .await?;
        Ok(socket.clone())
    }
}

fn reset(addr: &str) -> BoxError {
    Status::unavailable(format!("raftbed: the call to {addr} was reset")).into()
}

/// Hands each arriving datagram's parts, in order, to its call; a call the server ended
/// (its last part, or a reset, which overtakes any gap) is forgotten.
async fn dispatch(socket: Arc<UdpSocket>, conn: Weak<Conn>) {
    while let Ok((received, _)) = super::next_datagram(&socket).await {
        let Some(datagram) = Datagram::take(received) else { continue };
        let Some(conn) = conn.upgrade() else { return };
        let mut calls = conn.calls.lock().expect("never poisoned");
        let Some(incoming) = calls.get_mut(&datagram.call) else { continue };
        let parts = if datagram.seq == RESET_SEQ {
            vec![Part::Reset]
        } else {
            incoming
                .order
                .accept(datagram.seq, datagram.parts)
                .unwrap_or_else(|_| vec![Part::Reset])
        };
        let ended = parts.iter().any(|part| matches!(part, Part::End | Part::Reset));
        for part in parts {
            let _ = incoming.parts.send(part);
        }
        if ended {
            calls.remove(&datagram.call);
        }
    }
}

/// A call in progress: dropped before the server ended it, it tells the server to drop it.
struct CallGuard {
    conn: Arc<Conn>,
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
    call: u64,
    sender: Option<tokio::task::AbortHandle>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            sender.abort();
        }
        let open = self.conn.calls.lock().expect("never poisoned").remove(&self.call).is_some();
        if open {
            let datagram = Datagram { call: self.call, seq: RESET_SEQ, parts: vec![Part::Reset] };
            datagram.send(&self.socket, self.dst);
        }
    }
}

/// A response body arriving as datagrams.
struct MsgBody {
    parts: mpsc::UnboundedReceiver<Part>,
    _guard: CallGuard,
    addr: String,
    ended: bool,
}

impl Body for MsgBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            let part = match self.parts.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(part) => part,
            };
            return Poll::Ready(match part {
                Some(Part::Data(bytes)) => Some(Ok(Frame::data(bytes))),
                Some(Part::Trailers(trailers)) => Some(Ok(Frame::trailers(trailers))),
                Some(Part::End) => {
                    self.ended = true;
                    None
                }
                Some(Part::Reset) | None => {
                    self.ended = true;
                    Some(Err(reset(&self.addr)))
                }
                Some(Part::Request(..) | Part::Response(..)) => continue,
            });
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}
