//! `raftbed check` as a user runs it: every exit code, `--json`, `--html`, and bad input.
//! Method: run the built binary on files written to a temp dir (and on the Porcupine corpus
//! when ../shared is present).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn raftbed(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftbed")).args(args).output().expect("runs")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited")
}

fn golden(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("jepsen-lite/tests/testdata")
        .join(name)
        .display()
        .to_string()
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("raftbed-cli-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn exit_0_for_linearizable_and_1_with_a_counterexample() {
    let ok = raftbed(&["check", &golden("failed_cas_ok.jsonl")]);
    assert_eq!(code(&ok), 0, "{}", String::from_utf8_lossy(&ok.stdout));
    let bad = raftbed(&["check", &golden("failed_cas_bad.jsonl")]);
    assert_eq!(code(&bad), 1);
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(
        text.contains("not-linearizable") && text.contains("cannot be explained: op 2"),
        "{text}"
    );
}

#[test]
fn exit_2_when_the_search_cannot_finish_in_time() {
    // Twelve concurrent appends and a later read of a value none of their orders gives: proving
    // that takes 12! orders, far beyond one millisecond.
    let mut lines = Vec::new();
    for p in 0..12 {
        lines.push(format!("{{\"process\":{p},\"type\":\"invoke\",\"f\":\"append\",\"key\":\"k\",\"value\":\"a{p}\"}}"));
    }
    for p in 0..12 {
        lines.push(format!(
            "{{\"process\":{p},\"type\":\"ok\",\"f\":\"append\",\"key\":\"k\",\"value\":\"a{p}\"}}"
        ));
    }
    lines.push(
        "{\"process\":99,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"k\",\"value\":null}".into(),
    );
    lines.push(
        "{\"process\":99,\"type\":\"ok\",\"f\":\"get\",\"key\":\"k\",\"value\":\"zz\"}".into(),
    );
    let path = temp_file("hard.jsonl", &(lines.join("\n") + "\n"));
    let output = raftbed(&["check", path.to_str().unwrap(), "--timeout-ms", "1", "--json"]);
    assert_eq!(code(&output), 2, "{}", String::from_utf8_lossy(&output.stdout));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["verdict"], "unknown");
    assert!(json["reason"].as_str().unwrap().contains("timed out"));
}

#[test]
fn exit_3_for_bad_input_naming_file_and_line() {
    let path = temp_file(
        "truncated.jsonl",
        "{\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n{\"process\":1,\"ty",
    );
    let output = raftbed(&["check", path.to_str().unwrap()]);
    assert_eq!(code(&output), 3);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("truncated.jsonl:line 2") && err.contains("invalid JSON"), "{err}");

    let missing = raftbed(&["check", "/nonexistent/history.jsonl"]);
    assert_eq!(code(&missing), 3);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("cannot read /nonexistent/history.jsonl")
    );

    let binary = temp_file("binary.jsonl", "");
    std::fs::write(&binary, b"{\"process\":1}\n\xff\xfe").unwrap();
    let output = raftbed(&["check", binary.to_str().unwrap()]);
    assert_eq!(code(&output), 3);
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 2: not UTF-8"));

    let ok = golden("failed_cas_ok.jsonl");
    assert_eq!(code(&raftbed(&["check", &ok, "--format", "yaml"])), 3);
    assert_eq!(code(&raftbed(&["check", &ok, "--model", "queue"])), 3);
    assert_eq!(code(&raftbed(&["check", &ok, "--no-such-flag"])), 3);
    assert_eq!(
        code(&raftbed(&["check", &ok, "--model", "register"])),
        3,
        "cas is not a register op"
    );
}

