//! jepsen-lite: histories, models and a fast linearizability checker, after Jepsen, Knossos
//! and Porcupine. It knows nothing about Raft: it checks any history, raftbed's or an etcd's.
//!
//! # Histories
//!
//! The canonical file is JSON lines, one event per line, with exactly these fields:
//!
//! ```text
//! {"process": 3, "type": "invoke", "f": "cas", "key": "x", "value": [1, 2], "time": 1200}
//! {"process": 3, "type": "ok",     "f": "cas", "key": "x", "value": [1, 2], "time": 1900}
//! ```
//!
//! - `process`: an integer (a client) or a string (`"nemesis"`: faults, shown but not checked);
//! - `type`: `invoke`, `ok`, `fail` or `info`;
//! - `f`: the operation: `read`/`write`/`cas` for registers, `get`/`put`/`append`/`delete`/`cas`
//!   for the kv model;
//! - `key`: absent for a single register;
//! - `value`: the argument on invoke; on ok, the result. A read's invoke has `null` and its ok
//!   carries the value read, `null` meaning absent. A cas value is `[from, to]`;
//! - `time`: optional nanoseconds.
//!
//! The semantics (a completion closes the latest open invocation of its process; `fail` means it
//! did not happen; `info` or no completion means it may take effect at any time after its
//! invocation, or never) are written down in [`history`]. EDN (Jepsen, Knossos), Jepsen log
//! lines and Porcupine's kv files are read too; see [`formats`].
//!
//! # Checking
//!
//! ```
//! use jepsen_lite::{check, formats, CheckOptions, CheckResult, ModelKind, RegisterModel};
//!
//! let text = r#"{"process":0,"type":"invoke","f":"write","value":1}
//! {"process":0,"type":"ok","f":"write","value":1}
//! {"process":1,"type":"invoke","f":"read","value":null}
//! {"process":1,"type":"ok","f":"read","value":2}"#;
//! let history = formats::read(text, formats::Format::Jsonl).unwrap();
//! let model = RegisterModel::new(ModelKind::Register);
//! let report = check(&model, &history, &CheckOptions::default()).unwrap();
//! assert!(matches!(report.result, CheckResult::NotLinearizable(_)));
//! ```
//!
//! # Transactions
//!
//! [`txn`] checks list-append transaction histories the way Elle does: it infers ww, wr and rw
//! dependencies from the lists read, adds process and real-time order, and names the cycles
//! (G0, G1c, G-single, G2-item, and the forms that need process order or real time) and the
//! anomalies that need none (G1a, G1b, internal and data anomalies), with the weakest
//! consistency model violated.
//!
//! # Watches
//!
//! [`watch`] checks what watch streams delivered against a committed history of revisions:
//! etcd's ordered, unique, atomic, reliable and resumable guarantees, previous values, and
//! progress notifications never ahead of the events.

pub mod checker;
pub mod edn;
pub mod formats;
pub mod generate;
pub mod history;
pub mod html;
pub mod model;
pub mod resolved;
pub mod txn;
pub mod value;
pub mod watch;

pub use checker::{CheckOptions, CheckResult, Counterexample, OpSummary, Report, check};
pub use history::{Event, EventType, History, HistoryError, Op, Outcome, Process};
pub use model::{Model, ModelKind, RegisterInput, RegisterModel};
pub use resolved::{Resolved, ResolvedCounts};
pub use value::Value;
