//! naive-failover: the comparison system scenarios run next to Raft, modelled on
//! orchestrator-style MySQL failover. One primary takes every write and applies it at once;
//! replicas pull its binlog asynchronously; a monitor (`monitor.rs`) pings every node and,
//! after losing the primary's answers for a few seconds, promotes the most up-to-date replica
//! it can reach. Nothing asks a quorum: an old primary cut off from the monitor keeps taking
//! writes from the clients that still reach it, and when it is told to follow the new primary
//! it copies the new primary's state, discarding its own unreplicated writes.
//!
//! With `fenced`, every node's storage remembers the highest epoch (monitor promotion count) it
//! has seen and refuses replication from a lower one, and the primary acknowledges a write only
//! once one replica has stored it (semi-synchronous replication). A primary that is refused
//! steps down.
//!
//! It serves the same etcd API as a Raft node (the `server::api` layer over its own driver), so
//! the same clients, history and detector run against both.

pub mod monitor;
mod wire;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use prost::Message as _;
use tokio::sync::{mpsc, oneshot, watch};

use crate::kv::{ApiError, KvStore};
use crate::proto::etcdserverpb::{ResponseHeader, StatusResponse};
use crate::raft::NodeId;
use crate::server::calls::{Call, CallError, Consistency, Query, QueryAnswer, Served};
use crate::server::{NodeConfig, NodeError, api};
use crate::transport::frame::{read_frame, write_frame};
use crate::transport::net::Net;
pub use wire::{Msg, msg};

/// A node's role as its disk records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NaiveRole {
    /// Takes writes.
    Primary,
    /// Pulls from this primary (`None`: told to stop following, waiting for the monitor).
    Replica(Option<NodeId>),
}

/// What survives a crash: MySQL's data and binlog are synced before a write is acknowledged.
#[derive(Clone, Debug)]
pub struct Disk {
    /// The highest promotion epoch this node has seen.
    pub epoch: u64,
    /// Its role.
    pub role: NaiveRole,
    /// The state.
    pub kv: KvStore,
    /// Binlog position: writes applied.
    pub position: u64,
    /// Every write applied, as (client session, sequence): what the node's state contains.
    pub binlog: Vec<(u64, u64)>,
}

impl Disk {
    /// A fresh node of a cluster whose first primary is `primary`.
    pub fn new(id: NodeId, primary: NodeId) -> Disk {
        let role =
            if id == primary { NaiveRole::Primary } else { NaiveRole::Replica(Some(primary)) };
        Disk { epoch: 1, role, kv: KvStore::default(), position: 0, binlog: Vec::new() }
    }
}

/// What a naive node reports to the harness.
pub trait NaiveObserver {
    /// The node's role changed (or it started).
    fn role(&self, node: NodeId, role: NaiveRole, epoch: u64);
    /// The node's storage refused replication from an older epoch.
    fn refused(&self, node: NodeId, from: NodeId, epoch: u64);
    /// (fenced) A write the primary took at `epoch` was stored by no replica in time, so it was
    /// not acknowledged.
    fn unstored(&self, node: NodeId, epoch: u64);
    /// Something to write in the trace.
    fn note(&self, node: NodeId, text: String);
    /// The disk changed (a write applied, a snapshot installed, the role or epoch moved): a
    /// node process saves it here before it answers; the simulator's disks live in memory.
    fn stored(&self, _disk: &Disk) {}
}

/// A naive node's configuration.
#[derive(Clone, Debug)]
pub struct NaiveConfig {
    /// The node (addresses, timeouts; `raft` is unused).
    pub node: NodeConfig,
    /// Epochs checked at the storage, and semi-synchronous acknowledgement.
    pub fenced: bool,
}

