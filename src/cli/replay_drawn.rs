//! `raftbed replay` of a scenario with `[sim]` (`raftbed sim --emit-scenario`): the
//! simulator's own world and checks under the file's timeline, printed as `raftbed sim`
//! prints a run; `--shrink` keeps the smallest timeline that still fails.

use std::process::ExitCode;

use super::replay::ReplayArgs;
use crate::scenario::{self, Scenario, System};
use crate::verdict::{EXIT_BAD_INPUT, EXIT_VIOLATED};

/// Replays (or shrinks) `scenario`, which has `[sim]`.
pub fn run(args: &ReplayArgs, scenario: &Scenario, seed: u64, path: &str) -> ExitCode {
    if !args.system.0.contains(&System::Raft) {
        eprintln!(
            "raftbed replay: {path} has [sim], a world raftbed sim drew: it runs against raft only"
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    if args.report.is_some() {
        eprintln!(
            "raftbed replay: --report draws the split-brain report of a scenario with sites; \
             {path} has [sim], whose replay prints the simulator's own report"
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let (check, bugs) = (args.check.budget(), args.bugs());
    if args.shrink {
        return shrink(args, scenario, seed, path, (check, bugs));
    }
    let report = scenario::replay_drawn(scenario, path, seed, check, bugs);
    if args.json {
        println!("{}", crate::sim::sweep::SeedResult::from(&report).to_json());
    } else {
        println!("{report}");
    }
    ExitCode::from(report.verdict().exit_code())
}

fn shrink(
    args: &ReplayArgs,
    scenario: &Scenario,
    seed: u64,
    path: &str,
    (check, bugs): (crate::sim::CheckBudget, crate::sim::SimBugs),
) -> ExitCode {
    if args.budget == 0 {
        eprintln!("raftbed replay: --budget 0: shrinking needs at least one replay");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    eprintln!("shrinking against raft (seed {seed}, at most {} replays)", args.budget);
    let out = args.shrink_out();
    let out_path = out.display().to_string();
    let progress = |step: &str| eprintln!("  {step}");
    // The shrunk file's replay command names the shrunk file.
    let Some((small, report)) =
        scenario::shrink_drawn(scenario, &out_path, seed, args.budget, check, bugs, progress)
    else {
        println!("raft was not violated: nothing to shrink");
        return ExitCode::SUCCESS;
    };
    let flags: String = args.bugs.iter().map(|b| format!(" --bug {b}")).collect();
    let text = format!(
        "# Shrunk from {path} with seed {seed}{flags}: still fails.\n{}",
        scenario::to_toml(&small)
    );
    if let Err(e) = std::fs::write(&out, text) {
        eprintln!("raftbed replay: cannot write {out_path}: {e}");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    println!("{report}");
    println!(
        "shrunk: {} events (from {}), {} (from {}); written to {out_path}",
        small.events.len(),
        scenario.events.len(),
        scenario::show(small.duration),
        scenario::show(scenario.duration),
    );
    ExitCode::from(EXIT_VIOLATED)
}
