//! The checker against a plain reference search, and on the families it must never give up on.
//!
//! Goal: none of the search's shortcuts (dominance, fitting reads first, derived deadlines,
//! observers that must not be overwritten, unobserved writes placed at once, dropped lost
//! writes) changes a verdict; and hot-key histories that used to end `unknown` are decided.
//! Method: small generated histories, many of them mutated into non-linearizable ones, are
//! checked by `check` and by Wing and Gong's search with Lowe's memo and nothing else
//! (`reference` below), which must agree. Larger ones, linearizable by construction, must be
//! decided linearizable within a memory bound; the same with one read made stale must be
//! decided not linearizable.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jepsen_lite::generate::{GenOptions, KvGen, kv, kv_resolved, linearizable};
use jepsen_lite::{
    CheckOptions, CheckResult, EventType, History, Model, ModelKind, Outcome, RegisterInput,
    RegisterModel, Resolved, Value, check,
};

/// Plain WGL with memoization of (linearized set, state), one key at a time. With `resolved`,
/// an indeterminate write not committed is left out, and one committed without a condition
/// must be linearized, by a return after the history's end.
fn reference(history: &History, resolved: Option<&Resolved>) -> bool {
    let model = RegisterModel::new(ModelKind::Kv);
    let ops = history.ops().expect("well formed");
    let mut keys: Vec<Option<Value>> = ops.iter().map(|op| op.key.clone()).collect();
    keys.sort();
    keys.dedup();
    let end = history.events.len();
    keys.into_iter().all(|key| {
        let part: Vec<_> = ops
            .iter()
            .filter(|op| op.key == key && op.outcome != Outcome::Fail)
            .filter_map(|op| {
                let (input, output) = model.decode(op).expect("decodes");
                let mut ret =
                    (op.outcome == Outcome::Ok).then(|| op.complete.expect("ok completes"));
                let fate = resolved.zip(op.session).and_then(|(r, s)| r.fate(s));
                if op.outcome == Outcome::Indeterminate {
                    match fate {
                        Some(false) => return None,
                        Some(true) if !matches!(input, RegisterInput::Cas(..)) => ret = Some(end),
                        _ => {}
                    }
                }
                Some((input, output, op.invoke, ret))
            })
            .collect();
        let mut seen = HashSet::new();
        search(&model, &part, &mut vec![false; part.len()], model.init(), &mut seen)
    })
}

type RefOp = (jepsen_lite::RegisterInput, Option<Value>, usize, Option<usize>);

fn search(
    model: &RegisterModel,
    ops: &[RefOp],
    done: &mut Vec<bool>,
    state: Value,
    seen: &mut HashSet<(Vec<bool>, Value)>,
) -> bool {
    let deadline = (0..ops.len()).filter(|i| !done[*i]).filter_map(|i| ops[i].3).min();
    let Some(deadline) = deadline else { return true };
    if !seen.insert((done.clone(), state.clone())) {
        return false;
    }
    for i in 0..ops.len() {
        let (input, output, call, _) = &ops[i];
        if done[i] || *call > deadline {
            continue;
        }
        if let Some(next) = model.step(&state, input, output.as_ref()) {
            done[i] = true;
            let found = search(model, ops, done, next, seen);
            done[i] = false;
            if found {
                return true;
            }
        }
    }
    false
}

fn fast(history: &History, memory: usize) -> CheckResult {
    fast_resolved(history, memory, None)
}

fn fast_resolved(history: &History, memory: usize, resolved: Option<&Resolved>) -> CheckResult {
    let options = CheckOptions {
        timeout: Some(Duration::from_secs(60)),
        threads: 1,
        max_memory_bytes: memory,
        resolved: resolved.cloned().map(Arc::new),
    };
    check(&RegisterModel::new(ModelKind::Kv), history, &options).expect("well formed").result
}

/// Makes the `n`th read (of those with a result) return another value written in the history,
/// which may or may not break linearizability.
fn mutate(history: &History, n: usize, pick: usize) -> History {
    let values: Vec<Value> = history
        .events
        .iter()
        .filter(|e| e.kind == EventType::Invoke && e.f == "put")
        .map(|e| e.value.clone())
        .chain([Value::Null])
        .collect();
    let mut mutated = history.clone();
    let reads: Vec<usize> = (0..mutated.events.len())
        .filter(|&i| mutated.events[i].kind == EventType::Ok && mutated.events[i].f == "get")
        .collect();
    if let Some(&at) = reads.get(n % reads.len().max(1)) {
        mutated.events[at].value = values[pick % values.len()].clone();
    }
    mutated
}

