use super::*;
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::{Compare, LeaseRevokeRequest, RequestOp};
use crate::proto::raftbed::LeaseExpire;

fn b(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

/// Applies commands in order, numbering entries from 1.
struct Log {
    kv: KvStore,
    index: u64,
}

impl Log {
    fn new() -> Log {
        Log { kv: KvStore::default(), index: 0 }
    }

    fn run(&mut self, client_id: u64, seq: u64, op: Op) -> Outcome {
        self.index += 1;
        let data = Command { client_id, seq, op: Some(op) }.encode_to_vec();
        self.kv.apply(self.index, &data).unwrap().unwrap().outcome
    }

    fn op(&mut self, op: Op) -> Outcome {
        self.run(0, 0, op)
    }

    fn put(&mut self, key: &str, value: &str) -> Outcome {
        self.op(Op::Put(PutRequest { key: b(key), value: b(value), ..Default::default() }))
    }

    fn value(&self, key: &str) -> Option<String> {
        self.kv.get(key.as_bytes()).map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
    }
}

fn refused(outcome: &Outcome) -> Option<String> {
    match &outcome.result {
        Some(Answer::Refusal(r)) => Some(r.message.clone()),
        _ => None,
    }
}

fn revision(outcome: &Outcome) -> i64 {
    let header = match outcome.result.as_ref().unwrap() {
        Answer::Put(r) => r.header,
        Answer::DeleteRange(r) => r.header,
        Answer::Txn(r) => r.header,
        Answer::LeaseGrant(r) => r.header,
        Answer::LeaseRevoke(r) => r.header,
        Answer::Lock(r) => r.header,
        Answer::Unlock(r) => r.header,
        Answer::GuardedPut(r) => r.header,
        Answer::Compact(r) => r.header,
        Answer::Refusal(r) => panic!("refused: {}", r.message),
    };
    header.unwrap().revision
}

#[test]
fn revisions_versions_and_create_revisions_follow_etcd() {
    let mut log = Log::new();
    assert_eq!(log.kv.revision(), 1, "an empty store is at revision 1, as etcd's");
    assert_eq!(revision(&log.put("a", "1")), 2);
    assert_eq!(revision(&log.put("b", "1")), 3);
    assert_eq!(revision(&log.put("a", "2")), 4);
    let a = log.kv.get(b"a").unwrap().clone();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (2, 4, 2));
    let deleted = log.op(Op::DeleteRange(DeleteRangeRequest {
        key: b("a"),
        range_end: b("c"),
        prev_kv: true,
    }));
    let Some(Answer::DeleteRange(response)) = &deleted.result else { panic!() };
    assert_eq!((response.deleted, response.prev_kvs.len()), (2, 2));
    assert_eq!(revision(&deleted), 5, "one revision for the whole range");
    let nothing = log.op(Op::DeleteRange(DeleteRangeRequest { key: b("a"), ..Default::default() }));
    assert_eq!(revision(&nothing), 5, "deleting nothing changes nothing");
    log.put("a", "3");
    let a = log.kv.get(b"a").unwrap();
    assert_eq!((a.create_revision, a.version), (6, 1), "recreated after the delete");
}

fn cas(key: &str, from: &str, to: &str) -> Op {
    Op::Txn(TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Value as i32,
            key: b(key),
            target_union: Some(TargetUnion::Value(b(from))),
            range_end: Bytes::new(),
        }],
        success: vec![RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: b(key),
                value: b(to),
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: b(key),
                ..Default::default()
            })),
        }],
    })
}

#[test]
fn a_txn_is_compare_and_set() {
    let mut log = Log::new();
    log.put("k", "a");
    let won = log.op(cas("k", "a", "b"));
    let Some(Answer::Txn(txn)) = &won.result else { panic!() };
    assert!(txn.succeeded);
    assert_eq!((log.value("k").unwrap().as_str(), revision(&won)), ("b", 3));
    let lost = log.op(cas("k", "a", "c"));
    let Some(Answer::Txn(txn)) = &lost.result else { panic!() };
    assert!(!txn.succeeded);
    assert_eq!(revision(&lost), 3, "a failed compare with a read-only branch writes nothing");
    let Some(Response::ResponseRange(read)) = &txn.responses[0].response else { panic!() };
    assert_eq!(read.kvs[0].value, b("b"), "the failure branch read the current value");
}

