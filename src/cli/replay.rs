//! `raftbed replay SCENARIO`: replay a scenario file against Raft and the naive failover
//! systems, print what the split-brain detector found, optionally write a report or shrink.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use jepsen_lite::{CheckResult, Outcome};

use crate::scenario::{self, ReplayReport, System};
use crate::sim::{CheckBudget, SimBugs};
use crate::verdict::{EXIT_BAD_INPUT, EXIT_VIOLATED, Verdict};

/// `raftbed replay` arguments.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// Seed (default: the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// raft, naive-failover, naive-failover-fenced, or all (side by side).
    #[arg(long, default_value = "all", value_parser = parse_system)]
    pub system: SystemChoice,
    /// Write report.html, history.jsonl, history.edn and the trace here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Print one JSON object per system (an array for `all`).
    #[arg(long)]
    pub json: bool,
    /// Shrink a failing run: remove and shorten events, reduce clients, while it still fails;
    /// write the smallest failing scenario to --out.
    #[arg(long)]
    pub shrink: bool,
    /// Where --shrink writes (default: SCENARIO's name with `-shrunk.toml`, here).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// At most this many replays while shrinking (1 or more).
    #[arg(long, default_value_t = 40)]
    pub budget: usize,
    /// A bug to switch on in Raft's code (repeatable; the names of `raftbed sim --bug`): it
    /// changes nothing else, and nothing in the naive systems.
    #[arg(long = "bug", value_parser = crate::sim::BUG_NAMES)]
    pub bugs: Vec<String>,
    /// Run on real node processes on loopback instead of the simulator: the timeline at
    /// wall-clock times, links through shaping proxies, crash as SIGKILL, pause as SIGSTOP.
    #[arg(long, conflicts_with_all = ["shrink", "bugs", "compare"])]
    pub real: bool,
    /// Run each system in the simulator and on real processes, and print both side by side
    /// with the differences that matter (exit 1 when their safety verdicts disagree).
    #[arg(long, conflicts_with_all = ["shrink", "bugs"])]
    pub compare: bool,
    #[command(flatten)]
    pub check: CheckArgs,
}

impl ReplayArgs {
    /// Where `--shrink` writes: `--out`, or the scenario's name with `-shrunk.toml`, here.
    pub(super) fn shrink_out(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            let stem = self.scenario.file_stem().map_or("scenario".into(), |s| s.to_string_lossy());
            PathBuf::from(format!("{stem}-shrunk.toml"))
        })
    }

    pub(super) fn bugs(&self) -> SimBugs {
        let mut bugs = SimBugs::default();
        for bug in &self.bugs {
            bugs.enable(bug).expect("clap checked the names");
        }
        bugs
    }
}

/// The history checker's budget on the command line.
#[derive(Debug, Args, Clone)]
pub struct CheckArgs {
    /// Give up checking the history after this long (wall time): the history check is then
    /// undecided (exit 4).
    #[arg(long, default_value = "60s", value_parser = super::sim::parse_duration)]
    pub check_timeout: std::time::Duration,
    /// Give up checking the history past this much memory, in bytes (`64MiB`, `1GiB`).
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
    pub check_memory: usize,
}

impl CheckArgs {
    /// The budget.
    pub fn budget(&self) -> CheckBudget {
        CheckBudget { timeout: self.check_timeout, memory_bytes: self.check_memory }
    }
}

/// Parses `1024`, `64KiB`, `16MiB`, `1GiB` (more than zero, at most 64 GiB).
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a size like 64MiB"))?;
    let scale: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (B, KiB, MiB, GiB)")),
    };
    match n.checked_mul(scale) {
        Some(0) => Err(format!("{text:?} must be more than zero")),
        Some(bytes) if bytes <= 64 << 30 => Ok(bytes as usize),
        _ => Err(format!("{text:?} is more than 64GiB")),
    }
}

/// Which systems to run.
#[derive(Clone, Debug)]
pub struct SystemChoice(pub(super) Vec<System>);