#[test]
fn every_shortcut_agrees_with_a_plain_search() {
    let (mut agreed, mut broken) = (0, 0);
    for seed in 0..150 {
        let processes = 2 + (seed % 5) as usize;
        let indeterminate = [0.0, 0.1, 0.3][(seed % 3) as usize];
        let options = KvGen {
            keys: 1 + (seed % 2) as usize,
            ..KvGen::hot_key(seed, 36, processes, indeterminate)
        };
        let original = kv(&options);
        for (n, history) in
            [(0, original.clone()), (1, mutate(&original, seed as usize, 3 * seed as usize + 1))]
        {
            let want = reference(&history, None);
            let got = fast(&history, 1 << 30);
            assert!(
                !matches!(got, CheckResult::Unknown(_)),
                "seed {seed} ({n}): undecided: {}",
                got.verdict()
            );
            assert_eq!(
                matches!(got, CheckResult::Linearizable),
                want,
                "seed {seed} ({n}): the checker says {}, the reference {want}\n{}",
                got.verdict(),
                jepsen_lite::formats::write_jsonl(&history)
            );
            agreed += 1;
            broken += usize::from(!want);
        }
    }
    assert!(broken >= 40, "the mutations broke enough histories to test anything: {broken}");
    assert!(agreed == 300);
}

#[test]
fn appends_agree_with_a_plain_search() {
    // Appends turn on rule 11 (a read still to come must be reachable): each history, and the
    // same with one read given another read's value (an order of appends it did not see), must
    // get the reference's verdict.
    let (mut agreed, mut broken) = (0, 0);
    for seed in 0..200 {
        let options = GenOptions {
            seed,
            ops: 30,
            keys: 1 + (seed % 2) as usize,
            clients: 2 + (seed % 5) as usize,
            indeterminate: [0.0, 0.1, 0.3][(seed % 3) as usize],
            no_deletes: seed % 4 != 0,
        };
        let original = linearizable(&options);
        let reads: Vec<usize> = (0..original.events.len())
            .filter(|&i| original.events[i].kind == EventType::Ok && original.events[i].f == "get")
            .collect();
        let mut mutated = original.clone();
        if reads.len() >= 2 {
            let (a, b) =
                (reads[seed as usize % reads.len()], reads[(3 * seed as usize + 1) % reads.len()]);
            mutated.events[a].value = original.events[b].value.clone();
        }
        for (n, history) in [(0, &original), (1, &mutated)] {
            let want = reference(history, None);
            let got = fast(history, 1 << 30);
            assert_eq!(
                matches!(got, CheckResult::Linearizable),
                want,
                "seed {seed} ({n}): the checker says {}, the reference {want}\n{}",
                got.verdict(),
                jepsen_lite::formats::write_jsonl(history)
            );
            agreed += 1;
            broken += usize::from(!want);
        }
    }
    assert!(broken >= 40, "the mutations broke enough histories to test anything: {broken}");
    assert_eq!(agreed, 400);
}

