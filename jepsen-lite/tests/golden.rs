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
