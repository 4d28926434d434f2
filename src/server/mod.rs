//! A raftbed node: the Raft core, its write-ahead log, the key-value state machine, the peer
//! transport and the client API (`api/`), around one driver loop (`driver.rs`).
//!
//! The same code runs in simulation and for real; only the network (`Net`), the filesystem
//! (`Fs`), the clock (`Clock`) and the seed differ.

pub mod api;
pub mod calls;
mod driver;
pub mod events;
mod lessor;
pub mod local;
pub mod members;
pub mod timing;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

pub use driver::Driver;

use crate::clock::Clock;
use crate::raft::{Entry, Node, NodeId, Ready, Term};
use crate::storage::fs::Fs;
use crate::storage::{StorageError, Wal, WalOptions};
use crate::transport::net::Net;
use crate::transport::peer::{self, TransportConfig};
use crate::transport::{Outbound, PeerTransport, grpc, msg};
use tokio::task::spawn_local;

/// The version `Maintenance.Status` reports: the etcd API version served, and raftbed's.
pub const VERSION: &str = concat!("3.4.0-raftbed.", env!("CARGO_PKG_VERSION"));

/// etcd's default progress-notification interval for watches.
pub const DEFAULT_WATCH_PROGRESS: Duration = Duration::from_secs(600);

/// The largest request a node proposes, encoded (etcd's `--max-request-bytes`, 1.5 MiB):
/// larger ones are refused with `etcdserver: request is too large`.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// What gRPC accepts beyond `max_request_bytes` before it refuses a message itself
/// (ResourceExhausted), as etcd's `grpcOverheadBytes`.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Deliberately broken server behaviours (all off by default), for the checks to catch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerBugs {
    /// A follower answers linearizable reads from its own, possibly stale, state.
    pub stale_follower_read: bool,
    /// The leader answers linearizable reads from its own state without confirming that it
    /// still leads, so a deposed leader serves stale reads until it learns of its successor
    /// (Jepsen, "etcd and Consul", 2014: etcd 0.4.1's reads; etcd later added quorum reads
    /// and ReadIndex).
    pub leader_local_read: bool,
    /// A watch created with a start revision this member has passed starts at the member's
    /// next revision instead, skipping the history between (a resumed watch loses events).
    pub watch_resume_skips: bool,
    /// Require-leader watch streams stay open on a member without a leader, so their
    /// clients see a silently frozen world.
    pub require_leader_ignored: bool,
    /// A write waiting at a log position is acknowledged once the log is applied past that
    /// position, whatever entry ended up there: a deposed leader that rejoins acknowledges the
    /// writes it held, though the new leader's entries replaced them (kurrent-io/KurrentDB#3472,
    /// EventStoreDB, 2022: writes incorrectly acked during leader election).
    pub ack_by_position: bool,
    /// A follower answers read-only transactions (ranges only) from its own, possibly stale,
    /// state instead of sending them through the leader.
    pub stale_follower_txn_read: bool,
}

/// Where a member listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Peer traffic, `host:port`.
    pub peer_addr: String,
    /// Client requests, `host:port`.
    pub client_addr: String,
}

/// Everything a node needs to know to start.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node.
    pub id: NodeId,
    /// Every member, this node included.
    pub members: BTreeMap<NodeId, Member>,
    /// The core's configuration (timing in ticks, lowered from `timing`).
    pub raft: crate::raft::Config,
    /// Raft's timers as durations: the tick on the node's clock, and what the core's ticks
    /// and the minimum lease TTL derive from.
    pub timing: timing::Timing,
    /// Peer transport bounds and deadlines.
    pub transport: TransportConfig,
    /// Which peer transport to use.
    pub peer_transport: PeerTransport,
    /// Write-ahead log options.
    pub wal: WalOptions,
    /// Where the log and snapshots live.
    pub data_dir: PathBuf,
    /// A proposal with no outcome after this long is answered "timeout" (indefinite).
    pub request_timeout: Duration,
    /// Take a snapshot and compact the log every this many applied entries.
    pub compact_every: u64,
    /// At most this many client requests proposed in one batch (group commit).
    pub max_batch: usize,
    /// Deliberate bugs.
    pub bugs: ServerBugs,
    /// Keep the state machine at rest in sled under the data dir (real nodes); otherwise it is
    /// rebuilt from snapshot and log at every start (the simulator).
    pub state_at_rest: bool,
    /// Faults injected into a running node (`raftbed nemesis`): peers it must not talk to.
    pub live: std::sync::Arc<LiveFaults>,
    /// etcd's auto-compaction, if on.
    pub auto_compaction: Option<api::compactor::AutoCompaction>,
    /// How often a watch that asked for progress notifications gets one (etcd's
    /// `--experimental-watch-progress-notify-interval`, 10 minutes by default).
    pub watch_progress: Duration,
    /// Campaign as soon as the start-up vote stickiness ends, if nothing was ever elected: a
    /// scenario's designated first leader.
    pub campaign_first: bool,
    /// The largest write the API proposes, encoded (etcd's `--max-request-bytes`).
    pub max_request_bytes: usize,
    /// The cluster's id, when the node did not bootstrap it (it joined): `None` is a hash of
    /// `members`.
    pub cluster_id: Option<u64>,
    /// Stop once a configuration that removes this node is applied, as etcd does ("the
    /// member has been permanently removed from the cluster"); simulated nodes keep running,
    /// so that the checks see what a removed server does (§4.2.3).
    pub exit_when_removed: bool,
    /// A node that joined a running cluster publishes this name and its client URL once it
    /// runs (etcd lists it "unstarted" until then); `None` for a bootstrap member.
    pub name: Option<String>,
}

