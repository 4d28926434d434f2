//! The replicated state machine: etcd's key-value semantics, leases, locks with fencing tokens,
//! and client sessions. Deterministic: the same commands in the same order give the same state
//! and the same answers on every node.
//!
//! Revisions work as in etcd: the store's revision goes up by one for every command that
//! changes a key (a transaction's writes share one revision); each key carries the revision of
//! its creation and last modification, and its version (writes since creation). Every revision
//! is kept (`mvcc.rs`) until a `Compact` command drops what no read at or above its revision can
//! see; reads and watches may ask for any revision from the compaction point on.
//!
//! Sessions: a command carries (client id, sequence number). The store remembers each client's
//! last sequence number and what it answered, so a command retried after a lost reply applies
//! once and is answered the same; an older one is refused. The least recently used sessions are
//! dropped beyond `MAX_SESSIONS`.
//!
//! Leases: granted and revoked through the log with their TTL; expiry is decided by the leader
//! on its clock and replicated as a `LeaseExpire` command (the driver's lessor), so every node
//! deletes the lease's keys at the same point of the log.

mod crc32c;
mod error;
pub mod mvcc;
mod range;
mod snapshot;
mod txn;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use prost::Message as _;

pub use error::ApiError;
pub use mvcc::{Change, History, Rev};
pub use range::{KeyRange, prefix_end};
pub use snapshot::{Changes, FORMAT};
pub use txn::{MAX_TXN_OPS, check_delete, check_put, check_txn};

use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::response_op::Response;
use crate::proto::etcdserverpb::{
    CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseRevokeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::KeyValue;
use crate::proto::raftbed::{
    Command, GuardedPutRequest, GuardedPutResponse, LockRequest, LockResponse, Outcome, Refusal,
    UnlockRequest, UnlockResponse, command::Op, outcome::Result as Answer,
};

/// Sessions kept; beyond this the least recently used are dropped.
pub const MAX_SESSIONS: usize = 10_000;

/// The largest lease TTL in seconds (etcd's `MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Lease {
    ttl: i64,
    keys: BTreeSet<Bytes>,
}

#[derive(Clone, Debug, PartialEq)]
struct Session {
    seq: u64,
    outcome: Outcome,
    index: u64,
}

/// What applying a command answered, for the client waiting on it.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The command's client (0: no session).
    pub client_id: u64,
    /// Its sequence number.
    pub seq: u64,
    /// The answer; its header carries the revision after the command.
    pub outcome: Outcome,
}

/// A command that cannot be decoded. Commands are written by raftbed, so this means a corrupt
/// log; the node must stop.
#[derive(Debug, thiserror::Error)]
#[error("undecodable state machine data: {0}")]
pub struct BadCommand(pub String);

/// The key-value store.
#[derive(Clone, Debug, PartialEq)]
pub struct KvStore {
    revision: i64,
    kvs: BTreeMap<Bytes, KeyValue>,
    leases: BTreeMap<i64, Lease>,
    sessions: BTreeMap<u64, Session>,
    /// Per lock name, the highest fencing token granted.
    fences: BTreeMap<Bytes, i64>,
    /// Every kept revision.
    history: History,
    /// What changed since `take_changes` (only while tracking: a node that keeps its state
    /// at rest writes just these).
    dirty: Option<snapshot::Dirty>,
}

impl Default for KvStore {
    /// An empty store at revision 1, as etcd's: the first write makes revision 2.
    fn default() -> KvStore {
        KvStore {
            revision: 1,
            kvs: BTreeMap::new(),
            leases: BTreeMap::new(),
            sessions: BTreeMap::new(),
            fences: BTreeMap::new(),
            history: History::default(),
            dirty: None,
        }
    }
}

