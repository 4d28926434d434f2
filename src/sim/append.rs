//! The list-append workload (Elle's, as Jepsen's etcd append test runs it over etcd's Txn):
//! each transaction is 1-4 micro-operations, `append k v` or `r k`, over keys `a0`..; a key
//! holds its list as decimal elements joined by commas, and every element is unique.
//!
//! etcd has no append, so a transaction that appends reads the keys it touches first (one
//! read-only Txn), then writes the lists it changed in one Txn guarded by every touched key's
//! mod revision: if any changed in between, the guard fails and nothing is written (a definite
//! `fail`); if it held, the reads are those of the commit point. A read-only transaction is one
//! read-only Txn. Histories record `f: "txn"` events with the micro-ops in the `txn` field,
//! checked by jepsen-lite's transaction checker.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use jepsen_lite::history::{EventMeta, MicroOp};
use jepsen_lite::{Event, EventType, Process, Value};

use super::trace::Trace;
use super::workload::{ClientParams, Role, Shared};
use crate::client::{Client, ClientError};
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::response_op::Response as OpResponse;
use crate::proto::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, TxnRequest, TxnResponse,
};
use crate::rng::SplitMix64;
use crate::transport::net::Net;

/// One micro-operation as planned: append `element`, or read.
#[derive(Clone, Debug)]
enum Plan {
    Append(String, i64),
    Read(String),
}

/// Seconds a key space lasts.
const KEY_EPOCH_SECS: u64 = 2;

/// What a read phase found: per key its list and mod revision (0: absent).
type Seen = BTreeMap<String, (Vec<i64>, i64)>;

/// Runs list-append client `id` with `client` (connected as `workload::run_on` connects every
/// client) until the workload stops.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_client<N: Net + Send + Sync>(
    mut client: Client<N>,
    clock: Rc<dyn Fn() -> Duration>,
    id: u64,
    role: Role,
    params: ClientParams,
    mut rng: SplitMix64,
    shared: Rc<Shared>,
    trace: Rc<RefCell<Trace>>,
) {
    let mut process = id;
    let mut appended = 0i64;
    while !shared.stop.get() {
        tokio::time::sleep(rng.duration(Duration::ZERO, params.think_max)).await;
        // The key space moves on every two seconds, as Jepsen's append test retires keys, so
        // that lists (and the values that carry them) stay short.
        let epoch = clock().as_secs() / KEY_EPOCH_SECS;
        let plan: Vec<Plan> = (0..=rng.below(3))
            .map(|_| {
                let key = format!("a{}", epoch * params.keys + rng.below(params.keys));
                if role == Role::Mixed && rng.chance(0.5) {
                    appended += 1;
                    // Unique across clients: the client in the high bits.
                    Plan::Append(key, ((id as i64 + 1) << 32) | appended)
                } else {
                    Plan::Read(key)
                }
            })
            .collect();
        let invoked: Vec<MicroOp> = plan.iter().map(|p| micro_op(p, None)).collect();
        record(&shared, &trace, clock(), process, EventType::Invoke, invoked.clone(), "");
        let (kind, mops, why) = match transact(&mut client, &plan).await {
            Ok(read) => {
                let done = plan.iter().zip(read).map(|(p, r)| micro_op(p, r)).collect();
                (EventType::Ok, done, String::new())
            }
            Err(e) if e.definite => (EventType::Fail, invoked, e.message),
            Err(e) => (EventType::Info, invoked, e.message),
        };
        record(&shared, &trace, clock(), process, kind, mops, &why);
        if kind == EventType::Info {
            process += params.processes;
        }
    }
}

/// Runs one transaction: per micro-op, the list read (`None` for an append).
async fn transact<N: Net + Send + Sync>(
    client: &mut Client<N>,
    plan: &[Plan],
) -> Result<Vec<Option<Vec<i64>>>, ClientError> {
    let keys: Vec<String> = {
        let mut keys: Vec<String> = plan.iter().map(|p| key_of(p).to_string()).collect();
        keys.sort();
        keys.dedup();
        keys
    };
    // A failed read phase wrote nothing: whatever the error, the transaction did not happen.
    let seen = read(client, &keys).await.map_err(|e| ClientError { definite: true, ..e })?;
    let mut lists: BTreeMap<&str, Vec<i64>> =
        seen.iter().map(|(k, (list, _))| (k.as_str(), list.clone())).collect();
    let mut reads = Vec::with_capacity(plan.len());
    for step in plan {
        match step {
            Plan::Append(key, element) => {
                lists.get_mut(key.as_str()).expect("read first").push(*element);
                reads.push(None);
            }
            Plan::Read(key) => reads.push(Some(lists[key.as_str()].clone())),
        }
    }
    if plan.iter().all(|p| matches!(p, Plan::Read(_))) {
        return Ok(reads);
    }
    let compare = keys.iter().map(|key| mod_revision_is(key, seen[key].1)).collect();
    let success = keys
        .iter()
        .filter(|key| plan.iter().any(|p| matches!(p, Plan::Append(k, _) if k == *key)))
        .map(|key| put(key, &lists[key.as_str()]))
        .collect();
    let answer = client.txn(TxnRequest { compare, success, failure: Vec::new() }).await?;
    if answer.response.succeeded {
        Ok(reads)
    } else {
        Err(ClientError {
            code: tonic::Code::Aborted,
            message: "a key changed since it was read".into(),
            definite: true,
        })
    }
}

