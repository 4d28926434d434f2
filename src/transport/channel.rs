//! The one kind of gRPC channel every client of the API holds (raftbed's client, a follower
//! forwarding to its leader, the naive system's monitor): tonic's HTTP/2 `Channel` over the
//! node's `Net`, or, in the simulator's message transport, [`MsgChannel`]. tonic's generated
//! clients take either, since both are the same tower service.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::msg::{BoxError, MsgChannel};
use super::net::{Net, Spawner};

/// A channel to one server.
#[derive(Clone)]
pub enum RpcChannel {
    /// gRPC over HTTP/2 over the `Net`'s TCP.
    Wire(Channel),
    /// gRPC calls as datagrams (the simulator only).
    Message(MsgChannel),
}

impl RpcChannel {
    /// A lazily dialled HTTP/2 channel to `addr` (`host:port`) over `net`; each call bounded
    /// by `timeout` when given.
    pub fn wire<N: Net + Send + Sync>(
        net: &N,
        addr: &str,
        connect_timeout: Duration,
        timeout: Option<Duration>,
    ) -> Result<RpcChannel, String> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("bad endpoint {addr}: {e}"))?
            .connect_timeout(connect_timeout)
            .keep_alive_while_idle(false)
            .executor(Spawner::of::<N>());
        let endpoint = match timeout {
            Some(timeout) => endpoint.timeout(timeout),
            None => endpoint,
        };
        let endpoint =
            if N::SIMULATED { endpoint.http2_reset_stream_duration(NEVER) } else { endpoint };
        let (net, target) = (net.clone(), addr.to_string());
        let connector = tower::service_fn(move |_: http::Uri| {
            let (net, target) = (net.clone(), target.clone());
            async move { net.connect(&target).await.map(hyper_util::rt::TokioIo::new) }
        });
        Ok(RpcChannel::Wire(endpoint.connect_with_connector_lazy(connector)))
    }
}

/// How long h2 remembers a stream this side reset, in simulation: for ever. h2 times it with
/// `std::time::Instant` (1 s by default), so on a busy machine the wall clock decided whether a
/// late frame for a reset stream was ignored or ended the connection, and a seed's trace
/// changed with the load. Remembered for ever, a reset stream counts against h2's limit of 50
/// instead (`max_concurrent_reset_streams`), which depends on nothing but the run.
pub const NEVER: Duration = Duration::from_secs(1 << 40);

type Answer = Result<http::Response<tonic::body::Body>, BoxError>;

impl tower::Service<http::Request<tonic::body::Body>> for RpcChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            RpcChannel::Wire(channel) => channel.poll_ready(cx).map_err(Into::into),
            RpcChannel::Message(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        match self {
            RpcChannel::Wire(channel) => {
                let answer = channel.call(request);
                Box::pin(async move { answer.await.map_err(Into::into) })
            }
            RpcChannel::Message(channel) => channel.call(request),
        }
    }
}
