//! The list-append checker on generated histories: a serial background of random transactions
//! (clean: every model holds), with one anomaly planted on keys of its own.
//!
//! Goal: each planted anomaly is found and named, with nothing else, and its cycle is a cycle.
//! Method: for each pattern and 40 seeds, build the history as Jepsen EDN text, read it back,
//! check it against every model, and compare the anomaly names exactly.

use std::collections::BTreeSet;

use jepsen_lite::generate::Rng;
use jepsen_lite::txn::{Anomaly, Model, SearchBudget, TxnReport, check, read_edn};

/// A serial history of `n` random transactions over integer keys 0..6.
fn background(rng: &mut Rng, n: usize) -> Vec<String> {
    let mut lists: Vec<Vec<i64>> = vec![Vec::new(); 6];
    let mut lines = Vec::new();
    for _ in 0..n {
        let process = rng.below(5);
        let mut invoke = Vec::new();
        let mut ok = Vec::new();
        for _ in 0..=rng.below(4) {
            let key = rng.below(6) as usize;
            if rng.below(2) == 0 {
                let element = lists[key].len() as i64 + 1;
                lists[key].push(element);
                invoke.push(format!("[:append {key} {element}]"));
                ok.push(format!("[:append {key} {element}]"));
            } else {
                let read: Vec<String> = lists[key].iter().map(i64::to_string).collect();
                invoke.push(format!("[:r {key} nil]"));
                ok.push(format!("[:r {key} [{}]]", read.join(" ")));
            }
        }
        lines.push(format!(
            "{{:process {process} :type :invoke :f :txn :value [{}]}}",
            invoke.join(" ")
        ));
        lines.push(format!("{{:process {process} :type :ok :f :txn :value [{}]}}", ok.join(" ")));
    }
    lines
}

/// A planted pattern: (process, type, micro-ops) lines in history order. Keys are keywords, so
/// they never meet the background's.
type Pattern = &'static [(u64, &'static str, &'static str)];

/// Completes each line into an op map.
fn planted(pattern: Pattern) -> Vec<String> {
    pattern
        .iter()
        .map(|(process, kind, mops)| {
            format!("{{:process {process} :type :{kind} :f :txn :value {mops}}}")
        })
        .collect()
}

const G0: Pattern = &[
    (100, "invoke", "[[:append :a 1] [:append :b 2]]"),
    (101, "invoke", "[[:append :a 2] [:append :b 1]]"),
    (102, "invoke", "[[:r :a nil] [:r :b nil]]"),
    (100, "ok", "[[:append :a 1] [:append :b 2]]"),
    (101, "ok", "[[:append :a 2] [:append :b 1]]"),
    (102, "ok", "[[:r :a [1 2]] [:r :b [1 2]]]"),
];

const G1C: Pattern = &[
    (100, "invoke", "[[:append :a 1] [:r :b nil]]"),
    (101, "invoke", "[[:append :a 2] [:append :b 1]]"),
    (102, "invoke", "[[:r :a nil]]"),
    (100, "ok", "[[:append :a 1] [:r :b [1]]]"),
    (101, "ok", "[[:append :a 2] [:append :b 1]]"),
    (102, "ok", "[[:r :a [1 2]]]"),
];

const G_SINGLE: Pattern = &[
    (100, "invoke", "[[:r :a nil] [:r :b nil]]"),
    (101, "invoke", "[[:append :a 1] [:append :b 1]]"),
    (100, "ok", "[[:r :a []] [:r :b [1]]]"),
    (101, "ok", "[[:append :a 1] [:append :b 1]]"),
];

const G2_ITEM: Pattern = &[
    (100, "invoke", "[[:r :a nil] [:append :b 1]]"),
    (101, "invoke", "[[:r :b nil] [:append :a 1]]"),
    (100, "ok", "[[:r :a []] [:append :b 1]]"),
    (101, "ok", "[[:r :b []] [:append :a 1]]"),
    (102, "invoke", "[[:r :a nil] [:r :b nil]]"),
    (102, "ok", "[[:r :a [1]] [:r :b [1]]]"),
];

const G1A: Pattern = &[
    (100, "invoke", "[[:append :a 1]]"),
    (101, "invoke", "[[:r :a nil]]"),
    (100, "fail", "[[:append :a 1]]"),
    (101, "ok", "[[:r :a [1]]]"),
];

const G1B: Pattern = &[
    (100, "invoke", "[[:append :a 1] [:append :a 2]]"),
    (101, "invoke", "[[:r :a nil]]"),
    (101, "ok", "[[:r :a [1]]]"),
    (100, "ok", "[[:append :a 1] [:append :a 2]]"),
];

const INTERNAL: Pattern =
    &[(100, "invoke", "[[:append :a 1] [:r :a nil]]"), (100, "ok", "[[:append :a 1] [:r :a []]]")];

const DUPLICATES: Pattern = &[
    (100, "invoke", "[[:append :a 1]]"),
    (100, "ok", "[[:append :a 1]]"),
    (101, "invoke", "[[:r :a nil]]"),
    (101, "ok", "[[:r :a [1 1]]]"),
];

const INCOMPATIBLE: Pattern = &[
    (100, "invoke", "[[:append :a 1]]"),
    (101, "invoke", "[[:append :a 2]]"),
    (102, "invoke", "[[:r :a nil]]"),
    (103, "invoke", "[[:r :a nil]]"),
    (100, "ok", "[[:append :a 1]]"),
    (101, "ok", "[[:append :a 2]]"),
    (102, "ok", "[[:r :a [1 2]]]"),
    (103, "ok", "[[:r :a [2 1]]]"),
];

