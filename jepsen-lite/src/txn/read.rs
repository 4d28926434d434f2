//! Reading list-append histories: Jepsen's EDN op maps, and JSON lines in raftbed's history
//! schema (the micro-ops in its `txn` field) or Jepsen's (in `value`).
//!
//! An op's `:value` is a vector of micro-operations, `[:append k v]` or `[:r k list-or-nil]`.
//! Events of a named process (Jepsen's `:nemesis`) and ops whose `:f` is not `:txn` are skipped.
//! A completion closes its process's open invocation; a completion with none open (Elle's
//! examples list committed transactions alone) is its own invocation. Ops without `:process`
//! pair with the latest open invocation without one, and have no process order.

use std::collections::HashMap;

use super::{Key, Mop, Outcome, Txn, TxnHistory};
use crate::edn::{self, Edn};
use crate::history::HistoryError;

/// One op as read, before pairing.
struct RawOp {
    line: usize,
    process: Option<u64>,
    kind: Kind,
    mops: Vec<Mop>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Invoke,
    Done(Outcome),
}

/// Reads a list-append history in Jepsen's EDN.
///
/// # Errors
/// A syntax error, or an op that is not a list-append transaction, with its line.
pub fn read_edn(text: &str) -> Result<TxnHistory, HistoryError> {
    let items = edn::parse_items(text).map_err(|e| HistoryError::new(e.line, e.message))?;
    let mut ops = Vec::with_capacity(items.len());
    for (line, form) in &items {
        if let Some(op) = edn_op(form, *line)? {
            ops.push(op);
        }
    }
    pair(ops)
}

fn edn_op(form: &Edn, line: usize) -> Result<Option<RawOp>, HistoryError> {
    let fail = |message: String| HistoryError::new(line, message);
    if !matches!(form, Edn::Map(_)) {
        return Err(fail("expected an op map {:type ..., :value [...]}".into()));
    }
    let process = match form.get("process") {
        None | Some(Edn::Nil) => None,
        Some(Edn::Int(p)) if *p >= 0 => Some(*p as u64),
        Some(Edn::Keyword(_) | Edn::Symbol(_) | Edn::Str(_)) => return Ok(None),
        Some(other) => return Err(fail(format!(":process must be an integer, got {other:?}"))),
    };
    match form.get("f") {
        None => {}
        Some(Edn::Keyword(f) | Edn::Symbol(f) | Edn::Str(f)) if f == "txn" => {}
        Some(_) => return Ok(None),
    }
    let kind = match form.get("type") {
        Some(Edn::Keyword(k)) => kind(k).ok_or_else(|| fail(format!("unknown :type :{k}")))?,
        other => return Err(fail(format!(":type must be a keyword, got {other:?}"))),
    };
    let mops = match form.get("value") {
        Some(Edn::Vector(mops) | Edn::List(mops)) => {
            mops.iter().map(edn_mop).collect::<Result<Vec<_>, String>>().map_err(fail)?
        }
        Some(Edn::Nil) | None if kind != Kind::Invoke => Vec::new(),
        other => return Err(fail(format!(":value must be a vector of micro-ops, got {other:?}"))),
    };
    Ok(Some(RawOp { line, process, kind, mops }))
}

fn kind(name: &str) -> Option<Kind> {
    Some(match name {
        "invoke" => Kind::Invoke,
        "ok" => Kind::Done(Outcome::Ok),
        "fail" => Kind::Done(Outcome::Fail),
        "info" => Kind::Done(Outcome::Info),
        _ => return None,
    })
}

fn edn_mop(form: &Edn) -> Result<Mop, String> {
    let (Edn::Vector(parts) | Edn::List(parts)) = form else {
        return Err(format!("a micro-op must be [:append k v] or [:r k list], got {form:?}"));
    };
    let [Edn::Keyword(f) | Edn::Symbol(f), key, value] = parts.as_slice() else {
        return Err(format!("a micro-op must have three parts, got {form:?}"));
    };
    let key = match key {
        Edn::Int(i) => i.to_string(),
        Edn::Keyword(k) => format!(":{k}"),
        Edn::Str(s) | Edn::Symbol(s) => s.clone(),
        other => return Err(format!("a key must be an integer or a keyword, got {other:?}")),
    };
    match (f.as_str(), value) {
        ("append", Edn::Int(v)) => Ok(Mop::Append { key, value: *v }),
        ("r", Edn::Nil) => Ok(Mop::Read { key, value: None }),
        ("r", Edn::Vector(items) | Edn::List(items)) => {
            let list = items.iter().map(|item| match item {
                Edn::Int(v) => Ok(*v),
                other => Err(format!("a list element must be an integer, got {other:?}")),
            });
            Ok(Mop::Read { key, value: Some(list.collect::<Result<_, _>>()?) })
        }
        _ => Err(format!("unknown micro-op {form:?} (list-append has :append and :r)")),
    }
}

