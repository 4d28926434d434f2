//! Agreement with Porcupine (and the Knossos-era verdicts behind its tests).
//!
//! Goal: every history in `../shared/testdata/porcupine` gets the verdict in its `verdicts.tsv`.
//! Method: detect each file's format, check it against the format's default model (cas-register
//! for Jepsen etcd logs, kv with `""` for absent keys for Porcupine's kv files), compare.
//! The corpus lives outside the repository; when it is absent the test says so and passes.
//! `RAFTBED_SHARED` points elsewhere.

use std::path::PathBuf;
use std::time::Duration;

use jepsen_lite::{CheckOptions, CheckResult, RegisterModel, check, formats};

fn corpus() -> Option<PathBuf> {
    let root = std::env::var_os("RAFTBED_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let dir = root.join("testdata/porcupine");
    dir.join("verdicts.tsv").is_file().then_some(dir)
}

#[test]
fn every_porcupine_history_gets_its_known_verdict() {
    let Some(dir) = corpus() else {
        eprintln!("SKIPPED: ../shared/testdata/porcupine not found (set RAFTBED_SHARED)");
        return;
    };
    let verdicts = std::fs::read_to_string(dir.join("verdicts.tsv")).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for row in verdicts.lines().filter(|l| !l.starts_with('#') && !l.starts_with("file\t")) {
        let fields: Vec<&str> = row.split('\t').collect();
        let (file, expected) = (fields[0], fields[3]);
        if expected.starts_with("SKIP") {
            continue;
        }
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let format = formats::detect(&text);
        let expected_format = if file.starts_with("kv/") { "porcupine-kv" } else { "jepsen-log" };
        assert_eq!(format.name(), expected_format, "{file}: format detection");
        let history = formats::read(&text, format).unwrap_or_else(|e| panic!("{file}: {e}"));
        let model = RegisterModel::new(format.default_model(&history));
        let options = CheckOptions { timeout: Some(Duration::from_secs(60)), ..Default::default() };
        let report = check(&model, &history, &options).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got = match report.result {
            CheckResult::Linearizable => "true",
            CheckResult::NotLinearizable(_) => "false",
            CheckResult::Unknown(_) => "unknown",
        };
        if got != expected {
            failures.push(format!("{file}: expected {expected}, got {got}"));
        }
        checked += 1;
    }
    assert_eq!(checked, 108, "the corpus holds 108 checkable histories");
    assert!(failures.is_empty(), "{} disagreements:\n{}", failures.len(), failures.join("\n"));
}
