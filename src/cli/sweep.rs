//! `raftbed sim --seeds A..B`: a sweep (optionally one shard of it, with a JSON line per seed),
//! `--bug-zoo` (the sweep once per bug switch, and how each was caught), and `raftbed merge`,
//! which joins the JSON lines of a sweep's shards into one table.

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::sim::Workload;
use crate::sim::bugs::BUGS;
use crate::sim::sweep::{SeedResult, sweep, table};
use crate::sim::{SimBugs, SimOptions};
use crate::verdict::{EXIT_HELD, EXIT_UNDECIDED, worse};

/// Where a sweep writes its JSON lines: a file, or standard output (`-`).
pub struct Lines(Mutex<Box<dyn std::io::Write + Send>>);

impl Lines {
    /// Opens `path` for writing (`-`: standard output).
    ///
    /// # Errors
    /// The file cannot be created, with its path.
    pub fn open(path: &Path) -> Result<Lines, String> {
        let out: Box<dyn std::io::Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            let file = std::fs::File::create(path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Box::new(file)
        };
        Ok(Lines(Mutex::new(out)))
    }

    /// Writes one seed's line at once, so a shard killed midway leaves every finished seed.
    fn write(&self, result: &SeedResult) {
        let mut out = self.0.lock().expect("no panic while held");
        let _ = writeln!(out, "{}", result.to_json());
        let _ = out.flush();
    }
}

/// Runs `seeds` with `base`, with a progress bar; each result also goes to `lines`.
pub fn run_seeds(
    base: &SimOptions,
    seeds: &[u64],
    jobs: Option<usize>,
    lines: Option<&Lines>,
) -> Vec<SeedResult> {
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let bar = ProgressBar::new(seeds.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} seeds, {msg} [{elapsed_precise}, eta {eta}]",
        )
        .expect("valid template"),
    );
    let failed = Mutex::new(0u64);
    let results = sweep(base, seeds, jobs, &|result: &SeedResult| {
        if let Some(lines) = lines {
            lines.write(result);
        }
        let mut failed = failed.lock().expect("no panic while held");
        if !result.ok() {
            *failed += 1;
            bar.println(format!(
                "seed {}: {} - {}",
                result.seed,
                result.verdict,
                result.problem.clone().unwrap_or_default()
            ));
        }
        bar.set_message(format!("{} failed", *failed));
        bar.inc(1);
    });
    bar.finish_and_clear();
    results
}

/// The worst exit code of `results`.
pub fn exit_code(results: &[SeedResult]) -> ExitCode {
    ExitCode::from(results.iter().map(|r| r.exit_code).fold(EXIT_HELD, worse))
}

/// `--bug-zoo`: the sweep once per bug switch; per switch, the first seed that caught it, how
/// many did, which checks fired, and the replay command of the first catch. Exits 0 when
/// every switch was caught at least once, 4 when one never was.
pub fn bug_zoo(base: &SimOptions, seeds: &[u64], jobs: Option<usize>) -> ExitCode {
    let mut rows = Vec::new();
    for bug in &BUGS {
        eprintln!("bug {}:", bug.name);
        let workload = if bug.workload == Workload::Kv { base.workload } else { bug.workload };
        let bugs = SimBugs::only(bug.name).expect("a listed bug");
        let options = SimOptions { bugs, workload, ..base.clone() };
        let results = run_seeds(&options, seeds, jobs, None);
        rows.push((bug, results));
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<30} {:>6} {:>9} {:>6}  checks that fired",
        "bug", "first", "caught", "rate"
    );
    let mut all_caught = true;
    for (bug, results) in &rows {
        let caught: Vec<&SeedResult> = results.iter().filter(|r| !r.ok()).collect();
        all_caught &= !caught.is_empty();
        let mut fired: BTreeMap<String, usize> = BTreeMap::new();
        for r in &caught {
            *fired.entry(fired_check(r)).or_default() += 1;
        }
        let fired: Vec<String> = fired.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let first = caught.first().map_or("-".to_string(), |r| r.seed.to_string());
        let rate = 100.0 * caught.len() as f64 / results.len().max(1) as f64;
        let _ = writeln!(
            out,
            "{:<30} {first:>6} {:>9} {rate:>5.0}%  {}",
            bug.name,
            format!("{}/{}", caught.len(), results.len()),
            fired.join(", ")
        );
    }
    let _ = writeln!(out);
    for (bug, results) in &rows {
        let _ = writeln!(out, "{} ({})", bug.name, bug.source);
        match results.iter().find(|r| !r.ok()) {
            Some(r) => {
                let _ = writeln!(out, "  first caught: {}", r.replay);
            }
            None => {
                let _ = writeln!(out, "  never caught on these seeds");
            }
        }
    }
    ExitCode::from(if all_caught { EXIT_HELD } else { EXIT_UNDECIDED })
}

