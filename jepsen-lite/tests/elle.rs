//! Agreement with Elle on its own example histories (`../shared/testdata/elle`, from
//! jepsen-io/elle; Elle's verdicts are in that folder's README).
//!
//! The histories live outside the repository; when they are absent the tests say so and pass.
//! `RAFTBED_SHARED` points elsewhere.

use std::path::PathBuf;
use std::time::Instant;

use jepsen_lite::txn::{Model, SearchBudget, check, read_edn};

fn elle(file: &str) -> Option<String> {
    let root = std::env::var_os("RAFTBED_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let path = root.join("testdata/elle").join(file);
    let text = std::fs::read_to_string(&path).ok();
    if text.is_none() {
        eprintln!("SKIPPED: {} not found (set RAFTBED_SHARED)", path.display());
    }
    text
}

#[test]
fn si_without_g_single_is_g2_item_only() {
    // Elle: checked for snapshot isolation and repeatable read, the anomaly types are exactly
    // G2-item; repeatable read is violated and snapshot isolation is not.
    let Some(text) = elle("si-without-g-single.edn") else { return };
    let history = read_edn(&text).unwrap();
    let models = [Model::SnapshotIsolation, Model::RepeatableRead];
    let report = check(&history, &models, SearchBudget::default());
    let types: Vec<String> = report.anomaly_types().into_iter().collect();
    assert_eq!(types, ["G2-item"], "{report:#?}");
    assert_eq!(report.violated, [Model::RepeatableRead], "{report:#?}");
    assert!(!report.incomplete);
}

#[test]
fn huge_scc_has_a_cycle_within_ten_seconds() {
    // Elle: not valid, with G2-item-realtime and a strong-snapshot-isolation cycle.
    let Some(text) = elle("huge-scc.edn") else { return };
    let started = Instant::now();
    let history = read_edn(&text).unwrap();
    let report = check(&history, &Model::ALL, SearchBudget::default());
    let took = started.elapsed();
    eprintln!(
        "huge-scc: {} txns, {} edges, {:?} in {took:?}",
        report.txns,
        report.edges,
        report.anomaly_types()
    );
    assert!(
        report.anomalies.iter().any(|a| a.name().starts_with('G')),
        "{:?}",
        report.anomaly_types()
    );
    assert!(!report.valid());
    assert!(took.as_secs() < 10, "took {took:?}");
}

#[test]
fn the_paper_example_reads_and_checks() {
    let Some(text) = elle("paper-example.edn") else { return };
    let history = read_edn(&text).unwrap();
    assert_eq!(history.txns.len(), 4);
    let report = check(&history, &Model::ALL, SearchBudget::default());
    eprintln!("paper example: {report:#?}");
}
