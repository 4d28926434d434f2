//! From a seed to a scenario: `raftbed sim --emit-scenario` writes the world a run drew and the
//! faults its nemesis applied, `raftbed replay` of that file is the run again (the same trace
//! hash, the same verdict), and `--shrink` keeps the failure in a smaller file.
//!
//! Method: run the CLI as a user would (in release: the runs are simulations) and compare what
//! the two commands print. Every failure message carries the commands that replay it.

use std::path::PathBuf;
use std::process::{Command, Output};

fn raftbed(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftbed")).args(args).output().expect("runs")
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("raftbed-emit-{}-{name}", std::process::id()))
}

/// Stdout and stderr, for failure messages.
fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The lines of a report that must be equal between a run and its replay.
fn outcome(output: &Output) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let kept = ["safety:", "liveness:", "history:", "checks:", "verdict:", "trace-hash:", "ops:"];
    stdout.lines().filter(|l| kept.iter().any(|k| l.starts_with(k))).map(str::to_string).collect()
}

/// A swarm seed whose run the skip-fsync bug breaks within 20 s, after 59 fault primitives
/// and notes, a membership change among them: a leader lacks an entry committed before it.
const SEED: &str = "12";
const BUG: &str = "skip-fsync";

/// The failing run of `SEED` with `BUG`, written as a scenario to `path`.
fn emit_failing_run(path: &str) -> Output {
    let args = ["--seed", SEED, "--duration", "20s", "--bug", BUG, "--emit-scenario", path];
    raftbed(&[&["sim"][..], &args].concat())
}

#[test]
fn an_emitted_scenario_replays_the_run_with_and_without_the_bug() {
    let file = temp("seed.toml");
    let path = file.to_str().unwrap();
    let command =
        format!("raftbed sim --seed {SEED} --duration 20s --bug {BUG} --emit-scenario {path}");
    let run = emit_failing_run(path);
    assert_eq!(run.status.code(), Some(1), "{command}: {}", text(&run));
    assert!(text(&run).contains(&format!("scenario: {path} (raftbed replay {path} --bug {BUG})")));
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("\n[sim]\n") && written.contains("[[event]]"), "{written}");

    let replay = raftbed(&["replay", path, "--bug", BUG]);
    assert_eq!(
        replay.status.code(),
        Some(1),
        "raftbed replay {path} --bug {BUG}: {}",
        text(&replay)
    );
    assert_eq!(
        outcome(&replay),
        outcome(&run),
        "{command}, then raftbed replay {path} --bug {BUG}"
    );
    assert!(
        text(&replay).contains(&format!("replay: raftbed replay {path} --seed {SEED} --bug {BUG}"))
    );

    // The run stopped at the violation, and so does its timeline. A run without the bug
    // applies the whole schedule: its scenario is the clean run again, and with the bug it
    // fails as the seed did (the nemesis's reactions to elections are the clean run's, so
    // not the same steps).
    let clean_file = temp("seed-clean.toml");
    let clean_path = clean_file.to_str().unwrap();
    let clean =
        raftbed(&["sim", "--seed", SEED, "--duration", "20s", "--emit-scenario", clean_path]);
    assert_eq!(clean.status.code(), Some(0), "raftbed sim --seed {SEED} --duration 20s");
    assert_eq!(
        outcome(&raftbed(&["replay", clean_path])),
        outcome(&clean),
        "raftbed replay {clean_path}"
    );
    let buggy = raftbed(&["replay", clean_path, "--bug", BUG]);
    assert_eq!(buggy.status.code(), Some(1), "raftbed replay {clean_path} --bug {BUG}");
    assert!(text(&buggy).contains("safety: VIOLATED"), "{}", text(&buggy));
    assert!(written.contains("the timeline ends there"), "{written}");
    let _ = std::fs::remove_file(&clean_file);

    // The file's seed can be changed: the same world and faults, other luck, its own run.
    let other = raftbed(&["replay", path, "--seed", "7"]);
    assert!(matches!(other.status.code(), Some(0 | 1 | 4)), "{}", text(&other));
    assert_ne!(outcome(&other).last(), outcome(&clean).last(), "raftbed replay {path} --seed 7");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn a_swarm_finding_shrinks_to_a_smaller_scenario_that_still_fails() {
    let (file, small) = (temp("shrink.toml"), temp("shrink-small.toml"));
    let (path, out) = (file.to_str().unwrap(), small.to_str().unwrap());
    let run = emit_failing_run(path);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let events = |p: &PathBuf| std::fs::read_to_string(p).unwrap().matches("[[event]]").count();
    let before = events(&file);

    let args = ["replay", path, "--bug", BUG, "--shrink", "--out", out, "--budget", "25"];
    let shrunk = raftbed(&args);
    let command = format!("raftbed {}", args.join(" "));
    assert_eq!(shrunk.status.code(), Some(1), "{command}: {}", text(&shrunk));
    let after = events(&small);
    assert!(after < before / 4, "{command}: {after} events of {before}");
    assert!(text(&shrunk).contains(&format!("written to {out}")), "{}", text(&shrunk));

    // The shrunk file fails on its own with the bug, as the shrinker's last run did, and
    // holds without it.
    let again = raftbed(&["replay", out, "--bug", BUG]);
    assert_eq!(again.status.code(), Some(1), "raftbed replay {out} --bug {BUG}: {}", text(&again));
    assert_eq!(outcome(&again), outcome(&shrunk), "raftbed replay {out} --bug {BUG}");
    let correct = raftbed(&["replay", out]);
    assert_eq!(correct.status.code(), Some(0), "raftbed replay {out}: {}", text(&correct));
    let _ = (std::fs::remove_file(&file), std::fs::remove_file(&small));
}

