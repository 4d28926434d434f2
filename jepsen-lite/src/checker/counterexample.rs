//! What to show when a part is not linearizable.
//!
//! - **The failing operation.** Cutting the history after an event (operations still open at
//!   the cut become indeterminate) gives a prefix; if a prefix is not linearizable, no longer
//!   one is (a completion only adds constraints). A binary search over the completions finds
//!   the shortest non-linearizable prefix; the operation whose completion ends it is the one
//!   that cannot be explained.
//! - **The window**: the failing operation, every operation overlapping it in that prefix, and
//!   the last operation to complete before it was invoked — the smallest span of the history
//!   in which the contradiction lives.
//! - **The longest linearizable prefix**: the furthest any order got, with the state after each
//!   operation. The full search stops wrong orders early (search.rs, 9), so the shortest
//!   failing prefix is searched again without that rule; if that does not finish within its
//!   budget, the full search's longest order is shown.

use std::fmt;

use crate::history::{Op, Outcome};
use crate::model::Model;
use crate::value::Value;

use super::search::{self, Limits, PreparedOp, SearchOutcome};
use super::{Partition, describe_key};

/// An operation as a counterexample shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpSummary {
    /// The operation's id (position among invocations).
    pub id: usize,
    /// Who.
    pub process: String,
    /// What.
    pub f: String,
    /// The invocation's value.
    pub input: Value,
    /// The result, if it completed ok.
    pub output: Option<Value>,
    /// How it ended.
    pub outcome: Outcome,
    /// Index of the invocation event.
    pub invoke: usize,
    /// Index of the completion event.
    pub complete: Option<usize>,
    /// Source line of the invocation.
    pub line: usize,
}

impl OpSummary {
    pub(crate) fn new(op: &Op) -> OpSummary {
        OpSummary {
            id: op.id,
            process: op.process.to_string(),
            f: op.f.clone(),
            input: op.input.clone(),
            output: op.output.clone(),
            outcome: op.outcome,
            invoke: op.invoke,
            complete: op.complete,
            line: op.line,
        }
    }
}

impl fmt::Display for OpSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op {} (process {}, line {}): {}", self.id, self.process, self.line, self.f)?;
        let read = self.input.is_null() && matches!(self.f.as_str(), "read" | "get");
        if !read {
            write!(f, " {}", short(&self.input))?;
        }
        match (self.outcome, &self.output) {
            (Outcome::Ok, Some(output)) if read => write!(f, " -> {}", short(output)),
            (Outcome::Ok, _) => write!(f, " -> ok"),
            (Outcome::Fail, _) => write!(f, " -> fail"),
            (Outcome::Indeterminate, _) => write!(f, " -> ? (indeterminate)"),
        }
    }
}

fn short_text(text: &str) -> String {
    short(&Value::Str(text.to_string())).trim_matches('"').to_string()
}

/// A value cut to 60 characters for display.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 60 {
        return text;
    }
    let head: String = text.chars().take(57).collect();
    format!("{head}...")
}

/// Why a part of the history is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counterexample {
    /// The key of the failing part (`None` for a single register).
    pub key: Option<Value>,
    /// The operation whose completion ends the shortest non-linearizable prefix, if the
    /// narrowing finished in time.
    pub failing_op: Option<OpSummary>,
    /// The failing operation with the operations around it, in invocation order.
    pub window: Vec<OpSummary>,
    /// The longest linearization the search found, with the state after each operation.
    pub longest_prefix: Vec<(OpSummary, String)>,
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "not linearizable on {}", describe_key(&self.key))?;
        if let Some(op) = &self.failing_op {
            writeln!(f, "cannot be explained: {op}")?;
        }
        if !self.window.is_empty() {
            writeln!(f, "window ({} ops):", self.window.len())?;
            for op in self.window.iter().take(40) {
                writeln!(f, "  {op}")?;
            }
            if self.window.len() > 40 {
                writeln!(f, "  ... {} more", self.window.len() - 40)?;
            }
        }
        let n = self.longest_prefix.len();
        writeln!(f, "longest linearizable prefix: {n} ops")?;
        for (op, state) in self.longest_prefix.iter().skip(n.saturating_sub(5)) {
            writeln!(f, "  {op}  => {}", short_text(state))?;
        }
        Ok(())
    }
}

