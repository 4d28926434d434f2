//! The linearizability checker.
//!
//! 1. The history is paired into operations; `fail`ed ones are dropped (they did not happen),
//!    and so are indeterminate ones that cannot change state (an unknown read), and
//!    indeterminate writes whose value no operation observes (`drop_unobserved`). With a
//!    resolved file (`resolved.rs`), indeterminate writes the system committed unconditionally
//!    become mandatory, and those it did not commit are dropped.
//! 2. If the model's keys are independent, the operations are split per key
//!    (P-compositionality): the history is linearizable iff every part is.
//! 3. The parts are searched (`search.rs`) round-robin with doubling iteration budgets, on
//!    every core: a part that is hard to decide cannot hold up an easy illegal one, and the
//!    first illegal part stops the rest (Porcupine gets the same from its goroutines). A
//!    deadline, or the searches outgrowing the memory bound, turns an unfinished check into
//!    `Unknown`.
//! 4. For an illegal part, a counterexample is built (`counterexample.rs`). The verdict never
//!    depends on timing. Which illegal part is reported may, when several are illegal and
//!    several threads run; with `threads: 1` the schedule is a pure function of the history.

mod counterexample;
mod deadlines;
mod list;
mod memo;
mod search;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use counterexample::{Counterexample, OpSummary};
use search::{Limits, PreparedOp, Search, SearchOutcome};

use crate::history::{History, HistoryError, Op, Outcome};
use crate::model::Model;
use crate::resolved::{Resolved, ResolvedCounts};
use crate::value::Value;

/// How to check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Give up after this long, with `Unknown`.
    pub timeout: Option<Duration>,
    /// Worker threads; 0 means one per core for a history of `PARALLEL_OPS` operations or
    /// more, and one below (threads cost more than they bring there).
    pub threads: usize,
    /// The memory all searches together may use for remembered configurations before the
    /// check gives up with `Unknown`.
    pub max_memory_bytes: usize,
    /// What the system's log says became of indeterminate writes (`resolved.rs`).
    pub resolved: Option<Arc<Resolved>>,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions { timeout: None, threads: 0, max_memory_bytes: 1 << 30, resolved: None }
    }
}

/// The verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// Some order of the operations, consistent with real time, satisfies the model.
    Linearizable,
    /// None does; the counterexample shows where.
    NotLinearizable(Box<Counterexample>),
    /// The search did not finish; the reason says why (a timeout).
    Unknown(String),
}

impl CheckResult {
    /// "linearizable", "not-linearizable" or "unknown".
    pub fn verdict(&self) -> &'static str {
        match self {
            CheckResult::Linearizable => "linearizable",
            CheckResult::NotLinearizable(_) => "not-linearizable",
            CheckResult::Unknown(_) => "unknown",
        }
    }
}

/// A verdict with what it took.
#[derive(Clone, Debug)]
pub struct Report {
    /// The verdict.
    pub result: CheckResult,
    /// Client operations in the history.
    pub ops: usize,
    /// Operations that took part in the search (after dropping failed ones and unknown reads).
    pub checked_ops: usize,
    /// Independent parts checked.
    pub partitions: usize,
    /// What the resolved file changed.
    pub resolved: ResolvedCounts,
    /// Wall time.
    pub elapsed: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} ops ({} checked) in {} part{}, {:.1} ms",
            self.result.verdict(),
            self.ops,
            self.checked_ops,
            self.partitions,
            if self.partitions == 1 { "" } else { "s" },
            self.elapsed.as_secs_f64() * 1e3
        )?;
        let r = &self.resolved;
        if r.any() {
            writeln!(
                f,
                "resolved: {} indeterminate writes committed (now mandatory), {} not committed (dropped), {} committed but conditional (left open), {} completed writes contradicted",
                r.mandatory, r.dropped, r.conditional, r.contradicted
            )?;
        }
        match &self.result {
            CheckResult::NotLinearizable(counterexample) => write!(f, "{counterexample}"),
            CheckResult::Unknown(reason) => writeln!(f, "{reason}"),
            CheckResult::Linearizable => Ok(()),
        }
    }
}

/// An operation of model `M`, ready to search.
type Prepared<M> = PreparedOp<<M as Model>::Input, <M as Model>::Output>;

/// A partition of model `M`.
type ModelPartition<M> = Partition<<M as Model>::Input, <M as Model>::Output>;