/// The running node, shared by its tasks (all on one host's local set).
struct NaiveNode {
    id: NodeId,
    config: NaiveConfig,
    disk: Rc<RefCell<Disk>>,
    observer: Rc<dyn NaiveObserver>,
    subscribers: Vec<mpsc::UnboundedSender<Msg>>,
    /// Semi-sync waiters by binlog position.
    waiting: BTreeMap<u64, Vec<oneshot::Sender<()>>>,
    /// Bumped whenever the role changes, so replication loops reconnect.
    role_tx: watch::Sender<(NaiveRole, u64)>,
    leader_tx: watch::Sender<Option<NodeId>>,
    revision_tx: watch::Sender<i64>,
}

type Shared = Rc<RefCell<NaiveNode>>;

impl NaiveNode {
    fn primary(&self) -> Option<NodeId> {
        match self.disk.borrow().role {
            NaiveRole::Primary => Some(self.id),
            NaiveRole::Replica(p) => p,
        }
    }

    fn set_role(&mut self, role: NaiveRole, epoch: u64) {
        {
            let mut disk = self.disk.borrow_mut();
            disk.epoch = disk.epoch.max(epoch);
            disk.role = role;
        }
        if role != NaiveRole::Primary {
            self.subscribers.clear();
            self.waiting.clear();
        }
        let epoch = self.disk.borrow().epoch;
        self.observer.stored(&self.disk.borrow());
        self.observer.role(self.id, role, epoch);
        self.role_tx.send_replace((role, epoch));
        self.leader_tx.send_replace(self.primary());
    }

    fn publish(&self) {
        self.revision_tx.send_replace(self.disk.borrow().kv.revision());
    }
}

/// Runs a naive node until its host is crashed.
///
/// # Errors
/// A listener that cannot be bound.
pub async fn run_naive_node<N: Net + Send + Sync>(
    config: NaiveConfig,
    net: N,
    disk: Rc<RefCell<Disk>>,
    observer: Rc<dyn NaiveObserver>,
) -> Result<(), NodeError> {
    let id = config.node.id;
    let me = config.node.members.get(&id).expect("the node is a member").clone();
    let control = crate::server::bind(&net, &me.peer_addr).await?;
    let client = crate::server::bind(&net, &me.client_addr).await?;
    let (calls_tx, mut calls) = mpsc::channel(4096);
    let (role, epoch) = {
        let d = disk.borrow();
        (d.role, d.epoch)
    };
    let (role_tx, role_rx) = watch::channel((role, epoch));
    let (leader_tx, leader) = watch::channel(None);
    let (revision_tx, revision) = watch::channel(disk.borrow().kv.revision());
    let directory =
        std::sync::Arc::new(crate::server::members::Directory::new(id, &config.node.members));
    let api = api::Api::new(&config.node, calls_tx, revision, leader, net.clone(), directory);
    let (addr, keepalive) = (me.client_addr.clone(), config.node.transport.rpc_timeout);
    tokio::task::spawn_local(api::serve(net.clone(), addr, client, api, keepalive, None));
    let node = Rc::new(RefCell::new(NaiveNode {
        id,
        config,
        disk,
        observer,
        subscribers: Vec::new(),
        waiting: BTreeMap::new(),
        role_tx,
        leader_tx,
        revision_tx,
    }));
    {
        let n = node.borrow();
        n.observer.role(id, role, epoch);
        n.leader_tx.send_replace(n.primary());
    }
    tokio::task::spawn_local(accept_loop::<N>(control, node.clone()));
    tokio::task::spawn_local(follow_loop(net, node.clone(), role_rx));
    while let Some(call) = calls.recv().await {
        handle_call(&node, call);
    }
    Ok(())
}

/// An answer at `epoch` (the naive system's term).
fn served<T>(value: T, epoch: u64) -> Served<T> {
    Served { value, term: epoch, index: 0 }
}

