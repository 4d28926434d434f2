//! The linearizability search for one partition: Wing and Gong's depth-first search with Lowe's
//! memoization of (linearized set, state) configurations, as in Porcupine, plus:
//!
//! 1. **Incremental hashing.** The linearized set is a bitset whose hash is the XOR of one
//!    random word per operation (Zobrist hashing), updated in O(1) per step; configurations are
//!    stored as the first open position and the frontier beyond it, in flat arenas
//!    (`memo.rs`), so an entry's size does not grow with the partition's size.
//! 2. **Interned states and a step cache.** States are numbered as they appear and the model is
//!    asked about each (state, operation) pair at most once; read-only operations only compare.
//! 3. **Indeterminate operations are optional, and equal operations interchangeable.** An
//!    operation with no known outcome never has to be linearized: the search succeeds as soon
//!    as every mandatory operation is. Two operations with equal inputs have the same effect;
//!    where both are optional, or both mandatory and the earlier invoked has the earlier
//!    deadline, either may stand for the other, and only the earlier invoked is tried first.
//!    This collapses the 2^k subsets of k pending writes into a product of small counts, and
//!    the k! orders of k concurrent deletes (or of committed writes resolved from the log).
//! 4. **Fitting reads go first, alone.** A read-only candidate that fits the current state is
//!    linearized at once with no alternative tried: it changes no state, and every operation
//!    that returned before it was invoked is already linearized, so any linearization from here
//!    can be rewritten to start with it.
//! 5. **Newest first.** Candidates are tried most recently invoked first, indeterminate ones
//!    last. An operation invoked long ago and still open is usually not the next to take
//!    effect; trying it last approximates Lowe's just-in-time linearization. On the Porcupine
//!    corpus this order beats invocation order by 2x and earliest-return order by 5x.
//! 6. **Resumable.** `run` takes an iteration budget, so the checker can interleave parts and
//!    stop at the first illegal one, as Porcupine's goroutines do, even on one thread.
//! 7. **Dominance of fewer indeterminate ops.** The memo is keyed by (completed operations
//!    linearized, state) and keeps, for each key, the sets of indeterminate operations that were
//!    linearized on the way there. A configuration whose indeterminate set contains one already
//!    seen under the same key is pruned: it can do nothing the other cannot. Without this, k
//!    unread lost writes with distinct values make 2^k configurations of one state.
//!
//! 8. **An indeterminate operation must matter.** In a frame reached by linearizing an
//!    indeterminate operation `x` from a parent frame, a candidate `y` that the parent also
//!    offers and that ends in the same state from both (a blind write, say) is skipped: the
//!    parent reaches the same configuration without `x`, which dominates this one (7). So a lost
//!    write is linearized only where something observes it before it is overwritten.
//!
//! 9. **A value still to be observed is not overwritten for good.** With the model's footprints
//!    (`Model::footprint`), the search counts, per state, the completed operations not yet
//!    linearized that must observe it (a read of that value, a cas from it) and the operations
//!    not yet linearized that could write it. In a state that some completed operation still
//!    has to observe and that nothing left can write again, only operations that keep the
//!    state may be linearized next, or the last operation that observes it. Where every write
//!    carries a value of its own, this ends a wrong order of writes at its first step instead
//!    of deep in the search. It is off when some operation's effect depends on the state (an
//!    append).
//!
//! 10. **A write nobody will observe goes at once where nobody observes.** In a state that no
//!     operation left requires (a *dead* state), a mandatory blind write (it leaves a fixed
//!     state and requires none) whose value no operation left requires either is linearized at
//!     once, with no alternative tried. Such writes are the noise of a busy key: every value
//!     no read ever saw. Without this, each subset and order of the concurrent ones is a
//!     configuration of its own.
//!
//! 11. **Appends cannot undo themselves.** Where some operation's effect depends on the state
//!     (an append) and the model says which states can follow which (`Model::grows_to`), each
//!     configuration picks one completed read still to come that no operation left could reset
//!     the state towards (no put, cas or delete left leaves a state it grows to). A candidate
//!     that leads to a state this read's value cannot grow from is not tried. Where every
//!     append carries a token of its own, a read names the order of the appends before it, and
//!     a wrong order ends at its first step.
//!
//! # Correctness of 3, 4, 7, 8, 9, 10 and 11
//! 3: let `a` and `b` have equal inputs, `a` invoked no later than `b`, both optional or both
//! mandatory with `a`'s deadline no later than `b`'s. If a linearization uses `b` before `a`
//! (or `b` and not `a`, both optional), swap their roles. `a` may sit where `b` sat: whatever
//! had to precede `b` had returned before `b`'s invocation, so before `a`'s too, and `a`'s
//! deadline holds at the earlier place. `b` may sit where `a` sat: that place is after `b`'s
//! own, and whatever follows `a` by its deadline follows by `b`'s, which is no earlier. Equal
//! inputs leave equal states, so every state along the sequence is unchanged.
//! 4: let `r` be a minimal read-only operation that fits state `s`. A linearization from this
//! configuration places `r` somewhere later; moving it to the front keeps every state (it
//! changes none), keeps `r`'s own result valid (it reads `s`), and respects real time (nothing
//! left was required to precede it). So if the configuration has a linearization, it has one
//! starting with `r`, and if `r` fails here, the configuration fails.
//! 7: which operations may be linearized next depends only on the completed operations already
//! linearized (the first pending return is a completed operation's). Two configurations with
//! the same completed set and state, indeterminate sets I' ⊆ I, offer from I' every continuation
//! they offer from I (an indeterminate operation has no deadline and stays available), so if
//! (C, I', s) fails, (C, I, s) fails.
//! 8: the child's configuration after `y` is (C + y, I + x, t) where the parent's after `y` is
//! (C + y, I, t): the same completed set and state with fewer indeterminate operations, which
//! dominates by 7, and the parent tries `y` itself (it is among its candidates).
//! 9: let the state be `s`, let a completed operation `r` not yet linearized require `s`, and
//! let no operation not yet linearized leave `s`. Every operation must be linearized, `r`
//! included, and `r` needs state `s` when it runs. If the next operation leaves a state other
//! than `s`, no later one can bring `s` back, so `r` can never run: that branch has no
//! linearization. An operation that keeps `s`, or that is `r` itself with no other such `r`
//! left, does not lose any.
//! 10: let the state `s` be dead and `u` such a write, leaving the dead value `v`. Take a
//! linearization τ from here. In τ, the operation after `u` cannot require `v` (none left
//! does), so it is blind; and τ's first operation cannot require `s`, so it is blind. Remove
//! `u` from τ: its first operation still runs from `v` (it is blind), the operation that
//! followed `u` still runs (blind), every later state is unchanged, and removing an operation
//! only relaxes real time. So linearizing `u` first and then τ without it is a linearization:
//! if any continuation exists, one starts with `u`.
//! 11: let `r` require `V`, with no op left leaving a fixed state that grows to `V`, and let
//! the candidate lead to `t`, which does not grow to `V`. Along any continuation the state stays
//! in what `t`, or a fixed state left by a later op, grows to: a read-only op keeps the state, an
//! op whose effect depends on it leads to a state it grows to (transitivity does the rest), and
//! an op leaving a fixed state `P` restarts from `P`, which does not grow to `V`. So `r` never
//! finds `V`, and the branch has no linearization. The counts are kept only when every pair of
//! fixed state and read is cheap to look at (`GROWTH_PAIRS`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use hashbrown::HashTable;