/// The check a failing seed's verdict names first, with the kind of violation where the
/// check has several (`invariants: log matching`).
fn fired_check(result: &SeedResult) -> String {
    let problem = result.problem.clone().unwrap_or_default();
    let (check, detail) = problem.split_once(": ").unwrap_or((&problem, ""));
    match check {
        "invariants" => {
            let kind: String = detail.split([':', '(', ',']).next().unwrap_or("").trim().into();
            format!("invariants ({kind})")
        }
        other => other.to_string(),
    }
}

/// Arguments of `raftbed merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The JSON lines of a sweep's shards (`raftbed sim --seeds A..B --shard I/N --jsonl F`);
    /// `-` reads standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Runs `raftbed merge`: one table for the whole sweep, the failing seeds first; a seed seen
/// twice with different outcomes, a broken line and seeds missing between the lowest and the
/// highest are reported. Exits with the worst seed's code, 2 on unreadable input.
pub fn merge(args: &MergeArgs) -> ExitCode {
    let mut by_seed: BTreeMap<u64, SeedResult> = BTreeMap::new();
    for path in &args.files {
        if let Err(e) = read_lines(path, &mut by_seed) {
            eprintln!("raftbed merge: {e}");
            return ExitCode::from(2);
        }
    }
    let results: Vec<SeedResult> = by_seed.into_values().collect();
    if results.is_empty() {
        eprintln!("raftbed merge: no seeds in the input");
        return ExitCode::from(2);
    }
    print!("{}", table(&results));
    let missing = missing_seeds(&results);
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(20).map(u64::to_string).collect();
        let more = if missing.len() > 20 { ", ..." } else { "" };
        println!(
            "{} seeds missing between the lowest and the highest: {}{more}",
            missing.len(),
            shown.join(", ")
        );
    }
    exit_code(&results)
}

fn read_lines(path: &Path, by_seed: &mut BTreeMap<u64, SeedResult>) -> Result<(), String> {
    let name = path.display().to_string();
    let reader: Box<dyn std::io::BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(path).map_err(|e| format!("cannot read {name}: {e}"))?;
        Box::new(std::io::BufReader::new(file))
    };
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{name}:{}: cannot read: {e}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let result = SeedResult::from_json(&line).map_err(|e| format!("{name}:{}: {e}", i + 1))?;
        if let Some(seen) = by_seed.get(&result.seed)
            && (seen.trace_hash, seen.exit_code) != (result.trace_hash, result.exit_code)
        {
            return Err(format!(
                "{name}:{}: seed {} appears twice with different outcomes (trace {:016x} and {:016x}): shards of different sweeps?",
                i + 1,
                result.seed,
                seen.trace_hash,
                result.trace_hash
            ));
        }
        by_seed.insert(result.seed, result);
    }
    Ok(())
}

/// Seeds between the lowest and the highest that no line gave: a shard that died.
fn missing_seeds(results: &[SeedResult]) -> Vec<u64> {
    let seen: std::collections::BTreeSet<u64> = results.iter().map(|r| r.seed).collect();
    match (seen.first(), seen.last()) {
        (Some(lo), Some(hi)) => (*lo..=*hi).filter(|s| !seen.contains(s)).collect(),
        _ => Vec::new(),
    }
}