/// Builds the counterexample for an illegal `partition`, given the longest linearization its
/// search found and the iterations that search took (which bound each narrowing search).
pub(super) fn explain<M: Model>(
    model: &M,
    partition: &Partition<M::Input, M::Output>,
    ops: &[Op],
    longest: Vec<(usize, String)>,
    iterations: u64,
    limits: &Limits<'_>,
) -> Counterexample {
    let summary = |index: usize| OpSummary::new(&ops[partition.ops[index].op_id]);
    let linearized: Vec<usize> = longest.iter().map(|(index, _)| *index).collect();
    let longest_prefix =
        longest.into_iter().map(|(index, state)| (summary(index), state)).collect();
    let mut counterexample = Counterexample {
        key: partition.key.clone(),
        failing_op: None,
        window: Vec::new(),
        longest_prefix,
    };
    let budget = iterations.max(1 << 16).saturating_mul(2);
    let Some(cut) = shortest_failing_cut(model, &partition.ops, &linearized, budget, limits) else {
        return counterexample;
    };
    let failing =
        partition.ops.iter().position(|op| op.ret == Some(cut)).expect("cut is a completion");
    let failing_call = partition.ops[failing].call;
    let visible_from = partition
        .ops
        .iter()
        .filter_map(|op| op.ret.filter(|ret| *ret < failing_call))
        .max()
        .unwrap_or(0);
    counterexample.window = (0..partition.ops.len())
        .filter(|i| {
            let op = &partition.ops[*i];
            op.call <= cut && op.ret.is_none_or(|ret| ret >= visible_from)
        })
        .map(summary)
        .collect();
    counterexample.failing_op = Some(summary(failing));
    let (prefix_ops, indexes) = prefix(model, &partition.ops, cut);
    if let Some(SearchOutcome::Illegal { longest }) =
        search::search(model, &prefix_ops, limits, budget, true)
    {
        counterexample.longest_prefix =
            longest.into_iter().map(|(i, state)| (summary(indexes[i]), state)).collect();
    }
    counterexample
}

/// The completion that ends the shortest non-linearizable prefix, or `None` if a search did not
/// finish within `budget`.
///
/// The longest linearization found is a linearization of the prefix that ends just before the
/// first completion it leaves out (everything completed earlier is in it, and everything in it
/// was invoked earlier), so the answer is at or after that completion. From there, galloping
/// then bisection.
fn shortest_failing_cut<M: Model>(
    model: &M,
    ops: &[PreparedOp<M::Input, M::Output>],
    linearized: &[usize],
    budget: u64,
    limits: &Limits<'_>,
) -> Option<u64> {
    let mut cuts: Vec<u64> = ops.iter().filter_map(|op| op.ret).collect();
    cuts.sort_unstable();
    let mut in_longest = vec![false; ops.len()];
    linearized.iter().for_each(|i| in_longest[*i] = true);
    let first_left_out =
        (0..ops.len()).filter(|i| !in_longest[*i]).filter_map(|i| ops[i].ret).min();
    // Invariant: the prefix through cuts[hi] fails; every prefix before cuts[lo] passes.
    let mut lo = first_left_out.map_or(0, |r| cuts.partition_point(|c| *c < r));
    let mut hi = cuts.len().checked_sub(1)?;
    lo = lo.min(hi);
    let fails = |cut: u64| -> Option<bool> {
        match search::search(model, &prefix(model, ops, cut).0, limits, budget, false)? {
            SearchOutcome::Illegal { .. } => Some(true),
            SearchOutcome::Linearizable => Some(false),
            SearchOutcome::Timeout | SearchOutcome::OutOfMemory | SearchOutcome::Cancelled => None,
        }
    };
    let mut step = 1;
    while lo < hi {
        let probe = (lo + step - 1).min(hi - 1);
        if fails(cuts[probe])? {
            hi = probe;
            break;
        }
        lo = probe + 1;
        step *= 2;
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fails(cuts[mid])? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(cuts[hi])
}

/// The operations invoked by `cut`, with those still open at `cut` made indeterminate, and
/// the index in `ops` of each.
#[allow(clippy::type_complexity)]
fn prefix<M: Model>(
    model: &M,
    ops: &[PreparedOp<M::Input, M::Output>],
    cut: u64,
) -> (Vec<PreparedOp<M::Input, M::Output>>, Vec<usize>) {
    ops.iter()
        .enumerate()
        .filter(|(_, op)| op.call <= cut)
        .filter_map(|(i, op)| {
            if op.ret.is_some_and(|ret| ret <= cut) {
                return Some((op.clone(), i));
            }
            if model.is_read_only(&op.input) {
                return None;
            }
            Some((PreparedOp { ret: None, output: None, ..op.clone() }, i))
        })
        .unzip()
}