/// Reads a list-append history as JSON lines: raftbed's schema, `{"process": 0, "type": "ok",
/// "f": "txn", "value": null, "txn": [["append", "x", 1], ["r", "x", [1]]]}`, or the same with
/// the micro-ops in `value`, as Jepsen writes JSON.
///
/// # Errors
/// A line that is not such an op, with its number.
pub fn read_jsonl(text: &str) -> Result<TxnHistory, HistoryError> {
    let mut ops = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |message: String| HistoryError::new(line_no, message);
        let json: serde_json::Value =
            serde_json::from_str(line).map_err(|e| fail(format!("not JSON: {e}")))?;
        if let Some(op) = json_op(&json).map_err(fail)? {
            ops.push(RawOp { line: line_no, ..op });
        }
    }
    pair(ops)
}

fn json_op(json: &serde_json::Value) -> Result<Option<RawOp>, String> {
    use serde_json::Value as J;
    let process = match json.get("process") {
        None | Some(J::Null) => None,
        Some(J::Number(n)) => Some(n.as_u64().ok_or("process must be a whole number")?),
        Some(J::String(_)) => return Ok(None),
        Some(other) => return Err(format!("process must be a number, got {other}")),
    };
    if json.get("f").is_some_and(|f| f.as_str() != Some("txn")) {
        return Ok(None);
    }
    let name = json.get("type").and_then(J::as_str).ok_or("missing \"type\"")?;
    let kind = kind(name).ok_or_else(|| format!("unknown type {name:?}"))?;
    // raftbed's schema (v2) carries the micro-ops in `txn`; Jepsen's JSON in `value`.
    let carried = json.get("txn").filter(|t| !t.is_null()).or_else(|| json.get("value"));
    let mops = match carried {
        Some(J::Array(mops)) => mops.iter().map(json_mop).collect::<Result<Vec<_>, _>>()?,
        None | Some(J::Null) if kind != Kind::Invoke => Vec::new(),
        other => return Err(format!("value must be an array of micro-ops, got {other:?}")),
    };
    Ok(Some(RawOp { line: 0, process, kind, mops }))
}

fn json_mop(json: &serde_json::Value) -> Result<Mop, String> {
    use serde_json::Value as J;
    let Some([J::String(f), key, value]) = json.as_array().map(Vec::as_slice) else {
        return Err(format!(
            "a micro-op must be [\"append\", k, v] or [\"r\", k, list], got {json}"
        ));
    };
    let key: Key = match key {
        J::Number(n) => n.to_string(),
        J::String(s) => s.clone(),
        other => return Err(format!("a key must be a number or a string, got {other}")),
    };
    match (f.as_str(), value) {
        ("append", J::Number(v)) => {
            Ok(Mop::Append { key, value: v.as_i64().ok_or("an element must be an integer")? })
        }
        ("r", J::Null) => Ok(Mop::Read { key, value: None }),
        ("r", J::Array(items)) => {
            let list =
                items.iter().map(|item| item.as_i64().ok_or("an element must be an integer"));
            Ok(Mop::Read { key, value: Some(list.collect::<Result<_, _>>()?) })
        }
        _ => Err(format!("unknown micro-op {json} (list-append has append and r)")),
    }
}

