//! `raftbed sim` from the command line: a run prints its summary and trace hash, a violation
//! exits 1 with the replay command, and malformed values exit 2 with a clear message.

use std::process::{Command, Output};

fn raftbed(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftbed")).args(args).output().expect("runs")
}

#[test]
fn a_run_prints_its_verdict_and_trace_hash() {
    let trace = std::env::temp_dir().join(format!("raftbed-trace-{}.txt", std::process::id()));
    let output =
        raftbed(&["sim", "--seed", "3", "--duration", "5s", "--trace", trace.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("verdict: OK"), "{stdout}");
    let hash = stdout.lines().last().unwrap();
    assert!(hash.starts_with("trace-hash: ") && hash.len() == "trace-hash: ".len() + 16, "{hash}");
    let lines = std::fs::read_to_string(&trace).unwrap();
    assert!(lines.lines().count() > 100, "the trace holds the run's events");
    assert!(lines.contains(" leader term="), "elections are traced");
}

#[test]
fn a_caught_bug_exits_1_with_the_replay_command() {
    let output = raftbed(&["sim", "--seed", "37", "--no-swarm", "--bug", "commit-old-term"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("committed entry not safe"), "{stdout}");
    assert!(
        stdout.contains("replay: raftbed sim --seed 37 --no-swarm --bug commit-old-term"),
        "{stdout}"
    );
}

/// The lines of a run's report that describe its world.
fn world_lines(stdout: &str) -> Vec<String> {
    let lines = stdout.lines().filter(|l| l.starts_with("seed ") || l.starts_with("swarm:"));
    let params = stdout.lines().filter(|l| l.starts_with("params:"));
    // The seed line names the bugs switched on; the world is what comes before.
    lines.chain(params).map(|l| l.split(", bugs [").next().unwrap_or(l).to_string()).collect()
}

#[test]
fn a_swarm_run_draws_its_world_from_the_seed_alone() {
    let plain = raftbed(&["sim", "--seed", "5", "--duration", "3s"]);
    let stdout = String::from_utf8_lossy(&plain.stdout).into_owned();
    let world = world_lines(&stdout);
    assert_eq!(world.len(), 3, "{stdout}");
    assert!(world[1].starts_with("swarm: "), "{stdout}");
    // A bug changes the code under test, never the world.
    let buggy = raftbed(&["sim", "--seed", "5", "--duration", "3s", "--bug", "skip-fsync"]);
    assert_eq!(world_lines(&String::from_utf8_lossy(&buggy.stdout)), world);
    // What the command line fixes stays fixed.
    let pinned = raftbed(&["sim", "--seed", "5", "--duration", "3s", "--nodes", "3"]);
    let pinned = String::from_utf8_lossy(&pinned.stdout).into_owned();
    assert!(pinned.starts_with("seed 5: 3 nodes"), "{pinned}");
    // Seeds draw different worlds; the fixed world has no swarm line.
    let others: Vec<Vec<String>> = (6..12)
        .map(|s| {
            let out = raftbed(&["sim", "--seed", &s.to_string(), "--duration", "1s"]);
            world_lines(&String::from_utf8_lossy(&out.stdout))[..2].to_vec()
        })
        .collect();
    assert!(others.iter().any(|w| w[0] != others[0][0]), "{others:?}");
    let fixed = raftbed(&["sim", "--seed", "5", "--duration", "1s", "--no-swarm"]);
    let fixed = String::from_utf8_lossy(&fixed.stdout).into_owned();
    assert!(
        fixed.starts_with(
            "seed 5: 5 nodes and 3 spares, 8 clients, 1s, faults [partition,crash,pause,clock,loss,member]"
        ),
        "{fixed}"
    );
    assert!(!fixed.contains("swarm:"), "{fixed}");
}

#[test]
fn malformed_values_exit_2_with_a_clear_error() {
    for (args, expected) in [
        (vec!["sim", "--seeds", "9..3"], "empty range"),
        (vec!["sim", "--seed", "1", "--nodes", "0"], "--nodes"),
        (vec!["sim", "--seed", "1", "--faults", "nonsense"], "unknown fault kind"),
        (vec!["sim", "--seed", "1", "--duration", "10"], "has no unit"),
        (vec!["sim", "--seed", "1", "--bug", "typo"], "--bug"),
        (vec!["sim"], "--seed"),
    ] {
        let output = raftbed(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn the_history_and_its_resolved_file_check_as_the_run_did() {
    let dir = std::env::temp_dir().join(format!("raftbed-resolved-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (history, resolved) = (dir.join("history.jsonl"), dir.join("resolved.jsonl"));
    let (h, r) = (history.to_str().unwrap(), resolved.to_str().unwrap());
    let output =
        raftbed(&["sim", "--seed", "7", "--duration", "20s", "--history", h, "--resolved", r]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "raftbed sim --seed 7 --duration 20s: {stdout}");
    assert!(stdout.contains("resolved from the committed log"), "{stdout}");
    let fates = std::fs::read_to_string(&resolved).unwrap();
    assert!(fates.starts_with("# raftbed-resolved v1\n"), "{fates}");
    assert!(fates.contains("\"committed\":true") && fates.contains("\"committed\":false"));
    let check = raftbed(&["check", h, "--resolved", r, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(json["verdict"], "linearizable", "{json}");
    let counts = &json["resolved"];
    assert!(counts["mandatory"].as_u64().unwrap() > 0, "{json}");
    assert!(counts["dropped"].as_u64().unwrap() > 0, "{json}");
    // Every acknowledged write is in the log, every failed one is not.
    assert_eq!(counts["contradicted"], 0, "{json}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_watch_log_checks_offline_as_the_run_did() {
    let dir = tempfile::tempdir().unwrap();
    for (bug, code) in
        [(None, 0), (Some("watch-resume-skip"), 1), (Some("require-leader-ignored"), 1)]
    {
        let log = dir.path().join("watches.jsonl");
        let log_arg = log.to_str().unwrap();
        let mut args =
            vec!["sim", "--seed", "0", "--no-swarm", "--duration", "20s", "--watches", log_arg];
        args.extend(bug.iter().flat_map(|b| ["--bug", *b]));
        let output = raftbed(&args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(code), "{bug:?}: {stdout}");
        let check = raftbed(&["check", "--format", "watches", log_arg]);
        let checked = String::from_utf8_lossy(&check.stdout);
        assert_eq!(check.status.code(), Some(code), "{bug:?}: {checked}");
        let word = if code == 0 { "watch held" } else { "watch BROKEN" };
        assert!(checked.contains(word), "{bug:?}: {checked}");
    }
    std::fs::write(dir.path().join("bad.jsonl"), "{\"known\": 3}\n{\"stream\": 1}\n").unwrap();
    let bad =
        raftbed(&["check", "--format", "watches", dir.path().join("bad.jsonl").to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("line 2"));
}

#[test]
fn a_run_that_never_reached_a_required_situation_is_undecided() {
    // An idle cluster with no faults never truncates a suffix, and reads nothing.
    let args = ["sim", "--seed", "2", "--duration", "3s", "--faults", "none", "--clients", "0"];
    let reached = raftbed(&[&args[..], &["--require", "leader-elected"]].concat());
    let stdout = String::from_utf8_lossy(&reached.stdout);
    assert_eq!(reached.status.code(), Some(0), "{stdout}");
    let missed = raftbed(&[&args[..], &["--require", "leader-elected,suffix-truncated"]].concat());
    let stdout = String::from_utf8_lossy(&missed.stdout);
    assert_eq!(missed.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("coverage undecided (never reached suffix-truncated)"), "{stdout}");
    assert!(stdout.contains("--require leader-elected,suffix-truncated"), "{stdout}");
    let typo = raftbed(&[&args[..], &["--require", "leader-elcted"]].concat());
    assert_eq!(typo.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("unknown situation \"leader-elcted\""));
}

#[test]
fn shards_of_a_sweep_merge_into_the_whole_sweeps_table() {
    let dir = std::env::temp_dir().join(format!("raftbed-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sweep = ["sim", "--seeds", "0..5", "--duration", "3s", "--jobs", "1"];
    let whole = raftbed(&sweep);
    let mut files = Vec::new();
    for shard in ["0/2", "1/2"] {
        let file = dir.join(format!("shard-{}.jsonl", &shard[..1]));
        let path = file.to_str().unwrap().to_string();
        let out = raftbed(&[&sweep[..], &["--shard", shard, "--jsonl", &path]].concat());
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
        files.push(path);
    }
    let shard0 = std::fs::read_to_string(&files[0]).unwrap();
    assert_eq!(shard0.lines().count(), 3, "seeds 0, 2, 4: {shard0}");
    let merged = raftbed(&["merge", &files[0], &files[1]]);
    assert_eq!(merged.status.code(), Some(0));
    let table = |o: &Output| {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        // Speeds differ from run to run; everything else is the seeds' own.
        text.lines()
            .map(|l| {
                l.split_whitespace().filter(|w| !w.ends_with('x')).collect::<Vec<_>>().join(" ")
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(table(&merged), table(&whole));
    std::fs::write(dir.join("broken.jsonl"), "{\"seed\": 1}\n").unwrap();
    let broken = raftbed(&["merge", dir.join("broken.jsonl").to_str().unwrap()]);
    assert_eq!(broken.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&broken.stderr).contains("broken.jsonl:1: no"));
    let _ = std::fs::remove_dir_all(&dir);
}
