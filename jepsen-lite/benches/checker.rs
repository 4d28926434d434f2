//! Checker speed against Porcupine's corpus and at scale.
//!
//! - `porcupine/all-108`: every history in `../shared/testdata/porcupine` checked once, in
//!   sequence (Porcupine's `CheckEvents`: about 0.8 s in all, on this kind of machine, per
//!   `verdicts.tsv`).
//! - `porcupine/{c50-ok,etcd_002,etcd_007}`: the hard files alone (Porcupine 221 ms, 189 ms,
//!   122 ms best).
//! - `generated/100k-ops-1000-keys`: a linearizable kv history of 100,000 ops over 1,000 keys
//!   from 50 clients, 1% indeterminate (target: under 2 s).
//!
//! The corpus groups are skipped, with a message, when `../shared` is absent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jepsen_lite::generate::{GenOptions, linearizable};
use jepsen_lite::{CheckOptions, CheckResult, History, RegisterModel, check, formats};

fn load(dir: &Path, file: &str) -> (History, RegisterModel) {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let format = formats::detect(&text);
    let history = formats::read(&text, format).unwrap();
    let model = RegisterModel::new(format.default_model(&history));
    (history, model)
}

fn corpus() -> Option<(PathBuf, Vec<(String, bool)>)> {
    let dir = std::env::var_os("RAFTBED_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
        .join("testdata/porcupine");
    let verdicts = std::fs::read_to_string(dir.join("verdicts.tsv")).ok()?;
    let files = verdicts
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("file\t"))
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| !f[3].starts_with("SKIP"))
        .map(|f| (f[0].to_string(), f[3] == "true"))
        .collect();
    Some((dir, files))
}

fn verdict(model: &RegisterModel, history: &History) -> bool {
    let report = check(model, history, &CheckOptions::default()).unwrap();
    assert!(!matches!(report.result, CheckResult::Unknown(_)), "no timeouts in the bench");
    report.result == CheckResult::Linearizable
}

fn porcupine(c: &mut Criterion) {
    let Some((dir, files)) = corpus() else {
        eprintln!("SKIPPED porcupine benches: ../shared/testdata/porcupine not found");
        return;
    };
    let all: Vec<(History, RegisterModel, bool)> = files
        .iter()
        .map(|(file, expected)| {
            let (history, model) = load(&dir, file);
            (history, model, *expected)
        })
        .collect();
    assert_eq!(all.len(), 108);
    let mut group = c.benchmark_group("porcupine");
    group.sample_size(20).measurement_time(Duration::from_secs(8));
    group.bench_function("all-108", |b| {
        b.iter(|| {
            for (history, model, expected) in &all {
                assert_eq!(verdict(model, history), *expected);
            }
        })
    });
    for file in ["kv/c50-ok.txt", "jepsen/etcd_002.log", "jepsen/etcd_007.log"] {
        let (history, model) = load(&dir, file);
        let name =
            file.rsplit('/').next().unwrap().trim_end_matches(".txt").trim_end_matches(".log");
        group.bench_function(name, |b| b.iter(|| assert!(verdict(&model, &history))));
    }
    group.finish();
}

fn generated(c: &mut Criterion) {
    let options = GenOptions {
        seed: 1,
        ops: 100_000,
        keys: 1_000,
        clients: 50,
        indeterminate: 0.01,
        no_deletes: false,
    };
    let history = linearizable(&options);
    let model = RegisterModel::new(jepsen_lite::ModelKind::Kv);
    let mut group = c.benchmark_group("generated");
    group.sample_size(10);
    group.bench_function("100k-ops-1000-keys", |b| b.iter(|| assert!(verdict(&model, &history))));
    group.finish();
}

criterion_group!(benches, porcupine, generated);
criterion_main!(benches);