#[test]
fn a_txn_writes_at_one_revision_and_reads_its_own_writes() {
    let mut log = Log::new();
    let put = |k: &str, v: &str| RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: b(k),
            value: b(v),
            ..Default::default()
        })),
    };
    let get = |k: &str| RequestOp {
        request: Some(Request::RequestRange(RangeRequest { key: b(k), ..Default::default() })),
    };
    let outcome = log.op(Op::Txn(TxnRequest {
        compare: vec![],
        success: vec![put("x", "1"), put("y", "2"), get("x")],
        failure: vec![],
    }));
    assert_eq!(revision(&outcome), 2);
    assert_eq!(log.kv.get(b"y").unwrap().mod_revision, 2);
    let Some(Answer::Txn(txn)) = &outcome.result else { panic!() };
    let Some(Response::ResponseRange(read)) = &txn.responses[2].response else { panic!() };
    assert_eq!(read.kvs[0].value, b("1"));
    let duplicate = log.op(Op::Txn(TxnRequest {
        compare: vec![],
        success: vec![put("x", "1"), put("x", "2")],
        failure: vec![],
    }));
    assert_eq!(refused(&duplicate).unwrap(), ApiError::duplicate_key().message);
    assert_eq!(log.kv.revision(), 2, "a refused command changes nothing");
}

#[test]
fn a_retry_applies_once_and_gets_the_first_answer() {
    let mut log = Log::new();
    let put = |v: &str| Op::Put(PutRequest { key: b("k"), value: b(v), ..Default::default() });
    let first = log.run(7, 1, put("a"));
    log.run(8, 1, put("b"));
    let retry = log.run(7, 1, put("a"));
    assert_eq!(retry, first, "the same answer, revision included");
    assert_eq!(log.value("k").unwrap(), "b", "the retry did not overwrite b");
    let stale = log.run(7, 0, put("z"));
    assert!(refused(&stale).unwrap().contains("older than this client's last"));
    assert_eq!(log.value("k").unwrap(), "b");
}

#[test]
fn sessions_beyond_the_limit_drop_the_least_recently_used() {
    let mut log = Log::new();
    for client in 1..=(MAX_SESSIONS as u64 + 1) {
        log.run(
            client,
            1,
            Op::Put(PutRequest { key: b("k"), value: b("v"), ..Default::default() }),
        );
    }
    assert_eq!(log.kv.sessions.len(), MAX_SESSIONS);
    assert!(!log.kv.sessions.contains_key(&1));
}

#[test]
fn leases_delete_their_keys_when_revoked_or_expired() {
    let mut log = Log::new();
    let grant = log.op(Op::LeaseGrant(LeaseGrantRequest { ttl: 5, id: 0 }));
    let Some(Answer::LeaseGrant(granted)) = &grant.result else { panic!() };
    let lease = granted.id;
    assert_eq!((lease, granted.ttl), (1, 5), "the id is the entry's index");
    let put = |k: &str, lease: i64| {
        Op::Put(PutRequest { key: b(k), value: b("v"), lease, ..Default::default() })
    };
    log.op(put("a", lease));
    log.op(put("b", lease));
    log.op(put("b", 0));
    assert_eq!(log.kv.lease_keys(lease), vec![b("a")], "b moved off the lease");
    assert_eq!(refused(&log.op(put("c", 99))).unwrap(), ApiError::lease_not_found().message);
    let before = log.kv.revision();
    log.op(Op::LeaseExpire(LeaseExpire { id: lease }));
    assert_eq!(log.value("a"), None);
    assert_eq!(log.value("b").unwrap(), "v");
    assert_eq!(log.kv.revision(), before + 1);
    let again = log.op(Op::LeaseRevoke(LeaseRevokeRequest { id: lease }));
    assert_eq!(refused(&again).unwrap(), ApiError::lease_not_found().message);
    let taken = log.op(Op::LeaseGrant(LeaseGrantRequest { ttl: 5, id: 42 }));
    assert!(refused(&taken).is_none());
    let taken = log.op(Op::LeaseGrant(LeaseGrantRequest { ttl: 5, id: 42 }));
    assert_eq!(refused(&taken).unwrap(), ApiError::lease_exists().message);
}