fn handle_call(node: &Shared, call: Call) {
    let mut n = node.borrow_mut();
    let epoch = n.disk.borrow().epoch;
    match call {
        Call::Propose { command, reply } => {
            if n.disk.borrow().role != NaiveRole::Primary {
                let _ = reply.send(Err(CallError::NotLeader(n.primary())));
                return;
            }
            let data = bytes::Bytes::from(command.encode_to_vec());
            let (position, outcome) = {
                let mut disk = n.disk.borrow_mut();
                let position = disk.position + 1;
                let applied = disk.kv.apply(position, &data);
                disk.position = position;
                if command.client_id != 0 {
                    disk.binlog.push((command.client_id, command.seq));
                }
                (position, applied)
            };
            n.observer.stored(&n.disk.borrow());
            n.publish();
            let outcome = match outcome {
                Ok(Some(applied)) => applied.outcome,
                Ok(None) => return,
                Err(e) => {
                    let _ = reply.send(Err(CallError::Api(ApiError::invalid(e.to_string()))));
                    return;
                }
            };
            let entry = Msg::entry(epoch, position, data, command.client_id, command.seq);
            n.subscribers.retain(|s| s.send(entry.clone()).is_ok());
            let answer = Served { value: outcome, term: epoch, index: position };
            if !n.config.fenced {
                let _ = reply.send(Ok(answer));
                return;
            }
            // Semi-synchronous: answer once one replica has stored it.
            let (tx, rx) = oneshot::channel();
            n.waiting.entry(position).or_default().push(tx);
            let timeout = n.config.node.request_timeout;
            let (observer, id) = (n.observer.clone(), n.id);
            tokio::task::spawn_local(async move {
                let result = match tokio::time::timeout(timeout, rx).await {
                    Ok(Ok(())) => Ok(answer),
                    Ok(Err(_)) => Err(CallError::Api(ApiError::leader_changed())),
                    Err(_) => {
                        observer.unstored(id, epoch);
                        Err(CallError::Api(ApiError::timeout()))
                    }
                };
                let _ = reply.send(result);
            });
        }
        Call::Read { query, consistency, reply } => {
            let local = n.disk.borrow().role == NaiveRole::Primary
                || consistency == Consistency::Serializable;
            if !local {
                let _ = reply.send(Err(CallError::NotLeader(n.primary())));
                return;
            }
            let disk = n.disk.borrow();
            let answer = match query {
                Query::Range(request) => disk.kv.range(&request).map(QueryAnswer::Range),
                Query::LockHolder { name, key } => Ok(QueryAnswer::LockHolder(
                    disk.kv.lock_holder(&name),
                    disk.kv.get(&key).is_some(),
                )),
                Query::Leases => {
                    Ok(QueryAnswer::Leases(disk.kv.leases().map(|(i, _)| i).collect()))
                }
                Query::Changes { watches, limit } => Ok(QueryAnswer::Changes {
                    revision: disk.kv.revision(),
                    watches: disk.kv.changes_of(&watches, limit),
                }),
                Query::KeepAlive(_) | Query::TimeToLive { .. } => {
                    Err(ApiError::invalid("naive-failover keeps no lease deadlines"))
                }
                Query::Snapshot => Ok(QueryAnswer::Snapshot(disk.kv.encode(), disk.kv.revision())),
                Query::HashKv(rev) => disk.kv.hash_kv(rev).map(|(hash, current, compacted)| {
                    QueryAnswer::HashKv(hash, current, compacted)
                }),
            };
            let _ = reply.send(answer.map(|value| served(value, epoch)).map_err(CallError::Api));
        }
        Call::ChangeMembership { reply, .. } => {
            let why = "naive failover has no membership to change".to_string();
            let _ = reply.send(Err(crate::raft::Error::InvalidChange(why)));
        }
        Call::TransferLeader { reply, .. } => {
            let _ = reply.send(Err(crate::raft::Error::NotLeader { leader_hint: None }));
        }
        Call::Status { reply } => {
            let disk = n.disk.borrow();
            let status = StatusResponse {
                header: Some(ResponseHeader { revision: disk.kv.revision(), ..Default::default() }),
                version: crate::server::VERSION.into(),
                leader: n.primary().map_or(0, |p| p.0),
                raft_index: disk.position,
                raft_term: disk.epoch,
                raft_applied_index: disk.position,
                ..Default::default()
            };
            let status = crate::server::calls::NodeStatus { status, lease_left: None };
            let _ = reply.send(Ok(served(status, epoch)));
        }
    }
    drop(n);
}

