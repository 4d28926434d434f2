//! Histories: what clients invoked and what they saw, as Jepsen records them.
//!
//! # Semantics
//!
//! A history is a sequence of events in real-time order. Each event belongs to a *process* (a
//! client; Jepsen's `:nemesis` is a process too, but its events are faults, not operations):
//!
//! - `invoke` starts an operation `f` (on `key`, if the object has keys) with argument `value`;
//! - `ok` completes it; its `value` is the result (the value read, for a read);
//! - `fail` completes it and says it **did not happen**: it is removed before checking;
//! - `info` completes it **indeterminately**: it may have taken effect at any time after its
//!   invocation, or never. An invocation with no completion at all means the same.
//!
//! A completion closes the latest open invocation of its process, and must name the same `f`.
//! Operations are the intervals `[invoke, completion]`, closed; an indeterminate operation's
//! interval never closes.

use std::fmt;

use crate::value::Value;

/// Who issued an event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    /// A client, by number.
    Client(u64),
    /// A named actor, such as Jepsen's `nemesis`. Its events are shown, never checked.
    Named(String),
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(id) => write!(f, "{id}"),
            Process::Named(name) => write!(f, "{name}"),
        }
    }
}

/// The kind of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// An operation starts.
    Invoke,
    /// It completed with a result.
    Ok,
    /// It definitely did not happen.
    Fail,
    /// Its outcome is unknown.
    Info,
}

impl EventType {
    /// The name used by every format: `invoke`, `ok`, `fail`, `info`.
    pub fn name(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Option<EventType> {
        Some(match name {
            "invoke" => EventType::Invoke,
            "ok" => EventType::Ok,
            "fail" => EventType::Fail,
            "info" => EventType::Info,
            _ => return None,
        })
    }
}

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Who.
    pub process: Process,
    /// Invocation or completion.
    pub kind: EventType,
    /// The operation's name, such as `read`, `write`, `cas`, `get`, `put`, `append`.
    pub f: String,
    /// The key, for objects with keys; absent means a single register.
    pub key: Option<Value>,
    /// The argument (on invoke) or the result (on ok).
    pub value: Value,
    /// When, in nanoseconds on any monotonic clock, if recorded.
    pub time: Option<i64>,
    /// The 1-based line of the source file it was read from (0 if built in memory).
    pub line: usize,
    /// What version 2 of the schema adds, all optional.
    pub meta: EventMeta,
}

/// The version of the history schema `formats::write_jsonl` writes. Version 1 had `process`,
/// `type`, `f`, `key`, `value` and `time`; version 2 adds the optional fields of [`EventMeta`].
/// Every version is read.
pub const SCHEMA_VERSION: u32 = 2;

/// Optional fields of an event (schema version 2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventMeta {
    /// The session that sent a write (its client id on the wire), on the invocation.
    pub client: Option<u64>,
    /// The write's request number in that session. `client` and `seq` name the write in the
    /// system's own log, so its fate can be looked up there (`raftbed check --resolved`).
    pub seq: Option<u64>,
    /// A transaction's micro-operations, in Elle's `[f, key, value]` form, on an `f: "txn"`
    /// event: the values written on invoke, the values read on ok.
    pub txn: Option<Vec<MicroOp>>,
    /// Watch events delivered to a watcher, on a watch's completion.
    pub watch: Option<Vec<WatchEvent>>,
}

/// One micro-operation of a transaction: `["append", "x", 3]`, `["r", "x", [1, 3]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MicroOp {
    /// `r`, `w` or `append`.
    pub f: String,
    /// The key.
    pub key: Value,
    /// The value written, or read (`null` for a read's invocation).
    pub value: Value,
}

/// One event a watch delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The store's revision of the change.
    pub revision: i64,
    /// `put` or `delete`.
    pub kind: String,
    /// The key changed.
    pub key: Value,
    /// The value after a put (`null` after a delete).
    pub value: Value,
}

/// A history: events in real-time order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The events.
    pub events: Vec<Event>,
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Completed with a result.
    Ok,
    /// Did not happen.
    Fail,
    /// Unknown: completed with `info`, or never completed.
    Indeterminate,
}

/// An operation: an invocation paired with its completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// Position among the history's client operations, in invocation order.
    pub id: usize,
    /// Who.
    pub process: Process,
    /// The operation's name.
    pub f: String,
    /// The key, if any.
    pub key: Option<Value>,
    /// The invocation's value (the argument).
    pub input: Value,
    /// The `ok` completion's value (the result); `None` unless `outcome` is `Ok`.
    pub output: Option<Value>,
    /// How it ended.
    pub outcome: Outcome,
    /// Index of the invocation in `History::events`.
    pub invoke: usize,
    /// Index of the completion in `History::events`, if any.
    pub complete: Option<usize>,
    /// Source line of the invocation.
    pub line: usize,
    /// The session and request number of a write, from its invocation (schema version 2).
    pub session: Option<(u64, u64)>,
}

