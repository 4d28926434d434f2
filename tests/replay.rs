//! `raftbed replay`: the GitHub 2018 partition against Raft and naive failover, the other
//! shipped scenarios, determinism, malformed scenarios, shrinking, and the HTML report rendered
//! in headless Chromium.
//!
//! Goal: the headline comparison holds (Raft safe, naive failover split) and replays byte for
//! byte; a bad scenario is refused with its line and field. Method: run the CLI with `--json`
//! (in release: the runs are simulations) and assert on the fields. Every failure message
//! carries the command that replays it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn raftbed(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftbed")).args(args).output().expect("runs")
}

fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name).display().to_string()
}

fn replay_json(path: &str, system: &str) -> Value {
    let output = raftbed(&["replay", path, "--system", system, "--json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "raftbed replay {path} --system {system}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn github_2018_raft_holds_and_naive_failover_splits() {
    let path = scenario("github-2018-10-21.toml");
    let raft = replay_json(&path, "raft");
    let again = replay_json(&path, "raft");
    let replay = raft["replay"].as_str().unwrap_or("?").to_string();
    assert_eq!(raft["trace_hash"], again["trace_hash"], "raft did not replay: {replay}");
    assert_eq!(raft["linearizable"], true, "{raft}");
    assert_eq!(raft["split_brain"], false, "{raft}");
    assert_eq!(raft["acked_writes_lost"], 0, "{raft}");
    assert_eq!(raft["stale_reads"], 0, "{raft}");
    assert_eq!(raft["max_leaders_at_once"], 1, "{raft}");
    // The minority side cannot write for the length of the partition: 43 s, and an election.
    let unavailable = raft["unavailable_s"].as_f64().unwrap();
    assert!((43.0..50.0).contains(&unavailable), "{raft}");

    let naive = replay_json(&path, "naive-failover");
    let again = replay_json(&path, "naive-failover");
    let replay = naive["replay"].as_str().unwrap_or("?").to_string();
    assert_eq!(naive["trace_hash"], again["trace_hash"], "naive did not replay: {replay}");
    assert_eq!(naive["split_brain"], true, "{replay}");
    assert_eq!(naive["linearizable"], false, "{replay}");
    assert_eq!(naive["max_leaders_at_once"], 2, "{replay}");
    // The window holds hundreds of writes the East took and the West never saw.
    let lost = naive["acked_writes_lost"].as_u64().unwrap();
    assert!(lost > 300, "{lost} lost: {replay}");
    let overlap = &naive["findings"]["overlapping_leadership"][0]["text"];
    assert!(overlap.as_str().unwrap().contains("two primaries"), "{overlap}");
    assert_ne!(raft["trace_hash"], naive["trace_hash"]);
}

#[test]
fn every_shipped_scenario_keeps_raft_safe() {
    for name in [
        "leader-isolated-under-drift.toml",
        "lock-holder-paused.toml",
        "flapping-link.toml",
        "rolling-restart.toml",
        "hot-keys-region-cut.toml",
    ] {
        let path = scenario(name);
        let raft = replay_json(&path, "raft");
        let replay = raft["replay"].as_str().unwrap_or("?").to_string();
        assert_eq!(raft["linearizable"], true, "{replay}: {raft}");
        assert_eq!(raft["split_brain"], false, "{replay}: {raft}");
        assert_eq!(raft["invariant_violations"].as_array().map(Vec::len), Some(0), "{replay}");
        // Each states what it is for, and the run got there.
        assert!(raft["expected"].as_array().is_some_and(|e| !e.is_empty()), "{replay}");
        assert_eq!(raft["verdict"]["checks"]["coverage"]["outcome"], "held", "{replay}: {raft}");
        if name == "lock-holder-paused.toml" {
            let fenced = raft["fenced_rejections"].as_u64().unwrap();
            assert!(fenced > 0, "a paused holder's late write was refused: {replay}");
        }
    }
    // The comparison systems split on the flapping link, after a failover.
    let naive = replay_json(&scenario("flapping-link.toml"), "naive-failover");
    assert_eq!(naive["split_brain"], true, "{naive}");
    assert_eq!(naive["verdict"]["checks"]["coverage"]["outcome"], "held", "{naive}");
    assert!(naive["coverage"]["leader-elected"].as_u64().unwrap() > 0, "{naive}");
}

#[test]
fn a_scenario_that_never_reached_what_it_expects_is_undecided() {
    let (_dir, path) = temp("expects.toml");
    let text = format!("{GOOD}\n[expect]\nraft = [\"snapshot-installed\", \"leader-elected\"]\n");
    std::fs::write(&path, text).unwrap();
    let output = raftbed(&["replay", path.to_str().unwrap(), "--system", "raft"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("reached: NEVER (expected): snapshot-installed"), "{stdout}");
    assert!(stdout.contains("coverage undecided (never reached snapshot-installed)"), "{stdout}");
    // Without faults, the configured primary is never replaced: nothing was elected.
    let text = format!("{GOOD}\n[expect]\n\"naive-failover\" = [\"leader-elected\"]\n");
    std::fs::write(&path, text).unwrap();
    let output = raftbed(&["replay", path.to_str().unwrap(), "--system", "naive-failover"]);
    assert_eq!(output.status.code(), Some(4), "{}", String::from_utf8_lossy(&output.stdout));
}

#[test]
fn epochs_at_the_storage_stop_an_isolated_primary_losing_writes() {
    let path = scenario("leader-isolated-under-drift.toml");
    let naive = replay_json(&path, "naive-failover");
    assert!(naive["acked_writes_lost"].as_u64().unwrap() > 0, "{}", naive["replay"]);
    let fenced = replay_json(&path, "naive-failover-fenced");
    let replay = fenced["replay"].as_str().unwrap_or("?").to_string();
    assert_eq!(fenced["acked_writes_lost"], 0, "{replay}");
    assert!(fenced["fenced_rejections"].as_u64().unwrap() > 0, "{replay}");
    // Its primary still answers reads from its own state: fencing writes is not enough.
    assert!(fenced["stale_reads"].as_u64().unwrap() > 0, "{replay}");
}

#[test]
fn a_lease_without_a_drift_margin_is_caught_as_overlapping_leadership() {
    let text = std::fs::read_to_string(scenario("leader-isolated-under-drift.toml")).unwrap();
    let broken = text.replace("drift_margin = \"400ms\"", "drift_margin = \"0ms\"");
    assert_ne!(text, broken, "the scenario sets a drift margin");
    let (_dir, path) = temp("no-margin.toml");
    std::fs::write(&path, broken).unwrap();
    let raft = replay_json(path.to_str().unwrap(), "raft");
    assert_eq!(raft["split_brain"], true, "{raft}");
    let overlap = raft["findings"]["overlapping_leadership"][0]["text"].as_str().unwrap();
    assert!(overlap.contains("lease outlived its leadership"), "{overlap}");
}

#[test]
fn the_2015_membership_bug_splits_only_the_build_without_its_rules() {
    // Ongaro's raft-dev post of July 2015, in the whole server stack: the same timeline, and
    // only `--bug unsafe-membership` changes (the code under test).
    let path = scenario("membership-2015.toml");
    let run = |bugs: &[&str]| {
        let mut args = vec!["replay", path.as_str(), "--system", "raft", "--json"];
        for bug in bugs {
            args.extend(["--bug", bug]);
        }
        let output = raftbed(&args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let value: Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        (output.status.code(), value)
    };
    let (code, correct) = run(&[]);
    let replay = correct["replay"].as_str().unwrap_or("?").to_string();
    assert_eq!(
        (code, &correct["split_brain"]),
        (Some(0), &Value::Bool(false)),
        "{replay}: {correct}"
    );
    assert_eq!(correct["verdict"]["checks"]["invariants"]["outcome"], "held", "{replay}");
    let (code, buggy) = run(&["unsafe-membership"]);
    let replay = format!("{replay} --bug unsafe-membership");
    assert_eq!((code, &buggy["split_brain"]), (Some(1), &Value::Bool(true)), "{replay}: {buggy}");
    assert!(buggy["acked_writes_lost"].as_u64().unwrap_or(0) > 0, "{replay}: {buggy}");
    let invariants = buggy["verdict"]["checks"]["invariants"]["detail"].as_str().unwrap_or("");
    assert!(invariants.starts_with("committed entry not safe: index 98"), "{replay}: {invariants}");
    let (_, again) = run(&["unsafe-membership"]);
    assert_eq!(buggy["trace_hash"], again["trace_hash"], "{replay} did not replay");
}

/// A path named `name` in a temporary directory removed when the returned guard drops.
fn temp(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

const GOOD: &str = r#"
name = "t"
duration = "20s"

[[site]]
name = "a"
nodes = ["n1", "n2", "n3"]

[[clients]]
name = "app"
site = "a"

[[event]]
at = "5s"
heal = true
"#;

/// Replaces `from` in GOOD with `to`, runs it, and returns (exit code, stderr).
fn malformed(from: &str, to: &str) -> (Option<i32>, String) {
    assert!(GOOD.contains(from), "{from}");
    let (_dir, path) = temp(&format!("bad-{}.toml", from.len() * 31 + to.len()));
    std::fs::write(&path, GOOD.replacen(from, to, 1)).unwrap();
    let output = raftbed(&["replay", path.to_str().unwrap(), "--system", "raft"]);
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_malformed_scenario_names_its_line_and_field() {
    let cases = [
        // (replace, with, expected line, expected field and message)
        ("heal = true", "crash = \"n9\"", 15, "event[0].crash: unknown node \"n9\""),
        ("at = \"5s\"", "at = \"25s\"", 14, "event[0].at: 25s is not before the end"),
        (
            "heal = true",
            "partition = [[\"n1\", \"n2\"], [\"n2\", \"n3\"]]",
            15,
            "event[0].partition: the sides overlap: n2",
        ),
        ("duration = \"20s\"", "duration = \"20 parsecs\"", 3, "duration: \"20 parsecs\""),
        ("at = \"5s\"", "at = \"5\"", 14, "event[0].at: \"5\" has no unit"),
        ("name = \"app\"", "name = \"app\"\ncolour = \"red\"", 11, "unknown field `colour`"),
        ("site = \"a\"", "site = \"b\"", 11, "clients[0].site: unknown site \"b\""),
        ("heal = true", "heal = true\ncrash = \"n1\"", 13, "one action per event"),
        (
            "heal = true",
            "heal = true\n[expect]\nraft = [\"split-brian\"]",
            17,
            "expect.raft: unknown situation \"split-brian\"",
        ),
        (
            "heal = true",
            "heal = true\n[expect]\n\"naive-failover\" = [\"lease-read\"]",
            17,
            "expect.naive-failover: \"lease-read\" is a Raft situation",
        ),
        (
            "heal = true",
            "heal = true\n[expect]\nraft = [\"read-index\", \"read-index\"]",
            17,
            "\"read-index\" is listed twice",
        ),
        ("heal = true", "add = \"n9\"", 15, "event[0].add: unknown node \"n9\""),
        ("heal = true", "replace = \"n1\"", 13, "event[0].with: replace names the node replaced"),
        ("heal = true", "replace = \"n1\"\nwith = \"n1\"", 13, "a node cannot replace itself"),
        ("heal = true", "learner = true", 13, "event[0].learner: learner goes with add"),
        ("heal = true", "remove = \"n2\"\nadd = \"n3\"", 13, "one action per event"),
        (
            "heal = true",
            "heal = true\n[raft]\nspares = [\"n1\"]",
            17,
            "raft.spares: spares are the last nodes in site order (here n3)",
        ),
        (
            "heal = true",
            "heal = true\n[raft]\nspares = [\"n1\", \"n2\", \"n3\"]",
            17,
            "every node is a spare",
        ),
    ];
    for (from, to, line, message) in cases {
        let (code, stderr) = malformed(from, to);
        assert_eq!(code, Some(2), "{from} -> {to}: {stderr}");
        assert!(
            stderr.contains(&format!(":{line}: ")),
            "{from} -> {to}: want line {line}: {stderr}"
        );
        assert!(stderr.contains(message), "{from} -> {to}: want {message:?}: {stderr}");
    }
    let output = raftbed(&["replay", "/nonexistent/scenario.toml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read"));
    let output = raftbed(&["replay", &scenario("github-2018-10-21.toml"), "--system", "paxos"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn shrinking_keeps_the_failure_and_writes_a_smaller_valid_scenario() {
    let (_dir, out) = temp("github-shrunk.toml");
    let output = raftbed(&[
        "replay",
        &scenario("github-2018-10-21.toml"),
        "--system",
        "naive-failover",
        "--shrink",
        "--budget",
        "12",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "a shrunk failure still fails: {stdout}");
    assert!(stdout.contains("shrunk:"), "{stdout}");
    let shrunk = std::fs::read_to_string(&out).unwrap();
    let original = std::fs::read_to_string(scenario("github-2018-10-21.toml")).unwrap();
    assert!(shrunk.len() < original.len(), "{shrunk}");
    // The shrunk file is a valid scenario that still splits naive failover.
    let naive = replay_json(out.to_str().unwrap(), "naive-failover");
    assert_eq!(naive["split_brain"], true, "{shrunk}");
    // Raft never fails, so there is nothing to shrink.
    let output =
        raftbed(&["replay", &scenario("rolling-restart.toml"), "--system", "raft", "--shrink"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let (_tmp, dir) = temp("report");
    let output = raftbed(&[
        "replay",
        &scenario("github-2018-10-21.toml"),
        "--report",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    for system in ["raft", "naive-failover", "naive-failover-fenced"] {
        for file in ["history.jsonl", "history.edn", "trace.txt"] {
            let path = dir.join(system).join(file);
            assert!(std::fs::metadata(&path).is_ok_and(|m| m.len() > 0), "{}", path.display());
        }
    }
    let Some(browser) = chromium() else {
        panic!("chromium is missing: .ci/test installs it (apt-get install chromium)");
    };
    let page = format!("file://{}", dir.join("report.html").display());
    let output = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", &page])
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && dom.contains("</html>"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The rendered document: a summary row per system, and per system a timeline with fault
    // bands and role bars, a plotters latency plot with points, the findings and the verdict.
    assert!(dom.contains("id=\"summary\""), "summary table");
    assert_eq!(dom.matches("class=\"system\"").count(), 3, "a section per system");
    assert_eq!(dom.matches("class=\"timeline\"").count(), 3, "a timeline per system");
    assert!(dom.matches("class=\"fault\"").count() >= 3, "fault bands");
    assert!(dom.matches("class=\"role\"").count() >= 15, "role bars");
    assert_eq!(dom.matches("class=\"latency\"").count(), 3, "a latency plot per system");
    assert!(dom.matches("<circle").count() > 1000, "the plots have points");
    assert!(dom.contains("two primaries took writes at once"), "naive's finding");
    assert!(dom.contains("acknowledged write lost"), "lost writes listed");
    assert!(dom.contains("class=\"counterexample\""), "naive's counterexample");
    assert!(dom.contains("The history is linearizable."), "raft's verdict");
    assert!(dom.contains("raftbed replay"), "the replay command");
}