fn grant(log: &mut Log) -> i64 {
    let Some(Answer::LeaseGrant(granted)) =
        log.op(Op::LeaseGrant(LeaseGrantRequest { ttl: 5, id: 0 })).result
    else {
        panic!()
    };
    granted.id
}

fn lock(log: &mut Log, lease: i64) -> LockResponse {
    let outcome = log.op(Op::Lock(LockRequest { name: b("L"), lease }));
    let Some(Answer::Lock(response)) = outcome.result else { panic!("{outcome:?}") };
    response
}

fn guarded(log: &mut Log, token: i64, value: &str) -> Outcome {
    log.op(Op::GuardedPut(GuardedPutRequest {
        lock: b("L"),
        token,
        key: b("resource"),
        value: b(value),
    }))
}

#[test]
fn lock_tokens_increase_and_fence_out_old_holders() {
    let mut log = Log::new();
    let (first, second) = (grant(&mut log), grant(&mut log));
    let holder = lock(&mut log, first);
    let waiter = lock(&mut log, second);
    assert!(waiter.token > holder.token);
    assert_eq!(log.kv.lock_holder(b"L").unwrap(), (holder.key.clone(), holder.token));
    assert_eq!(lock(&mut log, first).token, holder.token, "locking again is idempotent");
    assert!(refused(&guarded(&mut log, holder.token, "from the holder")).is_none());
    assert!(refused(&guarded(&mut log, waiter.token, "early")).unwrap().contains("never issued"));
    // The holder's lease expires (it paused): the waiter takes over.
    log.op(Op::LeaseExpire(LeaseExpire { id: first }));
    assert_eq!(log.kv.lock_holder(b"L").unwrap().1, waiter.token);
    assert_eq!(log.kv.fence(b"L"), waiter.token);
    assert!(refused(&guarded(&mut log, waiter.token, "from the new holder")).is_none());
    let late = guarded(&mut log, holder.token, "from the old holder, awake again");
    assert!(refused(&late).unwrap().contains("is older than"), "{late:?}");
    assert_eq!(log.value("resource").unwrap(), "from the new holder");
    // Unlock releases; the fence stays at the highest token granted.
    log.op(Op::Unlock(UnlockRequest { key: waiter.key.clone() }));
    assert_eq!(log.kv.lock_holder(b"L"), None);
    assert_eq!(log.kv.fence(b"L"), waiter.token);
}

#[test]
fn snapshots_round_trip_everything() {
    let mut log = Log::new();
    let lease = grant(&mut log);
    log.op(Op::Put(PutRequest { key: b("a"), value: b("1"), lease, ..Default::default() }));
    log.run(3, 9, Op::Put(PutRequest { key: b("b"), value: b("2"), ..Default::default() }));
    lock(&mut log, lease);
    let restored = KvStore::decode(&log.kv.encode()).unwrap();
    assert_eq!(restored, log.kv);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut kv = KvStore::default();
    assert!(kv.apply(1, b"\xff\xff\xff").is_err());
    assert!(KvStore::decode(b"\xff\xff").is_err());
    let empty = Command { client_id: 5, seq: 1, op: None }.encode_to_vec();
    let outcome = kv.apply(2, &empty).unwrap().unwrap().outcome;
    assert!(refused(&outcome).is_some());
    let bad = Op::Put(PutRequest { key: Bytes::new(), ..Default::default() });
    let data = Command { client_id: 0, seq: 0, op: Some(bad) }.encode_to_vec();
    assert_eq!(
        refused(&kv.apply(3, &data).unwrap().unwrap().outcome).unwrap(),
        ApiError::empty_key().message
    );
}

