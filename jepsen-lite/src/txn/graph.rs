//! The dependency graph over transactions: ww, wr and rw edges from the inferred version orders,
//! process order, and real-time order. Real-time order is kept small the way Elle keeps it: each
//! committed transaction gets edges only from the transactions completed before its invocation
//! that no later-completed transaction already follows (the "frontier"), which keeps the order's
//! transitive closure and about as many edges per transaction as there are concurrent clients.

use super::deps::Edge as DepEdge;
use super::{Dep, Outcome, TxnHistory};

/// No key: process and real-time edges.
pub(super) const NO_KEY: u32 = u32::MAX;

/// An edge out of a transaction: the kinds that order it before `to`, and for ww, wr and rw the
/// key each is on.
#[derive(Clone, Copy, Debug)]
pub(super) struct Out {
    pub to: u32,
    pub mask: u8,
    pub keys: [u32; 3],
}

/// Adjacency lists, one per transaction.
pub(super) struct Graph {
    pub out: Vec<Vec<Out>>,
    pub keys: Vec<String>,
}

impl Graph {
    pub(super) fn build(history: &TxnHistory, deps: &[DepEdge], keys: Vec<String>) -> Graph {
        let mut out: Vec<Vec<Out>> = vec![Vec::new(); history.txns.len()];
        let mut add = |from: usize, to: usize, dep: Dep, key: u32| {
            let list = &mut out[from];
            let slot = match list.iter().position(|o| o.to == to as u32) {
                Some(i) => &mut list[i],
                None => {
                    list.push(Out { to: to as u32, mask: 0, keys: [NO_KEY; 3] });
                    list.last_mut().expect("just pushed")
                }
            };
            slot.mask |= dep.bit();
            if let Some(i) = key_slot(dep) {
                slot.keys[i] = key;
            }
        };
        for edge in deps {
            add(edge.from, edge.to, edge.dep, edge.key);
        }
        for (from, to) in process_order(history) {
            add(from, to, Dep::Process, NO_KEY);
        }
        for (from, to) in realtime_order(history) {
            add(from, to, Dep::Realtime, NO_KEY);
        }
        Graph { out, keys }
    }

    /// Edges, counting each ordered pair once.
    pub(super) fn edge_count(&self) -> usize {
        self.out.iter().map(Vec::len).sum()
    }

    /// The key an edge's `dep` is on, for ww, wr and rw.
    pub(super) fn key(&self, out: &Out, dep: Dep) -> Option<String> {
        let id = key_slot(dep).map(|i| out.keys[i])?;
        (id != NO_KEY).then(|| self.keys[id as usize].clone())
    }
}

fn key_slot(dep: Dep) -> Option<usize> {
    match dep {
        Dep::Ww => Some(0),
        Dep::Wr => Some(1),
        Dep::Rw => Some(2),
        Dep::Process | Dep::Realtime => None,
    }
}

/// Each process's committed transactions, one after the next.
fn process_order(history: &TxnHistory) -> Vec<(usize, usize)> {
    let mut last = hashbrown::HashMap::new();
    let mut edges = Vec::new();
    for txn in history.txns.iter().filter(|t| t.outcome == Outcome::Ok) {
        let Some(process) = txn.process else { continue };
        if let Some(previous) = last.insert(process, txn.id) {
            edges.push((previous, txn.id));
        }
    }
    edges
}

/// Real-time order among committed transactions, as a frontier sweep over the events.
fn realtime_order(history: &TxnHistory) -> Vec<(usize, usize)> {
    // (event position, 0 = invocation / 1 = completion, transaction)
    let mut events = Vec::new();
    for txn in history.txns.iter().filter(|t| t.outcome == Outcome::Ok) {
        events.push((txn.invoke_seq, 0u8, txn.id));
        events.push((txn.complete_seq.unwrap_or(txn.invoke_seq), 1u8, txn.id));
    }
    events.sort_unstable();
    let mut frontier: Vec<usize> = Vec::new();
    let mut before: hashbrown::HashMap<usize, Vec<usize>> = Default::default();
    let mut edges = Vec::new();
    for (_, completion, txn) in events {
        if completion == 0 {
            before.insert(txn, frontier.clone());
            continue;
        }
        let preds = before.remove(&txn).unwrap_or_default();
        frontier.retain(|t| !preds.contains(t));
        edges.extend(preds.into_iter().map(|p| (p, txn)));
        frontier.push(txn);
    }
    edges
}