/// Serves the monitor's commands and replicas' subscriptions.
async fn accept_loop<N: Net>(listener: N::Listener, node: Shared) {
    while let Ok(stream) = N::accept(&listener).await {
        tokio::task::spawn_local(serve_connection::<N>(stream, node.clone()));
    }
}

async fn serve_connection<N: Net>(mut stream: N::Stream, node: Shared) {
    let mut buf = Vec::new();
    let Ok(true) = read_frame(&mut stream, &mut buf).await else { return };
    let Ok(message) = Msg::decode(buf.as_slice()) else { return };
    let id = node.borrow().id;
    let answer = match message.body {
        Some(msg::Body::Ping(_)) => {
            let n = node.borrow();
            let disk = n.disk.borrow();
            let (primary, following) = match disk.role {
                NaiveRole::Primary => (true, 0),
                NaiveRole::Replica(p) => (false, p.map_or(0, |p| p.0)),
            };
            Msg::pong(disk.epoch, primary, following, disk.position)
        }
        Some(msg::Body::Promote(p)) => {
            let mut n = node.borrow_mut();
            n.observer.note(id, format!("promoted to primary at epoch {}", p.epoch));
            n.set_role(NaiveRole::Primary, p.epoch);
            Msg::done()
        }
        Some(msg::Body::Follow(f)) => {
            let mut n = node.borrow_mut();
            let primary = NodeId(f.primary);
            if n.disk.borrow().role != NaiveRole::Replica(Some(primary)) {
                n.observer.note(id, format!("follows {primary} at epoch {}", f.epoch));
                n.set_role(NaiveRole::Replica(Some(primary)), f.epoch);
            }
            Msg::done()
        }
        Some(msg::Body::Subscribe(s)) => {
            serve_replica::<N>(stream, node, NodeId(s.replica), s.epoch).await;
            return;
        }
        _ => return,
    };
    let _ = write_frame(&mut stream, &answer.encode_to_vec()).await;
}