/// One independent part of the history, ready to search.
pub(crate) struct Partition<I, O> {
    pub key: Option<Value>,
    pub ops: Vec<PreparedOp<I, O>>,
}

/// Checks `history` against `model`.
///
/// # Errors
/// If the history is malformed: a completion without an invocation, an operation the model
/// does not know, a value of the wrong type. The error names the line.
pub fn check<M: Model>(
    model: &M,
    history: &History,
    options: &CheckOptions,
) -> Result<Report, HistoryError> {
    let started = Instant::now();
    let deadline = options.timeout.map(|t| started + t);
    let ops = history.ops()?;
    let threads = match options.threads {
        0 if ops.len() < PARALLEL_OPS => 1,
        n => n,
    };
    let options = &CheckOptions { threads, ..options.clone() };
    let mut resolve = Resolve {
        resolved: options.resolved.as_deref(),
        after_end: history.events.len() as u64,
        counts: ResolvedCounts::default(),
    };
    let partitions = prepare(model, &ops, &mut resolve, options.threads)?;
    let checked_ops = partitions.iter().map(|p| p.ops.len()).sum();
    let result = check_partitions(model, &partitions, &ops, deadline, options);
    Ok(Report {
        result,
        ops: ops.len(),
        checked_ops,
        partitions: partitions.len(),
        resolved: resolve.counts,
        elapsed: started.elapsed(),
    })
}

/// Applies a resolved file to operations as they are prepared.
struct Resolve<'a> {
    resolved: Option<&'a Resolved>,
    /// The next return position after every event of the history, for writes made mandatory.
    after_end: u64,
    counts: ResolvedCounts,
}

impl Resolve<'_> {
    /// The fate `op` is given: `None` to drop it, else its return position (`None`: open).
    ///
    /// Correctness: a committed write took effect at one instant after its invocation and
    /// before the system's log was read, which is after the history ends; a return position
    /// past every event says exactly that. One that did not commit never took effect, as a
    /// failed operation. Unconditional only: a committed cas may have failed its comparison.
    fn fate<M: Model>(&mut self, model: &M, op: &Op, input: &M::Input) -> Option<Option<u64>> {
        let ret = match op.outcome {
            Outcome::Ok => op.complete.map(|c| c as u64),
            _ => None,
        };
        let fate = self.resolved.zip(op.session).and_then(|(r, session)| r.fate(session));
        // Reads are not in the log: a fate for one says nothing.
        let Some(committed) = fate.filter(|_| !model.is_read_only(input)) else {
            return Some(ret);
        };
        let unconditional = model.footprint(input, None).requires.is_none();
        match op.outcome {
            Outcome::Ok | Outcome::Fail => {
                // A cas that failed its comparison ran, and was refused.
                let contradicted = match op.outcome {
                    Outcome::Ok => !committed,
                    _ => committed && unconditional,
                };
                self.counts.contradicted += usize::from(contradicted);
                Some(ret)
            }
            Outcome::Indeterminate if !committed => {
                self.counts.dropped += 1;
                None
            }
            Outcome::Indeterminate if unconditional => {
                self.counts.mandatory += 1;
                self.after_end += 1;
                Some(Some(self.after_end))
            }
            Outcome::Indeterminate => {
                self.counts.conditional += 1;
                Some(ret)
            }
        }
    }
}

fn prepare<M: Model>(
    model: &M,
    ops: &[Op],
    resolve: &mut Resolve<'_>,
    threads: usize,
) -> Result<Vec<ModelPartition<M>>, HistoryError> {
    // Parts by key, numbered as keys first appear; sorted by key below.
    let mut index: HashMap<Option<&Value>, usize> = HashMap::new();
    let mut parts: Vec<(Option<Value>, Vec<Prepared<M>>)> = Vec::new();
    for op in ops {
        let (input, output) = model.decode(op).map_err(|e| HistoryError::new(op.line, e))?;
        let fate = resolve.fate(model, op, &input);
        // A failed operation definitely did not happen, but it still had to be well-formed.
        let Some(ret) = fate.filter(|_| op.outcome != Outcome::Fail) else { continue };
        if ret.is_none() && model.is_read_only(&input) {
            continue;
        }
        let key = if model.partition_by_key() { op.key.as_ref() } else { None };
        let part = *index.entry(key).or_insert_with(|| {
            parts.push((key.cloned(), Vec::new()));
            parts.len() - 1
        });
        let prepared = PreparedOp { op_id: op.id, input, output, call: op.invoke as u64, ret };
        parts[part].1.push(prepared);
    }
    parts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(parallel_map(parts, threads, |(key, ops)| Partition {
        key,
        ops: drop_unobserved(model, ops),
    }))
}