#[test]
fn a_drawn_scenario_refuses_what_only_site_scenarios_do() {
    let file = temp("refuse.toml");
    let path = file.to_str().unwrap();
    let run = raftbed(&["sim", "--seed", "3", "--duration", "2s", "--emit-scenario", path]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    for (args, expected) in [
        (vec!["--system", "naive-failover"], "runs against raft only"),
        (vec!["--report", "/tmp/nowhere"], "--report"),
    ] {
        let mut all = vec!["replay", path];
        all.extend(&args);
        let output = raftbed(&all);
        assert_eq!(output.status.code(), Some(2), "raftbed {}: {}", all.join(" "), text(&output));
        assert!(text(&output).contains(expected), "{}", text(&output));
    }
    // `--json` prints the run as one sweep line does.
    let json = raftbed(&["replay", path, "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(value["verdict"], "OK", "{value}");
    assert_eq!(value["replay"], format!("raftbed replay {path} --seed 3"), "{value}");
    // A sweep cannot write one scenario.
    let sweep = raftbed(&["sim", "--seeds", "0..2", "--emit-scenario", path]);
    assert_eq!(sweep.status.code(), Some(2), "{}", text(&sweep));
    let _ = std::fs::remove_file(&file);
}

#[test]
fn an_emitted_scenario_keeps_the_workload() {
    // Seed 3 draws list-append clients beside the single-key ones; `--workload append` makes
    // every client append. The replay runs the same clients: the same transactions and hash.
    for (name, extra) in [("beside.toml", None), ("append.toml", Some("append"))] {
        let file = temp(name);
        let path = file.to_str().unwrap();
        let mut args = vec!["sim", "--seed", "3", "--duration", "5s", "--emit-scenario", path];
        args.extend(extra.map(|w| ["--workload", w]).iter().flatten());
        let run = raftbed(&args);
        let command = format!("raftbed {}", args.join(" "));
        assert_eq!(run.status.code(), Some(0), "{command}: {}", text(&run));
        let replay = raftbed(&["replay", path]);
        assert_eq!(outcome(&replay), outcome(&run), "{command}; raftbed replay {path}");
        let transactions = |o: &Output| {
            let stdout = String::from_utf8_lossy(&o.stdout).to_string();
            stdout.lines().find(|l| l.starts_with("transactions:")).map(str::to_string)
        };
        assert!(transactions(&run).is_some(), "{command}: {}", text(&run));
        assert_eq!(transactions(&replay), transactions(&run), "raftbed replay {path}");
        let _ = std::fs::remove_file(&file);
    }
}