/// A running node's state behind its admin port: the faults it obeys (a partition is
/// enforced here, in the node itself, for peer messages both ways and for requests it would
/// forward), once asked for, when it knew a leader, and its driver's call queue (membership
/// changes reach the leader's core through it).
#[derive(Debug, Default)]
pub struct LiveFaults {
    blocked: std::sync::Mutex<std::collections::BTreeSet<NodeId>>,
    /// The running incarnation's call queue (replaced at every start).
    calls: std::sync::Mutex<Option<tokio::sync::mpsc::Sender<calls::Call>>>,
    /// The cluster's leader no longer lists this node, which believes itself a member.
    removed: std::sync::atomic::AtomicBool,
    /// `(Unix nanoseconds, whether it knew a leader from then on)`; `None` until
    /// [`LiveFaults::record_leaders`]. Real nodes only: the simulator reads no wall clock.
    leaders: std::sync::Mutex<Option<Vec<(i64, bool)>>>,
}

fn unix_nanos() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| d.as_nanos() as i64)
}

impl LiveFaults {
    /// Starts recording when the node knows a leader, by the wall clock (for `raftbed
    /// test`'s require-leader watch check), from "none" now: a node starts without one.
    pub fn record_leaders(&self) {
        let mut leaders = self.leaders.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *leaders = Some(vec![(unix_nanos(), false)]);
    }

    /// The node came to know a leader (or stopped): recorded if asked for.
    pub fn knows_leader(&self, knows: bool) {
        let mut leaders = self.leaders.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(timeline) = leaders.as_mut()
            && timeline.last().is_none_or(|(_, last)| *last != knows)
        {
            timeline.push((unix_nanos(), knows));
        }
    }

    /// What was recorded (empty if not asked for).
    pub fn leader_timeline(&self) -> Vec<(i64, bool)> {
        let leaders = self.leaders.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        leaders.clone().unwrap_or_default()
    }

    /// Cuts this node off from `peers` (replacing any earlier cut; empty heals).
    pub fn block(&self, peers: std::collections::BTreeSet<NodeId>) {
        *self.blocked.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = peers;
    }

    /// Whether traffic with `peer` is cut.
    pub fn is_blocked(&self, peer: NodeId) -> bool {
        self.blocked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&peer)
    }

    /// The cluster's leader no longer lists this node as a member.
    pub fn mark_removed(&self) {
        self.removed.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether `mark_removed` was called.
    pub fn removed(&self) -> bool {
        self.removed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The node (re)started with this call queue.
    fn attach(&self, calls: tokio::sync::mpsc::Sender<calls::Call>) {
        *self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(calls);
    }

    /// Queues `call` for the running node's driver; false if the node is down (its queue
    /// closed) or not yet started.
    pub fn call(&self, call: calls::Call) -> bool {
        let calls = self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        calls.as_ref().is_some_and(|queue| queue.try_send(call).is_ok())
    }

    /// The peers cut off.
    pub fn blocked(&self) -> Vec<NodeId> {
        self.blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .collect()
    }
}

/// A fatal node error: the node stops rather than act on state it could not make durable.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored state cannot start a Raft node.
    #[error("cannot start from stored state: {0}")]
    Restore(#[from] crate::raft::Error),
    /// The log holds something the state machine cannot apply.
    #[error(transparent)]
    Command(#[from] crate::kv::BadCommand),
    /// The state machine at rest failed, or disagrees with the log.
    #[error(transparent)]
    State(#[from] crate::storage::state::StateError),
    /// The state machine at rest is ahead of the write-ahead log: entries it applied are gone.
    #[error(
        "the state machine at rest has applied index {applied}, past the log's last index {last}: refusing to start (the WAL lost entries; nothing was changed)"
    )]
    StateAhead {
        /// sled's applied index.
        applied: u64,
        /// The log's last index.
        last: u64,
    },
    /// This node applied a configuration without itself, or the leader's member list no
    /// longer names it.
    #[error("the member has been permanently removed from the cluster")]
    Removed,
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Watches a node from outside: the simulator's probe. Called synchronously by the driver.
pub trait Observer {
    /// The node started (or restarted) from storage.
    fn started(&self, node: &Node);
    /// One `Ready` was persisted, sent and applied; `node` is already advanced.
    fn ready(&self, node: &Node, ready: &Ready);
    /// A committed entry was applied by the state machine.
    fn applied(&self, node: NodeId, entry: &Entry);
    /// Until when, on the node's own clock, its leader lease holds (`None`: no lease), as of
    /// the end of a round of `Ready`s.
    fn lease(&self, _node: NodeId, _term: Term, _until: Option<Duration>) {}
    /// The node passed through a situation that coverage counts.
    fn event(&self, _node: NodeId, _event: events::NodeEvent) {}
}

/// Listens on `addr`, or says which address could not be bound.
pub(crate) async fn bind<N: Net>(net: &N, addr: &str) -> Result<N::Listener, NodeError> {
    net.bind(addr).await.map_err(|source| NodeError::Bind { addr: addr.to_string(), source })
}

/// Binds the datagram peer socket at `addr`, where the network carries datagrams.
async fn bind_datagrams<N: Net>(
    net: &N,
    addr: &str,
) -> Result<std::sync::Arc<turmoil::net::UdpSocket>, NodeError> {
    let bound = if net.datagrams() {
        msg::peers::bind(addr).await
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "datagram peers exist only in the simulator's message transport",
        ))
    };
    bound.map_err(|source| NodeError::Bind { addr: addr.to_string(), source })
}