/// Pairs invocations with completions into transactions, in invocation order.
fn pair(ops: Vec<RawOp>) -> Result<TxnHistory, HistoryError> {
    let mut txns: Vec<Txn> = Vec::new();
    let mut open: HashMap<Option<u64>, Vec<usize>> = HashMap::new();
    for (seq, op) in ops.into_iter().enumerate() {
        match op.kind {
            Kind::Invoke => {
                let stack = open.entry(op.process).or_default();
                if op.process.is_some() {
                    // A process runs one operation at a time: an invocation left open means
                    // the earlier one never completed.
                    stack.clear();
                }
                stack.push(txns.len());
                txns.push(Txn {
                    id: txns.len(),
                    process: op.process,
                    outcome: Outcome::Info,
                    mops: op.mops,
                    invoked_at: op.line,
                    completed_at: None,
                    invoke_seq: seq,
                    complete_seq: None,
                });
            }
            Kind::Done(outcome) => {
                let index = match open.get_mut(&op.process).and_then(Vec::pop) {
                    Some(index) => index,
                    None => {
                        txns.push(Txn {
                            id: txns.len(),
                            process: op.process,
                            outcome,
                            mops: op.mops.clone(),
                            invoked_at: op.line,
                            completed_at: None,
                            invoke_seq: seq,
                            complete_seq: None,
                        });
                        txns.len() - 1
                    }
                };
                complete(&mut txns[index], op, seq)?;
            }
        }
    }
    Ok(TxnHistory { txns })
}

fn complete(txn: &mut Txn, op: RawOp, seq: usize) -> Result<(), HistoryError> {
    txn.outcome = match op.kind {
        Kind::Done(outcome) => outcome,
        Kind::Invoke => unreachable!("only completions complete"),
    };
    if txn.outcome == Outcome::Info {
        return Ok(());
    }
    if !op.mops.is_empty() {
        if op.mops.len() != txn.mops.len()
            || op.mops.iter().zip(&txn.mops).any(|(a, b)| a.key() != b.key())
        {
            return Err(HistoryError::new(
                op.line,
                format!(
                    "the completion's micro-ops do not match its invocation (line {})",
                    txn.invoked_at
                ),
            ));
        }
        txn.mops = op.mops;
    }
    if txn.outcome == Outcome::Ok {
        // A committed read of nil found no list: the key was empty (Elle reads it so).
        for mop in &mut txn.mops {
            if let Mop::Read { value: value @ None, .. } = mop {
                *value = Some(Vec::new());
            }
        }
    }
    txn.completed_at = Some(op.line);
    txn.complete_seq = Some(seq);
    Ok(())
}

/// The transactions of a history read by [`crate::formats`] (or recorded in memory): its
/// `f: "txn"` events with their micro-ops in the schema's `txn` field. Other events (a
/// key-value workload's, a nemesis's) are left out.
///
/// # Errors
/// A transaction event without micro-ops, or with one that is not list-append's.
pub fn from_history(history: &crate::History) -> Result<TxnHistory, HistoryError> {
    use crate::history::{EventType, Process};
    use crate::value::Value;
    let mut ops = Vec::new();
    for (i, event) in history.events.iter().enumerate() {
        let line = if event.line > 0 { event.line } else { i + 1 };
        let fail = |message: String| HistoryError::new(line, message);
        let (Process::Client(process), "txn") = (&event.process, event.f.as_str()) else {
            continue;
        };
        let kind = match event.kind {
            EventType::Invoke => Kind::Invoke,
            EventType::Ok => Kind::Done(Outcome::Ok),
            EventType::Fail => Kind::Done(Outcome::Fail),
            EventType::Info => Kind::Done(Outcome::Info),
        };
        let Some(micro) = &event.meta.txn else {
            return Err(fail("a txn event without micro-ops".into()));
        };
        let key = |value: &Value| match value {
            Value::Int(i) => Ok(i.to_string()),
            Value::Str(s) | Value::Keyword(s) => Ok(s.clone()),
            other => Err(fail(format!("a key must be an integer or a string, got {other}"))),
        };
        let mut mops = Vec::with_capacity(micro.len());
        for m in micro {
            mops.push(match (m.f.as_str(), &m.value) {
                ("append", Value::Int(v)) => Mop::Append { key: key(&m.key)?, value: *v },
                ("r", Value::Null) => Mop::Read { key: key(&m.key)?, value: None },
                ("r", Value::List(items)) => {
                    let list = items.iter().map(|item| match item {
                        Value::Int(v) => Ok(*v),
                        other => {
                            Err(fail(format!("a list element must be an integer, got {other}")))
                        }
                    });
                    Mop::Read { key: key(&m.key)?, value: Some(list.collect::<Result<_, _>>()?) }
                }
                (f, value) => {
                    return Err(fail(format!("unknown micro-op [{f} {} {value}]", m.key)));
                }
            });
        }
        ops.push(RawOp { line, process: Some(*process), kind, mops });
    }
    pair(ops)
}
