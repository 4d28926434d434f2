//! The replicated state machine: etcd's key-value semantics, leases, locks with fencing tokens,
//! and client sessions. Deterministic: the same commands in the same order give the same state
//! and the same answers on every node.
//!
//! Revisions work as in etcd: the store's revision goes up by one for every command that
//! changes a key (a transaction's writes share one revision); each key carries the revision of
//! its creation and last modification, and its version (writes since creation). raftbed keeps
//! no history: only the current revision can be read.
//!
//! Sessions: a command carries (client id, sequence number). The store remembers each client's
//! last sequence number and what it answered, so a command retried after a lost reply applies
//! once and is answered the same; an older one is refused. The least recently used sessions are
//! dropped beyond `MAX_SESSIONS`.
//!
//! Leases: granted and revoked through the log with their TTL; expiry is decided by the leader
//! on its clock and replicated as a `LeaseExpire` command (the driver's lessor), so every node
//! deletes the lease's keys at the same point of the log.

mod error;
mod range;
mod txn;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use prost::Message as _;

pub use error::ApiError;
pub use range::{KeyRange, prefix_end};
pub use txn::{MAX_TXN_OPS, check_delete, check_put, check_txn};

use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::response_op::Response;
use crate::proto::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader,
    ResponseOp, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::KeyValue;
