//! The network facade: listen, accept, connect. Real nodes use tokio's TCP on loopback; the
//! simulation uses turmoil's TCP between simulated hosts. Everything above is shared.

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

use super::channel::RpcChannel;
use super::msg::MsgChannel;

/// Listening and dialing.
pub trait Net: Clone + 'static {
    /// A connected byte stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A bound listener.
    type Listener: 'static;
    /// Whether background tasks (HTTP/2 connections, channel workers) must stay on the current
    /// `LocalSet`. In simulation they must: tasks given to tokio's shared list are dropped at
    /// a crash in an order that depends on process-wide task ids, so a second run of a seed in
    /// one process would tear connections down in another order than the first.
    const LOCAL_TASKS: bool;
    /// Whether the clock is the simulator's, so that no wall-clock time may reach behaviour.
    const SIMULATED: bool;

    /// Binds `addr` (`host:port`).
    fn bind(&self, addr: &str) -> impl Future<Output = io::Result<Self::Listener>>;
    /// Waits for the next connection.
    fn accept(listener: &Self::Listener) -> impl Future<Output = io::Result<Self::Stream>>;
    /// Connects to `addr` (`host:port`).
    fn connect(&self, addr: &str) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Whether datagrams (`super::msg`) can travel: in the simulator's message transport.
    fn datagrams(&self) -> bool {
        false
    }

    /// A gRPC channel to `addr` (`host:port`), dialled lazily; `timeout`, when given, bounds
    /// each call.
    fn channel(
        &self,
        addr: &str,
        connect_timeout: std::time::Duration,
        timeout: Option<std::time::Duration>,
    ) -> Result<RpcChannel, String>
    where
        Self: Send + Sync,
    {
        RpcChannel::wire(self, addr, connect_timeout, timeout)
    }

    /// Serves gRPC `service` to the clients of `listener`, bound at `addr`.
    fn serve_rpc<S>(
        &self,
        addr: &str,
        listener: Self::Listener,
        service: S,
        keepalive_interval: std::time::Duration,
        keepalive_timeout: std::time::Duration,
    ) -> impl Future<Output = ()>
    where
        S: RpcService<hyper::body::Incoming> + RpcService<tonic::body::Body>,
        <S as tower::Service<http::Request<hyper::body::Incoming>>>::Future: Send + 'static,
    {
        let _ = addr;
        serve_http2::<Self, S>(listener, service, keepalive_interval, keepalive_timeout)
    }
}

/// A gRPC service (tonic's routes) taking requests with bodies of type `B`.
pub trait RpcService<B>:
    tower::Service<
        http::Request<B>,
        Response = http::Response<tonic::body::Body>,
        Error = std::convert::Infallible,
    > + Clone
    + Send
    + 'static
{
}

impl<B, S> RpcService<B> for S where
    S: tower::Service<
            http::Request<B>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static
{
}

/// tokio's TCP.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioNet;

// `Net` values travel into connectors that may run on other tasks.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<TokioNet>();
    send_sync::<SimNet>();
};

impl Net for TokioNet {
    type Stream = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;
    const LOCAL_TASKS: bool = false;
    const SIMULATED: bool = false;

    async fn bind(&self, addr: &str) -> io::Result<Self::Listener> {
        tokio::net::TcpListener::bind(addr).await
    }

    async fn accept(listener: &Self::Listener) -> io::Result<Self::Stream> {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn connect(&self, addr: &str) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        let addr = addr.to_string();
        async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(stream)
        }
    }
}

/// turmoil's simulated network. Only usable inside a simulated host. Raw streams are its TCP;
/// gRPC goes over HTTP/2 on that TCP (`wire`) or as datagrams (`messages`, `super::msg`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SimNet {
    /// gRPC calls travel as datagrams, not over HTTP/2.
    pub messages: bool,
}

impl SimNet {
    /// gRPC over HTTP/2 over turmoil's TCP.
    pub const WIRE: SimNet = SimNet { messages: false };
    /// gRPC calls as datagrams.
    pub const MESSAGES: SimNet = SimNet { messages: true };
}

