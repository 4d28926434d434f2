//! Transactional histories, checked the way Elle does (Kingsbury & Alvaro, "Elle: Inferring
//! Isolation Anomalies from Experimental Observations", VLDB 2020), for the **list-append**
//! workload: each transaction is a list of micro-operations, `[:append k v]` and `[:r k list]`,
//! over keys whose values are lists.
//!
//! Why list-append: every append is a unique element, so a read of a key shows the whole order
//! of the appends it saw, and the longest read of a key is that key's version order (every other
//! read must be a prefix of it). From that order come the dependencies of Adya's formalism:
//!
//! - **ww**: T1 appended the element just before T2's in a key's order;
//! - **wr**: T2 read a list whose last element T1 appended;
//! - **rw** (anti-dependency): T1 read a list and T2 appended the next element after it;
//!
//! plus **process** order (a client's transactions, one after another) and **realtime** order
//! (T1 completed before T2 was invoked). A cycle in these edges is an anomaly, named by the
//! edges it needs ([`Anomaly`]); anomalies that need no cycle (an aborted or intermediate read,
//! a transaction that contradicts its own reads, reads that disagree on an order) are found
//! while the order is inferred. rw-register histories are left out: a register's read shows one
//! value, not the order before it, so its version order has no source but guesses.
//!
//! Histories come as Jepsen's EDN (`{:type :ok, :f :txn, :value [[:append 3 1] [:r 3 [1]]]}`,
//! `:process` optional) or as JSON lines with the same fields (`"value": [["append", 3, 1],
//! ["r", 3, [1]]]`), see [`read`].

mod cycles;
mod deps;
mod graph;
mod models;
mod read;

use std::collections::BTreeSet;
use std::fmt;

pub use cycles::SearchBudget;
pub use models::Model;
pub use read::{from_history, read_edn, read_jsonl};

/// A key: an integer or a keyword in EDN (written `:x`), a number or a string in JSON.
pub type Key = String;

/// One micro-operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mop {
    /// Append `value` to the list at `key`.
    Append {
        /// The key.
        key: Key,
        /// The element, unique per key across the history.
        value: i64,
    },
    /// Read the list at `key`: `None` on an invocation or when the result is unknown.
    Read {
        /// The key.
        key: Key,
        /// The list read.
        value: Option<Vec<i64>>,
    },
}

impl Mop {
    /// The key it touches.
    pub fn key(&self) -> &Key {
        match self {
            Mop::Append { key, .. } | Mop::Read { key, .. } => key,
        }
    }
}

impl fmt::Display for Mop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mop::Append { key, value } => write!(f, "[:append {key} {value}]"),
            Mop::Read { key, value: None } => write!(f, "[:r {key} nil]"),
            Mop::Read { key, value: Some(list) } => {
                let items: Vec<String> = list.iter().map(i64::to_string).collect();
                write!(f, "[:r {key} [{}]]", items.join(" "))
            }
        }
    }
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed; its reads are what it saw.
    Ok,
    /// Aborted: it did not happen, and nothing may see its appends.
    Fail,
    /// Unknown: it may have committed (its appends may be seen), but its reads are unknown.
    Info,
}

/// One transaction: an invocation with its completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Txn {
    /// Position among the history's transactions (`T0`, `T1`, ... in reports).
    pub id: usize,
    /// The client, if the history names one.
    pub process: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
    /// Its micro-operations: the completion's when it committed, else the invocation's.
    pub mops: Vec<Mop>,
    /// The history line (or index) of its invocation.
    pub invoked_at: usize,
    /// Where it completed: `None` for an `info` or a missing completion.
    pub completed_at: Option<usize>,
    /// Position of its invocation and completion among the history's events.
    pub(crate) invoke_seq: usize,
    pub(crate) complete_seq: Option<usize>,
}

impl fmt::Display for Txn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mops: Vec<String> = self.mops.iter().map(Mop::to_string).collect();
        write!(f, "T{} [{}]", self.id, mops.join(" "))?;
        if let Some(process) = self.process {
            write!(f, " (process {process})")?;
        }
        Ok(())
    }
}

/// The kinds of edges between transactions, as bits of a mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dep {
    /// Write-write: the earlier append in a key's order.
    Ww = 1,
    /// Write-read: the read saw this append last.
    Wr = 2,
    /// Read-write (anti-dependency): the read missed this append, the next in order.
    Rw = 4,
    /// The same process, one transaction after the other.
    Process = 8,
    /// Completed before the other was invoked.
    Realtime = 16,
}

impl Dep {
    /// Every kind, in the order reports list them.
    pub const ALL: [Dep; 5] = [Dep::Ww, Dep::Wr, Dep::Rw, Dep::Process, Dep::Realtime];

    /// Elle's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Dep::Ww => "ww",
            Dep::Wr => "wr",
            Dep::Rw => "rw",
            Dep::Process => "process",
            Dep::Realtime => "realtime",
        }
    }

    pub(crate) fn bit(self) -> u8 {
        self as u8
    }
}

/// One step of a cycle: `from` precedes `to` because of `dep` (on `key`, for ww, wr and rw).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The earlier transaction.
    pub from: usize,
    /// The later one.
    pub to: usize,
    /// Why.
    pub dep: Dep,
    /// The key the dependency is on.
    pub key: Option<Key>,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T{} {}→ T{}", self.from, self.dep.name(), self.to)?;
        if let Some(key) = &self.key {
            write!(f, " on {key}")?;
        }
        Ok(())
    }
}