impl KvStore {
    /// Applies the command in log entry `index` (an empty entry is a leader's no-op).
    ///
    /// # Errors
    /// If the data is not a command: the log is corrupt.
    pub fn apply(&mut self, index: u64, data: &[u8]) -> Result<Option<Applied>, BadCommand> {
        if data.is_empty() {
            return Ok(None);
        }
        let command = Command::decode(data).map_err(|e| BadCommand(e.to_string()))?;
        let (client_id, seq) = (command.client_id, command.seq);
        if client_id != 0
            && let Some(session) = self.sessions.get(&client_id)
        {
            if seq == session.seq {
                return Ok(Some(Applied { client_id, seq, outcome: session.outcome.clone() }));
            }
            if seq < session.seq {
                let outcome = refusal(&ApiError::stale_sequence(seq, session.seq));
                return Ok(Some(Applied { client_id, seq, outcome }));
            }
        }
        let outcome = match command.op {
            Some(op) => self.execute(index, op),
            None => refusal(&ApiError::invalid("raftbed: a command without an operation")),
        };
        if client_id != 0 {
            self.remember(client_id, seq, index, &outcome);
        }
        Ok(Some(Applied { client_id, seq, outcome }))
    }

    fn remember(&mut self, client_id: u64, seq: u64, index: u64, outcome: &Outcome) {
        self.touch(|d| {
            d.sessions.insert(client_id);
        });
        self.sessions.insert(client_id, Session { seq, outcome: outcome.clone(), index });
        if self.sessions.len() > MAX_SESSIONS {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, session)| session.index)
                .map(|(client, _)| *client)
                .expect("not empty");
            self.sessions.remove(&oldest);
            self.touch(|d| {
                d.sessions.insert(oldest);
            });
        }
    }

    fn execute(&mut self, index: u64, op: Op) -> Outcome {
        let answer = match op {
            Op::Put(put) => self.apply_put(&put).map(Answer::Put),
            Op::DeleteRange(delete) => self.apply_delete(&delete).map(Answer::DeleteRange),
            Op::Txn(txn) => self.apply_txn(&txn).map(Answer::Txn),
            Op::LeaseGrant(grant) => self.apply_lease_grant(index, &grant).map(Answer::LeaseGrant),
            Op::LeaseRevoke(revoke) => {
                if self.leases.contains_key(&revoke.id) {
                    self.revoke(revoke.id);
                    Ok(Answer::LeaseRevoke(LeaseRevokeResponse { header: self.header() }))
                } else {
                    Err(ApiError::lease_not_found())
                }
            }
            Op::LeaseExpire(expire) => {
                self.revoke(expire.id);
                Ok(Answer::LeaseRevoke(LeaseRevokeResponse { header: self.header() }))
            }
            Op::Lock(lock) => self.apply_lock(&lock).map(Answer::Lock),
            Op::Unlock(unlock) => Ok(Answer::Unlock(self.apply_unlock(&unlock))),
            Op::GuardedPut(put) => self.apply_guarded_put(&put).map(Answer::GuardedPut),
            Op::Compact(compact) => self.apply_compact(compact.revision).map(Answer::Compact),
        };
        self.refresh_fences();
        match answer {
            Ok(answer) => Outcome { result: Some(answer) },
            Err(error) => refusal(&error),
        }
    }

    fn header(&self) -> Option<ResponseHeader> {
        Some(ResponseHeader { revision: self.revision, ..ResponseHeader::default() })
    }

    fn lease_exists(&self) -> impl Fn(i64) -> bool + '_ {
        |id| self.leases.contains_key(&id)
    }

    // ----- writes -----------------------------------------------------------------------------

    fn apply_put(&mut self, put: &PutRequest) -> Result<PutResponse, ApiError> {
        check_put(put)?;
        txn::check_put_state(&self.kvs, &self.lease_exists(), put)?;
        let rev = self.revision + 1;
        let response = self.write_put(put, rev);
        self.revision = rev;
        Ok(PutResponse { header: self.header(), ..response })
    }

    /// Writes a checked put at revision `rev`.
    fn write_put(&mut self, put: &PutRequest, rev: i64) -> PutResponse {
        let previous = self.kvs.get(&put.key).cloned();
        let lease =
            if put.ignore_lease { previous.as_ref().map_or(0, |p| p.lease) } else { put.lease };
        let value = if put.ignore_value {
            previous.as_ref().map(|p| p.value.clone()).unwrap_or_default()
        } else {
            put.value.clone()
        };
        if let Some(previous) = &previous
            && previous.lease != lease
        {
            self.detach(previous.lease, &put.key);
        }
        if lease != 0 {
            self.leases.entry(lease).or_default().keys.insert(put.key.clone());
            self.touch(|d| {
                d.leases.insert(lease);
            });
        }
        let kv = KeyValue {
            key: put.key.clone(),
            create_revision: previous.as_ref().map_or(rev, |p| p.create_revision),
            mod_revision: rev,
            version: previous.as_ref().map_or(0, |p| p.version) + 1,
            value,
            lease,
        };
        let at = self.next_write(rev);
        self.history.put(at, kv.clone());
        self.kvs.insert(put.key.clone(), kv);
        PutResponse { header: None, prev_kv: previous.filter(|_| put.prev_kv) }
    }

    /// The revision of the next write in the command that makes revision `main`.
    fn next_write(&mut self, main: i64) -> Rev {
        let sub = match self.history.last_revision() {
            Some(last) if last.main == main => last.sub + 1,
            _ => 0,
        };
        let at = Rev { main, sub };
        self.touch(|d| {
            d.revisions.insert(at);
        });
        at
    }

    /// Removes `key` at revision `main`; answers what it held.
    fn remove_key(&mut self, key: &Bytes, main: i64) -> Option<KeyValue> {
        let kv = self.kvs.remove(key)?;
        let at = self.next_write(main);
        self.history.delete(at, key.clone());
        Some(kv)
    }

    fn detach(&mut self, lease: i64, key: &Bytes) {
        if lease != 0
            && let Some(lease) = self.leases.get_mut(&lease)
        {
            lease.keys.remove(key);
        }
    }

    fn apply_delete(
        &mut self,
        delete: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, ApiError> {
        check_delete(delete)?;
        let rev = self.revision + 1;
        let response = self.write_delete(delete, rev);
        if response.deleted > 0 {
            self.revision = rev;
        }
        Ok(DeleteRangeResponse { header: self.header(), ..response })
    }

    /// Deletes the keys in a checked delete's range at revision `rev`.
    fn write_delete(&mut self, delete: &DeleteRangeRequest, rev: i64) -> DeleteRangeResponse {
        let range = KeyRange::new(&delete.key, &delete.range_end);
        let keys: Vec<Bytes> = range.select(&self.kvs).map(|(k, _)| k.clone()).collect();
        let mut prev_kvs = Vec::new();
        for key in &keys {
            let kv = self.remove_key(key, rev).expect("selected");
            self.detach(kv.lease, key);
            if delete.prev_kv {
                prev_kvs.push(kv);
            }
        }
        DeleteRangeResponse { header: None, deleted: keys.len() as i64, prev_kvs }
    }

    fn apply_txn(&mut self, txn: &TxnRequest) -> Result<TxnResponse, ApiError> {
        check_txn(txn)?;
        let succeeded = txn::compares_hold(&self.kvs, &txn.compare);
        let branch = if succeeded { &txn.success } else { &txn.failure };
        let revisions = (self.revision, self.history.compacted());
        txn::check_branch(&self.kvs, revisions, &self.lease_exists(), branch)?;
        let rev = self.revision + 1;
        let mut changed = false;
        let responses = self.write_branch(branch, rev, &mut changed);
        if changed {
            self.revision = rev;
        }
        Ok(TxnResponse { header: self.header(), succeeded, responses })
    }

    /// Runs a checked branch; its writes share revision `rev`, and reads see them.
    fn write_branch(
        &mut self,
        ops: &[crate::proto::etcdserverpb::RequestOp],
        rev: i64,
        changed: &mut bool,
    ) -> Vec<ResponseOp> {
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match op.request.as_ref().expect("checked") {
                Request::RequestRange(request) => {
                    let current = if *changed { rev } else { self.revision };
                    let mut response =
                        self.range_at(current, request).expect("checked before applying");
                    response.header =
                        Some(ResponseHeader { revision: current, ..Default::default() });
                    Response::ResponseRange(response)
                }
                Request::RequestPut(put) => {
                    *changed = true;
                    let mut response = self.write_put(put, rev);
                    response.header = Some(ResponseHeader { revision: rev, ..Default::default() });
                    Response::ResponsePut(response)
                }
                Request::RequestDeleteRange(delete) => {
                    let mut response = self.write_delete(delete, rev);
                    *changed |= response.deleted > 0;
                    let current = if *changed { rev } else { self.revision };
                    response.header =
                        Some(ResponseHeader { revision: current, ..Default::default() });
                    Response::ResponseDeleteRange(response)
                }
                Request::RequestTxn(inner) => {
                    let succeeded = txn::compares_hold(&self.kvs, &inner.compare);
                    let branch = if succeeded { &inner.success } else { &inner.failure };
                    let responses = self.write_branch(branch, rev, changed);
                    let current = if *changed { rev } else { self.revision };
                    Response::ResponseTxn(TxnResponse {
                        header: Some(ResponseHeader { revision: current, ..Default::default() }),
                        succeeded,
                        responses,
                    })
                }
            };
            responses.push(ResponseOp { response: Some(response) });
        }
        responses
    }

    /// etcd's Compact: the revision must be above the last compaction and at most the current.
    fn apply_compact(&mut self, revision: i64) -> Result<CompactionResponse, ApiError> {
        if self.history.compacted_at().is_some_and(|at| revision <= at) {
            return Err(ApiError::compacted());
        }
        if revision > self.revision {
            return Err(ApiError::future_revision());
        }
        for rev in self.history.compact(revision) {
            self.touch(|d| {
                d.revisions.insert(rev);
            });
        }
        Ok(CompactionResponse { header: self.header() })
    }

    // ----- leases -----------------------------------------------------------------------------

    fn apply_lease_grant(
        &mut self,
        index: u64,
        grant: &LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, ApiError> {
        if grant.ttl > MAX_LEASE_TTL {
            return Err(ApiError::lease_ttl_too_large());
        }
        if grant.id < 0 {
            return Err(ApiError::invalid("raftbed: a lease id must not be negative"));
        }
        let id = if grant.id == 0 {
            // The entry's index is unique and the same on every node; skip ids clients chose.
            let mut id = index as i64;
            while self.leases.contains_key(&id) {
                id += 1;
            }
            id
        } else if self.leases.contains_key(&grant.id) {
            return Err(ApiError::lease_exists());
        } else {
            grant.id
        };
        let ttl = grant.ttl.max(1);
        self.leases.insert(id, Lease { ttl, keys: BTreeSet::new() });
        self.touch(|d| {
            d.leases.insert(id);
        });
        Ok(LeaseGrantResponse { header: self.header(), id, ttl, error: String::new() })
    }

    /// Deletes the lease and its keys (one revision for all of them).
    fn revoke(&mut self, id: i64) {
        let Some(lease) = self.leases.remove(&id) else { return };
        self.touch(|d| {
            d.leases.insert(id);
        });
        if lease.keys.is_empty() {
            return;
        }
        // One revision for every key, deleted in key order (as etcd's lessor sorts them).
        let rev = self.revision + 1;
        for key in &lease.keys {
            self.remove_key(key, rev);
        }
        self.revision = rev;
    }

    // ----- locks ------------------------------------------------------------------------------

    fn apply_lock(&mut self, lock: &LockRequest) -> Result<LockResponse, ApiError> {
        if lock.name.is_empty() {
            return Err(ApiError::invalid("raftbed: a lock needs a name"));
        }
        if !self.leases.contains_key(&lock.lease) {
            return Err(ApiError::lease_not_found());
        }
        let key = lock_key(&lock.name, lock.lease);
        if !self.kvs.contains_key(&key) {
            let put = PutRequest { key: key.clone(), lease: lock.lease, ..PutRequest::default() };
            let rev = self.revision + 1;
            self.write_put(&put, rev);
            self.revision = rev;
        }
        self.fences.entry(lock.name.clone()).or_insert(0);
        self.touch(|d| {
            d.fences.insert(lock.name.clone());
        });
        let token = self.kvs[&key].create_revision;
        Ok(LockResponse { header: self.header(), key, token })
    }

    fn apply_unlock(&mut self, unlock: &UnlockRequest) -> UnlockResponse {
        if !unlock.key.is_empty() {
            let delete = DeleteRangeRequest { key: unlock.key.clone(), ..Default::default() };
            let rev = self.revision + 1;
            if self.write_delete(&delete, rev).deleted > 0 {
                self.revision = rev;
            }
        }
        UnlockResponse { header: self.header() }
    }

    fn apply_guarded_put(
        &mut self,
        put: &GuardedPutRequest,
    ) -> Result<GuardedPutResponse, ApiError> {
        let newest = self.fences.get(&put.lock).copied().unwrap_or(0);
        if put.token < newest {
            return Err(ApiError::fenced(&put.lock, put.token, newest));
        }
        if put.token > newest || newest == 0 {
            return Err(ApiError::unknown_token(&put.lock, put.token));
        }
        let write =
            PutRequest { key: put.key.clone(), value: put.value.clone(), ..Default::default() };
        check_put(&write)?;
        let rev = self.revision + 1;
        self.write_put(&write, rev);
        self.revision = rev;
        Ok(GuardedPutResponse { header: self.header() })
    }

    /// Raises each lock's fence to its current holder's token.
    fn refresh_fences(&mut self) {
        let names: Vec<Bytes> = self.fences.keys().cloned().collect();
        for name in names {
            if let Some((_, token)) = self.lock_holder(&name) {
                let fence = self.fences.get_mut(&name).expect("listed");
                if token > *fence {
                    *fence = token;
                    self.touch(|d| {
                        d.fences.insert(name.clone());
                    });
                }
            }
        }
    }

    // ----- reads ------------------------------------------------------------------------------

    /// Serves a Range at the current revision (header revision set, the rest to the caller).
    ///
    /// # Errors
    /// An invalid request, or a revision not kept (see `range::check_range`).
    pub fn range(&self, request: &RangeRequest) -> Result<RangeResponse, ApiError> {
        let mut response = self.range_at(self.revision, request)?;
        response.header = self.header();
        Ok(response)
    }

    /// Serves a read-only transaction (no compares, only ranges) from this store as it stands,
    /// without the log: `None` for any other. Only the `stale-follower-txn-read` bug calls it.
    pub fn read_only_txn(
        &self,
        txn: &crate::proto::etcdserverpb::TxnRequest,
    ) -> Option<crate::proto::etcdserverpb::TxnResponse> {
        use crate::proto::etcdserverpb::{ResponseOp, request_op, response_op};
        if !txn.compare.is_empty() {
            return None;
        }
        let mut responses = Vec::with_capacity(txn.success.len());
        for op in &txn.success {
            let Some(request_op::Request::RequestRange(range)) = &op.request else { return None };
            let response = self.range(range).ok()?;
            responses.push(ResponseOp {
                response: Some(response_op::Response::ResponseRange(response)),
            });
        }
        Some(crate::proto::etcdserverpb::TxnResponse {
            header: self.header(),
            succeeded: true,
            responses,
        })
    }

    /// Serves a Range when the store's revision is `current` (in a transaction, the revision its
    /// writes make): from the live keys at `current`, from the history below it.
    fn range_at(&self, current: i64, request: &RangeRequest) -> Result<RangeResponse, ApiError> {
        let revision = range::check_range(request, current, self.history.compacted())?;
        let keys = KeyRange::new(&request.key, &request.range_end);
        Ok(if revision == current {
            range::range(keys.select(&self.kvs).map(|(_, kv)| kv), request)
        } else {
            range::range(self.history.range_at(&keys, revision), request)
        })
    }

    /// The changes at revisions `from..=` to keys in `range`, at most `limit` revisions' worth
    /// (a revision's changes are never split), and the revision they reach: a watcher that asks
    /// again from that revision + 1 misses nothing and sees nothing twice.
    ///
    /// # Errors
    /// `from` is below the compaction point (the answer is etcd's `compact_revision`).
    pub fn changes(
        &self,
        range: &KeyRange,
        from: i64,
        limit: i64,
    ) -> Result<(Vec<Change>, i64), i64> {
        let compacted = self.history.compacted();
        if from < compacted {
            return Err(compacted);
        }
        let to = self.revision.min(from.saturating_add(limit.max(1)) - 1);
        Ok((self.history.changes(range, from, to), to.max(from - 1)))
    }

    /// `changes` for each watch `(range, from)`, in order.
    pub fn changes_of(
        &self,
        watches: &[(KeyRange, i64)],
        limit: i64,
    ) -> Vec<Result<(Vec<Change>, i64), i64>> {
        watches.iter().map(|(range, from)| self.changes(range, *from, limit)).collect()
    }

    /// The oldest revision that can still be read.
    pub fn compacted(&self) -> i64 {
        self.history.compacted()
    }

    /// How many revisions are kept.
    pub fn kept_revisions(&self) -> usize {
        self.history.len()
    }

    /// The store's revision.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// etcd's HashKV at `rev` (0: the current revision): the hash, the store's revision and
    /// its compaction point (-1 before the first compaction, as etcd reports it).
    ///
    /// # Errors
    /// etcd's: a revision already compacted, or one not reached yet.
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64, i64), ApiError> {
        let compacted = self.history.compacted_at().unwrap_or(-1);
        if rev > 0 && rev <= compacted {
            return Err(ApiError::compacted());
        }
        if rev > self.revision {
            return Err(ApiError::future_revision());
        }
        let at = if rev == 0 { self.revision } else { rev };
        Ok((self.history.hash_kv(at), self.revision, compacted))
    }

    /// A lease's granted TTL in seconds, if it exists.
    pub fn lease_ttl(&self, id: i64) -> Option<i64> {
        self.leases.get(&id).map(|lease| lease.ttl)
    }

    /// The keys attached to a lease.
    pub fn lease_keys(&self, id: i64) -> Vec<Bytes> {
        self.leases.get(&id).map(|lease| lease.keys.iter().cloned().collect()).unwrap_or_default()
    }

    /// Every lease, with its TTL.
    pub fn leases(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.leases.iter().map(|(id, lease)| (*id, lease.ttl))
    }

    /// The holder of lock `name`: the oldest key under `name/`, and its token.
    pub fn lock_holder(&self, name: &[u8]) -> Option<(Bytes, i64)> {
        let mut prefix = name.to_vec();
        prefix.push(b'/');
        KeyRange::prefix(&prefix)
            .select(&self.kvs)
            .min_by_key(|(_, kv)| kv.create_revision)
            .map(|(key, kv)| (key.clone(), kv.create_revision))
    }

    /// The highest token granted for lock `name` (0: none).
    pub fn fence(&self, name: &[u8]) -> i64 {
        self.fences.get(name).copied().unwrap_or(0)
    }

    /// The key and its metadata.
    pub fn get(&self, key: &[u8]) -> Option<&KeyValue> {
        self.kvs.get(key)
    }

    /// Roughly how many bytes the kept revisions take.
    pub fn approximate_size(&self) -> i64 {
        let live: usize = self.kvs.values().map(|kv| kv.key.len() + kv.value.len() + 40).sum();
        (live + self.history.len() * 64) as i64
    }
}

/// The key a lock waiter or holder owns: `name/<lease in hex>`, as etcd's v3lock.
pub fn lock_key(name: &[u8], lease: i64) -> Bytes {
    let mut key = name.to_vec();
    key.extend_from_slice(format!("/{lease:x}").as_bytes());
    Bytes::from(key)
}

/// An outcome that refuses with `error`.
pub fn refusal(error: &ApiError) -> Outcome {
    Outcome {
        result: Some(Answer::Refusal(Refusal {
            code: error.code as i32,
            message: error.message.clone(),
        })),
    }
}

impl From<&Refusal> for ApiError {
    fn from(refusal: &Refusal) -> ApiError {
        ApiError::new(tonic::Code::from_i32(refusal.code), refusal.message.clone())
    }
}

#[cfg(test)]
mod tests;
