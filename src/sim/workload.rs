//! Simulated clients: each runs puts and gets on a few keys, one at a time, and records a
//! jepsen-lite history. A definite error (not leader, rejected) is a `fail`; a timeout or a lost
//! connection is an `info`, after which the client continues as a new process (Jepsen's rule:
//! a process with an indeterminate op never invokes again).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use jepsen_lite::{Event, EventType, History, Process, Value};
use prost::Message as _;

use super::trace::Trace;
use crate::raft::LogIndex;
use crate::rng::SplitMix64;
use crate::transport::frame::{read_frame, write_frame};
use crate::transport::net::{Net, SimNet};
use crate::transport::rbpb::{self, client_response::Result as Reply};

/// What the clients share with the harness.
#[derive(Default)]
pub struct Shared {
    /// The history, in real-time order.
    pub history: RefCell<History>,
    /// Writes acknowledged as applied: (client, seq, index).
    pub acked: RefCell<Vec<(u64, u64, LogIndex)>>,
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
    /// Give up on a request after this (an indeterminate outcome).
    pub timeout: Duration,
    /// The number of clients (process ids advance by this after an `info`).
    pub clients: u64,
}

/// The outcome of one request.
enum Outcome {
    Ok(Option<Bytes>, LogIndex),
    Fail(String),
    Info(String),
}

/// Runs client `id` until the workload stops.
pub async fn run(
    id: u64,
    params: ClientParams,
    mut rng: SplitMix64,
    shared: Rc<Shared>,
    trace: Rc<RefCell<Trace>>,
) -> turmoil::Result {
    let mut process = id;
    let mut seq = 0u64;
    let mut target = rng.below(params.nodes.len() as u64) as usize;
    let mut conn: Option<(usize, <SimNet as Net>::Stream)> = None;
    while !shared.stop.get() {
        tokio::time::sleep(rng.duration(Duration::ZERO, params.think_max)).await;
        seq += 1;
        let key = format!("k{}", rng.below(params.keys));
        let put = rng.chance(0.5);
        let value = format!("{id}.{seq}");
        let op = if put {
            rbpb::client_request::Op::Put(rbpb::Put {
                key: Bytes::from(key.clone()),
                value: Bytes::from(value.clone()),
            })
        } else {
            rbpb::client_request::Op::Get(rbpb::Get { key: Bytes::from(key.clone()) })
        };
        let f = if put { "put" } else { "get" };
        let input = if put { Value::Str(value.clone()) } else { Value::Null };
        record(&shared, &trace, process, EventType::Invoke, f, &key, input.clone(), "");
        let request = rbpb::ClientRequest { client_id: id, seq, op: Some(op) };
        let outcome = match tokio::time::timeout(
            params.timeout,
            call(&mut conn, target, &params.nodes, &request),
        )
        .await
        {
            Ok(Ok(response)) => interpret(response, &mut target, &params),
            Ok(Err(e)) => {
                conn = None;
                Outcome::Info(format!("connection: {e}"))
            }
            Err(_) => {
                conn = None;
                Outcome::Info("client deadline".into())
            }
        };
        match outcome {
            Outcome::Ok(read, index) => {
                let output = if put {
                    shared.acked.borrow_mut().push((id, seq, index));
                    input
                } else {
                    read.map_or(Value::Null, |v| {
                        Value::Str(String::from_utf8_lossy(&v).into_owned())
                    })
                };
                record(&shared, &trace, process, EventType::Ok, f, &key, output, "");
            }
            Outcome::Fail(why) => {
                record(&shared, &trace, process, EventType::Fail, f, &key, input, &why)
            }
            Outcome::Info(why) => {
                record(&shared, &trace, process, EventType::Info, f, &key, input, &why);
                process += params.clients;
                target = (target + 1) % params.nodes.len();
            }
        }
    }
    Ok(())
}

fn interpret(response: rbpb::ClientResponse, target: &mut usize, params: &ClientParams) -> Outcome {
    match response.result {
        Some(Reply::Applied(applied)) => {
            let read = applied.found.then_some(applied.value);
            Outcome::Ok(read, LogIndex(applied.index))
        }
        Some(Reply::NotLeader(not_leader)) => {
            // Follow the hint, or try the next node.
            *target = match not_leader.leader_hint {
                0 => (*target + 1) % params.nodes.len(),
                hint => (hint as usize - 1) % params.nodes.len(),
            };
            Outcome::Fail("not leader".into())
        }
        Some(Reply::Rejected(rejected)) => {
            *target = (*target + 1) % params.nodes.len();
            Outcome::Fail(rejected.reason)
        }
        Some(Reply::Timeout(_)) => Outcome::Info("server timeout".into()),
        None => Outcome::Info("empty response".into()),
    }
}

/// One put of `seq` under `client_id`, to `target` (updated from the answer). Returns the index
/// it was applied at, if it was.
pub async fn put_once(
    nodes: &[String],
    target: &mut usize,
    client_id: u64,
    seq: u64,
) -> Option<LogIndex> {
    let put =
        rbpb::Put { key: Bytes::from_static(b"liveness"), value: Bytes::from(seq.to_string()) };
    let request =
        rbpb::ClientRequest { client_id, seq, op: Some(rbpb::client_request::Op::Put(put)) };
    let mut conn = None;
    let answer =
        tokio::time::timeout(Duration::from_secs(1), call(&mut conn, *target, nodes, &request))
            .await;
    let response = match answer {
        Ok(Ok(response)) => response,
        _ => {
            *target = (*target + 1) % nodes.len();
            return None;
        }
    };
    match response.result {
        Some(Reply::Applied(applied)) => Some(LogIndex(applied.index)),
        Some(Reply::NotLeader(hint)) if hint.leader_hint != 0 => {
            *target = (hint.leader_hint as usize - 1) % nodes.len();
            None
        }
        _ => {
            *target = (*target + 1) % nodes.len();
            None
        }
    }
}

async fn call(
    conn: &mut Option<(usize, <SimNet as Net>::Stream)>,
    target: usize,
    nodes: &[String],
    request: &rbpb::ClientRequest,
) -> std::io::Result<rbpb::ClientResponse> {
    if conn.as_ref().is_none_or(|(node, _)| *node != target) {
        let stream = SimNet.connect(&nodes[target]).await?;
        *conn = Some((target, stream));
    }
    let (_, stream) = conn.as_mut().expect("connected above");
    write_frame(stream, &request.encode_to_vec()).await?;
    let mut buf = Vec::new();
    if !read_frame(stream, &mut buf).await? {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
    }
    rbpb::ClientResponse::decode(buf.as_slice())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Appends an event to the history, and to the trace with `why` (for failures).
#[allow(clippy::too_many_arguments)]
fn record(
    shared: &Shared,
    trace: &RefCell<Trace>,
    process: u64,
    kind: EventType,
    f: &str,
    key: &str,
    value: Value,
    why: &str,
) {
    let now = turmoil::sim_elapsed().unwrap_or_default();
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
    });
}