fn parse_system(text: &str) -> Result<SystemChoice, String> {
    if text == "all" {
        return Ok(SystemChoice(System::ALL.to_vec()));
    }
    System::parse(text).map(|s| SystemChoice(vec![s])).ok_or_else(|| {
        format!("unknown system {text:?} (raft, naive-failover, naive-failover-fenced, all)")
    })
}

/// Runs `raftbed replay`. Exit 0 when every system asked for held (with `all`: when Raft held;
/// the naive systems are there to compare), 1 when one split its brain or was not
/// linearizable, 2 for a bad scenario or command line, 4 when nothing was violated but a check
/// could not be decided.
pub fn run(args: &ReplayArgs) -> ExitCode {
    let scenario = match scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("raftbed replay: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let seed = args.seed.unwrap_or(scenario.seed);
    let path = args.scenario.display().to_string();
    super::quiet_panics();
    if args.real {
        return super::replay_compare::run_real(args, &scenario, seed, &path);
    }
    if args.compare {
        return super::replay_compare::run_compare(args, &scenario, seed, &path);
    }
    if scenario.sim.is_some() {
        return super::replay_drawn::run(args, &scenario, seed, &path);
    }
    if args.shrink {
        if args.budget == 0 {
            eprintln!("raftbed replay: --budget 0: shrinking needs at least one replay");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        return shrink(args, &scenario, seed, &path);
    }
    let budget = args.check.budget();
    let reports: Vec<ReplayReport> = args
        .system
        .0
        .iter()
        .map(|system| scenario::replay(&scenario, *system, seed, budget, args.bugs()))
        .collect();
    finish(args, &reports, &path, None)
}

/// Prints the reports (their summaries, then `compared` or the table; or, with `--json`, one
/// object, or an array for several, each with its `world` when real processes ran), writes
/// `--report`, and gives the exit code: Raft's verdict, or the one system's asked for.
pub(super) fn finish(
    args: &ReplayArgs,
    reports: &[ReplayReport],
    path: &str,
    compared: Option<String>,
) -> ExitCode {
    if args.json {
        let real = reports.iter().any(|r| r.real);
        let mut objects: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| {
                let mut object = json(r, path);
                if real {
                    object["world"] = serde_json::json!(if r.real { "real" } else { "sim" });
                }
                object
            })
            .collect();
        let value =
            if objects.len() == 1 { objects.remove(0) } else { serde_json::Value::Array(objects) };
        println!("{value}");
    } else {
        for report in reports {
            print!("{}", summary(report, path));
        }
        match compared {
            Some(text) => print!("{text}"),
            None if reports.len() > 1 => print!("{}", table(reports)),
            None => {}
        }
    }
    if let Some(dir) = &args.report {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        if let Err(e) = scenario::write_report(dir, reports, path, &command) {
            eprintln!("raftbed replay: cannot write the report to {}: {e}", dir.display());
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        if !args.json {
            println!("report: {}", dir.join("report.html").display());
        }
    }
    let judged: Vec<Verdict> = reports
        .iter()
        .filter(|r| args.system.0.len() == 1 || r.system == System::Raft)
        .map(ReplayReport::verdict)
        .collect();
    ExitCode::from(Verdict::worst(&judged))
}

fn shrink(args: &ReplayArgs, scenario: &scenario::Scenario, seed: u64, path: &str) -> ExitCode {
    let systems: Vec<System> = if args.system.0.len() > 1 {
        vec![System::NaiveFailover, System::NaiveFailoverFenced, System::Raft]
    } else {
        args.system.0.clone()
    };
    for system in systems {
        eprintln!(
            "shrinking against {} (seed {seed}, at most {} replays)",
            system.name(),
            args.budget
        );
        let progress = |step: &str| eprintln!("  {step}");
        let Some((small, report)) = scenario::shrink(
            scenario,
            system,
            seed,
            args.budget,
            args.check.budget(),
            args.bugs(),
            progress,
        ) else {
            eprintln!("  {} was not violated: nothing to shrink", system.name());
            continue;
        };
        let out = args.shrink_out();
        let text = format!(
            "# Shrunk from {path} against {} with seed {seed}: still fails.\n{}",
            system.name(),
            scenario::to_toml(&small)
        );
        if let Err(e) = std::fs::write(&out, text) {
            eprintln!("raftbed replay: cannot write {}: {e}", out.display());
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        let out_path = out.display().to_string();
        print!("{}", summary(&report, &out_path));
        println!(
            "shrunk: {} events (from {}), {} clients (from {}), {} (from {}); written to {out_path}",
            small.events.len(),
            scenario.events.len(),
            small.client_count(),
            scenario.client_count(),
            scenario::show(small.duration),
            scenario::show(scenario.duration),
        );
        return ExitCode::from(EXIT_VIOLATED);
    }
    println!("no system was violated: nothing to shrink");
    ExitCode::SUCCESS
}

fn counts(report: &ReplayReport) -> (usize, usize, usize, usize) {
    let ops = report.history.ops().unwrap_or_default();
    let count = |o: Outcome| ops.iter().filter(|op| op.outcome == o).count();
    (ops.len(), count(Outcome::Ok), count(Outcome::Fail), count(Outcome::Indeterminate))
}

fn verdict(report: &ReplayReport) -> String {
    match &report.linearizability {
        CheckResult::Linearizable => "yes".into(),
        CheckResult::NotLinearizable(c) => {
            let key = c.key.as_ref().map_or("the register".into(), ToString::to_string);
            let ops = report.history.ops().unwrap_or_default();
            let failing = c.failing_op.as_ref().and_then(|f| ops.iter().find(|o| o.id == f.id));
            match failing {
                Some(op) => {
                    let at = report.history.events[op.invoke].time.unwrap_or(0) as f64 / 1e9;
                    let shown = match &op.output {
                        Some(out) if op.f == "get" => format!("get -> {out}"),
                        _ => format!("{} {}", op.f, op.input),
                    };
                    format!(
                        "no: on key {key}, op {} ({shown} by process {} at t={at:.3}s) fits no order",
                        op.id, op.process
                    )
                }
                None => format!("no: on key {key}"),
            }
        }
        CheckResult::Unknown(why) => format!("undecided ({why})"),
    }
}

/// The readable summary of one replay.
pub fn summary(report: &ReplayReport, path: &str) -> String {
    let f = &report.findings;
    let (ops, ok, fail, info) = counts(report);
    let mut out =
        format!("== {} against {} (seed {})\n", report.run.name, report.system.name(), report.seed);
    let split = if f.split_brain() {
        format!(
            "YES: overlapping leadership {}x, {} acknowledged writes lost, {} stale reads, {} stale tokens accepted",
            f.overlapping_leadership.len(),
            f.lost_writes.len(),
            f.stale_reads.len(),
            f.stale_tokens.len()
        )
    } else {
        "no".into()
    };
    out += &format!("split brain:  {split}\n");
    out += &format!("linearizable: {}\n", verdict(report));
    out += &format!(
        "leaders at once: at most {}; writes unavailable {:.0}s; fenced rejections {}\n",
        f.max_leaders_at_once, f.unavailable_s, f.fenced_rejections
    );
    out += &format!("ops: {ops} invoked, {ok} ok, {fail} failed, {info} indeterminate\n");
    let all: Vec<&scenario::Finding> = f
        .overlapping_leadership
        .iter()
        .chain(&f.lost_writes)
        .chain(&f.stale_reads)
        .chain(&f.stale_tokens)
        .collect();
    if !all.is_empty() {
        out += "findings:\n";
        for finding in all.iter().take(6) {
            out += &format!("  - {finding}\n");
        }
        if all.len() > 6 {
            out += &format!("  ... {} more (--report DIR lists them all)\n", all.len() - 6);
        }
    }
    for violation in &f.violations {
        out += &format!("invariant violated: {violation}\n");
    }
    if let Some(why) = &report.detector_undecided {
        out += &format!("detector undecided: {why}\n");
    }
    for line in report.transactions.iter().flat_map(crate::sim::append::summary) {
        out += &format!("transactions: {line}\n");
    }
    if let Some(watch) = &report.watch {
        out += &format!("watch: {}\n", watch.summary());
        for violation in watch.violations.iter().take(5) {
            out += &format!("watch: BROKEN: {violation}\n");
        }
    }
    if let Some(coverage) = &report.coverage {
        out += &format!("reached: {coverage}\n");
        let missing = coverage.missing(&report.expected);
        if !missing.is_empty() {
            out += &format!("reached: NEVER (expected): {}\n", missing.join(", "));
        }
    }
    let verdict = report.verdict();
    out += &format!("{verdict}\nverdict: {}\n", verdict.overall().word().to_uppercase());
    let ran = if report.rerun.is_some() { "ran" } else { "simulated" };
    out += &format!(
        "{ran} {:.0}s in {:.1}s wall; trace-hash {}\nreplay: {}\n\n",
        report.run.duration.as_secs_f64(),
        report.wall.as_secs_f64(),
        report.trace_hash,
        report.replay_command(path)
    );
    out
}

/// The systems side by side.
pub fn table(reports: &[ReplayReport]) -> String {
    let mut out = format!(
        "{:<24}{:>13}{:>13}{:>12}{:>13}{:>9}{:>13}{:>13}\n",
        "system",
        "linearizable",
        "split brain",
        "acked lost",
        "stale reads",
        "fenced",
        "max leaders",
        "unavailable"
    );
    for r in reports {
        let f = &r.findings;
        out += &format!(
            "{:<24}{:>13}{:>13}{:>12}{:>13}{:>9}{:>13}{:>12}s\n",
            r.system.name(),
            match r.linearizable() {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "undecided",
            },
            if f.split_brain() { "YES" } else { "no" },
            f.lost_writes.len(),
            f.stale_reads.len(),
            f.fenced_rejections,
            f.max_leaders_at_once,
            f.unavailable_s,
        );
    }
    out
}

/// The JSON object of one replay.
pub fn json(report: &ReplayReport, path: &str) -> serde_json::Value {
    let f = &report.findings;
    let (ops, ok, fail, info) = counts(report);
    let list = |findings: &[scenario::Finding]| -> Vec<serde_json::Value> {
        findings
            .iter()
            .map(|x| serde_json::json!({"at_s": x.at.as_secs_f64(), "text": x.text, "ops": x.ops}))
            .collect()
    };
    serde_json::json!({
        "scenario": report.run.name,
        "system": report.system.name(),
        "seed": report.seed,
        "trace_hash": report.trace_hash,
        "linearizable": report.linearizable(),
        "split_brain": f.split_brain(),
        "acked_writes_lost": f.lost_writes.len(),
        "stale_reads": f.stale_reads.len(),
        "fenced_rejections": f.fenced_rejections,
        "max_leaders_at_once": f.max_leaders_at_once,
        "unavailable_s": f.unavailable_s,
        "stale_tokens": f.stale_tokens.len(),
        "findings": {
            "overlapping_leadership": list(&f.overlapping_leadership),
            "lost_writes": list(&f.lost_writes),
            "stale_reads": list(&f.stale_reads),
            "stale_tokens": list(&f.stale_tokens),
        },
        "invariant_violations": f.violations,
        "ops": {"invoked": ops, "ok": ok, "fail": fail, "info": info},
        "replay": report.replay_command(path),
        "verdict": report.verdict().to_json(),
        "watch": report.watch.as_ref().map(jepsen_lite::watch::WatchReport::to_json),
        "coverage": report.coverage.as_ref().map(crate::sim::coverage::Coverage::to_json),
        "expected": report.expected,
    })
}