use super::list::{HEAD, List, NONE, Slot, bit, flip, interchangeable_predecessors, slots};
use super::memo::Memo;
use crate::model::Model;

/// Rule 11 is kept only while (fixed state, read) pairs are at most this many: counting which
/// fixed states start each read's value costs one `grows_to` per pair.
const GROWTH_PAIRS: usize = 1 << 22;

/// One operation of a partition, ready for the search.
#[derive(Clone, Debug)]
pub(crate) struct PreparedOp<I, O> {
    /// The operation's id in the history.
    pub op_id: usize,
    pub input: I,
    /// `None`: indeterminate.
    pub output: Option<O>,
    /// Position of the invocation in the history.
    pub call: u64,
    /// Position of the completion; `None` for indeterminate operations.
    pub ret: Option<u64>,
}

/// When to give up, shared by every search of one check.
pub(crate) struct Limits<'a> {
    pub deadline: Option<Instant>,
    pub cancel: &'a AtomicBool,
    /// Bytes of memo all searches together may hold.
    pub max_memo_bytes: usize,
    /// Bytes of memo all searches together hold now.
    pub memo_bytes: &'a AtomicUsize,
}

/// How a search ended.
#[derive(Debug)]
pub(crate) enum SearchOutcome {
    Linearizable,
    /// Not linearizable. `longest` is the longest linearization found, as (index into the
    /// partition's ops, the state after it).
    Illegal {
        longest: Vec<(usize, String)>,
    },
    Timeout,
    /// The memo reached the memory bound.
    OutOfMemory,
    Cancelled,
}