/// Below this many operations an automatic check runs on one thread: on the Porcupine corpus'
/// c50 files (about 2,000 operations) two threads took twice as long as one.
const PARALLEL_OPS: usize = 20_000;

/// `threads` as a worker count: 0 means one per core.
fn workers(threads: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Maps `items` through `f` on `threads` workers, keeping their order.
fn parallel_map<T: Send, U: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> U + Sync,
) -> Vec<U> {
    let threads = workers(threads).min(items.len());
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    let inputs: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let outputs: Vec<Mutex<Option<U>>> = inputs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(input) = inputs.get(i) else { break };
                    let item = input.lock().expect("no panics while held").take();
                    let output = f(item.expect("each item is taken once"));
                    *outputs[i].lock().expect("no panics while held") = Some(output);
                }
            });
        }
    });
    outputs
        .into_iter()
        .map(|o| o.into_inner().expect("no panics while held").expect("every item mapped"))
        .collect()
}

/// Drops the indeterminate operations that leave a value no operation requires (no read
/// returns it, no cas expects it), until none is left: they never have to be linearized.
///
/// Correctness: take a linearization that places such an operation `w`, leaving value `v`.
/// The next operation after `w` cannot require `v` (none does), so it does not read, and it
/// leaves a fixed state whatever it found (footprints are fixed here, or nothing is dropped):
/// without `w` it runs the same, and every state after it is unchanged. With `w` removed
/// (it is indeterminate, so it need not be linearized), the rest is still a linearization.
/// Dropping `w` may leave values only `w` required, hence the repetition.
fn drop_unobserved<M: Model>(model: &M, ops: Vec<Prepared<M>>) -> Vec<Prepared<M>> {
    use crate::model::Leaves;
    let footprints: Vec<_> =
        ops.iter().map(|op| model.footprint(&op.input, op.output.as_ref())).collect();
    if footprints.iter().any(|f| f.leaves == Leaves::Depends) {
        return drop_unshown(model, ops, &footprints);
    }
    let mut keep = vec![true; ops.len()];
    loop {
        let required: std::collections::HashSet<&M::State> = footprints
            .iter()
            .zip(&keep)
            .filter_map(|(f, kept)| if *kept { f.requires.as_ref() } else { None })
            .collect();
        let mut dropped = false;
        for (i, f) in footprints.iter().enumerate() {
            if let Leaves::Fixed(v) = &f.leaves
                && keep[i]
                && ops[i].ret.is_none()
                && !required.contains(v)
            {
                keep[i] = false;
                dropped = true;
            }
        }
        if !dropped {
            break;
        }
    }
    ops.into_iter().zip(keep).filter_map(|(op, kept)| kept.then_some(op)).collect()
}

/// Drops the indeterminate operations whose effect depends on the state (appends) where what
/// they add shows in no state any operation requires (`Model::shows_in`).
///
/// Correctness: take a linearization that places such an operation `w`. Until the next op that
/// leaves a fixed state (a put, a delete, a cas), every state shows what `w` added: ops that
/// depend on the state keep it, read-only ones keep the state. None of those ops requires a
/// state (no required state shows it), so none observes anything, and the op that resets
/// requires none of them either. Without `w` the same ops run (they require nothing), and every
/// state from the reset on is unchanged; with `w` indeterminate, it need not be linearized.
fn drop_unshown<M: Model>(
    model: &M,
    ops: Vec<Prepared<M>>,
    footprints: &[crate::model::Footprint<M::State>],
) -> Vec<Prepared<M>> {
    use crate::model::Leaves;
    let required: std::collections::HashSet<&M::State> =
        footprints.iter().filter_map(|f| f.requires.as_ref()).collect();
    let unshown = |op: &Prepared<M>, f: &crate::model::Footprint<M::State>| {
        op.ret.is_none()
            && f.leaves == Leaves::Depends
            && required.iter().all(|state| model.shows_in(&op.input, state) == Some(false))
    };
    let keep: Vec<bool> = ops.iter().zip(footprints).map(|(op, f)| !unshown(op, f)).collect();
    ops.into_iter().zip(keep).filter_map(|(op, kept)| kept.then_some(op)).collect()
}