impl Net for SimNet {
    type Stream = turmoil::net::TcpStream;
    type Listener = turmoil::net::TcpListener;
    const LOCAL_TASKS: bool = true;
    const SIMULATED: bool = true;

    async fn bind(&self, addr: &str) -> io::Result<Self::Listener> {
        let port =
            addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("no port in {addr}"))
            })?;
        turmoil::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port)).await
    }

    async fn accept(listener: &Self::Listener) -> io::Result<Self::Stream> {
        Ok(listener.accept().await?.0)
    }

    fn connect(&self, addr: &str) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        turmoil::net::TcpStream::connect(addr.to_string())
    }

    fn datagrams(&self) -> bool {
        self.messages
    }

    fn channel(
        &self,
        addr: &str,
        connect_timeout: std::time::Duration,
        timeout: Option<std::time::Duration>,
    ) -> Result<RpcChannel, String> {
        if self.messages {
            Ok(RpcChannel::Message(MsgChannel::new(addr, timeout)))
        } else {
            RpcChannel::wire(self, addr, connect_timeout, timeout)
        }
    }

    fn serve_rpc<S>(
        &self,
        addr: &str,
        listener: Self::Listener,
        service: S,
        keepalive_interval: std::time::Duration,
        keepalive_timeout: std::time::Duration,
    ) -> impl Future<Output = ()>
    where
        S: RpcService<hyper::body::Incoming> + RpcService<tonic::body::Body>,
        <S as tower::Service<http::Request<hyper::body::Incoming>>>::Future: Send + 'static,
    {
        let (messages, addr) = (self.messages, addr.to_string());
        async move {
            if !messages {
                serve_http2::<SimNet, S>(listener, service, keepalive_interval, keepalive_timeout)
                    .await;
                return;
            }
            // The TCP listener stays bound, unused: the port is the node's either way.
            let port = addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
            if let Err(e) = super::msg::serve(port, service).await {
                eprintln!("raftbed: the message transport on {addr} stopped: {e}");
            }
        }
    }
}

/// Spawns background tasks where `Net::LOCAL_TASKS` says: on the current `LocalSet`, or on the
/// runtime. An executor for hyper's and tonic's connection tasks.
#[derive(Clone, Copy, Debug)]
pub struct Spawner {
    local: bool,
}

impl Spawner {
    /// The spawner for `N`.
    pub fn of<N: Net>() -> Spawner {
        Spawner { local: N::LOCAL_TASKS }
    }
}

impl<F> hyper::rt::Executor<F> for Spawner
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        if self.local {
            tokio::task::spawn_local(future);
        } else {
            tokio::spawn(future);
        }
    }
}

/// The largest request header block a client API accepts, as etcd's.
pub const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// Serves gRPC `service` over HTTP/2 on every connection `listener` accepts, each connection
/// on a task of its own: the one accept loop of the client API and of the gRPC peer transport.
/// A connection that leaves a keepalive ping unanswered for `keepalive_timeout` is closed.
pub async fn serve_http2<N, S>(
    listener: N::Listener,
    service: S,
    keepalive_interval: std::time::Duration,
    keepalive_timeout: std::time::Duration,
) where
    N: Net,
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    loop {
        let Ok(stream) = N::accept(&listener).await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let service = service.clone();
        tokio::task::spawn_local(async move {
            let mut builder = hyper::server::conn::http2::Builder::new(Spawner::of::<N>());
            // A wall-clock `date` header would differ between runs of one seed.
            builder
                .auto_date_header(false)
                .timer(hyper_util::rt::TokioTimer::new())
                .keep_alive_interval(keepalive_interval)
                .keep_alive_timeout(keepalive_timeout)
                // etcd's limit on request metadata (hyper's default is 16 KiB).
                .max_header_list_size(MAX_HEADER_LIST_BYTES);
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = hyper_util::service::TowerToHyperService::new(service);
            let _ = builder.serve_connection(io, service).await;
        });
    }
}
