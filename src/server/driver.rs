//! The one async driver around the Raft core.
//!
//! ```text
//!            peer inbox ──┐      client calls ──┐        tick (node clock)
//!                         v                     v              v
//!   loop { select! { biased; step(message) | admit(call) | tick() }
//!          propose the admitted calls as one batch (group commit)
//!          while let Some(ready) = node.ready() {
//!              1. wal.persist(ready)        fsync if must_sync
//!              2. peers.send(messages)      bounded queues, never blocks
//!              3. apply committed entries   answer the clients waiting on them
//!              4. node.advance()
//!          } }
//! ```
//!
//! `select!` is `biased`, so the loop polls in a fixed order and replays exactly under turmoil.
//! A client waiting on an entry gets "applied" when its entry is applied with its term,
//! "rejected" (definite) when another entry took its slot, and "timeout" (indefinite) when
//! neither happened by its deadline.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};

use super::client::{ClientCall, rejected};
use super::{NodeConfig, NodeError, Observer};
use crate::clock::Clock;
use crate::kv::{CommandResult, KvStore};
use crate::raft::{Error as RaftError, LogIndex, Message, Node, Role, Snapshot, Term};
use crate::storage::fs::Fs;
use crate::storage::{Recovered, Wal};
use crate::transport::Outbound;
use crate::transport::rbpb::{self, client_response::Result as Reply};

/// A client waiting for its entry.
struct Pending {
    term: Term,
    reply: oneshot::Sender<rbpb::ClientResponse>,
    /// On the node's clock.
    deadline: Duration,
}

/// The driver: owns the core, the log, the state machine and the transport.
pub struct Driver<F: Fs, C: Clock> {
    config: NodeConfig,
    node: Node,
    wal: Wal<F>,
    kv: KvStore,
    peers: Outbound,
    clock: C,
    observer: Option<Rc<dyn Observer>>,
    admitted: Vec<ClientCall>,
    pending: BTreeMap<LogIndex, Pending>,
}

/// At most this many ticks are fired at once after the clock jumps forward; the rest are
/// skipped, as a real ticker would.
const MAX_TICKS_AT_ONCE: u32 = 64;

impl<F: Fs, C: Clock> Driver<F, C> {
    /// A driver for a node restored from `recovered`.
    ///
    /// # Errors
    /// If the stored state cannot start a node.
    pub fn new(
        config: NodeConfig,
        wal: Wal<F>,
        recovered: Recovered,
        peers: Outbound,
        clock: C,
        observer: Option<Rc<dyn Observer>>,
    ) -> Result<Self, NodeError> {
        let kv = match &recovered.restored.snapshot {
            Some(snapshot) => KvStore::decode(&snapshot.data)?,
            None => KvStore::default(),
        };
        let node = Node::new(config.raft.clone(), recovered.restored)?;
        if let Some(observer) = &observer {
            observer.started(&node);
        }
        Ok(Driver {
            config,
            node,
            wal,
            kv,
            peers,
            clock,
            observer,
            admitted: Vec::new(),
            pending: BTreeMap::new(),
        })
    }