#[test]
fn resolved_writes_agree_with_a_plain_search() {
    // The true fates keep a history linearizable; fates flipped at random may break it (a
    // committed write that nothing saw, where something should have; a dropped write a read
    // saw), and the checker must agree with the reference on which.
    let (mut agreed, mut broken, mut resolved_any) = (0, 0, 0);
    for seed in 0..100 {
        let options = KvGen {
            keys: 1 + (seed % 2) as usize,
            ..KvGen::hot_key(seed, 30, 2 + (seed % 4) as usize, 0.4)
        };
        let (history, truth) = kv_resolved(&options);
        let mut flipped = Resolved::new();
        for (i, op) in history.ops().unwrap().iter().enumerate() {
            if let Some((client, seq)) = op.session {
                let fate = truth.fate((client, seq)).expect("every write is listed");
                flipped.insert(client, seq, fate ^ (i as u64 + seed).is_multiple_of(3));
            }
        }
        for (n, resolved) in [(0, &truth), (1, &flipped)] {
            let want = reference(&history, Some(resolved));
            let got = fast_resolved(&history, 1 << 30, Some(resolved));
            assert_eq!(
                matches!(got, CheckResult::Linearizable),
                want,
                "seed {seed} ({n}): the checker says {}, the reference {want}\n{}\n{}",
                got.verdict(),
                jepsen_lite::formats::write_jsonl(&history),
                resolved.to_jsonl()
            );
            assert!(n == 1 || want, "seed {seed}: the true fates are consistent");
            agreed += 1;
            broken += usize::from(!want);
        }
        resolved_any += usize::from(
            history.ops().unwrap().iter().any(|op| op.outcome == Outcome::Indeterminate),
        );
    }
    assert!(broken >= 20, "flipped fates broke enough histories to test anything: {broken}");
    assert!(resolved_any >= 80 && agreed == 200, "{resolved_any} had lost writes");
}

/// The families that used to end `unknown`: one hot key, 1,000 to 10,000 operations from 10 to
/// 50 processes with up to 20% of the writes lost, every write a value of its own.
#[test]
fn hot_keys_with_lost_writes_are_decided() {
    for (ops, processes, indeterminate) in [
        (1_000, 50, 0.2),
        (1_400, 50, 0.014),
        (3_000, 30, 0.1),
        (10_000, 50, 0.05),
        (10_000, 10, 0.2),
    ] {
        for seed in 1..=3 {
            let history = kv(&KvGen::hot_key(seed, ops, processes, indeterminate));
            let result = fast(&history, 256 << 20);
            assert_eq!(
                result,
                CheckResult::Linearizable,
                "{ops} ops, {processes} processes, {indeterminate} lost, seed {seed}"
            );
            // A read of a value overwritten long before is caught.
            let stale = stale_read(&history);
            let result = fast(&stale, 256 << 20);
            assert!(
                matches!(result, CheckResult::NotLinearizable(_)),
                "{ops} ops, {processes} processes, seed {seed}, a stale read: {}",
                result.verdict()
            );
        }
    }
}

/// The history with its last read returning the first value put (overwritten long before, and
/// written by a put that completed).
fn stale_read(history: &History) -> History {
    let mut stale = history.clone();
    let first_put = stale
        .events
        .iter()
        .find(|e| e.kind == EventType::Ok && e.f == "put")
        .map(|e| e.value.clone())
        .expect("a put");
    let last_read = (0..stale.events.len())
        .rev()
        .find(|&i| stale.events[i].kind == EventType::Ok && stale.events[i].f == "get")
        .expect("a read");
    stale.events[last_read].value = first_put;
    stale
}

#[test]
fn a_long_easy_key_is_decided_in_little_memory() {
    // 100,000 completed operations on one key from 4 processes: a memo entry must not grow
    // with the key (256 MB would hold under 20,000 entries of a bitset of the whole key).
    let history = kv(&KvGen::hot_key(1, 100_000, 4, 0.0));
    assert_eq!(fast(&history, 256 << 20), CheckResult::Linearizable);
}

/// Where reads no longer name the write they saw (values drawn from five, as in Knossos'
/// cas-register tests), the search must consider every lost write as a possible explanation
/// of each read. The log's fates remove that choice: the uncommitted ones go, the committed
/// ones are placed. Budgets are in memo bytes, which do not depend on the machine.
#[test]
fn resolved_writes_decide_what_the_search_alone_cannot_in_a_small_budget() {
    let options = KvGen { values: 5, ..KvGen::hot_key(1, 1_000, 10, 0.2) };
    let (history, truth) = kv_resolved(&options);
    let budget = 1_500 << 10;
    let alone = fast_resolved(&history, budget, None);
    assert!(matches!(alone, CheckResult::Unknown(_)), "without fates: {}", alone.verdict());
    let resolved = fast_resolved(&history, budget, Some(&truth));
    assert_eq!(resolved, CheckResult::Linearizable, "with the log's fates");
    assert_eq!(fast_resolved(&history, 1 << 30, None), CheckResult::Linearizable, "given room");
}
