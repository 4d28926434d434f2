//! The one async driver around the Raft core.
//!
//! ```text
//!            peer inbox ──┐      API calls ──┐        tick (node clock)
//!                         v                  v              v
//!   loop { select! { biased; step(message) | call(call) | wake }
//!          fire the ticks that are due (before any lease decision)
//!          propose the admitted commands as one batch (group commit)
//!          while let Some(ready) = node.ready() {
//!              1. wal.persist(ready)        fsync if must_sync
//!              2. peers.send(messages)      bounded queues, never blocks
//!              3. apply committed entries   answer the proposals waiting on them;
//!                                           serve confirmed reads whose index is applied
//!              4. node.advance()
//!          } }
//! ```
//!
//! `select!` is `biased`, so the loop polls in a fixed order and replays exactly under turmoil.
//! A proposal is answered with its outcome when its entry is applied with its term, "leader
//! changed" (definite) when another entry took its slot, and "timed out" (indefinite) when
//! neither happened by its deadline. Reads never touch the log: see `raft::read_only`.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use tokio::sync::{mpsc, watch};

use super::calls::{Call, CallError, Consistency, NodeStatus, Query, QueryAnswer, Reply, Served};
use super::events::{self, NodeEvent};
use super::lessor::Lessor;
use super::{NodeConfig, NodeError, Observer};
use crate::clock::Clock;
use crate::kv::{ApiError, KvStore};
use crate::proto::etcdserverpb::{LeaseTimeToLiveResponse, ResponseHeader, StatusResponse};
use crate::proto::raftbed::{Command, LeaseExpire, Outcome, command::Op, outcome};
use crate::raft::{
    EntryKind, Error as RaftError, LogIndex, Message, Node, NodeId, Role, Snapshot, Term,
};
use crate::storage::fs::Fs;
use crate::storage::state::{StateStore, StateWriter};
use crate::storage::{Recovered, Wal};
use crate::transport::Outbound;

/// A proposal waiting for its entry.
struct Pending {
    term: Term,
    reply: Reply<Outcome>,
    /// On the node's clock.
    deadline: Duration,
}

/// A read waiting for confirmation or for its index to be applied.
struct PendingRead {
    query: Query,
    reply: Reply<QueryAnswer>,
    deadline: Duration,
}

/// The driver: owns the core, the log, the state machine and the transport.
pub struct Driver<F: Fs, C: Clock> {
    config: NodeConfig,
    node: Node,
    wal: Wal<F>,
    kv: KvStore,
    /// The state machine at rest (real nodes).
    at_rest: Option<StateWriter>,
    /// The last applied index not yet written to `at_rest`.
    unsaved: Option<LogIndex>,
    /// When `at_rest` was last written, on the node's clock.
    saved_at: Duration,
    peers: Outbound,
    clock: C,
    observer: Option<Rc<dyn Observer>>,
    admitted: Vec<(Command, Reply<Outcome>)>,
    pending: BTreeMap<LogIndex, Pending>,
    /// Reads sent for confirmation, by request id.
    reads: BTreeMap<u64, PendingRead>,
    /// Confirmed reads, waiting for their index to be applied.
    confirmed: Vec<(LogIndex, PendingRead)>,
    next_read: u64,
    lessor: Lessor,
    next_tick: Duration,
    next_sync: Duration,
    published: Published,
    /// The node as of the last `Ready`, to tell what the next one changed (the core's own
    /// role and term have already moved by then, and a truncation lowers its durable mark).
    seen: events::Before,
    /// Whether this incarnation has been a member (a joining node is not, at first).
    was_member: bool,
    /// When this node applied a configuration that removed it, on its clock.
    removed_at: Option<Duration>,
}

impl<F: Fs, C: Clock> Drop for Driver<F, C> {
    /// A node stopped in order leaves sled up to date (after a SIGKILL, the log is replayed).
    fn drop(&mut self) {
        // The writer flushes what is queued when it stops.
        let _ = self.save_state(true);
    }
}

/// How often a real node writes its state machine's changes to sled.
const SAVE_INTERVAL: Duration = Duration::from_millis(100);