fn check_partitions<M: Model>(
    model: &M,
    partitions: &[Partition<M::Input, M::Output>],
    ops: &[Op],
    deadline: Option<Instant>,
    options: &CheckOptions,
) -> CheckResult {
    let cancel = AtomicBool::new(false);
    let memo_bytes = AtomicUsize::new(0);
    let limits = Limits {
        deadline,
        cancel: &cancel,
        max_memo_bytes: options.max_memory_bytes,
        memo_bytes: &memo_bytes,
    };
    let outcomes = run_round_robin(model, partitions, &limits, options.threads);
    let illegal = outcomes.iter().enumerate().find_map(|(index, outcome)| match outcome {
        Some((SearchOutcome::Illegal { longest }, iterations)) => {
            Some((index, longest, *iterations))
        }
        _ => None,
    });
    if let Some((index, longest, iterations)) = illegal {
        cancel.store(false, Ordering::Relaxed);
        let partition = &partitions[index];
        let longest = longest.clone();
        return CheckResult::NotLinearizable(Box::new(counterexample::explain(
            model, partition, ops, longest, iterations, &limits,
        )));
    }
    let unfinished = outcomes.iter().enumerate().find_map(|(index, outcome)| match outcome {
        Some((SearchOutcome::Timeout, _)) => Some((index, "timed out")),
        Some((SearchOutcome::OutOfMemory, _)) => Some((index, "reached the memory bound")),
        _ => None,
    });
    match unfinished {
        Some((index, why)) => CheckResult::Unknown(format!(
            "{why} checking {} ({} ops)",
            describe_key(&partitions[index].key),
            partitions[index].ops.len()
        )),
        None => CheckResult::Linearizable,
    }
}

/// The first budget of every part, in search iterations (about a millisecond).
const FIRST_BUDGET: u64 = 1 << 14;

/// A part waiting for its next turn.
struct Task<'a, M: Model> {
    index: usize,
    search: Option<Search<'a, M>>,
    budget: u64,
}

/// Runs every part's search in turns of doubling budgets, in key order, on `threads` workers,
/// until each ends or one is illegal. Returns each part's outcome with its iteration count
/// (`None` if it never ended).
fn run_round_robin<M: Model>(
    model: &M,
    partitions: &[Partition<M::Input, M::Output>],
    limits: &Limits<'_>,
    threads: usize,
) -> Vec<Option<(SearchOutcome, u64)>> {
    let threads = workers(threads).clamp(1, partitions.len().max(1));
    let queue: Mutex<VecDeque<Task<'_, M>>> = Mutex::new(
        (0..partitions.len())
            .map(|index| Task { index, search: None, budget: FIRST_BUDGET })
            .collect(),
    );
    let results: Vec<Mutex<Option<(SearchOutcome, u64)>>> =
        partitions.iter().map(|_| Mutex::new(None)).collect();
    let work = || {
        loop {
            let Some(mut task) = queue.lock().expect("no panics while held").pop_front() else {
                break;
            };
            if limits.cancel.load(Ordering::Relaxed) {
                break;
            }
            let search =
                task.search.get_or_insert_with(|| Search::new(model, &partitions[task.index].ops));
            match search.run(task.budget, limits) {
                Some(outcome) => {
                    search.release(limits);
                    if matches!(outcome, SearchOutcome::Illegal { .. }) {
                        limits.cancel.store(true, Ordering::Relaxed);
                    }
                    let iterations = search.iterations;
                    *results[task.index].lock().expect("no panics while held") =
                        Some((outcome, iterations));
                }
                None => {
                    task.budget = task.budget.saturating_mul(2);
                    queue.lock().expect("no panics while held").push_back(task);
                }
            }
        }
    };
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(work);
            }
        });
    }
    for task in queue.into_inner().expect("no panics while held") {
        if let Some(mut search) = task.search {
            search.release(limits);
        }
    }
    results.into_iter().map(|slot| slot.into_inner().expect("no panics while held")).collect()
}

pub(crate) fn describe_key(key: &Option<Value>) -> String {
    match key {
        Some(key) => format!("key {key}"),
        None => "the register".into(),
    }
}