/// A history that breaks the rules above, with the line that does.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct HistoryError {
    /// The 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl HistoryError {
    /// An error at `line`.
    pub fn new(line: usize, message: impl Into<String>) -> HistoryError {
        HistoryError { line, message: message.into() }
    }
}

impl History {
    /// Pairs invocations with completions into client operations, in invocation order.
    /// Events of named processes (the nemesis) are left out.
    ///
    /// # Errors
    /// A completion with no open invocation in its process, or one whose `f` differs from
    /// the invocation it closes.
    pub fn ops(&self) -> Result<Vec<Op>, HistoryError> {
        let mut ops: Vec<Op> = Vec::new();
        // Open invocations per process, latest last.
        let mut open: std::collections::HashMap<u64, Vec<usize>> = std::collections::HashMap::new();
        for (index, event) in self.events.iter().enumerate() {
            let Process::Client(process) = event.process else { continue };
            if event.kind == EventType::Invoke {
                open.entry(process).or_default().push(ops.len());
                ops.push(Op {
                    id: ops.len(),
                    process: event.process.clone(),
                    f: event.f.clone(),
                    key: event.key.clone(),
                    input: event.value.clone(),
                    output: None,
                    outcome: Outcome::Indeterminate,
                    invoke: index,
                    complete: None,
                    line: event.line,
                    session: event.meta.client.zip(event.meta.seq),
                });
                continue;
            }
            let Some(op_id) = open.get_mut(&process).and_then(Vec::pop) else {
                return Err(HistoryError::new(
                    event.line,
                    format!("{} for process {process} with no open invocation", event.kind.name()),
                ));
            };
            let op = &mut ops[op_id];
            if op.f != event.f {
                return Err(HistoryError::new(
                    event.line,
                    format!(
                        "completion :{} does not match the invocation :{} at line {}",
                        event.f, op.f, op.line
                    ),
                ));
            }
            if event.key.is_some() && event.key != op.key {
                return Err(HistoryError::new(
                    event.line,
                    format!("completion key differs from the invocation at line {}", op.line),
                ));
            }
            op.complete = Some(index);
            match event.kind {
                EventType::Ok => {
                    op.outcome = Outcome::Ok;
                    op.output = Some(event.value.clone());
                }
                EventType::Fail => op.outcome = Outcome::Fail,
                EventType::Info | EventType::Invoke => op.outcome = Outcome::Indeterminate,
            }
        }
        Ok(ops)
    }

    /// Events of named processes (faults), with their indexes.
    pub fn nemesis_events(&self) -> impl Iterator<Item = (usize, &Event)> {
        self.events.iter().enumerate().filter(|(_, e)| matches!(e.process, Process::Named(_)))
    }

    /// The number of client invocations.
    pub fn op_count(&self) -> usize {
        self.events
            .iter()
            .filter(|e| e.kind == EventType::Invoke && matches!(e.process, Process::Client(_)))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(process: u64, kind: EventType, f: &str, value: Value, line: usize) -> Event {
        Event {
            process: Process::Client(process),
            kind,
            f: f.into(),
            key: None,
            value,
            time: None,
            line,
            meta: EventMeta::default(),
        }
    }

    #[test]
    fn completion_closes_the_latest_open_invocation() {
        let history = History {
            events: vec![
                event(1, EventType::Invoke, "write", Value::Int(1), 1),
                event(2, EventType::Invoke, "read", Value::Null, 2),
                event(1, EventType::Info, "write", Value::Null, 3),
                event(2, EventType::Ok, "read", Value::Int(1), 4),
                event(3, EventType::Invoke, "write", Value::Int(2), 5),
            ],
        };
        let ops = history.ops().unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0].outcome, Outcome::Indeterminate);
        assert_eq!(ops[0].complete, Some(2));
        assert_eq!(ops[1].output, Some(Value::Int(1)));
        assert_eq!(ops[2].complete, None, "never completed: indeterminate");
    }

    #[test]
    fn completion_without_invocation_names_its_line() {
        let history = History { events: vec![event(4, EventType::Ok, "read", Value::Null, 7)] };
        let err = history.ops().unwrap_err();
        assert_eq!(err.line, 7);
        assert!(err.message.contains("no open invocation"));
    }

    #[test]
    fn completion_of_another_function_is_refused() {
        let history = History {
            events: vec![
                event(1, EventType::Invoke, "read", Value::Null, 1),
                event(1, EventType::Ok, "write", Value::Int(3), 2),
            ],
        };
        assert!(history.ops().unwrap_err().message.contains("does not match"));
    }
}