/// Runs a search to the end (or to the limits). A `plain` one does without rule 9, so its
/// longest linearization is the furthest any order gets, for counterexamples.
pub(crate) fn search<M: Model>(
    model: &M,
    ops: &[PreparedOp<M::Input, M::Output>],
    limits: &Limits<'_>,
    budget: u64,
    plain: bool,
) -> Option<SearchOutcome> {
    let mut search = Search::new(model, ops);
    search.rule &= !plain;
    search.growth &= !plain;
    let outcome = search.run(budget, limits);
    search.release(limits);
    outcome
}

/// A configuration on the search path and where its candidates stand.
#[derive(Clone, Copy, Debug)]
struct Frame {
    /// The state in this configuration.
    state: u32,
    /// This frame's candidates are `candidates[start..end]`; `next` is the next to try.
    start: usize,
    next: usize,
    end: usize,
    /// The op whose linearization led here (`NONE` at the root).
    op: u32,
    /// The read that every candidate must still be able to reach (11), or `NONE`.
    read: u32,
}

/// A resumable search over one partition.
pub(crate) struct Search<'a, M: Model> {
    model: &'a M,
    ops: &'a [PreparedOp<M::Input, M::Output>],
    list: List,
    read_only: Vec<bool>,
    prev_same: Vec<u32>,
    zobrist: Vec<u64>,
    /// Interned states: each stored once, found through its hash.
    states: Vec<M::State>,
    state_ids: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    /// (state << 32 | op) -> next state, or NONE if the step is illegal.
    steps: hashbrown::HashMap<u64, u32>,
    memo: Memo,
    /// Memo bytes already counted in `Limits::memo_bytes`.
    counted_bytes: usize,
    /// Per op: its position among the completed ops, or among the indeterminate ones.
    slot: Vec<Slot>,
    /// The completed ops linearized, with their Zobrist hash; the indeterminate ops linearized.
    done: Vec<u64>,
    hash: u64,
    extra: Vec<u64>,
    /// The first completed op (by position) not linearized, and how many are.
    first_open: usize,
    done_count: usize,
    /// The indeterminate ops linearized, in the order they were (a stack, as the search is).
    extra_path: Vec<u32>,
    /// Scratch for memo keys.
    frontier: Vec<u32>,
    sorted_extra: Vec<u32>,
    /// One frame per configuration on the current path.
    frames: Vec<Frame>,
    /// The frames' candidate lists, back to back.
    candidates: Vec<u32>,
    /// Completed operations not yet linearized.
    remaining: usize,
    /// Rules 9 and 10's footprints: per op, the state it requires and the state it leaves
    /// (`NONE`: none, or not fixed); per state, the mandatory ops left that require it, all
    /// the ops left that require it, and the ops left that leave it. `rule` is false when some
    /// op's effect depends on the state.
    rule: bool,
    requires: Vec<u32>,
    leaves: Vec<u32>,
    requirers_left: Vec<u32>,
    observers_left: Vec<u32>,
    leavers_left: Vec<u32>,
    /// Rule 11: on or off; per op, the reads whose value grows from the fixed state it leaves;
    /// per read, the ops left that could reset the state towards its value; `grows_to` cached.
    growth: bool,
    resets_for: Vec<Vec<u32>>,
    resetters_left: Vec<u32>,
    grows: hashbrown::HashMap<u64, bool>,
    /// The longest linearization seen, as (op, state after it).
    longest: Vec<(u32, u32)>,
    /// Loop iterations so far.
    pub iterations: u64,
    finished: bool,
}