#[test]
fn json_has_verdict_ops_and_elapsed() {
    let output = raftbed(&["check", &golden("concurrent_appends_bad.jsonl"), "--json"]);
    assert_eq!(code(&output), 1);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["verdict"], "not-linearizable");
    assert_eq!(json["ops"], 4);
    assert!(json["elapsed_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(json["model"], "kv");
    assert_eq!(json["counterexample"]["key"], "x");
    assert_eq!(json["counterexample"]["failing_op"]["id"], 3);
}

#[test]
fn html_timeline_marks_the_failing_window() {
    let out = std::env::temp_dir().join(format!("raftbed-timeline-{}.html", std::process::id()));
    let output = raftbed(&[
        "check",
        &golden("info_must_not_be_placed_bad.jsonl"),
        "--html",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&output), 1);
    let page = std::fs::read_to_string(&out).unwrap();
    assert!(page.contains("<svg") && page.contains("id=\"timeline\""));
    assert!(page.contains("class=\"op failing\" data-op=\"3\""), "the failing read is marked");
    assert!(page.contains("class=\"op window\" data-op=\"2\""), "the info cas is in the window");
    assert!(page.contains("id=\"counterexample\""));
    // The longest linearizable prefix: a point on each of its bars, and its states in a table.
    let points = page.matches("<circle class=\"lp\"").count();
    let rows = page.split("<table id=\"prefix\">").nth(1).expect("the prefix table");
    assert!(points > 0 && rows.matches("<tr><td>").count() == points, "{points} points");
    assert!(page.contains("linearized #1; state after: "), "each point names its state");
    assert!(
        !page.contains("http://") || page.contains("http://www.w3.org/2000/svg"),
        "self-contained"
    );
}

#[test]
fn many_files_in_one_process_exit_with_the_worst_verdict() {
    let (ok, bad) = (golden("failed_cas_ok.jsonl"), golden("failed_cas_bad.jsonl"));
    let both = raftbed(&["check", &ok, &bad, "--jobs", "2"]);
    let text = String::from_utf8_lossy(&both.stdout);
    assert_eq!(code(&both), 1, "{text}");
    assert!(text.find(&ok).unwrap() < text.find(&bad).unwrap(), "in the order given: {text}");
    assert!(text.contains("2 files: 1 linearizable, 1 not linearizable, 0 unknown, 0 unreadable"));
    let missing = raftbed(&["check", &ok, "/nonexistent/h.jsonl", &bad]);
    assert_eq!(code(&missing), 3, "an unreadable file is worse than a violation");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read /nonexistent/h.jsonl"));
    let json = raftbed(&["check", &ok, &bad, "--json", "--runs", "3"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert!(line["parse_ms"].as_f64().unwrap() >= 0.0, "{line}");
        let runs = line["runs_ms"].as_array().unwrap();
        let best = runs.iter().map(|r| r.as_f64().unwrap()).fold(f64::MAX, f64::min);
        assert_eq!(runs.len(), 3, "{line}");
        assert_eq!(line["elapsed_ms"].as_f64().unwrap(), best, "the fastest run is reported");
    }
    assert_eq!(
        (&lines[0]["verdict"], &lines[1]["verdict"]),
        (&"linearizable".into(), &"not-linearizable".into())
    );
    let html = raftbed(&["check", &ok, &bad, "--html", "/tmp/x.html"]);
    assert_eq!(code(&html), 3);
    assert!(String::from_utf8_lossy(&html.stderr).contains("take a single history file"));
}

#[test]
fn a_bad_resolved_file_is_named_with_its_line() {
    let path = temp_file(
        "resolved.jsonl",
        "# raftbed-resolved v1\n{\"client\":1,\"seq\":\"x\",\"committed\":true}\n",
    );
    let output =
        raftbed(&["check", &golden("failed_cas_ok.jsonl"), "--resolved", path.to_str().unwrap()]);
    assert_eq!(code(&output), 3);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("resolved.jsonl:line 2: seq must be a non-negative integer"), "{err}");
}

#[test]
fn porcupine_corpus_through_the_cli() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/porcupine");
    if !dir.is_dir() {
        eprintln!("SKIPPED: ../shared/testdata/porcupine not found");
        return;
    }
    for (file, expected) in [
        ("jepsen/etcd_002.log", 0),
        ("jepsen/etcd_000.log", 1),
        ("kv/c50-ok.txt", 0),
        ("kv/c50-bad.txt", 1),
    ] {
        let output = raftbed(&["check", dir.join(file).to_str().unwrap()]);
        assert_eq!(code(&output), expected, "{file}: {}", String::from_utf8_lossy(&output.stdout));
    }
}

#[test]
fn list_append_histories_get_elle_names_and_exit_codes() {
    let g1c = temp_file(
        "g1c.edn",
        "{:process 0 :type :ok :value [[:append :x 1] [:r :y [1]]]}\n\
         {:process 1 :type :ok :value [[:append :x 2] [:append :y 1]]}\n\
         {:process 2 :type :ok :value [[:r :x [1 2]]]}\n",
    );
    let bad = raftbed(&["check", "--format", "list-append", g1c.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(code(&bad), 1, "{text}");
    assert!(text.contains("violates read-committed"), "{text}");
    assert!(text.contains("G1c: T1 wr→ T0 on :y, T0 ww→ T1 on :x"), "{text}");

    let serial = temp_file(
        "serial.jsonl",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[[\"append\",\"x\",1]]}\n\
         {\"process\":0,\"type\":\"ok\",\"f\":\"txn\",\"value\":[[\"append\",\"x\",1]]}\n\
         {\"process\":1,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[[\"r\",\"x\",null]]}\n\
         {\"process\":1,\"type\":\"ok\",\"f\":\"txn\",\"value\":[[\"r\",\"x\",[1]]]}\n",
    );
    let ok = raftbed(&["check", "--format", "list-append", "--json", serial.to_str().unwrap()]);
    let line: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(code(&ok), 0, "{line}");
    assert_eq!((line["valid"].as_bool(), line["txns"].as_u64()), (Some(true), Some(2)), "{line}");

    let si = raftbed(&[
        "check",
        "--format",
        "list-append",
        "--consistency",
        "read-committed,snapshot-isolation",
        g1c.to_str().unwrap(),
    ]);
    assert_eq!(code(&si), 1);
    let unknown = raftbed(&[
        "check",
        "--format",
        "list-append",
        "--consistency",
        "acid",
        serial.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(code(&unknown), 3, "{text}");
    assert!(text.contains("unknown --consistency acid"), "{text}");

    let garbage = temp_file("garbage.edn", "{:process 0 :type :ok :value [[:frob :x 1]]}\n");
    let out = raftbed(&["check", "--format", "list-append", garbage.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 3, "{text}");
    assert!(text.contains("garbage.edn:line 1: unknown micro-op"), "{text}");
}

#[test]
fn a_simulated_append_history_checks_offline() {
    // `raftbed sim --workload append --history` writes the schema's txn events; the
    // transaction checker reads them back, comment line and all.
    let dir = std::env::temp_dir().join(format!("raftbed-cli-append-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("append.jsonl");
    let p = path.to_str().unwrap();
    let sim = raftbed(&[
        "sim",
        "--seed",
        "0",
        "--no-swarm",
        "--workload",
        "append",
        "--duration",
        "5s",
        "--history",
        p,
    ]);
    assert_eq!(code(&sim), 0, "{}", String::from_utf8_lossy(&sim.stdout));
    // `--format auto` (the default) recognises the transactions too.
    for format in ["list-append", "auto"] {
        let check = raftbed(&["check", "--format", format, p]);
        let text = String::from_utf8_lossy(&check.stdout);
        assert_eq!(code(&check), 0, "{format}: {text}{}", String::from_utf8_lossy(&check.stderr));
        assert!(text.contains("list-append valid"), "{format}: {text}");
    }
}