/// Runs a node until a fatal error.
///
/// # Errors
/// A `NodeError`: storage failure, unusable stored state, or a listener that cannot be bound.
pub async fn run_node<N: Net + Send + Sync, F: Fs, C: Clock>(
    config: NodeConfig,
    net: N,
    fs: F,
    clock: C,
    observer: Option<Rc<dyn Observer>>,
) -> Result<(), NodeError> {
    let (wal, recovered) = Wal::open(fs, &config.data_dir, config.wal.clone())?;
    let me = config.members.get(&config.id).expect("the node is a member").clone();
    let peer_listener = bind(&net, &me.peer_addr).await?;
    let client_listener = bind(&net, &me.client_addr).await?;
    let (inbox_tx, inbox) = tokio::sync::mpsc::channel(8192);
    let (calls_tx, calls) = tokio::sync::mpsc::channel(4096);
    config.live.attach(calls_tx.clone());
    let (revision_tx, revision) = tokio::sync::watch::channel(0);
    let (leader_tx, leader) = tokio::sync::watch::channel(None);
    // The peer server first, then the API, then the senders: the order of their tasks is
    // part of a seed's trace.
    let datagrams = match config.peer_transport {
        PeerTransport::Framed => {
            spawn_local(peer::serve::<N>(peer_listener, inbox_tx, config.transport.clone()));
            None
        }
        PeerTransport::Grpc => {
            spawn_local(grpc::serve::<N>(peer_listener, inbox_tx, config.transport.clone()));
            None
        }
        PeerTransport::Datagram => {
            let socket = bind_datagrams(&net, &me.peer_addr).await?;
            spawn_local(msg::peers::serve(socket.clone(), inbox_tx));
            Some(socket)
        }
    };
    let directory = std::sync::Arc::new(members::Directory::new(config.id, &config.members));
    let api = api::Api::new(&config, calls_tx, revision, leader, net.clone(), directory.clone());
    let addr = me.client_addr.clone();
    let keepalive = config.transport.rpc_timeout;
    let compaction = config.auto_compaction;
    // A member added by MemberAdd is "unstarted" until it publishes its name and client URL.
    if let Some(name) = config.name.clone() {
        let (api, addr) = (api.clone(), addr.clone());
        spawn_local(async move { api.publish(name, addr).await });
    }
    if config.exit_when_removed {
        let (api, live) = (api.clone(), config.live.clone());
        spawn_local(async move { api.watch_removal(&live).await });
    }
    spawn_local(api::serve(net.clone(), addr, client_listener, api, keepalive, compaction));
    let peer_addrs = directory.peer_addrs();
    let peers = match datagrams {
        Some(socket) => Outbound::Datagram(msg::peers::DatagramPeers::new(socket, &peer_addrs)),
        None if config.peer_transport == PeerTransport::Grpc => {
            Outbound::Grpc(grpc::GrpcPeers::start(&net, &peer_addrs, &config.transport))
        }
        None => Outbound::Framed(peer::Peers::start(&net, &peer_addrs, &config.transport)),
    };
    let published = driver::Published { revision: revision_tx, leader: leader_tx, directory };
    let driver = Driver::new(config, wal, recovered, peers, clock, observer, published)?;
    driver.run(inbox, calls).await
}