impl<'a, M: Model> Search<'a, M> {
    /// A search over `ops`, which must be in invocation order.
    pub(crate) fn new(model: &'a M, ops: &'a [PreparedOp<M::Input, M::Output>]) -> Self {
        let n = ops.len();
        let footprints: Vec<_> =
            ops.iter().map(|op| model.footprint(&op.input, op.output.as_ref())).collect();
        let deadlines = super::deadlines::derive(model, ops, &footprints);
        let slot = slots(&deadlines);
        let completed = deadlines.iter().filter(|d| d.is_some()).count() as u32;
        let indeterminate = n as u32 - completed;
        let (done_words, extra_words) =
            ((completed as usize).div_ceil(64), (indeterminate as usize).div_ceil(64));
        let mut search = Search {
            model,
            ops,
            list: List::new(ops, &deadlines),
            read_only: ops.iter().map(|op| model.is_read_only(&op.input)).collect(),
            prev_same: interchangeable_predecessors(ops, &deadlines),
            zobrist: (0..n as u64).map(|i| mix(i ^ 0x5bd1_e995)).collect(),
            states: Vec::new(),
            state_ids: HashTable::with_capacity(256),
            hasher: hashbrown::DefaultHashBuilder::default(),
            steps: hashbrown::HashMap::with_capacity(1024),
            memo: Memo::default(),
            counted_bytes: 0,
            slot,
            done: vec![0u64; done_words],
            hash: 0,
            extra: vec![0u64; extra_words],
            first_open: 0,
            done_count: 0,
            extra_path: Vec::new(),
            frontier: Vec::new(),
            sorted_extra: Vec::new(),
            frames: Vec::with_capacity(n + 1),
            candidates: Vec::with_capacity(4 * n),
            remaining: completed as usize,
            rule: true,
            requires: vec![NONE; n],
            leaves: vec![NONE; n],
            requirers_left: Vec::new(),
            observers_left: Vec::new(),
            leavers_left: Vec::new(),
            growth: false,
            resets_for: Vec::new(),
            resetters_left: Vec::new(),
            grows: hashbrown::HashMap::new(),
            longest: Vec::new(),
            iterations: 0,
            finished: false,
        };
        let initial = search.intern(model.init());
        search.count_footprints(footprints);
        search.count_resetters();
        search.open_frame(initial, NONE);
        search
    }

    /// Interns each op's footprint and counts, per state, who requires and who leaves it (9).
    fn count_footprints(&mut self, footprints: Vec<crate::model::Footprint<M::State>>) {
        for (i, footprint) in footprints.into_iter().enumerate() {
            match footprint.leaves {
                crate::model::Leaves::Depends => self.rule = false,
                crate::model::Leaves::Same => {}
                crate::model::Leaves::Fixed(state) => self.leaves[i] = self.intern(state),
            }
            if let Some(state) = footprint.requires {
                self.requires[i] = self.intern(state);
            }
        }
        let states = self.states.len();
        self.requirers_left = vec![0; states];
        self.observers_left = vec![0; states];
        self.leavers_left = vec![0; states];
        for i in 0..self.ops.len() {
            self.count(i, 1);
        }
    }

    /// Rule 11's counts: which fixed states could start each read's value (11).
    fn count_resetters(&mut self) {
        let init = self.model.init();
        let growing = !self.rule && self.model.grows_to(&init, &init).is_some();
        let n = self.ops.len();
        let reads: Vec<usize> =
            (0..n).filter(|i| self.read_only[*i] && self.requires[*i] != NONE).collect();
        let fixed: Vec<usize> = (0..n).filter(|i| self.leaves[*i] != NONE).collect();
        if !growing || reads.len().saturating_mul(fixed.len()) > GROWTH_PAIRS {
            return;
        }
        self.growth = true;
        self.resets_for = vec![Vec::new(); n];
        self.resetters_left = vec![0; n];
        for &p in &fixed {
            for &r in &reads {
                if self.grows(self.leaves[p], self.requires[r]) {
                    self.resets_for[p].push(r as u32);
                    self.resetters_left[r] += 1;
                }
            }
        }
    }