    /// Runs until a fatal error.
    ///
    /// # Errors
    /// A storage failure or an unappliable command.
    pub async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Message>,
        mut calls: mpsc::Receiver<ClientCall>,
    ) -> Result<(), NodeError> {
        let tick = self.config.tick;
        let mut next_tick = self.clock.now() + tick;
        let lazy_sync = (!self.wal.options().sync).then_some(self.wal.options().lazy_sync_interval);
        let mut next_sync = self.clock.now();
        loop {
            self.clock.wait_running().await;
            tokio::select! {
                biased;
                Some(message) = inbox.recv() => {
                    self.step(message);
                    // Take what else has arrived without waiting, bounded.
                    for _ in 0..256 {
                        match inbox.try_recv() {
                            Ok(message) => self.step(message),
                            Err(_) => break,
                        }
                    }
                }
                Some(call) = calls.recv() => {
                    self.admit(call);
                    while self.admitted.len() < self.config.max_batch {
                        match calls.try_recv() {
                            Ok(call) => self.admit(call),
                            Err(_) => break,
                        }
                    }
                }
                () = self.clock.sleep_until(next_tick) => {
                    let now = self.clock.now();
                    let mut fired = 0;
                    while next_tick <= now && fired < MAX_TICKS_AT_ONCE {
                        self.node.tick();
                        next_tick += tick;
                        fired += 1;
                    }
                    if next_tick <= now {
                        next_tick = now + tick;
                    }
                    self.expire(now);
                    if let Some(interval) = lazy_sync
                        && now >= next_sync
                    {
                        self.wal.sync()?;
                        next_sync = now + interval;
                    }
                }
            }
            self.propose_admitted();
            self.process_readies()?;
        }
    }

    fn step(&mut self, message: Message) {
        // Misrouted messages are dropped; the transport already refused malformed ones.
        let _ = self.node.step(message);
    }

    /// Takes a client call: a follower answers at once (definite), a leader batches it.
    fn admit(&mut self, call: ClientCall) {
        if self.node.role() != Role::Leader {
            let hint = self.node.leader().map_or(0, |l| l.0);
            let reply = Reply::NotLeader(rbpb::NotLeader { leader_hint: hint });
            let _ = call.reply.send(rbpb::ClientResponse { result: Some(reply) });
            return;
        }
        self.admitted.push(call);
    }

    fn propose_admitted(&mut self) {
        if self.admitted.is_empty() {
            return;
        }
        let calls = std::mem::take(&mut self.admitted);
        let mut commands = Vec::with_capacity(calls.len());
        let mut replies = Vec::with_capacity(calls.len());
        for call in calls {
            if call.request.op.is_none() {
                let _ = call.reply.send(rejected("request without an op"));
                continue;
            }
            commands.push(Bytes::from(call.request.encode_to_vec()));
            replies.push(call.reply);
        }
        match self.node.propose_batch(commands) {
            Ok(proposal) => {
                let deadline = self.clock.now() + self.config.request_timeout;
                for (i, reply) in replies.into_iter().enumerate() {
                    let index = LogIndex(proposal.index.0 + i as u64);
                    self.pending.insert(index, Pending { term: proposal.term, reply, deadline });
                }
            }
            Err(err) => {
                let response = match err {
                    RaftError::NotLeader { leader_hint } => rbpb::ClientResponse {
                        result: Some(Reply::NotLeader(rbpb::NotLeader {
                            leader_hint: leader_hint.map_or(0, |l| l.0),
                        })),
                    },
                    other => rejected(&other.to_string()),
                };
                for reply in replies {
                    let _ = reply.send(response.clone());
                }
            }
        }
    }

    /// Duties 1-4 of `raft::Ready`, until the core has nothing more.
    fn process_readies(&mut self) -> Result<(), NodeError> {
        while let Some(ready) = self.node.ready() {
            self.wal.persist(&ready)?;
            for message in &ready.messages {
                self.peers.send(message);
            }
            if let Some(snapshot) = &ready.snapshot {
                self.kv = KvStore::decode(&snapshot.data)?;
            }
            for entry in &ready.committed_entries {
                let result = self.kv.apply(&entry.data)?;
                if let Some(observer) = &self.observer {
                    observer.applied(self.node.id(), entry);
                }
                if let Some(pending) = self.pending.remove(&entry.index) {
                    let response = if pending.term == entry.term {
                        applied(entry.index, entry.term, result.map(|r| r.2))
                    } else {
                        rejected("another entry took this proposal's place in the log")
                    };
                    let _ = pending.reply.send(response);
                }
            }
            self.node.advance();
            if let Some(observer) = &self.observer {
                observer.ready(&self.node, &ready);
            }
        }
        self.maybe_compact()
    }

    /// Snapshots the state machine and compacts the log every `compact_every` entries.
    fn maybe_compact(&mut self) -> Result<(), NodeError> {
        let applied = self.node.log().applied();
        let compacted = self.node.log().snapshot().index;
        if applied.0 < compacted.0 + self.config.compact_every {
            return Ok(());
        }
        let term = self.node.log().term(applied).expect("an applied entry is held");
        let data = self.kv.encode();
        let snapshot = Snapshot { meta: crate::raft::SnapshotMeta { index: applied, term }, data };
        self.wal.save_snapshot(&snapshot)?;
        self.node.compact(applied, snapshot.data)?;
        Ok(())
    }

    /// Answers "timeout" to clients whose deadline passed: their entry may still commit.
    fn expire(&mut self, now: Duration) {
        let expired: Vec<LogIndex> =
            self.pending.iter().filter(|(_, p)| p.deadline <= now).map(|(i, _)| *i).collect();
        for index in expired {
            let pending = self.pending.remove(&index).expect("listed");
            let reply = Reply::Timeout(rbpb::Timeout {});
            let _ = pending.reply.send(rbpb::ClientResponse { result: Some(reply) });
        }
    }
}

fn applied(index: LogIndex, term: Term, result: Option<CommandResult>) -> rbpb::ClientResponse {
    let (found, value) = match result {
        Some(CommandResult::Get(Some(value))) => (true, value),
        _ => (false, Bytes::new()),
    };
    rbpb::ClientResponse {
        result: Some(Reply::Applied(rbpb::Applied { index: index.0, term: term.0, found, value })),
    }
}
