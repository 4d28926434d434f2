//! The serving side: one datagram socket on the node's client port, each call's request
//! rebuilt as the `http::Request` tonic's routes expect and handled on a task of its own,
//! whose response goes back the way [`super::send_body`] sends. A call the client resets is
//! aborted; a handler dropped before it answered (its host crashed) resets the call at the
//! client.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::mpsc;
use tower::ServiceExt;
use turmoil::net::UdpSocket;

use super::datagram::{Datagram, Part};
use super::reorder::Reorder;
use super::{BoxError, RESET_SEQ, Sender};

/// Calls this server knows, by client socket and call number.
type Calls = Rc<RefCell<BTreeMap<(SocketAddr, u64), Call>>>;

#[derive(Default)]
struct Call {
    order: Reorder,
    /// The request body's remaining chunks, while the client streams them.
    body: Option<mpsc::UnboundedSender<Bytes>>,
    handler: Option<tokio::task::AbortHandle>,
}

impl Call {
    fn abort(self) {
        if let Some(handler) = self.handler {
            handler.abort();
        }
    }
}

/// Serves `service` on UDP port `port` of this host until the socket fails.
pub async fn serve<S>(port: u16, service: S) -> std::io::Result<()>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + Clone
        + 'static,
{
    let socket = Arc::new(UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, port)).await?);
    let calls: Calls = Rc::default();
    loop {
        let (received, src) = super::next_datagram(&socket).await?;
        let Some(datagram) = Datagram::take(received) else { continue };
        let key = (src, datagram.call);
        if datagram.seq == RESET_SEQ {
            if let Some(call) = calls.borrow_mut().remove(&key) {
                call.abort();
            }
            continue;
        }
        let mut map = calls.borrow_mut();
        let call = map.entry(key).or_default();
        let Ok(parts) = call.order.accept(datagram.seq, datagram.parts) else {
            map.remove(&key).expect("just seen").abort();
            continue;
        };
        for part in parts {
            match part {
                Part::Request(path, headers) if call.handler.is_none() => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    call.body = Some(tx);
                    let request = request(&path, headers, rx);
                    let reply = Reply { socket: socket.clone(), src, call: datagram.call };
                    let guard =
                        Guard { calls: calls.clone(), key, reply: reply.clone(), done: false };
                    let task = handle(service.clone(), request, reply, guard);
                    call.handler = Some(tokio::task::spawn_local(task).abort_handle());
                }
                Part::Data(bytes) => {
                    if let Some(body) = &call.body {
                        let _ = body.send(bytes);
                    }
                }
                Part::End => call.body = None,
                Part::Reset => {
                    map.remove(&key).expect("just seen").abort();
                    break;
                }
                Part::Request(..) | Part::Response(..) | Part::Trailers(_) => {}
            }
        }
    }
}

fn request(
    path: &str,
    headers: http::HeaderMap,
    body: mpsc::UnboundedReceiver<Bytes>,
) -> http::Request<tonic::body::Body> {
    let mut request = http::Request::new(tonic::body::Body::new(RequestBody { chunks: body }));
    *request.method_mut() = http::Method::POST;
    *request.version_mut() = http::Version::HTTP_2;
    if let Ok(uri) = path.parse() {
        *request.uri_mut() = uri;
    }
    *request.headers_mut() = headers;
    request
}

#[derive(Clone)]
struct Reply {
    socket: Arc<UdpSocket>,
    src: SocketAddr,
    call: u64,
}

async fn handle<S>(
    service: S,
    request: http::Request<tonic::body::Body>,
    reply: Reply,
    mut guard: Guard,
) where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        >,
{
    let Ok(response) = service.oneshot(request).await;
    let (head, body) = response.into_parts();
    let first = Part::Response(head.status.as_u16(), head.headers);
    let mut sender =
        Sender { socket: reply.socket, dst: reply.src, call: reply.call, seq: 0, body };
    if !sender.flush(vec![first]).await {
        sender.run().await;
    }
    guard.done = true;
}

/// Forgets a call when its handler ends; a handler dropped before it answered resets the call
/// at the client.
struct Guard {
    calls: Calls,
    key: (SocketAddr, u64),
    reply: Reply,
    done: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Never borrowed across an await, so only a drop inside the serving loop's own borrow
        // (which aborts, and so drops later) could find it taken.
        let known =
            self.calls.try_borrow_mut().is_ok_and(|mut calls| calls.remove(&self.key).is_some());
        if known && !self.done {
            let parts = vec![Part::Reset];
            let datagram = Datagram { call: self.reply.call, seq: RESET_SEQ, parts };
            datagram.send(&self.reply.socket, self.reply.src);
        }
    }
}

/// A body fed chunk by chunk from a channel: a request the client streams (and the tests').
pub(super) struct RequestBody {
    pub(super) chunks: mpsc::UnboundedReceiver<Bytes>,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.chunks.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}