    /// Whether state `to` can follow `from` through state-dependent ops (11), cached; unknown
    /// counts as yes.
    fn grows(&mut self, from: u32, to: u32) -> bool {
        let key = (u64::from(from) << 32) | u64::from(to);
        if let Some(grows) = self.grows.get(&key) {
            return *grows;
        }
        let (a, b) = (&self.states[from as usize], &self.states[to as usize]);
        let grows = self.model.grows_to(a, b) != Some(false);
        self.grows.insert(key, grows);
        grows
    }

    /// Adds `by` to op `i`'s footprint counts (1 when it leaves the linearized set, -1 when it
    /// joins it).
    fn count(&mut self, i: usize, by: i32) {
        let mandatory = self.mandatory(i);
        for (state, counts, counted) in [
            (self.requires[i], &mut self.requirers_left, mandatory),
            (self.requires[i], &mut self.observers_left, true),
            (self.leaves[i], &mut self.leavers_left, true),
        ] {
            if state != NONE && counted {
                let slot = &mut counts[state as usize];
                *slot = slot.checked_add_signed(by).expect("footprint counts stay balanced");
            }
        }
        if self.growth {
            for &r in &self.resets_for[i] {
                let slot = &mut self.resetters_left[r as usize];
                *slot = slot.checked_add_signed(by).expect("resetter counts stay balanced");
            }
        }
    }

    /// Whether no op left requires `state` (10).
    fn dead(&self, state: u32) -> bool {
        self.rule && self.observers_left.get(state as usize).copied().unwrap_or(0) == 0
    }

    /// Whether op `i` is a mandatory blind write of a value no op left requires (10).
    fn unobserved_write(&self, i: usize) -> bool {
        self.mandatory(i)
            && self.requires[i] == NONE
            && self.leaves[i] != NONE
            && self.dead(self.leaves[i])
    }

    /// Whether, in `state`, candidate `i` would lose an op that must still observe it (9).
    fn loses_an_observer(&mut self, state: u32, i: usize) -> bool {
        let s = state as usize;
        let left = self.requirers_left.get(s).copied().unwrap_or(0);
        if !self.rule || left == 0 || self.leavers_left.get(s).copied().unwrap_or(0) > 0 {
            return false;
        }
        if self.step(state, i) == Some(state) {
            return false;
        }
        !(self.requires[i] == state && self.mandatory(i) && left == 1)
    }

    /// Searches for at most `budget` more iterations. `None` means the budget ran out first and
    /// `run` may be called again.
    pub(crate) fn run(&mut self, budget: u64, limits: &Limits<'_>) -> Option<SearchOutcome> {
        assert!(!self.finished, "search resumed after it ended");
        let stop = self.iterations.saturating_add(budget);
        let outcome = self.run_until(stop, limits);
        self.finished = outcome.is_some();
        outcome
    }

    fn run_until(&mut self, stop: u64, limits: &Limits<'_>) -> Option<SearchOutcome> {
        if self.remaining == 0 {
            return Some(SearchOutcome::Linearizable);
        }
        loop {
            self.iterations += 1;
            if self.iterations & 0xfff == 0 {
                if let Some(outcome) = self.check_limits(limits) {
                    return Some(outcome);
                }
                if self.iterations >= stop {
                    return None;
                }
            }
            let frame = self.frames.last_mut().expect("the root frame stays until the end");
            if frame.next == frame.end {
                // Every candidate failed, so this configuration fails: undo the step into it.
                if !self.close_frame() {
                    return Some(self.illegal());
                }
                continue;
            }
            let (candidate, state, read) = (self.candidates[frame.next], frame.state, frame.read);
            frame.next += 1;
            let Some(next_state) = self.step(state, candidate as usize) else { continue };
            if read != NONE && !self.grows(next_state, self.requires[read as usize]) {
                continue;
            }
            if self.linearize(candidate as usize, next_state) {
                if self.remaining == 0 {
                    return Some(SearchOutcome::Linearizable);
                }
                // This search alone over the bound: known at once, whatever the schedule
                // (the shared count is kept every 4096 iterations).
                if self.memo.bytes() > limits.max_memo_bytes {
                    return Some(SearchOutcome::OutOfMemory);
                }
                self.open_frame(next_state, candidate);
            }
        }
    }

