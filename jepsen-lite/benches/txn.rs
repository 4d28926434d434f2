//! The list-append checker's throughput: 100,000 transactions from 10 concurrent clients over
//! 100 keys at a time (each key retired after 40 appends, as Jepsen's append test rotates keys),
//! written as Jepsen EDN, then read and checked three times. Prints the medians of reading and
//! of checking, in transactions per second, with the load average beside them. Elle reports
//! about 180,000 transactions per second (22 million in about two minutes).

use std::time::Instant;

use jepsen_lite::generate::Rng;
use jepsen_lite::txn::{Model, SearchBudget, check, read_edn};

/// A serializable history: each transaction takes effect when it completes.
fn history(transactions: usize) -> String {
    let mut rng = Rng(7);
    let mut active: Vec<u64> = (0..100).collect();
    let mut lists: std::collections::HashMap<u64, Vec<u64>> =
        active.iter().map(|k| (*k, Vec::new())).collect();
    let mut next_key = 100;
    let mut pending: Vec<(u64, Vec<(bool, u64)>)> = Vec::new();
    let (mut out, mut invoked) = (String::new(), 0);
    while invoked < transactions || !pending.is_empty() {
        if invoked < transactions && pending.len() < 10 {
            let process = (0..10).find(|p| pending.iter().all(|(q, _)| q != p)).expect("free");
            let mops: Vec<(bool, u64)> = (0..=rng.below(4))
                .map(|_| (rng.below(2) == 0, active[rng.below(100) as usize]))
                .collect();
            let shown: Vec<String> = mops
                .iter()
                .map(
                    |(append, k)| {
                        if *append { format!("[:append {k} 0]") } else { format!("[:r {k} nil]") }
                    },
                )
                .collect();
            out += &format!(
                "{{:process {process} :type :invoke :f :txn :value [{}]}}\n",
                shown.join(" ")
            );
            pending.push((process, mops));
            invoked += 1;
            continue;
        }
        let (process, mops) = pending.swap_remove(rng.below(pending.len() as u64) as usize);
        let mut shown = Vec::new();
        for (append, key) in mops {
            let list = lists.get_mut(&key).expect("a live key");
            if append {
                list.push(list.len() as u64 + 1);
                shown.push(format!("[:append {key} {}]", list.len()));
                if list.len() >= 40
                    && let Some(slot) = active.iter_mut().find(|k| **k == key)
                {
                    *slot = next_key;
                    lists.insert(next_key, Vec::new());
                    next_key += 1;
                }
            } else {
                let items: Vec<String> = list.iter().map(u64::to_string).collect();
                shown.push(format!("[:r {key} [{}]]", items.join(" ")));
            }
        }
        out += &format!("{{:process {process} :type :ok :f :txn :value [{}]}}\n", shown.join(" "));
    }
    out
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let transactions = 100_000;
    let text = history(transactions);
    let (mut reads, mut checks) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let started = Instant::now();
        let parsed = read_edn(&text).expect("a generated history reads");
        reads.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let report = check(&parsed, &Model::ALL, SearchBudget::default());
        checks.push(started.elapsed().as_secs_f64());
        assert!(report.valid(), "{:?}", report.anomaly_types());
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let (read, checked) = (median(reads), median(checks));
    println!(
        "list-append, {transactions} transactions ({} MB of EDN): read {read:.2} s ({:.0}/s), \
         checked {checked:.2} s ({:.0}/s); load average {}",
        text.len() >> 20,
        transactions as f64 / read,
        transactions as f64 / checked,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
}
