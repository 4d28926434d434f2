//! Extreme and malformed input: every value outside its stated range, an input that is not a
//! scenario file, and checks the checker cannot decide.
//!
//! Goal: a valid-looking but extreme scenario never hangs, loops or runs for days; it is
//! refused with exit 2, naming its line and field. An undecided history check is "undecided"
//! with exit 4, never a violation. Method: run the CLI on each case under a hard 10 s timeout
//! (a hang guard, not a timing target) and assert on the exit code and the message.

use std::path::{Path, PathBuf};
use std::time::Duration;

#[path = "support/process.rs"]
mod process;

/// Runs raftbed with `args`, killing it after `limit`; (exit code, stdout, stderr).
fn raftbed_within(args: &[&str], limit: Duration) -> (Option<i32>, String, String) {
    let output = process::raftbed_within(args, limit);
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

fn raftbed(args: &[&str]) -> (Option<i32>, String, String) {
    raftbed_within(args, Duration::from_secs(10))
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("raftbed-bounds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const GOOD: &str = r#"name = "t"
duration = "20s"

[timing]
tick = "10ms"
election_timeout = "1s"
heartbeat = "100ms"
monitor_interval = "1s"

[[site]]
name = "a"
nodes = ["n1", "n2", "n3"]

[[clients]]
name = "app"
site = "a"
count = 2
mix = { put = 1, get = 1 }

[[event]]
at = "5s"
heal = true
"#;

#[test]
fn every_extreme_value_is_refused_with_its_line_and_field() {
    let cases = [
        // (replace, with, line, field, words of the message)
        (
            "monitor_interval = \"1s\"",
            "monitor_interval = \"1ms\"",
            8,
            "timing.monitor_interval",
            "at least 10ms",
        ),
        ("tick = \"10ms\"", "tick = \"0.000001ms\"", 5, "timing.tick", "1ms to 100ms"),
        ("tick = \"10ms\"", "tick = \"101ms\"", 5, "timing.tick", "1ms to 100ms"),
        (
            "election_timeout = \"1s\"",
            "election_timeout = \"999999s\"",
            6,
            "timing.election_timeout",
            "at most 60s",
        ),
        (
            "election_timeout = \"1s\"",
            "election_timeout = \"15ms\"",
            6,
            "timing.election_timeout",
            "at least two ticks",
        ),
        (
            "heartbeat = \"100ms\"",
            "heartbeat = \"1s\"",
            7,
            "timing.heartbeat",
            "shorter than the election timeout",
        ),
        (
            "duration = \"20s\"",
            "duration = \"999999s\"",
            2,
            "duration",
            "longer than the most allowed, 3600s",
        ),
        (
            "mix = { put = 1, get = 1 }",
            "mix = { put = 1e308, get = 1e308 }",
            18,
            "clients[0].mix.get",
            "from 0 to 1e6",
        ),
        ("count = 2", "count = 65", 17, "clients[0].count", "1 to 64 per group"),
        ("count = 2", "count = \"two\"", 17, "clients[0].count", "invalid type"),
        (
            "heal = true",
            "node = \"n1\"\ndrift = 1e9",
            23,
            "event[0].drift",
            "a clock rate from 0.1 to 10",
        ),
        ("heal = true", "node = \"n1\"\njump = \"+2h\"", 23, "event[0].jump", "at most 3600s"),
        ("name = \"app\"", "name = \"app\"\nrate = 1e308", 16, "clients[0].rate", "at most 1000"),
    ];
    for (from, to, line, field, message) in cases {
        assert!(GOOD.contains(from), "{from}");
        let path = temp(&format!("case-{line}-{}.toml", to.len()));
        std::fs::write(&path, GOOD.replacen(from, to, 1)).unwrap();
        let (code, _, stderr) = raftbed(&["replay", path.to_str().unwrap(), "--system", "raft"]);
        assert_eq!(code, Some(2), "{from} -> {to}: {stderr}");
        let want = format!(":{line}: {field}: ");
        assert!(stderr.contains(&want), "{from} -> {to}: want {want:?}: {stderr}");
        assert!(stderr.contains(message), "{from} -> {to}: want {message:?}: {stderr}");
    }
}

#[test]
fn what_is_not_a_small_regular_file_is_refused_unread() {
    let (code, _, stderr) = raftbed(&["replay", "/dev/zero"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
    let big = temp("big.toml");
    let mut text = GOOD.to_string();
    text.push_str(&format!("# {}\n", "x".repeat(1 << 20)));
    std::fs::write(&big, text).unwrap();
    let (code, _, stderr) = raftbed(&["replay", big.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("at most 1048576 bytes (1 MiB)"), "{stderr}");
    let dir = std::env::temp_dir();
    let (code, _, stderr) = raftbed(&["replay", dir.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
}

#[test]
fn extreme_command_lines_exit_2() {
    let good = temp("good.toml");
    std::fs::write(&good, GOOD).unwrap();
    let good = good.to_str().unwrap();
    for (args, message) in [
        (vec!["replay", good, "--shrink", "--budget", "0"], "--budget 0"),
        (vec!["replay", good, "--check-memory", "0"], "more than zero"),
        (vec!["replay", good, "--check-memory", "1PiB"], "unknown unit"),
        (vec!["sim", "--seed", "1", "--duration", "999999s"], "longer than an hour"),
        (vec!["test", "--time", "2h"], "longer than an hour"),
    ] {
        let (code, _, stderr) = raftbed(&args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: want {message:?}: {stderr}");
    }
}

fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name).display().to_string()
}

#[test]
fn an_undecided_history_check_is_undecided_and_exits_4() {
    // A checker allowed 64 bytes for remembered configurations cannot decide a history whose
    // search has to backtrack (this one's, and this seed's).
    let path = scenario("leader-isolated-under-drift.toml");
    let (code, stdout, stderr) = raftbed_within(
        &["replay", &path, "--system", "raft", "--check-memory", "64"],
        Duration::from_secs(120),
    );
    assert_eq!(code, Some(4), "{stdout}{stderr}");
    assert!(stdout.contains("linearizable: undecided (reached the memory bound"), "{stdout}");
    assert!(stdout.contains("verdict: UNDECIDED"), "{stdout}");
    assert!(!stdout.contains("NOT"), "nothing is shown as a violation: {stdout}");
    assert!(stdout.contains("--check-memory 64"), "the replay command keeps the budget: {stdout}");
    let (code, stdout, _) = raftbed_within(
        &["replay", &path, "--system", "raft", "--check-memory", "64", "--json"],
        Duration::from_secs(120),
    );
    assert_eq!(code, Some(4));
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(json["linearizable"], serde_json::Value::Null, "{json}");
    assert_eq!(json["verdict"]["overall"], "undecided", "{json}");
    assert_eq!(json["verdict"]["checks"]["history"]["outcome"], "undecided", "{json}");

    let (code, stdout, _) = raftbed_within(
        &["sim", "--seed", "2", "--no-swarm", "--check-memory", "64"],
        Duration::from_secs(120),
    );
    assert_eq!(code, Some(4), "{stdout}");
    assert!(stdout.contains("history: undecided (reached the memory bound"), "{stdout}");
    assert!(stdout.contains("verdict: UNDECIDED"), "{stdout}");
    assert!(
        stdout.contains("replay: raftbed sim --seed 2 --no-swarm --check-memory 64"),
        "{stdout}"
    );
}