    fn check_limits(&mut self, limits: &Limits<'_>) -> Option<SearchOutcome> {
        if limits.cancel.load(Ordering::Relaxed) {
            return Some(SearchOutcome::Cancelled);
        }
        if limits.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(SearchOutcome::Timeout);
        }
        let bytes = self.memo.bytes();
        let grown = bytes - self.counted_bytes;
        self.counted_bytes = bytes;
        let total = limits.memo_bytes.fetch_add(grown, Ordering::Relaxed) + grown;
        (total > limits.max_memo_bytes).then_some(SearchOutcome::OutOfMemory)
    }

    /// Returns this search's memory to the shared count.
    pub(crate) fn release(&mut self, limits: &Limits<'_>) {
        limits.memo_bytes.fetch_sub(self.counted_bytes, Ordering::Relaxed);
        self.counted_bytes = 0;
    }

    /// The longest linearization found so far, as (index into the ops, state after it).
    pub(crate) fn longest(&self) -> Vec<(usize, String)> {
        self.longest
            .iter()
            .map(|(op, s)| (*op as usize, self.model.describe_state(&self.states[*s as usize])))
            .collect()
    }

    /// Whether op `i` must be linearized: it completed, or its effect was observed
    /// (`deadlines.rs`).
    fn mandatory(&self, i: usize) -> bool {
        matches!(self.slot[i], Slot::Done(_))
    }

    fn is_linearized(&self, i: usize) -> bool {
        match self.slot[i] {
            Slot::Done(k) => bit(&self.done, k as usize),
            Slot::Extra(k) => bit(&self.extra, k as usize),
        }
    }

    /// Adds op `i` to the linearized sets, or removes it (the last one added).
    fn flip(&mut self, i: usize) {
        match self.slot[i] {
            Slot::Done(k) => {
                let k = k as usize;
                flip(&mut self.done, k);
                self.hash ^= self.zobrist[i];
                if bit(&self.done, k) {
                    self.done_count += 1;
                    while self.first_open < self.done.len() * 64 && bit(&self.done, self.first_open)
                    {
                        self.first_open += 1;
                    }
                } else {
                    self.done_count -= 1;
                    self.first_open = self.first_open.min(k);
                }
            }
            Slot::Extra(k) => {
                flip(&mut self.extra, k as usize);
                if bit(&self.extra, k as usize) {
                    self.extra_path.push(k);
                } else {
                    let popped = self.extra_path.pop();
                    debug_assert_eq!(popped, Some(k), "indeterminate ops leave in stack order");
                }
            }
        }
        let by = if self.is_linearized(i) { -1 } else { 1 };
        self.count(i, by);
    }

    /// Records the current configuration with state `state` (see `memo.rs`); false if it was
    /// explored already.
    fn remember(&mut self, state: u32) -> bool {
        self.frontier.clear();
        let mut left = self.done_count - self.first_open;
        let mut word = self.first_open / 64;
        while left > 0 {
            let mut bits = self.done[word];
            if word == self.first_open / 64 {
                bits &= !0u64 << (self.first_open % 64);
            }
            while bits != 0 && left > 0 {
                self.frontier.push((word * 64) as u32 + bits.trailing_zeros());
                bits &= bits - 1;
                left -= 1;
            }
            word += 1;
        }
        self.sorted_extra.clear();
        self.sorted_extra.extend_from_slice(&self.extra_path);
        self.sorted_extra.sort_unstable();
        self.memo.insert(
            self.hash,
            state,
            self.first_open as u32,
            &self.frontier,
            &self.sorted_extra,
        )
    }

    fn illegal(&self) -> SearchOutcome {
        SearchOutcome::Illegal { longest: self.longest() }
    }

    fn intern(&mut self, state: M::State) -> u32 {
        use std::hash::BuildHasher as _;
        let Search { states, state_ids, hasher, .. } = self;
        let hash = hasher.hash_one(&state);
        if let Some(id) = state_ids.find(hash, |&id| states[id as usize] == state) {
            return *id;
        }
        let id = states.len() as u32;
        states.push(state);
        state_ids.insert_unique(hash, id, |&id| hasher.hash_one(&states[id as usize]));
        id
    }

    fn step(&mut self, state: u32, op: usize) -> Option<u32> {
        let key = (u64::from(state) << 32) | op as u64;
        if let Some(next) = self.steps.get(&key) {
            return (*next != NONE).then_some(*next);
        }
        let prepared = &self.ops[op];
        let current = &self.states[state as usize];
        let next = if self.read_only[op] {
            // A read-only step ends where it began: compare, never copy or hash the state.
            let seen = self.model.observes(current, &prepared.input, prepared.output.as_ref());
            if seen { state } else { NONE }
        } else {
            match self.model.step(current, &prepared.input, prepared.output.as_ref()) {
                None => NONE,
                Some(after) => self.intern(after),
            }
        };
        self.steps.insert(key, next);
        (next != NONE).then_some(next)
    }

    /// Pushes the frame of a configuration reached for the first time, with its candidates:
    /// the operations that may be linearized next (invoked before the first pending return),
    /// newest first and indeterminate ones last, or a fitting read alone (module docs, 4 and 5).
    fn open_frame(&mut self, state: u32, op: u32) {
        let start = self.candidates.len();
        // Reached through an indeterminate op: candidates that do the same from the parent's
        // state are the parent's business (module docs, 8).
        let parent = match self.frames.last() {
            Some(parent) if op != NONE && matches!(self.slot[op as usize], Slot::Extra(_)) => {
                Some((parent.state, parent.start, parent.end))
            }
            _ => None,
        };
        let dead = self.dead(state);
        let mut read = NONE;
        let mut entry = self.list.next[HEAD as usize];
        while let Some(i) = self.list.call_op(entry) {
            entry = self.list.next[entry as usize];
            let fits = self.read_only[i] && self.step(state, i) == Some(state);
            if fits || (dead && self.unobserved_write(i)) {
                self.candidates.truncate(start);
                self.candidates.push(i as u32);
                let end = start + 1;
                self.frames.push(Frame { state, start, next: start, end, op, read: NONE });
                return;
            }
            if self.read_only[i] {
                if self.growth && read == NONE && self.resetters_left[i] == 0 {
                    read = i as u32;
                }
                continue;
            }
            let prev = self.prev_same[i];
            if prev != NONE && !self.is_linearized(prev as usize) {
                continue;
            }
            if let Some((parent_state, parent_start, parent_end)) = parent
                && self.candidates[parent_start..parent_end].contains(&(i as u32))
                && self.step(parent_state, i) == self.step(state, i)
            {
                continue;
            }
            if self.loses_an_observer(state, i) {
                continue;
            }
            self.candidates.push(i as u32);
        }
        let candidates = &mut self.candidates[start..];
        candidates.reverse();
        let slot = &self.slot;
        candidates.sort_by_key(|&i| matches!(slot[i as usize], Slot::Extra(_)));
        let end = self.candidates.len();
        self.frames.push(Frame { state, start, next: start, end, op, read });
    }

    /// Pops the top frame and undoes the step that led to it. Returns false at the root.
    fn close_frame(&mut self) -> bool {
        if self.frames.len() - 1 > self.longest.len() {
            self.longest = self.frames[1..].iter().map(|f| (f.op, f.state)).collect();
        }
        let frame = self.frames.pop().expect("a frame is open");
        self.candidates.truncate(frame.start);
        if self.frames.is_empty() {
            return false;
        }
        let i = frame.op as usize;
        self.flip(i);
        self.list.unlift(2 * frame.op + 1);
        self.remaining += usize::from(self.mandatory(i));
        true
    }

    /// Linearizes op `i` (reaching `next`) unless that configuration, or one dominating it,
    /// was already explored.
    fn linearize(&mut self, i: usize, next: u32) -> bool {
        self.flip(i);
        if !self.remember(next) {
            self.flip(i);
            return false;
        }
        self.list.lift(2 * i as u32 + 1);
        self.remaining -= usize::from(self.mandatory(i));
        true
    }
}

/// SplitMix64's finalizer: spreads a counter into a random-looking word.
pub(super) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