/// A stale read: the read starts after the append completed and misses it.
const G_SINGLE_REALTIME: Pattern = &[
    (100, "invoke", "[[:append :a 1]]"),
    (100, "ok", "[[:append :a 1]]"),
    (101, "invoke", "[[:r :a nil]]"),
    (101, "ok", "[[:r :a []]]"),
];

/// The same stale read by one client: process order and real time both order it.
const G_SINGLE_PROCESS: Pattern = &[
    (100, "invoke", "[[:append :a 1]]"),
    (100, "ok", "[[:append :a 1]]"),
    (100, "invoke", "[[:r :a nil]]"),
    (100, "ok", "[[:r :a []]]"),
];

/// An append that started after another completed, yet comes first in the order.
const G0_REALTIME: Pattern = &[
    (100, "invoke", "[[:append :a 1]]"),
    (100, "ok", "[[:append :a 1]]"),
    (101, "invoke", "[[:append :a 2]]"),
    (101, "ok", "[[:append :a 2]]"),
    (102, "invoke", "[[:r :a nil]]"),
    (102, "ok", "[[:r :a [2 1]]]"),
];

const G0_PROCESS: Pattern = &[
    (100, "invoke", "[[:append :a 1]]"),
    (100, "ok", "[[:append :a 1]]"),
    (100, "invoke", "[[:append :a 2]]"),
    (100, "ok", "[[:append :a 2]]"),
    (102, "invoke", "[[:r :a nil]]"),
    (102, "ok", "[[:r :a [2 1]]]"),
];

/// A read of the future: it completed before the append it saw was invoked.
const G1C_REALTIME: Pattern = &[
    (100, "invoke", "[[:r :b nil]]"),
    (100, "ok", "[[:r :b [1]]]"),
    (101, "invoke", "[[:append :b 1]]"),
    (101, "ok", "[[:append :b 1]]"),
];

/// Two anti-dependencies closed by real time: Ta rw→ Tb rw→ Tc rt→ Ta, Tb concurrent with both.
const G2_ITEM_REALTIME: Pattern = &[
    (101, "invoke", "[[:r :c nil] [:append :a 1]]"),
    (102, "invoke", "[[:append :c 1]]"),
    (102, "ok", "[[:append :c 1]]"),
    (100, "invoke", "[[:r :a nil]]"),
    (100, "ok", "[[:r :a []]]"),
    (101, "ok", "[[:r :c []] [:append :a 1]]"),
];

fn cases() -> Vec<(&'static str, Pattern, &'static [&'static str])> {
    vec![
        ("G0", G0, &["G0"]),
        ("G1c", G1C, &["G1c"]),
        ("G-single", G_SINGLE, &["G-single"]),
        ("G2-item", G2_ITEM, &["G2-item"]),
        ("G1a", G1A, &["G1a"]),
        // The reader saw the writer's middle and missed its end: a cycle of one rw as well.
        ("G1b", G1B, &["G1b", "G-single"]),
        ("internal", INTERNAL, &["internal"]),
        ("duplicate-elements", DUPLICATES, &["duplicate-elements"]),
        ("incompatible-order", INCOMPATIBLE, &["incompatible-order"]),
        ("G-single-realtime", G_SINGLE_REALTIME, &["G-single-realtime"]),
        ("G-single-process", G_SINGLE_PROCESS, &["G-single-process", "G-single-realtime"]),
        ("G0-realtime", G0_REALTIME, &["G0-realtime"]),
        ("G0-process", G0_PROCESS, &["G0-process", "G0-realtime"]),
        ("G1c-realtime", G1C_REALTIME, &["G1c-realtime"]),
        ("G2-item-realtime", G2_ITEM_REALTIME, &["G2-item-realtime"]),
    ]
}

fn run(lines: &[String]) -> TxnReport {
    let history = read_edn(&lines.join("\n")).unwrap();
    check(&history, &Model::ALL, SearchBudget::default())
}

fn assert_cycles_close(report: &TxnReport, context: &str) {
    for anomaly in &report.anomalies {
        if let Anomaly::Cycle { steps, .. } = anomaly {
            for (i, step) in steps.iter().enumerate() {
                let next = &steps[(i + 1) % steps.len()];
                assert_eq!(step.to, next.from, "{context}: {anomaly} does not close");
            }
        }
    }
}

#[test]
fn clean_backgrounds_are_valid() {
    for seed in 0..40 {
        let lines = background(&mut Rng(seed), 200);
        let report = run(&lines);
        assert!(report.valid(), "seed {seed}: {:?}", report.anomalies);
        assert!(report.edges > 200, "seed {seed}: {} edges", report.edges);
    }
}

#[test]
fn each_planted_anomaly_is_found_and_named() {
    for (name, pattern, expected) in cases() {
        for seed in 0..40 {
            let mut rng = Rng(seed);
            let mut lines = background(&mut rng, 60);
            let at = 2 * rng.below(30) as usize;
            // Planted between two background transactions: real time orders the background
            // before and after it, which adds no cycle.
            lines.splice(at..at, planted(pattern));
            let report = run(&lines);
            let found: BTreeSet<String> = report.anomaly_types();
            let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
            let context = format!("{name}, seed {seed}");
            assert_eq!(found, expected, "{context}: {:#?}", report.anomalies);
            assert_cycles_close(&report, &context);
            assert!(!report.valid(), "{context}");
        }
    }
}