/// What is wrong with a history, with Elle's names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// A dependency cycle: `name` is `G0`, `G1c`, `G-single` or `G2-item`, with `-process` or
    /// `-realtime` when the cycle needs those edges.
    Cycle {
        /// Elle's name.
        name: String,
        /// The steps, each one's `to` the next one's `from`, the last back to the first.
        steps: Vec<Step>,
    },
    /// G1a: a committed read saw an element an aborted transaction appended.
    AbortedRead {
        /// The reader.
        reader: usize,
        /// The aborted writer.
        writer: usize,
        /// Where.
        key: Key,
        /// The element.
        element: i64,
    },
    /// G1b: a committed read ended at an element its writer later followed with another of its
    /// own on the same key: it saw the writer's intermediate state.
    IntermediateRead {
        /// The reader.
        reader: usize,
        /// The writer.
        writer: usize,
        /// Where.
        key: Key,
        /// The element the read ended at.
        element: i64,
    },
    /// A transaction read something its own earlier operations contradict.
    Internal {
        /// The transaction.
        txn: usize,
        /// The operation that contradicts.
        mop: Mop,
        /// What the transaction's own operations imply the read must show (its tail when the
        /// earlier state is unknown).
        expected: Vec<i64>,
    },
    /// Two reads of a key where neither is a prefix of the other: no order explains both.
    IncompatibleOrder {
        /// The key.
        key: Key,
        /// The two reads.
        reads: [Vec<i64>; 2],
    },
    /// A read showed an element twice.
    DuplicateElements {
        /// The reader.
        txn: usize,
        /// The key.
        key: Key,
        /// The list.
        read: Vec<i64>,
    },
    /// A read showed an element no transaction appended.
    UnknownElement {
        /// The reader.
        txn: usize,
        /// The key.
        key: Key,
        /// The element.
        element: i64,
    },
}

impl Anomaly {
    /// Elle's name for the anomaly's kind.
    pub fn name(&self) -> &str {
        match self {
            Anomaly::Cycle { name, .. } => name,
            Anomaly::AbortedRead { .. } => "G1a",
            Anomaly::IntermediateRead { .. } => "G1b",
            Anomaly::Internal { .. } => "internal",
            Anomaly::IncompatibleOrder { .. } => "incompatible-order",
            Anomaly::DuplicateElements { .. } => "duplicate-elements",
            Anomaly::UnknownElement { .. } => "garbage-read",
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name())?;
        match self {
            Anomaly::Cycle { steps, .. } => {
                let steps: Vec<String> = steps.iter().map(Step::to_string).collect();
                write!(f, "{}", steps.join(", "))
            }
            Anomaly::AbortedRead { reader, writer, key, element } => {
                write!(f, "T{reader} read {element} on {key}, appended by T{writer}, which failed")
            }
            Anomaly::IntermediateRead { reader, writer, key, element } => write!(
                f,
                "T{reader} read {key} up to {element}, which T{writer} followed with another append"
            ),
            Anomaly::Internal { txn, mop, expected } => {
                write!(f, "T{txn}'s {mop} contradicts its own earlier operations ({expected:?})")
            }
            Anomaly::IncompatibleOrder { key, reads } => {
                write!(f, "reads of {key} disagree: {:?} and {:?}", reads[0], reads[1])
            }
            Anomaly::DuplicateElements { txn, key, read } => {
                write!(f, "T{txn} read {key} as {read:?}")
            }
            Anomaly::UnknownElement { txn, key, element } => {
                write!(f, "T{txn} read {element} on {key}, which nobody appended")
            }
        }
    }
}

/// A list-append history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnHistory {
    /// Its transactions, in invocation order.
    pub txns: Vec<Txn>,
}

/// What the check found.
#[derive(Clone, Debug, PartialEq)]
pub struct TxnReport {
    /// Transactions checked (committed, aborted and unknown).
    pub txns: usize,
    /// Edges in the dependency graph.
    pub edges: usize,
    /// What was found, cycles first example by example.
    pub anomalies: Vec<Anomaly>,
    /// The models asked about that the history violates, weakest first.
    pub violated: Vec<Model>,
    /// Some cycle search ran out of its budget: a class not reported may still be present.
    pub incomplete: bool,
}

impl TxnReport {
    /// The anomaly names found, each once.
    pub fn anomaly_types(&self) -> BTreeSet<String> {
        self.anomalies.iter().map(|a| a.name().to_string()).collect()
    }

    /// Whether the history satisfies every model asked about.
    pub fn valid(&self) -> bool {
        self.violated.is_empty()
    }
}

/// Checks `history` against `models` ([`Model::ALL`] finds every anomaly and so the weakest
/// model violated): infers the dependency graph, finds the anomalies those models prohibit,
/// and names the models violated.
pub fn check(history: &TxnHistory, models: &[Model], budget: SearchBudget) -> TxnReport {
    let prohibited = models::prohibited(models);
    let inferred = deps::infer(history);
    let mut anomalies = inferred.anomalies;
    let graph = graph::Graph::build(history, &inferred.edges, inferred.keys);
    let (cycles, incomplete) = cycles::search(&graph, &prohibited, budget);
    anomalies.splice(0..0, cycles);
    anomalies.retain(|a| prohibited.contains(a.name()));
    let found: BTreeSet<&str> = anomalies.iter().map(Anomaly::name).collect();
    let violated = models::violated(models, &found);
    TxnReport {
        txns: history.txns.len(),
        edges: graph.edge_count(),
        anomalies,
        violated,
        incomplete,
    }
}

#[cfg(test)]
mod tests;
