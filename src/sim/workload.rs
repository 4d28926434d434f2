//! The simulated clients: each issues put, get, compare-and-set and delete over a few keys
//! through raftbed's etcd API (the same client as the CLI), with a think time, and records a
//! jepsen-lite history. A definite error is a `fail`; an indefinite one (a timeout, a lost
//! connection) is an `info`, after which the client continues as a new process (Jepsen's rule:
//! a process with an indeterminate op never invokes again). Writes carry a session, and a
//! client retries a write through another node with the same sequence number, so retries are
//! exercised too: the write must apply at most once.
//!
//! Besides these, one reader per node stays bound to its node (as Jepsen binds clients to
//! nodes) and only reads: when that node is a leader cut off from the others, its readers are
//! the ones who would see a lease outlive the leadership.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use jepsen_lite::{Event, EventType, History, Process, Value};

use super::trace::Trace;
use crate::client::{Client, ClientError};
use crate::proto::etcdserverpb::response_op::Response as OpResponse;
use crate::raft::LogIndex;
use crate::rng::SplitMix64;
use crate::server::calls::Consistency;
use crate::transport::net::{Net, SimNet};

/// What the clients share with the harness.
#[derive(Default)]
pub struct Shared {
    /// The history, in real-time order.
    pub history: RefCell<History>,
    /// Writes acknowledged as applied: (client, seq, index).
    pub acked: RefCell<Vec<(u64, u64, LogIndex)>>,
    /// For each entry of `acked`, the index of its `ok` event in the history.
    pub acked_events: RefCell<Vec<usize>>,
    /// Set to stop the workload.
    pub stop: Cell<bool>,
}

/// How one client behaves.
#[derive(Clone, Debug)]
pub struct ClientParams {
    /// Client addresses of the nodes.
    pub nodes: Vec<String>,
    /// Keys are `k0`..`k{keys-1}`.
    pub keys: u64,
    /// Pause between operations, up to this.
    pub think_max: Duration,
    /// Give up on one attempt after this.
    pub timeout: Duration,
    /// Attempts per request.
    pub attempts: usize,
    /// The number of clients and readers (process ids advance by this after an `info`).
    pub processes: u64,
    /// The share of reads asking for a lease read (the rest: ReadIndex).
    pub lease_reads: f64,
    /// Cumulative shares of put, get, cas (the rest: delete).
    pub mix: [f64; 3],
    /// Every read at this consistency instead (a scenario's client group).
    pub read_consistency: Option<Consistency>,
    /// Start with a random node (else the first listed).
    pub spread: bool,
    /// Single-key operations, or list-append transactions (`append.rs`).
    pub workload: super::Workload,
}

/// The simulation's default mix: 30% put, 40% get, 20% cas, 10% delete.
pub const DEFAULT_MIX: [f64; 3] = [0.3, 0.7, 0.9];

/// The session id of client `id`: nonzero, and apart from the harness's own.
pub fn session_id(id: u64) -> u64 {
    id + 1
}

enum Op {
    Put,
    Get(Consistency),
    Cas,
    Delete,
}

/// What a client does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Any operation, through any node.
    Mixed,
    /// Only reads, through this node only.
    Reader(usize),
}

/// Runs client `id` in the simulation until the workload stops.
pub async fn run(
    net: SimNet,
    id: u64,
    role: Role,
    params: ClientParams,
    rng: SplitMix64,
    shared: Rc<Shared>,
    trace: Rc<RefCell<Trace>>,
) -> turmoil::Result {
    let clock: Rc<dyn Fn() -> Duration> = Rc::new(|| turmoil::sim_elapsed().unwrap_or_default());
    run_on(net, clock, id, role, params, rng, shared, trace).await;
    Ok(())
}

/// Runs client `id` on `net` until the workload stops, timing events by `clock` (the
/// simulation's, or time since a real test began): single-key operations, or list-append
/// transactions (`append.rs`) as `params.workload` says.
#[allow(clippy::too_many_arguments)]
pub async fn run_on<N: Net + Send + Sync>(
    net: N,
    clock: Rc<dyn Fn() -> Duration>,
    id: u64,
    role: Role,
    params: ClientParams,
    mut rng: SplitMix64,
    shared: Rc<Shared>,
    trace: Rc<RefCell<Trace>>,
) {
    let client = connect(net, id, role, &params, &mut rng);
    match params.workload {
        super::Workload::Kv => run_kv(client, clock, id, role, params, rng, shared, trace).await,
        super::Workload::Append => {
            super::append::run_client(client, clock, id, role, params, rng, shared, trace).await;
        }
    }
}

/// Client `id`'s connection: a mixed client to every node (starting at a random one when
/// `spread`), a reader to its own node only.
fn connect<N: Net + Send + Sync>(
    net: N,
    id: u64,
    role: Role,
    params: &ClientParams,
    rng: &mut SplitMix64,
) -> Client<N> {
    let endpoints = match role {
        Role::Mixed => params.nodes.clone(),
        Role::Reader(node) => vec![params.nodes[node].clone()],
    };
    let mut client = Client::new(net, endpoints, session_id(id));
    client.timeout = params.timeout;
    client.attempts = params.attempts;
    if role == Role::Mixed && params.spread {
        client.prefer(rng.below(params.nodes.len() as u64) as usize);
    }
    client
}

