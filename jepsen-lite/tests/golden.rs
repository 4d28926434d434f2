//! Golden histories in ok/bad pairs (Porcupine's convention), one behaviour each: info ops that
//! must and must not be placed, a failed cas, reads of absent keys, concurrent appends.
//! Method: every `*_ok.jsonl` must check linearizable, every `*_bad.jsonl` not, with a
//! counterexample naming a failing op inside its window.

use jepsen_lite::formats::{self, Format};
use jepsen_lite::{CheckOptions, CheckResult, ModelKind, RegisterModel, check};

#[test]
fn golden_pairs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "the golden pairs are there");
    for name in names {
        let text = std::fs::read_to_string(dir.join(&name)).unwrap();
        let history = formats::read(&text, Format::Jsonl).unwrap();
        let model = RegisterModel::new(ModelKind::infer(&history));
        let options = CheckOptions { threads: 1, ..CheckOptions::default() };
        let report = check(&model, &history, &options).unwrap();
        match (&report.result, name.ends_with("_ok.jsonl")) {
            (CheckResult::Linearizable, true) => {}
            (CheckResult::NotLinearizable(c), false) => {
                let failing =
                    c.failing_op.as_ref().unwrap_or_else(|| panic!("{name}: no failing op"));
                assert!(
                    c.window.iter().any(|o| o.id == failing.id),
                    "{name}: window lacks the failing op"
                );
            }
            (result, _) => panic!("{name}: got {}\n{report}", result.verdict()),
        }
    }
}

#[test]
fn counterexample_names_the_stale_read_and_its_window() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/testdata/info_must_not_be_placed_bad.jsonl"),
    )
    .unwrap();
    let history = formats::read(&text, Format::Jsonl).unwrap();
    let report =
        check(&RegisterModel::new(ModelKind::CasRegister), &history, &CheckOptions::default())
            .unwrap();
    let CheckResult::NotLinearizable(c) = report.result else { panic!("not linearizable") };
    let failing = c.failing_op.unwrap();
    // The second read (op 3, line 9) cannot be explained; the first read and the cas are in its
    // window, the initial write is not (it completed before the first read began).
    assert_eq!((failing.id, failing.line), (3, 9));
    let window: Vec<usize> = c.window.iter().map(|o| o.id).collect();
    assert_eq!(window, vec![1, 2, 3]);
    assert_eq!(c.longest_prefix.len(), 3, "write 1, cas, read 2");
    assert_eq!(c.longest_prefix.last().unwrap().1, "2");
}

/// Regression: unread lost writes used to make the search exponential. Each round here has two
/// concurrent puts read in one order, so the search meets dead ends, where it used to try every
/// chain of the lost writes still available (they never expire). Forty of them must check at
/// once; the generous timeout only stops a regression from hanging the suite.
#[test]
fn many_unread_lost_writes_stay_cheap() {
    let mut text = String::new();
    let mut line = |process: u64, kind: &str, f: &str, value: &str| {
        text += &format!(
            "{{\"process\":{process},\"type\":\"{kind}\",\"f\":\"{f}\",\"key\":\"k\",\"value\":{value}}}\n"
        );
    };
    for round in 0..40 {
        let lost = 100 + round;
        line(lost, "invoke", "put", &format!("\"lost{round}\""));
        line(lost, "info", "put", &format!("\"lost{round}\""));
        line(0, "invoke", "put", &format!("\"a{round}\""));
        line(1, "invoke", "put", &format!("\"b{round}\""));
        line(0, "ok", "put", &format!("\"a{round}\""));
        line(1, "ok", "put", &format!("\"b{round}\""));
        line(2, "invoke", "get", "null");
        line(2, "ok", "get", &format!("\"{}{round}\"", if round % 2 == 0 { "a" } else { "b" }));
    }
    let history = formats::read(&text, Format::Jsonl).unwrap();
    let options = CheckOptions {
        timeout: Some(std::time::Duration::from_secs(30)),
        ..CheckOptions::default()
    };
    let report = check(&RegisterModel::new(ModelKind::Kv), &history, &options).unwrap();
    assert_eq!(report.result, CheckResult::Linearizable, "{report}");
}