fn key_of(plan: &Plan) -> &str {
    match plan {
        Plan::Append(key, _) | Plan::Read(key) => key,
    }
}

/// Reads `keys` in one read-only Txn: each key's list and mod revision.
async fn read<N: Net + Send + Sync>(
    client: &mut Client<N>,
    keys: &[String],
) -> Result<Seen, ClientError> {
    let success = keys
        .iter()
        .map(|key| RequestOp {
            request: Some(Op::RequestRange(RangeRequest {
                key: Bytes::from(key.clone()),
                ..RangeRequest::default()
            })),
        })
        .collect();
    let answer =
        client.txn(TxnRequest { compare: Vec::new(), success, failure: Vec::new() }).await?;
    parse(keys, &answer.response).ok_or_else(|| ClientError {
        code: tonic::Code::Internal,
        message: "a read-only Txn answered with something other than its ranges".into(),
        definite: true,
    })
}

fn parse(keys: &[String], response: &TxnResponse) -> Option<Seen> {
    let mut seen = Seen::new();
    for (key, op) in keys.iter().zip(&response.responses) {
        let Some(OpResponse::ResponseRange(range)) = &op.response else { return None };
        let (list, revision) = match range.kvs.first() {
            None => (Vec::new(), 0),
            Some(kv) => (decode(&kv.value)?, kv.mod_revision),
        };
        seen.insert(key.clone(), (list, revision));
    }
    (seen.len() == keys.len()).then_some(seen)
}

fn decode(value: &[u8]) -> Option<Vec<i64>> {
    let text = std::str::from_utf8(value).ok()?;
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(|e| e.parse().ok()).collect()
}

fn put(key: &str, list: &[i64]) -> RequestOp {
    let value: Vec<String> = list.iter().map(i64::to_string).collect();
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: Bytes::from(key.to_string()),
            value: Bytes::from(value.join(",")),
            ..PutRequest::default()
        })),
    }
}

/// A guard: `key`'s mod revision is still `revision` (0: the key is still absent).
fn mod_revision_is(key: &str, revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Mod as i32,
        key: Bytes::from(key.to_string()),
        target_union: Some(TargetUnion::ModRevision(revision)),
        range_end: Bytes::new(),
    }
}

fn micro_op(plan: &Plan, read: Option<Vec<i64>>) -> MicroOp {
    match plan {
        Plan::Append(key, element) => MicroOp {
            f: "append".into(),
            key: Value::Str(key.clone()),
            value: Value::Int(*element),
        },
        Plan::Read(key) => MicroOp {
            f: "r".into(),
            key: Value::Str(key.clone()),
            value: read
                .map_or(Value::Null, |l| Value::List(l.into_iter().map(Value::Int).collect())),
        },
    }
}

/// Appends a transaction's event to the history and the trace.
fn record(
    shared: &Shared,
    trace: &RefCell<Trace>,
    now: Duration,
    process: u64,
    kind: EventType,
    mops: Vec<MicroOp>,
    why: &str,
) {
    let shown: Vec<String> =
        mops.iter().map(|m| format!("{} {} {}", m.f, m.key, m.value)).collect();
    trace
        .borrow_mut()
        .record(now, format_args!("p{process} {} txn [{}] {why}", kind.name(), shown.join("; ")));
    shared.history.borrow_mut().events.push(Event {
        process: Process::Client(process),
        kind,
        f: "txn".into(),
        key: None,
        value: Value::Null,
        time: Some(now.as_nanos() as i64),
        line: 0,
        meta: EventMeta { txn: Some(mops), ..EventMeta::default() },
    });
}

/// The report lines of a transaction check (each printed after `transactions: `): the count
/// and verdict, then up to five anomalies.
pub fn summary(checked: &Result<jepsen_lite::txn::TxnReport, String>) -> Vec<String> {
    let report = match checked {
        Ok(report) => report,
        Err(why) => return vec![format!("undecided ({why})")],
    };
    let verdict = match report.violated.first() {
        None if report.incomplete => "undecided (the cycle search ran out of budget)".into(),
        None => "valid".to_string(),
        Some(weakest) => format!("INVALID (violates {weakest})"),
    };
    let mut lines = vec![format!("{} list-append transactions, {verdict}", report.txns)];
    lines.extend(report.anomalies.iter().take(5).map(ToString::to_string));
    lines
}

/// The history's single-key operations, and what the transaction checker makes of its
/// transactions (`f: "txn"` events), if it has any.
pub fn split_history(
    history: &jepsen_lite::History,
) -> (jepsen_lite::History, Option<Result<jepsen_lite::txn::TxnReport, String>>) {
    use jepsen_lite::txn;
    let (txns, single): (Vec<_>, Vec<_>) =
        history.events.iter().cloned().partition(|event| event.f == "txn");
    let checked = (!txns.is_empty()).then(|| {
        let txns = txn::from_history(&jepsen_lite::History { events: txns })
            .map_err(|e| format!("transactions malformed: {e}"))?;
        Ok(txn::check(&txns, &txn::Model::ALL, txn::SearchBudget::default()))
    });
    (jepsen_lite::History { events: single }, checked)
}