/// The primary's side of one replica's stream: a snapshot, then every new write; acks back.
async fn serve_replica<N: Net>(stream: N::Stream, node: Shared, replica: NodeId, epoch: u64) {
    let (snapshot, rx) = {
        let mut n = node.borrow_mut();
        let disk = n.disk.borrow();
        if disk.role != NaiveRole::Primary {
            drop(disk);
            return;
        }
        if n.config.fenced && epoch > disk.epoch {
            // The replica has seen a newer promotion: this primary is stale.
            let (from, at) = (replica, disk.epoch);
            drop(disk);
            n.observer.note(n.id, format!("stale (epoch {at}): {from} knows epoch {epoch}"));
            n.set_role(NaiveRole::Replica(None), epoch);
            return;
        }
        let snapshot = Msg::snapshot(disk.epoch, disk.position, disk.kv.encode(), &disk.binlog);
        drop(disk);
        let (tx, rx) = mpsc::unbounded_channel();
        n.subscribers.push(tx);
        (snapshot, rx)
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let sender = async move {
        let mut rx = rx;
        if write_frame(&mut writer, &snapshot.encode_to_vec()).await.is_err() {
            return;
        }
        while let Some(entry) = rx.recv().await {
            if write_frame(&mut writer, &entry.encode_to_vec()).await.is_err() {
                return;
            }
        }
    };
    let acks = async {
        let mut buf = Vec::new();
        while let Ok(true) = read_frame(&mut reader, &mut buf).await {
            let Ok(message) = Msg::decode(buf.as_slice()) else { return };
            let mut n = node.borrow_mut();
            match message.body {
                Some(msg::Body::Ack(ack)) => {
                    let done: Vec<u64> =
                        n.waiting.range(..=ack.position).map(|(p, _)| *p).collect();
                    for position in done {
                        for waiter in n.waiting.remove(&position).unwrap_or_default() {
                            let _ = waiter.send(());
                        }
                    }
                }
                Some(msg::Body::Refused(r)) => {
                    if n.disk.borrow().role == NaiveRole::Primary {
                        let id = n.id;
                        n.observer.note(
                            id,
                            format!("steps down: {replica} refused epoch, it knows {}", r.epoch),
                        );
                        n.set_role(NaiveRole::Replica(None), r.epoch);
                    }
                    return;
                }
                _ => return,
            }
        }
    };
    tokio::select! {
        () = sender => {}
        () = acks => {}
    }
}

/// The replica's side: while told to follow a primary, pull its binlog; reconnect when the role
/// changes or the stream breaks.
async fn follow_loop<N: Net>(net: N, node: Shared, mut role: watch::Receiver<(NaiveRole, u64)>) {
    loop {
        let current = *role.borrow_and_update();
        if let (NaiveRole::Replica(Some(primary)), epoch) = current {
            let addr = node.borrow().config.node.members.get(&primary).map(|m| m.peer_addr.clone());
            if let Some(addr) = addr {
                tokio::select! {
                    () = pull(&net, &addr, &node, primary, epoch) => {}
                    _ = role.changed() => continue,
                }
            }
        }
        tokio::select! {
            _ = role.changed() => {}
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

async fn pull<N: Net>(net: &N, addr: &str, node: &Shared, primary: NodeId, epoch: u64) {
    let connect = tokio::time::timeout(Duration::from_secs(1), net.connect(addr));
    let Ok(Ok(stream)) = connect.await else { return };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let id = node.borrow().id;
    if write_frame(&mut writer, &Msg::subscribe(id.0, epoch).encode_to_vec()).await.is_err() {
        return;
    }
    let mut buf = Vec::new();
    while let Ok(true) = read_frame(&mut reader, &mut buf).await {
        let Ok(message) = Msg::decode(buf.as_slice()) else { return };
        let reply = {
            let n = node.borrow();
            let fenced = n.config.fenced;
            let mut disk = n.disk.borrow_mut();
            let (their_epoch, reply) = match &message.body {
                Some(msg::Body::Snapshot(s)) => (s.epoch, None),
                Some(msg::Body::Entry(e)) => (e.epoch, Some(Msg::ack(e.position))),
                _ => return,
            };
            if fenced && their_epoch < disk.epoch {
                let known = disk.epoch;
                drop(disk);
                n.observer.refused(id, primary, their_epoch);
                Some(Msg::refused(known))
            } else {
                match message.body {
                    Some(msg::Body::Snapshot(s)) => {
                        let Ok(kv) = KvStore::decode(&s.kv) else { return };
                        disk.kv = kv;
                        disk.position = s.position;
                        disk.binlog = s.binlog_pairs();
                    }
                    Some(msg::Body::Entry(e)) => {
                        if e.position != disk.position + 1 {
                            return;
                        }
                        if disk.kv.apply(e.position, &e.data).is_err() {
                            return;
                        }
                        disk.position = e.position;
                        if e.client_id != 0 {
                            disk.binlog.push((e.client_id, e.seq));
                        }
                    }
                    _ => return,
                }
                n.observer.stored(&disk);
                drop(disk);
                n.publish();
                if fenced { reply } else { None }
            }
        };
        if let Some(reply) = reply {
            let refused = matches!(reply.body, Some(msg::Body::Refused(_)));
            if write_frame(&mut writer, &reply.encode_to_vec()).await.is_err() || refused {
                return;
            }
        }
    }
}
