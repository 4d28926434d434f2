//! Inferring ww, wr and rw dependencies from a list-append history, and the anomalies that need
//! no cycle (G1a, G1b, internal, incompatible-order, duplicate-elements, garbage reads).
//!
//! A key's version order is its longest committed read; every other read of it must be a prefix
//! (otherwise no order explains both, and the key yields no ww or rw edges). A transaction's read
//! of a key counts once, as it stood before the transaction's own appends to that key: that part
//! is what it saw of others.

use std::collections::HashSet;

use hashbrown::HashMap;

use super::{Anomaly, Dep, Mop, Outcome, TxnHistory};

/// A dependency: `from` precedes `to` by `dep` on key number `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Edge {
    pub from: usize,
    pub to: usize,
    pub dep: Dep,
    pub key: u32,
}

/// What inference found.
pub(super) struct Inferred {
    pub edges: Vec<Edge>,
    pub anomalies: Vec<Anomaly>,
    /// Key names by number.
    pub keys: Vec<String>,
}

/// Who appended an element, and whether it was that transaction's last append to the key.
#[derive(Clone, Copy)]
struct Writer {
    txn: usize,
    last_of_txn: bool,
}

/// A committed transaction's view of a key: the whole read, and how much of it came before the
/// transaction's own appends.
struct Read<'h> {
    txn: usize,
    key: u32,
    list: &'h [i64],
    external: usize,
}

pub(super) fn infer(history: &TxnHistory) -> Inferred {
    let mut keys = Keys::default();
    let mut anomalies = Vec::new();
    let writers = writers(history, &mut keys);
    let mut reads = Vec::new();
    for txn in history.txns.iter().filter(|t| t.outcome == Outcome::Ok) {
        internal(txn, &mut keys, &mut reads, &mut anomalies);
    }
    let mut edges = Vec::new();
    let mut orders = orders(&reads, &writers, history, &keys, &mut anomalies);
    let tails = unobserved(&orders, &writers, history);
    for (key, tail) in tails.iter().enumerate() {
        if let (Some(order), [only]) = (&mut orders[key], tail.as_slice()) {
            order.push(*only);
        }
    }
    for (key, order) in orders.iter().enumerate() {
        let Some(order) = order else { continue };
        for pair in order.windows(2) {
            let (a, b) = (writers[&(key as u32, pair[0])].txn, writers[&(key as u32, pair[1])].txn);
            if a != b {
                edges.push(Edge { from: a, to: b, dep: Dep::Ww, key: key as u32 });
            }
        }
    }
    for (key, tail) in tails.iter().enumerate().filter(|(_, tail)| tail.len() > 1) {
        let last = orders[key].as_ref().and_then(|order| order.last());
        for (before, element) in last.into_iter().flat_map(|l| tail.iter().map(move |e| (l, e))) {
            let (a, b) =
                (writers[&(key as u32, *before)].txn, writers[&(key as u32, *element)].txn);
            if a != b {
                edges.push(Edge { from: a, to: b, dep: Dep::Ww, key: key as u32 });
            }
        }
    }
    for read in &reads {
        let seen = &read.list[..read.external];
        if let Some(last) = seen.last()
            && let Some(writer) = writers.get(&(read.key, *last))
            && writer.txn != read.txn
        {
            edges.push(Edge { from: writer.txn, to: read.txn, dep: Dep::Wr, key: read.key });
            if !writer.last_of_txn && history.txns[writer.txn].outcome != Outcome::Fail {
                anomalies.push(Anomaly::IntermediateRead {
                    reader: read.txn,
                    writer: writer.txn,
                    key: keys.name(read.key),
                    element: *last,
                });
            }
        }
        let order = orders[read.key as usize].as_deref();
        let tail = &tails[read.key as usize];
        if tail.len() > 1 && order == Some(seen) {
            // Several committed appends no read saw: each came after everything read, in an
            // order nobody observed, so this read precedes each of them.
            for element in tail {
                let writer = writers[&(read.key, *element)].txn;
                if writer != read.txn {
                    edges.push(Edge { from: read.txn, to: writer, dep: Dep::Rw, key: read.key });
                }
            }
        }
        if let Some(next) = order.filter(|o| o.starts_with(seen)).and_then(|o| o.get(seen.len()))
            && let Some(writer) = writers.get(&(read.key, *next))
            && writer.txn != read.txn
        {
            edges.push(Edge { from: read.txn, to: writer.txn, dep: Dep::Rw, key: read.key });
        }
    }
    Inferred { edges, anomalies, keys: keys.names }
}

/// Key names interned as numbers.
#[derive(Default)]
struct Keys {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Keys {
    fn id(&mut self, key: &str) -> u32 {
        if let Some(id) = self.ids.get(key) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(key.to_string(), id);
        self.names.push(key.to_string());
        id
    }

    fn name(&self, id: u32) -> String {
        self.names[id as usize].clone()
    }
}

/// The writer of every appended element (the first, should a history append one twice).
fn writers(history: &TxnHistory, keys: &mut Keys) -> HashMap<(u32, i64), Writer> {
    let mut writers = HashMap::new();
    let mut last: Vec<(u32, i64)> = Vec::new();
    for txn in &history.txns {
        last.clear();
        for mop in &txn.mops {
            if let Mop::Append { key, value } = mop {
                let key = keys.id(key);
                match last.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = *value,
                    None => last.push((key, *value)),
                }
                writers.entry((key, *value)).or_insert(Writer { txn: txn.id, last_of_txn: false });
            }
        }
        for &(key, value) in &last {
            if let Some(writer) = writers.get_mut(&(key, value))
                && writer.txn == txn.id
            {
                writer.last_of_txn = true;
            }
        }
    }
    writers
}

