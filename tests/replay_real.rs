//! `raftbed replay --real` and `--compare`: a shipped scenario on real node processes beside
//! the simulator, every system, with the safety verdicts required to agree; and what the real
//! backend cannot run refused by name.
//!
//! The scenario (`site-cut-short.toml`) has margins far above scheduling jitter (an 8 s split,
//! failover after 2 s, elections after 1-2 s), so the verdicts do not depend on timing luck.
//! Each real run is 18 s of scenario and 6 s of settling; the three take about 80 s.

use std::path::Path;
use std::time::Duration;

#[path = "support/process.rs"]
mod process;
use process::raftbed_within;

use serde_json::Value;

fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name).display().to_string()
}

#[test]
fn the_simulator_and_real_processes_agree_on_every_systems_safety() {
    let path = scenario("site-cut-short.toml");
    let args = ["replay", &path, "--compare", "--json"];
    let output = raftbed_within(&args, Duration::from_secs(300));
    let replay = format!("raftbed {}", args.join(" "));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{replay}: {stdout}{stderr}");
    let runs: Vec<Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{replay}: not a JSON array ({e}): {stdout}"));
    assert_eq!(runs.len(), 6, "{replay}: three systems, two worlds each: {stdout}");
    let safety = |v: &Value| (v["split_brain"].clone(), v["linearizable"].clone());
    for pair in runs.chunks(2) {
        let (sim, real) = (&pair[0], &pair[1]);
        let system = sim["system"].as_str().unwrap_or("?");
        assert_eq!((sim["world"].as_str(), real["world"].as_str()), (Some("sim"), Some("real")));
        assert_eq!(real["system"], sim["system"]);
        assert_eq!(
            safety(sim),
            safety(real),
            "{replay}: {system}'s safety verdicts disagree; real run: {}",
            real["replay"]
        );
        // Something happened on real processes: clients were served.
        assert!(real["ops"]["ok"].as_u64().unwrap_or(0) > 100, "{replay}: {system}: {real}");
    }
    let (raft, naive) = (&runs[1], &runs[3]);
    assert_eq!(safety(raft), (Value::Bool(false), Value::Bool(true)), "{replay}: raft: {raft}");
    assert!(
        naive["acked_writes_lost"].as_u64().unwrap_or(0) > 0,
        "{replay}: naive-failover lost no acknowledged write on real processes: {naive}"
    );
}

#[test]
fn real_replays_refuse_what_only_the_simulator_runs() {
    let locks = scenario("lock-holder-paused.toml");
    let output = raftbed_within(&["replay", &locks, "--real"], Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("lock clients"), "the refusal names the reason: {stderr}");

    let members = scenario("membership-2015.toml");
    let output = raftbed_within(&["replay", &members, "--real"], Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("membership changes"), "{stderr}");

    let github = scenario("github-2018-10-21.toml");
    let args = ["replay", &github, "--real", "--bug", "skip-fsync"];
    let output = raftbed_within(&args, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "bug switches are the simulator's: {stderr}");
}