/// The single-key workload: put, get, cas and delete.
#[allow(clippy::too_many_arguments)]
async fn run_kv<N: Net + Send + Sync>(
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
    // The last value this client saw per key: what its compare-and-sets expect.
    let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut writes = 0u64;
    while !shared.stop.get() {
        tokio::time::sleep(rng.duration(Duration::ZERO, params.think_max)).await;
        let key = format!("k{}", rng.below(params.keys));
        let roll = if role == Role::Mixed { rng.float(0.0, 1.0) } else { 0.5 };
        let op = if roll < params.mix[0] {
            Op::Put
        } else if let Some(consistency) = params.read_consistency.filter(|_| roll < params.mix[1]) {
            Op::Get(consistency)
        } else if roll < params.mix[1] {
            // Readers read under the lease whenever leases are on.
            let lease =
                rng.chance(params.lease_reads) || (role != Role::Mixed && params.lease_reads > 0.0);
            Op::Get(if lease { Consistency::Lease } else { Consistency::Linearizable })
        } else if roll < params.mix[2] {
            Op::Cas
        } else {
            Op::Delete
        };
        writes += 1;
        let value = format!("{id}.{writes}");
        let expected = seen.get(&key).cloned().flatten();
        let (f, input) = match &op {
            Op::Put => ("put", Value::Str(value.clone())),
            Op::Get(_) => ("get", Value::Null),
            Op::Cas => (
                "cas",
                Value::List(vec![
                    expected.clone().map_or(Value::Null, Value::Str),
                    Value::Str(value.clone()),
                ]),
            ),
            Op::Delete => ("delete", Value::Null),
        };
        let consistency = match &op {
            Op::Get(c) => c.name(),
            _ => "",
        };
        let at = clock();
        let session = (!matches!(op, Op::Get(_))).then(|| (session_id(id), client.last_seq() + 1));
        record(
            &shared,
            &trace,
            at,
            process,
            EventType::Invoke,
            f,
            &key,
            input.clone(),
            consistency,
            session,
        );
        // A read that hangs has nothing to lose by giving up early and asking elsewhere.
        client.timeout = if matches!(op, Op::Get(_)) { params.timeout / 3 } else { params.timeout };
        let k = Bytes::from(key.clone());
        let outcome: Result<(Value, Option<u64>), ClientError> = match &op {
            Op::Put => client.put(k, Bytes::from(value.clone())).await.map(|a| {
                seen.insert(key.clone(), Some(value.clone()));
                (input.clone(), a.index)
            }),
            Op::Get(consistency) => client.get(k, Bytes::new(), *consistency).await.map(|r| {
                let read = r.kvs.first().map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
                seen.insert(key.clone(), read.clone());
                (read.map_or(Value::Null, Value::Str), None)
            }),
            Op::Delete => client.delete(k, Bytes::new()).await.map(|a| {
                seen.insert(key.clone(), None);
                (Value::Null, a.index)
            }),
            Op::Cas => {
                let from = expected.clone().map(Bytes::from);
                match client.cas(k, from, Bytes::from(value.clone())).await {
                    Ok(a) if a.response.succeeded => {
                        seen.insert(key.clone(), Some(value.clone()));
                        Ok((input.clone(), a.index))
                    }
                    Ok(a) => {
                        // It compared and wrote nothing: a definite failure. Learn the value.
                        let read = a.response.responses.first().and_then(|r| match &r.response {
                            Some(OpResponse::ResponseRange(range)) => Some(
                                range
                                    .kvs
                                    .first()
                                    .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
                            ),
                            _ => None,
                        });
                        if let Some(read) = read {
                            seen.insert(key.clone(), read);
                        }
                        Err(ClientError {
                            code: tonic::Code::Aborted,
                            message: "compare failed".into(),
                            definite: true,
                        })
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if let Ok((_, Some(index))) = &outcome {
            let seq = client.last_seq();
            shared.acked.borrow_mut().push((session_id(id), seq, LogIndex(*index)));
            shared.acked_events.borrow_mut().push(shared.history.borrow().events.len());
        }
        let (kind, value, why) = completion(outcome.map(|(output, _)| output), input);
        record(&shared, &trace, clock(), process, kind, f, &key, value, &why, None);
        if kind == EventType::Info {
            process += params.processes;
            seen.remove(&key);
        }
    }
}

/// How an op ended, as a history event: ok with its output; fail with the op's input for a
/// definite error; info for an indefinite one, after which the op may still take effect, so its
/// process must not invoke again (Jepsen's rule: the caller continues as a new process).
pub(crate) fn completion(
    outcome: Result<Value, ClientError>,
    input: Value,
) -> (EventType, Value, String) {
    match outcome {
        Ok(output) => (EventType::Ok, output, String::new()),
        Err(e) if e.definite => (EventType::Fail, input, e.message),
        Err(e) => (EventType::Info, input, e.message),
    }
}

/// One put of `value` to key `liveness`, trying each node in turn; the index it applied at.
pub async fn put_once(client: &mut Client<SimNet>, value: u64) -> Option<LogIndex> {
    let answer = client.put(Bytes::from_static(b"liveness"), Bytes::from(value.to_string())).await;
    answer.ok().and_then(|a| a.index).map(LogIndex)
}

/// Appends an event to the history, and to the trace with `why` (for failures). A write's
/// invocation carries its session and request number, which name it in the cluster's log.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record(
    shared: &Shared,
    trace: &RefCell<Trace>,
    now: Duration,
    process: u64,
    kind: EventType,
    f: &str,
    key: &str,
    value: Value,
    why: &str,
    session: Option<(u64, u64)>,
) {
    trace
        .borrow_mut()
        .record(now, format_args!("p{process} {} {f} {key} {value} {why}", kind.name()));
    shared.history.borrow_mut().events.push(Event {
        process: Process::Client(process),
        kind,
        f: f.to_string(),
        key: Some(Value::Str(key.to_string())),
        value,
        time: Some(now.as_nanos() as i64),
        line: 0,
        meta: jepsen_lite::history::EventMeta {
            client: session.map(|(client, _)| client),
            seq: session.map(|(_, seq)| seq),
            ..Default::default()
        },
    });
}
