//! The history as the search walks it: a linked list of calls and returns that linearized
//! operations are lifted out of, each operation's bit in the linearized set, and which equal
//! operations stand for each other (search.rs, rule 3).

use super::search::PreparedOp;

/// The list's head node.
pub(super) const HEAD: u32 = 0;
/// No op, or no state.
pub(super) const NONE: u32 = u32::MAX;

/// Each op's bit: mandatory ops numbered in deadline order, optional ones in invocation order.
///
/// Deadline order keeps a memo entry small (`memo.rs`): every mandatory op with a deadline
/// before the first pending one is linearized, so the set is a prefix of this order plus those
/// linearized early, which were invoked before that deadline and are still open at it, at most
/// the history's concurrency. In invocation order, one op that may wait long (a write resolved
/// as committed, due only after the history's end) would put every later op in the frontier.
pub(super) fn slots(deadlines: &[Option<u64>]) -> Vec<Slot> {
    let mut mandatory: Vec<usize> =
        (0..deadlines.len()).filter(|i| deadlines[*i].is_some()).collect();
    mandatory.sort_by_key(|i| (deadlines[*i], *i));
    let mut slot = vec![Slot::Extra(0); deadlines.len()];
    for (k, i) in mandatory.into_iter().enumerate() {
        slot[i] = Slot::Done(k as u32);
    }
    let optional = (0..deadlines.len()).filter(|i| deadlines[*i].is_none());
    for (k, i) in optional.enumerate() {
        slot[i] = Slot::Extra(k as u32);
    }
    slot
}

/// For each op, the latest earlier-invoked op of its kind (both optional, or both mandatory
/// with deadlines in invocation order) with an equal input (module docs, 3), or `NONE`.
pub(super) fn interchangeable_predecessors<I: Eq + std::hash::Hash, O>(
    ops: &[PreparedOp<I, O>],
    deadlines: &[Option<u64>],
) -> Vec<u32> {
    let mut last: hashbrown::HashMap<(&I, bool), usize> = hashbrown::HashMap::new();
    let mut prev = vec![NONE; ops.len()];
    for (i, op) in ops.iter().enumerate() {
        // `ops` is in invocation order, so `p` was invoked no later than `i`.
        if let Some(p) = last.insert((&op.input, deadlines[i].is_some()), i)
            && deadlines[p] <= deadlines[i]
        {
            prev[i] = p as u32;
        }
    }
    prev
}

/// The history as a doubly linked list of call and return entries in time order, between a
/// head (node 0) and a tail sentinel. Op `i` has call node `2i + 1` and return node `2i + 2`.
pub(super) struct List {
    pub(super) next: Vec<u32>,
    prev: Vec<u32>,
}

impl List {
    /// The list of `ops`, each returning at its deadline (never, for an optional op).
    pub(super) fn new<I, O>(ops: &[PreparedOp<I, O>], deadlines: &[Option<u64>]) -> List {
        let n = ops.len();
        let mut nodes: Vec<(u64, u32)> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            nodes.push((op.call, 2 * i as u32 + 1));
            nodes.push((deadlines[i].unwrap_or(u64::MAX), 2 * i as u32 + 2));
        }
        nodes.sort_unstable();
        let tail = 2 * n as u32 + 1;
        let mut next = vec![tail; 2 * n + 2];
        let mut prev = vec![HEAD; 2 * n + 2];
        let mut last = HEAD;
        for (_, node) in nodes {
            next[last as usize] = node;
            prev[node as usize] = last;
            last = node;
        }
        next[last as usize] = tail;
        prev[tail as usize] = last;
        List { next, prev }
    }

    /// The op of a call node; `None` for a return node or the tail.
    pub(super) fn call_op(&self, node: u32) -> Option<usize> {
        (node % 2 == 1 && (node as usize) < self.next.len() - 1).then_some((node as usize - 1) / 2)
    }

    fn unlink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = n;
        self.prev[n as usize] = p;
    }

    fn relink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = node;
        self.prev[n as usize] = node;
    }

    /// Removes a call and its return.
    pub(super) fn lift(&mut self, call: u32) {
        self.unlink(call);
        self.unlink(call + 1);
    }

    /// Undoes `lift`, in reverse order.
    pub(super) fn unlift(&mut self, call: u32) {
        self.relink(call + 1);
        self.relink(call);
    }
}

/// Where an op's bit lives.
#[derive(Clone, Copy, Debug)]
pub(super) enum Slot {
    /// Among the completed ops.
    Done(u32),
    /// Among the indeterminate ops.
    Extra(u32),
}

pub(super) fn bit(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

pub(super) fn flip(bits: &mut [u64], i: usize) {
    bits[i / 64] ^= 1 << (i % 64);
}