use crate::proto::raftbed::{
    Command, Fence, GuardedPutRequest, GuardedPutResponse, KvSnapshot, LeaseState, LockRequest,
    LockResponse, Outcome, Refusal, Session as PbSession, UnlockRequest, UnlockResponse,
    command::Op, outcome::Result as Answer,
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
    /// What changed since `take_changes` (only while tracking: a node that keeps its state
    /// at rest writes just these).
    dirty: Option<Dirty>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Dirty {
    kvs: BTreeSet<Bytes>,
    leases: BTreeSet<i64>,
    sessions: BTreeSet<u64>,
    fences: BTreeSet<Bytes>,
}

/// What changed in a store since the last `take_changes`: each item's new encoding (the
/// snapshot's message types), or `None` where it was removed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// The store's revision now.
    pub revision: i64,
    /// Keys: an encoded `mvccpb.KeyValue`.
    pub kvs: Vec<(Bytes, Option<Vec<u8>>)>,
    /// Leases: an encoded `LeaseState`.
    pub leases: Vec<(i64, Option<Vec<u8>>)>,
    /// Sessions: an encoded `Session`.
    pub sessions: Vec<(u64, Option<Vec<u8>>)>,
    /// Fences: an encoded `Fence`.
    pub fences: Vec<(Bytes, Option<Vec<u8>>)>,
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

    /// Starts recording what changes, for `take_changes`.
    pub fn track_changes(&mut self) {
        self.dirty.get_or_insert_with(Dirty::default);
    }

    /// What changed since the last call (or since tracking began).
    pub fn take_changes(&mut self) -> Changes {
        let dirty = match &mut self.dirty {
            Some(dirty) => std::mem::take(dirty),
            None => return Changes { revision: self.revision, ..Changes::default() },
        };
        Changes {
            revision: self.revision,
            kvs: dirty
                .kvs
                .into_iter()
                .map(|k| {
                    let value = self.kvs.get(&k).map(|kv| kv.encode_to_vec());
                    (k, value)
                })
                .collect(),
            leases: dirty
                .leases
                .into_iter()
                .map(|id| {
                    let value =
                        self.leases.get(&id).map(|l| LeaseState { id, ttl: l.ttl }.encode_to_vec());
                    (id, value)
                })
                .collect(),
            sessions: dirty
                .sessions
                .into_iter()
                .map(|client| {
                    let value = self
                        .sessions
                        .get(&client)
                        .map(|s| session_message(client, s).encode_to_vec());
                    (client, value)
                })
                .collect(),
            fences: dirty
                .fences
                .into_iter()
                .map(|name| {
                    let value = self
                        .fences
                        .get(&name)
                        .map(|t| Fence { name: name.clone(), token: *t }.encode_to_vec());
                    (name, value)
                })
                .collect(),
        }
    }

    fn touch(&mut self, mark: impl FnOnce(&mut Dirty)) {
        if let Some(dirty) = &mut self.dirty {
            mark(dirty);
        }
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
        self.kvs.insert(put.key.clone(), kv);
        self.touch(|d| {
            d.kvs.insert(put.key.clone());
        });
        PutResponse { header: None, prev_kv: previous.filter(|_| put.prev_kv) }
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
        let response = self.write_delete(delete);
        if response.deleted > 0 {
            self.revision = rev;
        }
        Ok(DeleteRangeResponse { header: self.header(), ..response })
    }

    /// Deletes the keys in a checked delete's range.
    fn write_delete(&mut self, delete: &DeleteRangeRequest) -> DeleteRangeResponse {
        let range = KeyRange::new(&delete.key, &delete.range_end);
        let keys: Vec<Bytes> = range.select(&self.kvs).map(|(k, _)| k.clone()).collect();
        let mut prev_kvs = Vec::new();
        for key in &keys {
            let kv = self.kvs.remove(key).expect("selected");
            self.touch(|d| {
                d.kvs.insert(key.clone());
            });
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
        txn::check_branch(&self.kvs, self.revision, &self.lease_exists(), branch)?;
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
                    let read = RangeRequest { revision: 0, ..request.clone() };
                    let mut response =
                        range::range(&self.kvs, current, &read).expect("checked before applying");
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
                    let mut response = self.write_delete(delete);
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
            d.kvs.extend(lease.keys.iter().cloned());
        });
        if lease.keys.is_empty() {
            return;
        }
        for key in &lease.keys {
            self.kvs.remove(key);
        }
        self.revision += 1;
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
            if self.write_delete(&delete).deleted > 0 {
                self.revision += 1;
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
    /// An invalid request (see `range::range`).
    pub fn range(&self, request: &RangeRequest) -> Result<RangeResponse, ApiError> {
        let mut response = range::range(&self.kvs, self.revision, request)?;
        response.header = self.header();
        Ok(response)
    }

    /// The store's revision.
    pub fn revision(&self) -> i64 {
        self.revision
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

    /// Roughly how many bytes the keys and values take.
    pub fn approximate_size(&self) -> i64 {
        self.kvs.values().map(|kv| (kv.key.len() + kv.value.len() + 40) as i64).sum()
    }

    // ----- snapshots --------------------------------------------------------------------------

    /// The state as snapshot bytes.
    pub fn encode(&self) -> Bytes {
        Bytes::from(self.to_snapshot().encode_to_vec())
    }

    /// The whole state as a snapshot message (what `encode` encodes).
    pub fn to_snapshot(&self) -> KvSnapshot {
        KvSnapshot {
            revision: self.revision,
            kvs: self.kvs.values().cloned().collect(),
            leases: self.leases.iter().map(|(id, l)| LeaseState { id: *id, ttl: l.ttl }).collect(),
            sessions: self.sessions.iter().map(|(client, s)| session_message(*client, s)).collect(),
            fences: self
                .fences
                .iter()
                .map(|(name, token)| Fence { name: name.clone(), token: *token })
                .collect(),
        }
    }

    /// Restores from `encode`'s bytes.
    ///
    /// # Errors
    /// If the bytes are not a snapshot, or contradict themselves.
    pub fn decode(data: &[u8]) -> Result<KvStore, BadCommand> {
        let snapshot = KvSnapshot::decode(data).map_err(|e| BadCommand(e.to_string()))?;
        KvStore::from_snapshot(snapshot)
    }

    /// Restores from a snapshot message.
    ///
    /// # Errors
    /// If it contradicts itself.
    pub fn from_snapshot(snapshot: KvSnapshot) -> Result<KvStore, BadCommand> {
        let mut store = KvStore { revision: snapshot.revision, ..KvStore::default() };
        for lease in snapshot.leases {
            store.leases.insert(lease.id, Lease { ttl: lease.ttl, keys: BTreeSet::new() });
        }
        for kv in snapshot.kvs {
            if kv.lease != 0 {
                let lease = store.leases.get_mut(&kv.lease).ok_or_else(|| {
                    BadCommand(format!("snapshot key attached to missing lease {}", kv.lease))
                })?;
                lease.keys.insert(kv.key.clone());
            }
            store.kvs.insert(kv.key.clone(), kv);
        }
        for session in snapshot.sessions {
            let outcome = session.outcome.unwrap_or_default();
            store.sessions.insert(
                session.client_id,
                Session { seq: session.seq, outcome, index: session.index },
            );
        }
        store.fences = snapshot.fences.into_iter().map(|f| (f.name, f.token)).collect();
        Ok(store)
    }
}

fn session_message(client: u64, s: &Session) -> PbSession {
    PbSession { client_id: client, seq: s.seq, outcome: Some(s.outcome.clone()), index: s.index }
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