/// Checks a committed transaction against its own operations (each read must show what its
/// earlier reads and appends imply) and collects its first read of each key.
fn internal<'h>(
    txn: &'h super::Txn,
    keys: &mut Keys,
    reads: &mut Vec<Read<'h>>,
    anomalies: &mut Vec<Anomaly>,
) {
    // Per key touched: the list as this transaction knows it (after a read), and its own
    // appends since the start (before any read). Transactions touch few keys: a vector.
    let mut state: Vec<(u32, Option<Vec<i64>>, Vec<i64>)> = Vec::new();
    let mut slot = |key: u32| match state.iter().position(|(k, ..)| *k == key) {
        Some(i) => i,
        None => {
            state.push((key, None, Vec::new()));
            state.len() - 1
        }
    };
    let mut slots: Vec<usize> = Vec::with_capacity(txn.mops.len());
    for mop in &txn.mops {
        slots.push(slot(keys.id(mop.key())));
    }
    for (mop, &i) in txn.mops.iter().zip(&slots) {
        let (key, known, own) = &mut state[i];
        let key = *key;
        match mop {
            Mop::Append { value, .. } => match known {
                Some(list) => list.push(*value),
                None => own.push(*value),
            },
            Mop::Read { value: None, .. } => {}
            Mop::Read { value: Some(list), .. } => {
                let expected = match known {
                    Some(known) => (known != list).then(|| known.clone()),
                    None => {
                        let mine = own.as_slice();
                        let external = list.len().saturating_sub(mine.len());
                        if !list.ends_with(mine) {
                            Some(mine.to_vec())
                        } else {
                            reads.push(Read { txn: txn.id, key, list, external });
                            None
                        }
                    }
                };
                if let Some(expected) = expected {
                    anomalies.push(Anomaly::Internal { txn: txn.id, mop: mop.clone(), expected });
                }
                *known = Some(list.clone());
            }
        }
    }
}

/// Each key's version order (its longest read), or `None` when reads disagree; reports
/// duplicates, unknown and aborted elements, and disagreeing reads on the way.
fn orders(
    reads: &[Read<'_>],
    writers: &HashMap<(u32, i64), Writer>,
    history: &TxnHistory,
    keys: &Keys,
    anomalies: &mut Vec<Anomaly>,
) -> Vec<Option<Vec<i64>>> {
    let mut longest: Vec<Option<&[i64]>> = vec![None; keys.names.len()];
    let mut sound = vec![true; keys.names.len()];
    for read in reads {
        let mut seen = HashSet::with_capacity(read.list.len());
        if !read.list.iter().all(|e| seen.insert(*e)) {
            anomalies.push(Anomaly::DuplicateElements {
                txn: read.txn,
                key: keys.name(read.key),
                read: read.list.to_vec(),
            });
            sound[read.key as usize] = false;
            continue;
        }
        for element in read.list {
            match writers.get(&(read.key, *element)) {
                None => anomalies.push(Anomaly::UnknownElement {
                    txn: read.txn,
                    key: keys.name(read.key),
                    element: *element,
                }),
                Some(w) if history.txns[w.txn].outcome == Outcome::Fail => {
                    anomalies.push(Anomaly::AbortedRead {
                        reader: read.txn,
                        writer: w.txn,
                        key: keys.name(read.key),
                        element: *element,
                    });
                }
                Some(_) => {}
            }
        }
        let slot = &mut longest[read.key as usize];
        if slot.is_none_or(|l| l.len() < read.list.len()) {
            *slot = Some(read.list);
        }
    }
    for read in reads {
        let key = read.key as usize;
        let Some(longest) = longest[key] else { continue };
        if sound[key] && !longest.starts_with(read.list) {
            anomalies.push(Anomaly::IncompatibleOrder {
                key: keys.name(read.key),
                reads: [read.list.to_vec(), longest.to_vec()],
            });
            sound[key] = false;
        }
    }
    let known =
        |key: usize, list: &[i64]| list.iter().all(|e| writers.contains_key(&(key as u32, *e)));
    longest
        .into_iter()
        .enumerate()
        .map(|(key, list)| list.filter(|l| sound[key] && known(key, l)).map(<[i64]>::to_vec))
        .collect()
}

/// Per key with a sound order, the elements committed transactions appended that no read saw:
/// a committed append is in the final list, and every read is a prefix of it, so each of these
/// comes after the longest read. With one, the order is known through it.
fn unobserved(
    orders: &[Option<Vec<i64>>],
    writers: &HashMap<(u32, i64), Writer>,
    history: &TxnHistory,
) -> Vec<Vec<i64>> {
    let mut tails = vec![Vec::new(); orders.len()];
    let seen: Vec<HashSet<i64>> =
        orders.iter().map(|order| order.iter().flatten().copied().collect()).collect();
    let mut all: Vec<(&(u32, i64), &Writer)> = writers.iter().collect();
    all.sort_unstable_by_key(|(element, writer)| (writer.txn, **element));
    for (&(key, element), writer) in all {
        let key = key as usize;
        if orders[key].is_some()
            && history.txns[writer.txn].outcome == Outcome::Ok
            && !seen[key].contains(&element)
        {
            tails[key].push(element);
        }
    }
    tails
}
