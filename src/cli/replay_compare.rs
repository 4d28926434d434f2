//! `raftbed replay SCENARIO --real` and `--compare`: the scenario on real processes, and the
//! simulator's run beside the real one, per system, with the differences that matter — the
//! safety verdicts first. A disagreement on safety is a finding: one of the two worlds did not
//! tell the truth about the design, and both replay commands are printed.

use std::fmt::Write as _;
use std::process::ExitCode;

use super::real_replay::{replay_real, run_dir};
use super::replay::{ReplayArgs, finish, table};
use crate::scenario::{self, ReplayReport, RoleSpan, Scenario, System};
use crate::verdict::{EXIT_BAD_INPUT, EXIT_VIOLATED};

/// What a comparison cannot compare, printed with every `--compare`.
pub const CRASH_NOTE: &str = "crash durability is not compared: a real SIGKILL keeps what the page cache holds, while the simulator's crash loses every unsynced write";

/// Runs one system on real processes; the data dir is removed unless the run found Raft
/// unsafe (then its logs are worth reading).
fn real(
    scenario: &Scenario,
    system: System,
    seed: u64,
    args: &ReplayArgs,
    path: &str,
) -> Result<ReplayReport, String> {
    let dir = run_dir(system);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("raftbed replay: {} on real processes in {} ...", system.name(), dir.display());
    let report = replay_real(scenario, system, seed, args.check.budget(), &dir, path);
    let keep = match &report {
        Ok(r) => system == System::Raft && !r.ok(),
        Err(_) => true,
    };
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    report
}

/// `--real`: the systems asked for on real processes, printed as the simulator's are.
pub fn run_real(args: &ReplayArgs, scenario: &Scenario, seed: u64, path: &str) -> ExitCode {
    let mut reports = Vec::new();
    for system in &args.system.0 {
        match real(scenario, *system, seed, args, path) {
            Ok(report) => reports.push(report),
            Err(e) => {
                eprintln!("raftbed replay: {e}");
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        }
    }
    finish(args, &reports, path, None)
}

/// `--compare`: each system in the simulator, then on real processes.
pub fn run_compare(args: &ReplayArgs, scenario: &Scenario, seed: u64, path: &str) -> ExitCode {
    let mut pairs = Vec::new();
    for system in &args.system.0 {
        let sim = scenario::replay(scenario, *system, seed, args.check.budget(), args.bugs());
        match real(scenario, *system, seed, args, path) {
            Ok(real) => pairs.push((sim, real)),
            Err(e) => {
                eprintln!("raftbed replay: {e}");
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        }
    }
    let text = compare(&pairs, path);
    let disagree = pairs.iter().any(|(s, r)| safety(s) != safety(r));
    let reports: Vec<ReplayReport> = pairs.into_iter().flat_map(|(s, r)| [s, r]).collect();
    let code = finish(args, &reports, path, Some(text));
    if disagree { ExitCode::from(EXIT_VIOLATED) } else { code }
}

fn world(report: &ReplayReport) -> &'static str {
    if report.real { "real" } else { "sim" }
}

/// The safety verdict: (split brain, linearizable).
fn safety(report: &ReplayReport) -> (bool, Option<bool>) {
    (report.findings.split_brain(), report.linearizable())
}

/// Each node's roles in order, durations left out (`follower leader follower`). A real run
/// polls roles every 100 ms and sees no candidates, so candidacy counts as following here.
fn role_sequence(spans: &[RoleSpan], node: usize) -> Vec<&str> {
    let mut seq: Vec<&str> = Vec::new();
    for span in spans.iter().filter(|s| s.node == node && s.to > s.from) {
        let role = match span.role.as_str() {
            "candidate" | "pre-candidate" => "follower",
            role => role,
        };
        if seq.last() != Some(&role) {
            seq.push(role);
        }
    }
    seq
}

/// The side-by-side table and the differences.
fn compare(pairs: &[(ReplayReport, ReplayReport)], path: &str) -> String {
    let mut out = String::from("== simulator and real processes, side by side\n");
    let mut head = table(&[]);
    head.insert_str(0, &format!("{:<6}", "world"));
    out += &head;
    for (sim, real) in pairs {
        for r in [sim, real] {
            let row = table(std::slice::from_ref(r));
            let row = row.lines().nth(1).unwrap_or_default();
            let _ = writeln!(out, "{:<6}{row}", world(r));
        }
    }
    out += "differences:\n";
    for (sim, real) in pairs {
        let name = sim.system.name();
        if safety(sim) != safety(real) {
            let _ = writeln!(
                out,
                "  FINDING {name}: the safety verdicts disagree (simulator: split brain {}, linearizable {:?}; real: split brain {}, linearizable {:?})\n    replay: {}\n    replay: {}",
                sim.findings.split_brain(),
                sim.linearizable(),
                real.findings.split_brain(),
                real.linearizable(),
                sim.replay_command(path),
                real.replay_command(path)
            );
        } else {
            let _ = writeln!(out, "  {name}: the safety verdicts agree");
        }
        let (fs, fr) = (&sim.findings, &real.findings);
        let _ = writeln!(
            out,
            "    acknowledged writes lost {} vs {}; leaders at once {} vs {}; writes unavailable {:.0}s vs {:.0}s",
            fs.lost_writes.len(),
            fr.lost_writes.len(),
            fs.max_leaders_at_once,
            fr.max_leaders_at_once,
            fs.unavailable_s,
            fr.unavailable_s
        );
        for node in 0..sim.run.nodes.len() {
            let (a, b) = (role_sequence(&sim.roles, node), role_sequence(&real.roles, node));
            if a != b {
                let _ = writeln!(
                    out,
                    "    roles of {}: simulator {} | real {}",
                    sim.run.nodes[node],
                    a.join(" > "),
                    b.join(" > ")
                );
            }
        }
    }
    let _ = writeln!(out, "{CRASH_NOTE}\n");
    out
}