/// What the driver publishes for the API's waiting handlers.
pub struct Published {
    /// The state machine's revision after every applied batch (lock waiters watch it).
    pub revision: watch::Sender<i64>,
    /// The leader this node knows (forwarded requests watch it).
    pub leader: watch::Sender<Option<NodeId>>,
    /// The members of the latest configuration, and how to reach them.
    pub directory: std::sync::Arc<super::members::Directory>,
}

/// At most this many ticks are fired at once after the node was held up (a pause); the rest
/// are skipped, as a real ticker would. It exceeds any election timeout, so a lease counted in
/// ticks has certainly lapsed after a skip.
const MAX_TICKS_AT_ONCE: u32 = 1000;

/// Why the loop woke.
enum Wake {
    Message(Message),
    Call(Call),
    Timer,
}

impl<F: Fs, C: Clock> Driver<F, C> {
    /// A driver for a node restored from `recovered`, publishing to `published`.
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
        published: Published,
    ) -> Result<Self, NodeError> {
        let mut restored = recovered.restored;
        let mut kv = match &restored.snapshot {
            Some(snapshot) => KvStore::decode(&snapshot.data)?,
            None => KvStore::default(),
        };
        let at_rest = if config.state_at_rest {
            let store = StateStore::open(&config.data_dir)?;
            let snapshot_index = restored.snapshot.as_ref().map_or(0, |s| s.meta.index.0);
            let last = snapshot_index + restored.entries.len() as u64;
            match store.load()? {
                // Start from what sled holds and replay the log after it.
                Some((applied, stored)) if applied >= snapshot_index && applied <= last => {
                    kv = stored;
                    restored.applied = LogIndex(applied);
                    // What was applied was committed, whether or not the commit index was
                    // persisted before the crash.
                    restored.hard_state.commit = restored.hard_state.commit.max(LogIndex(applied));
                }
                Some((applied, _)) if applied > last => {
                    return Err(NodeError::StateAhead { applied, last });
                }
                // New, or behind the snapshot (sled lost unsynced batches): rebuild from it.
                _ => store.replace(snapshot_index, &kv.to_snapshot())?,
            }
            kv.track_changes();
            Some(StateWriter::start(store))
        } else {
            None
        };
        let node = Node::new(config.raft.clone(), restored)?;
        if let Some(observer) = &observer {
            observer.started(&node);
        }
        let now = clock.now();
        let seen = events::Before {
            role: node.role(),
            term: node.term(),
            persisted: node.log().last_index(),
        };
        Ok(Driver {
            seen,
            next_tick: now + config.timing.tick,
            next_sync: now,
            config,
            node,
            wal,
            kv,
            at_rest,
            unsaved: None,
            saved_at: Duration::ZERO,
            peers,
            clock,
            observer,
            admitted: Vec::new(),
            pending: BTreeMap::new(),
            reads: BTreeMap::new(),
            confirmed: Vec::new(),
            next_read: 0,
            lessor: Lessor::default(),
            published,
            was_member: false,
            removed_at: None,
        })
    }

    /// Runs until a fatal error.
    ///
    /// # Errors
    /// A storage failure or an unappliable command.
    pub async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Message>,
        mut calls: mpsc::Receiver<Call>,
    ) -> Result<(), NodeError> {
        loop {
            self.clock.wait_running().await;
            let wake = tokio::select! {
                biased;
                Some(message) = inbox.recv() => Wake::Message(message),
                Some(call) = calls.recv() => Wake::Call(call),
                () = self.clock.sleep_until(self.next_tick) => Wake::Timer,
            };
            // Time first: a lease must be judged on the ticks that are due, not on the last
            // ones fired before the node was held up.
            self.on_time()?;
            match wake {
                Wake::Message(message) => {
                    self.step(message);
                    // Take what else has arrived without waiting, bounded.
                    for _ in 0..256 {
                        match inbox.try_recv() {
                            Ok(message) => self.step(message),
                            Err(_) => break,
                        }
                    }
                }
                Wake::Call(call) => {
                    self.call(call);
                    while self.admitted.len() < self.config.max_batch {
                        match calls.try_recv() {
                            Ok(call) => self.call(call),
                            Err(_) => break,
                        }
                    }
                }
                Wake::Timer => {}
            }
            self.propose_admitted();
            self.process_readies()?;
        }
    }

    /// Fires due ticks, then the deadlines that depend on them.
    fn on_time(&mut self) -> Result<(), NodeError> {
        let now = self.clock.now();
        if self.next_tick > now {
            return Ok(());
        }
        if self.config.campaign_first
            && self.node.ticks() == u64::from(self.config.raft.election_timeout_ticks_min) + 1
            && self.node.term() == crate::raft::Term(0)
        {
            self.node.campaign();
        }
        let mut fired = 0;
        while self.next_tick <= now && fired < MAX_TICKS_AT_ONCE {
            self.node.tick();
            self.next_tick += self.config.timing.tick;
            fired += 1;
        }
        if self.next_tick <= now {
            self.next_tick = now + self.config.timing.tick;
        }
        self.expire(now);
        if self.node.role() == Role::Leader {
            for id in self.lessor.expired(now) {
                let command =
                    Command { client_id: 0, seq: 0, op: Some(Op::LeaseExpire(LeaseExpire { id })) };
                let _ = self.node.propose(Bytes::from(command.encode_to_vec()));
            }
        }
        if !self.wal.options().sync && now >= self.next_sync {
            self.wal.sync()?;
            self.next_sync = now + self.wal.options().lazy_sync_interval;
        }
        Ok(())
    }

    fn step(&mut self, message: Message) {
        if self.config.live.is_blocked(message.from) {
            return;
        }
        // Misrouted messages are dropped; the transport already refused malformed ones.
        let _ = self.node.step(message);
    }

    fn not_leader(&self) -> CallError {
        CallError::NotLeader(self.node.leader().filter(|l| *l != self.node.id()))
    }

    fn served<T>(&self, value: T, index: u64) -> Result<Served<T>, CallError> {
        Ok(Served { value, term: self.node.term().0, index })
    }

    fn call(&mut self, call: Call) {
        match call {
            Call::Propose { command, reply } => {
                if self.node.role() == Role::Leader || self.node.still_appends() {
                    self.admitted.push((command, reply));
                } else if let Some(response) = self.stale_txn_read(&command) {
                    let answer = Outcome { result: Some(outcome::Result::Txn(response)) };
                    let _ = reply.send(self.served(answer, 0));
                } else {
                    let _ = reply.send(Err(self.not_leader()));
                }
            }
            Call::Read { query, consistency, reply } => self.read(query, consistency, reply),
            Call::Status { reply } => {
                let status = NodeStatus { status: self.status(), lease_left: self.lease_left() };
                let _ = reply.send(self.served(status, 0));
            }
            Call::ChangeMembership { change, attrs, reply } => {
                let proposed = self.node.propose_configuration(&change, attrs.as_ref());
                let _ = reply.send(proposed.map(|p| p.index.0));
            }
            Call::TransferLeader { target, reply } => {
                let _ = reply.send(self.node.transfer_leadership(target));
            }
        }
    }

    /// The `stale_follower_txn_read` bug: a follower answers a read-only Txn from its own
    /// state instead of sending it to the leader.
    fn stale_txn_read(&self, command: &Command) -> Option<crate::proto::etcdserverpb::TxnResponse> {
        let Some(Op::Txn(txn)) = &command.op else { return None };
        self.config.bugs.stale_follower_txn_read.then(|| self.kv.read_only_txn(txn)).flatten()
    }

    fn status(&self) -> StatusResponse {
        let log = self.node.log();
        let size = self.kv.approximate_size();
        StatusResponse {
            header: Some(ResponseHeader { revision: self.kv.revision(), ..Default::default() }),
            version: super::VERSION.into(),
            db_size: size,
            leader: self.node.leader().map_or(0, |l| l.0),
            raft_index: log.commit().0,
            raft_term: self.node.term().0,
            raft_applied_index: log.applied().0,
            errors: Vec::new(),
            db_size_in_use: size,
            is_learner: self.node.membership().learners.contains(&self.node.id()),
        }
    }

    fn read(&mut self, query: Query, consistency: Consistency, reply: Reply<QueryAnswer>) {
        let deadline = self.clock.now() + self.config.request_timeout;
        let read = PendingRead { query, reply, deadline };
        let local = matches!(
            read.query,
            Query::Range(_) | Query::Leases | Query::LockHolder { .. } | Query::Changes { .. }
        );
        if (local && consistency == Consistency::Serializable)
            || matches!(read.query, Query::HashKv(_) | Query::Snapshot)
        {
            return self.answer(read);
        }
        if self.node.role() != Role::Leader {
            if self.config.bugs.stale_follower_read && matches!(read.query, Query::Range(_)) {
                return self.answer(read);
            }
            let _ = read.reply.send(Err(self.not_leader()));
            return;
        }
        if self.config.bugs.leader_local_read && matches!(read.query, Query::Range(_)) {
            return self.answer(read);
        }
        if consistency == Consistency::Lease {
            if let Some(index) = self.node.lease_read_index() {
                self.emit(NodeEvent::LeaseRead);
                self.confirmed.push((index, read));
                return self.serve_confirmed();
            }
            self.emit(NodeEvent::LeaseLapsed);
        }
        self.emit(NodeEvent::ReadIndex);
        self.next_read += 1;
        match self.node.read_index(self.next_read) {
            Ok(()) => {
                self.reads.insert(self.next_read, read);
            }
            Err(_) => {
                let _ = read.reply.send(Err(self.not_leader()));
            }
        }
    }

    /// Answers a read from the state machine as it is now.
    fn answer(&mut self, read: PendingRead) {
        let now = self.clock.now();
        let answer = match read.query {
            Query::Range(request) => {
                self.kv.range(&request).map(QueryAnswer::Range).map_err(Into::into)
            }
            Query::LockHolder { name, key } => {
                Ok(QueryAnswer::LockHolder(self.kv.lock_holder(&name), self.kv.get(&key).is_some()))
            }
            Query::Leases => Ok(QueryAnswer::Leases(self.kv.leases().map(|(id, _)| id).collect())),
            Query::HashKv(rev) => self
                .kv
                .hash_kv(rev)
                .map(|(hash, current, compacted)| QueryAnswer::HashKv(hash, current, compacted))
                .map_err(Into::into),
            Query::Snapshot => Ok(QueryAnswer::Snapshot(self.kv.encode(), self.kv.revision())),
            Query::Changes { watches, limit } => Ok(QueryAnswer::Changes {
                revision: self.kv.revision(),
                watches: self.kv.changes_of(&watches, limit),
            }),
            Query::KeepAlive(_) | Query::TimeToLive { .. } if self.node.role() != Role::Leader => {
                Err(self.not_leader())
            }
            Query::KeepAlive(id) => {
                let ttl = self.kv.lease_ttl(id).unwrap_or(0);
                let renewed = ttl > 0 && self.lessor.renew(id, ttl, now);
                Ok(QueryAnswer::KeepAlive(if renewed { ttl } else { 0 }))
            }
            Query::TimeToLive { id, keys } => {
                let mut response = LeaseTimeToLiveResponse { id, ttl: -1, ..Default::default() };
                if let Some(granted) = self.kv.lease_ttl(id) {
                    let left = self
                        .lessor
                        .remaining(id, now)
                        .unwrap_or(Duration::from_secs(granted as u64));
                    response.granted_ttl = granted;
                    response.ttl = left.as_secs_f64().ceil() as i64;
                    if keys {
                        response.keys = self.kv.lease_keys(id);
                    }
                }
                response.header =
                    Some(ResponseHeader { revision: self.kv.revision(), ..Default::default() });
                Ok(QueryAnswer::TimeToLive(response))
            }
        };
        let _ = read.reply.send(answer.and_then(|value| self.served(value, 0)));
    }

    /// Serves the confirmed reads whose index the state machine has reached.
    fn serve_confirmed(&mut self) {
        let applied = self.node.log().applied();
        if self.confirmed.iter().all(|(index, _)| *index > applied) {
            return;
        }
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.confirmed = waiting;
        for (_, read) in due {
            self.answer(read);
        }
    }

    fn propose_admitted(&mut self) {
        if self.admitted.is_empty() {
            return;
        }
        let admitted = std::mem::take(&mut self.admitted);
        let commands: Vec<Bytes> =
            admitted.iter().map(|(command, _)| Bytes::from(command.encode_to_vec())).collect();
        match self.node.propose_batch(commands) {
            Ok(proposal) => {
                let deadline = self.clock.now() + self.config.request_timeout;
                for (i, (_, reply)) in admitted.into_iter().enumerate() {
                    let index = LogIndex(proposal.index.0 + i as u64);
                    self.pending.insert(index, Pending { term: proposal.term, reply, deadline });
                }
            }
            Err(err) => {
                let error = match err {
                    RaftError::NotLeader { .. } => self.not_leader(),
                    other => CallError::Api(ApiError::invalid(format!("raftbed: {other}"))),
                };
                for (_, reply) in admitted {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Duties 1-4 of `raft::Ready`, until the core has nothing more.
    fn process_readies(&mut self) -> Result<(), NodeError> {
        while let Some(ready) = self.node.ready() {
            self.wal.persist(&ready)?;
            let before = self.seen;
            self.seen = events::Before {
                role: self.node.role(),
                term: self.node.term(),
                persisted: events::persisted_after(before.persisted, &ready),
            };
            for message in &ready.messages {
                if !self.config.live.is_blocked(message.to) {
                    self.peers.send(message);
                }
            }
            if let Some(snapshot) = &ready.snapshot {
                self.kv = KvStore::decode(&snapshot.data)?;
                if let Some(store) = &self.at_rest {
                    store.replace(snapshot.meta.index.0, self.kv.to_snapshot())?;
                    self.kv.track_changes();
                    self.unsaved = None;
                }
            }
            for entry in &ready.committed_entries {
                // A configuration took effect when it was appended (§4.1); the state machine
                // skips it as it skips a no-op.
                let command: &[u8] = match entry.kind {
                    EntryKind::Config => &[],
                    EntryKind::Command => &entry.data,
                };
                let applied = self.kv.apply(entry.index.0, command)?;
                if let Some(observer) = &self.observer {
                    observer.applied(self.node.id(), entry);
                }
                if let Some(pending) = self.pending.remove(&entry.index) {
                    let answer = match applied {
                        // A write is committed only if its own entry is: the term tells.
                        Some(applied)
                            if pending.term == entry.term || self.config.bugs.ack_by_position =>
                        {
                            Ok(Served {
                                value: applied.outcome,
                                term: entry.term.0,
                                index: entry.index.0,
                            })
                        }
                        _ => Err(CallError::Api(ApiError::leader_changed())),
                    };
                    let _ = pending.reply.send(answer);
                }
            }
            if let Some(last) = ready.committed_entries.last()
                && self.at_rest.is_some()
            {
                self.unsaved = Some(last.index);
            }
            for read in &ready.read_states {
                if let Some(pending) = self.reads.remove(&read.request) {
                    self.confirmed.push((read.index, pending));
                }
            }
            for request in &ready.failed_reads {
                if let Some(pending) = self.reads.remove(request) {
                    let _ = pending.reply.send(Err(CallError::Api(ApiError::leader_changed())));
                }
            }
            self.node.advance();
            if let Some(soft) = ready.soft_state {
                self.published.leader.send_if_modified(|leader| {
                    std::mem::replace(leader, soft.leader) != soft.leader
                });
                self.config.live.knows_leader(soft.leader.is_some());
                let now = self.clock.now();
                if soft.role == Role::Leader {
                    self.lessor.promote(now, self.kv.leases());
                } else {
                    self.lessor.demote();
                }
            }
            if !ready.committed_entries.is_empty() || ready.snapshot.is_some() {
                self.lessor.sync(self.clock.now(), self.kv.leases());
                self.published.revision.send_if_modified(|revision| {
                    std::mem::replace(revision, self.kv.revision()) != self.kv.revision()
                });
            }
            self.serve_confirmed();
            if let Some(observer) = &self.observer {
                for event in events::of_ready(before, self.node.term(), &ready) {
                    observer.event(self.node.id(), event);
                }
                observer.ready(&self.node, &ready);
            }
        }
        self.report_lease();
        self.save_state(false)?;
        self.maybe_compact()?;
        self.follow_members()
    }

    /// Follows the latest configuration: the directory, the peer transport's addresses, and
    /// this node's removal, applied here or told by the leader's member list (the leader stops
    /// replicating to a server once it appends the configuration without it, §4.2.2, so the
    /// removed server may never have the entry). A removed node stops an election timeout
    /// later, so that what it still had to send (a leader's TimeoutNow to its successor,
    /// §3.10) goes out first.
    fn follow_members(&mut self) -> Result<(), NodeError> {
        let membership = self.node.membership();
        if self.published.directory.follow(membership) {
            self.peers.set_addrs(&self.published.directory.peer_addrs());
        }
        let told = self.config.live.removed();
        if membership.contains(self.node.id()) && !told {
            self.was_member = true;
            self.removed_at = None;
            return Ok(());
        }
        let applied = self.node.membership_index() <= self.node.log().applied();
        if !(self.config.exit_when_removed && self.was_member && (applied || told)) {
            return Ok(());
        }
        let now = self.clock.now();
        let since = *self.removed_at.get_or_insert(now);
        if now >= since + self.config.timing.election_timeout {
            return Err(NodeError::Removed);
        }
        Ok(())
    }

    fn emit(&self, event: NodeEvent) {
        if let Some(observer) = &self.observer {
            observer.event(self.node.id(), event);
        }
    }

    /// Writes what the state machine changed to sled, at most every `SAVE_INTERVAL` and not
    /// while the last save is still being written, unless `now`: the WAL holds every applied
    /// entry, so sled may lag behind it, and one batch then covers many rounds (a key written
    /// many times is written once).
    fn save_state(&mut self, now: bool) -> Result<(), NodeError> {
        let (Some(store), Some(applied)) = (&self.at_rest, self.unsaved) else { return Ok(()) };
        let at = self.clock.now();
        if !now && (at < self.saved_at + SAVE_INTERVAL || store.busy()) {
            return Ok(());
        }
        store.save(applied.0, self.kv.take_changes())?;
        self.unsaved = None;
        self.saved_at = at;
        Ok(())
    }

    /// How long this node's leader lease still holds after its last tick, on its clock.
    fn lease_left(&self) -> Option<Duration> {
        self.node.lease_read_index()?;
        let until = self.node.lease_until_tick()?;
        Some(self.config.timing.tick * until.saturating_sub(self.node.ticks()) as u32)
    }

    /// Tells the observer until when, on this node's clock, its lease holds.
    fn report_lease(&self) {
        let Some(observer) = &self.observer else { return };
        // Counted from the last tick, which fired at `next_tick - tick`.
        let until = self.lease_left().map(|left| self.next_tick - self.config.timing.tick + left);
        observer.lease(self.node.id(), self.node.term(), until);
    }

    /// Snapshots the state machine and compacts the log every `compact_every` entries.
    fn maybe_compact(&mut self) -> Result<(), NodeError> {
        let applied = self.node.log().applied();
        let compacted = self.node.log().snapshot().index;
        if applied.0 < compacted.0 + self.config.compact_every {
            return Ok(());
        }
        // sled must not fall behind the compaction point, or a restart would rebuild from the
        // snapshot instead.
        self.save_state(true)?;
        if let Some(store) = &self.at_rest {
            store.flush()?;
        }
        let term = self.node.log().term(applied).expect("an applied entry is held");
        let data = self.kv.encode();
        let meta = crate::raft::SnapshotMeta { index: applied, term };
        let membership = self.node.membership_at(applied);
        let snapshot = Snapshot { meta, data, membership };
        self.wal.save_snapshot(&snapshot)?;
        self.node.compact(applied, snapshot.data)?;
        Ok(())
    }

    /// Answers the proposals and reads whose deadline passed: a proposal may still commit
    /// (indefinite); a read had no effect (definite).
    fn expire(&mut self, now: Duration) {
        let expired: Vec<LogIndex> =
            self.pending.iter().filter(|(_, p)| p.deadline <= now).map(|(i, _)| *i).collect();
        for index in expired {
            let pending = self.pending.remove(&index).expect("listed");
            let _ = pending.reply.send(Err(CallError::Api(ApiError::timeout())));
        }
        let expired: Vec<u64> =
            self.reads.iter().filter(|(_, r)| r.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            let read = self.reads.remove(&id).expect("listed");
            let _ = read.reply.send(Err(CallError::Api(ApiError::read_timeout())));
        }
        let (late, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.confirmed).into_iter().partition(|(_, r)| r.deadline <= now);
        self.confirmed = waiting;
        for (_, read) in late {
            let _ = read.reply.send(Err(CallError::Api(ApiError::read_timeout())));
        }
    }
}