fn range_at(log: &Log, key: &str, revision: i64) -> Result<Vec<String>, ApiError> {
    let request = RangeRequest { key: b(key), revision, ..Default::default() };
    let response = log.kv.range(&request)?;
    Ok(response.kvs.iter().map(|kv| String::from_utf8_lossy(&kv.value).into_owned()).collect())
}

#[test]
fn every_revision_reads_until_compacted() {
    let mut log = Log::new();
    log.put("k", "1");
    log.put("k", "2");
    log.op(Op::DeleteRange(DeleteRangeRequest { key: b("k"), ..Default::default() }));
    log.put("k", "3");
    assert_eq!(log.kv.revision(), 5);
    let at: Vec<_> = (1..=5).map(|r| range_at(&log, "k", r).unwrap()).collect();
    assert_eq!(at, [vec![], vec!["1"], vec!["2"], vec![], vec!["3"]]);
    assert_eq!(range_at(&log, "k", 6), Err(ApiError::future_revision()));
    let compact = |log: &mut Log, revision| {
        log.op(Op::Compact(crate::proto::etcdserverpb::CompactionRequest {
            revision,
            physical: true,
        }))
    };
    assert_eq!(revision(&compact(&mut log, 3)), 5, "compaction keeps the revision");
    assert_eq!(range_at(&log, "k", 2), Err(ApiError::compacted()));
    assert_eq!(range_at(&log, "k", 3).unwrap(), ["2"], "the compaction point is readable");
    let again = refused(&compact(&mut log, 3)).expect("refused");
    assert_eq!(again, ApiError::compacted().message, "compacting twice at one revision");
    let ahead = refused(&compact(&mut log, 9)).expect("refused");
    assert_eq!(ahead, ApiError::future_revision().message);
    let restored = KvStore::decode(&log.kv.encode()).unwrap();
    assert_eq!(restored, log.kv, "the snapshot carries the history and the compaction point");
}

#[test]
fn a_transaction_reads_old_revisions_and_its_writes_share_one() {
    let mut log = Log::new();
    log.put("a", "1");
    let read_old = RequestOp {
        request: Some(Request::RequestRange(RangeRequest {
            key: b("a"),
            revision: 2,
            ..Default::default()
        })),
    };
    let put = |k: &str| RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: b(k),
            value: b("2"),
            ..Default::default()
        })),
    };
    let txn = TxnRequest {
        compare: vec![],
        success: vec![put("a"), put("b"), read_old],
        failure: vec![],
    };
    let Some(Answer::Txn(response)) = log.op(Op::Txn(txn)).result else { panic!("a txn answer") };
    let Some(Response::ResponseRange(read)) = &response.responses[2].response else { panic!() };
    assert_eq!(read.kvs[0].value, b("1"), "revision 2 as it was");
    let (changes, reached) = log.kv.changes(&KeyRange::From(b("a")), 3, 100).unwrap();
    let subs: Vec<_> = changes.iter().map(|c| (c.rev.main, c.rev.sub)).collect();
    assert_eq!((subs, reached), (vec![(3, 0), (3, 1)], 3));
}

#[test]
fn a_format_1_snapshot_reads_as_history_compacted_at_its_revision() {
    let mut log = Log::new();
    log.put("a", "1");
    log.put("b", "2");
    let mut legacy = log.kv.to_snapshot();
    legacy.format = 0;
    legacy.kvs = log
        .kv
        .range(&RangeRequest { key: b("\0"), range_end: b("\0"), ..Default::default() })
        .unwrap()
        .kvs;
    legacy.history.clear();
    legacy.compacted = 0;
    let store = KvStore::from_snapshot(legacy.clone()).unwrap();
    assert_eq!(store.get(b"b").unwrap().value, b("2"));
    assert_eq!((store.revision(), store.compacted()), (3, 3));
    legacy.format = FORMAT + 1;
    let error = KvStore::from_snapshot(legacy).unwrap_err().to_string();
    assert!(error.contains("newer raftbed"), "{error}");
}
