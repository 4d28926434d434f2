//! `raftbed check FILE...`: the verdict of jepsen-lite's checker on any history files, in one
//! process, several at once. Exit codes: 0 every file linearizable, 1 one is not, 2 one could
//! not be decided, 3 one is unreadable or malformed (the worst wins: 3, then 1, then 2).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use jepsen_lite::formats::{self, Format};
use jepsen_lite::html::{self, HtmlOptions};
use jepsen_lite::{
    CheckOptions, CheckResult, ModelKind, OpSummary, RegisterModel, Report, Resolved, check,
};
use serde_json::{Value as Json, json};

/// Exit code for input that cannot be checked.
pub const EXIT_MALFORMED: u8 = 3;

/// Arguments of `raftbed check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The history files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// auto, jsonl, edn, jepsen-log or porcupine-kv; watches, for a watch log (`raftbed sim
    /// --watches`) checked by the watch checker; or list-append, for a transactional history
    /// (Jepsen's EDN or JSON lines, `[:append k v]` and `[:r k list]`) checked for Elle's
    /// anomalies.
    #[arg(long, default_value = "auto")]
    format: String,
    /// register, cas-register or kv (default: the one the history fits).
    #[arg(long)]
    model: Option<String>,
    /// Give up on a file after this long, with verdict "unknown" (exit 2).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Print one JSON object per file (one line each) instead of text.
    #[arg(long)]
    pub(super) json: bool,
    /// Also write a self-contained HTML timeline here (one file only).
    #[arg(long)]
    html: Option<PathBuf>,
    /// The fates of the history's indeterminate writes, as `raftbed sim --resolved` and the
    /// reports of `replay` and `test` write them (one file only): committed unconditional
    /// writes must be linearized, uncommitted ones are dropped.
    #[arg(long)]
    resolved: Option<PathBuf>,
    /// Check each file this many times and report the fastest (for benchmarks; the verdict
    /// must be the same every time).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// Files checked at once (default: one per core). With one file, the check itself uses
    /// every core.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    jobs: Option<u32>,
    /// With list-append: the consistency models to check, comma-separated (read-uncommitted,
    /// read-committed, snapshot-isolation, repeatable-read, serializable,
    /// strict-serializable, ...; default all, which names the weakest one violated).
    #[arg(long)]
    pub(super) consistency: Option<String>,
}

/// What checking one file gave: its exit code and what to print.
pub(super) struct FileOutcome {
    pub(super) code: u8,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

/// Runs `raftbed check`.
pub fn run(args: &CheckArgs) -> ExitCode {
    if args.files.len() > 1 && (args.html.is_some() || args.resolved.is_some()) {
        eprintln!("raftbed check: --html and --resolved take a single history file");
        return ExitCode::from(EXIT_MALFORMED);
    }
    let resolved = match args.resolved.as_deref().map(read_resolved).transpose() {
        Ok(resolved) => resolved.map(Arc::new),
        Err(message) => {
            eprintln!("raftbed check: {message}");
            return ExitCode::from(EXIT_MALFORMED);
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.map_or(cores, |j| j as usize).clamp(1, args.files.len());
    // One file gets every core; several share them, one search thread each.
    let threads = if jobs == 1 && args.files.len() == 1 { 0 } else { 1 };
    let outcomes = check_all(args, resolved.as_ref(), jobs, threads);
    let mut worst = 0u8;
    for outcome in &outcomes {
        print!("{}", outcome.stdout);
        eprint!("{}", outcome.stderr);
        worst = worse(worst, outcome.code);
    }
    if outcomes.len() > 1 && !args.json {
        let count = |c: u8| outcomes.iter().filter(|o| o.code == c).count();
        println!(
            "{} files: {} linearizable, {} not linearizable, {} unknown, {} unreadable",
            outcomes.len(),
            count(0),
            count(1),
            count(2),
            count(EXIT_MALFORMED)
        );
    }
    ExitCode::from(worst)
}

/// The worse of two exit codes: malformed input, then a violation, then unknown.
fn worse(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        EXIT_MALFORMED => 3,
        1 => 2,
        2 => 1,
        _ => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// Checks every file on `jobs` threads; the outcomes in the order of the files.
fn check_all(
    args: &CheckArgs,
    resolved: Option<&Arc<Resolved>>,
    jobs: usize,
    threads: usize,
) -> Vec<FileOutcome> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<FileOutcome>>> =
        args.files.iter().map(|_| Mutex::new(None)).collect();
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(file) = args.files.get(i) else { break };
            let outcome = match check_file(args, file, resolved, threads) {
                Ok(outcome) => outcome,
                Err(message) => FileOutcome {
                    code: EXIT_MALFORMED,
                    stdout: String::new(),
                    stderr: format!("raftbed check: {message}\n"),
                },
            };
            *slots[i].lock().expect("no panics while held") = Some(outcome);
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(work);
        }
    });
    slots
        .into_iter()
        .map(|slot| slot.into_inner().expect("no panics while held").expect("every file checked"))
        .collect()
}

fn check_file(
    args: &CheckArgs,
    path: &Path,
    resolved: Option<&Arc<Resolved>>,
    threads: usize,
) -> Result<FileOutcome, String> {
    let file = path.display();
    let parse_started = Instant::now();
    let text = read_text(path)?;
    if args.format == "watches" {
        return check_watches(args, path, &text);
    }
    if args.format == "list-append"
        || (args.format == "auto" && super::check_txn::looks_transactional(&text))
    {
        return super::check_txn::check_list_append(args, path, &text);
    }
    let format = match args.format.as_str() {
        "auto" => formats::detect(&text),
        name => Format::parse(name).ok_or_else(|| {
            format!(
                "unknown --format {name} (auto, jsonl, edn, jepsen-log, porcupine-kv, watches, list-append)"
            )
        })?,
    };
    let history = formats::read(&text, format).map_err(|e| format!("{file}:{e}"))?;
    let parse = parse_started.elapsed();
    let mut model = match &args.model {
        None => format.default_model(&history),
        Some(name) => ModelKind::parse(name)
            .ok_or_else(|| format!("unknown --model {name} (register, cas-register, kv)"))?,
    };
    if format == Format::PorcupineKv && model == ModelKind::Kv {
        model = ModelKind::KvEmptyDefault;
    }
    let options = CheckOptions {
        timeout: args.timeout_ms.map(Duration::from_millis),
        threads,
        resolved: resolved.cloned(),
        ..CheckOptions::default()
    };
    let checker = RegisterModel::new(model);
    let mut runs: Vec<Report> = Vec::new();
    for _ in 0..args.runs {
        let report = check(&checker, &history, &options).map_err(|e| format!("{file}:{e}"))?;
        if let Some(first) = runs.first()
            && first.result.verdict() != report.result.verdict()
        {
            return Err(format!(
                "{file}: the verdict changed between runs ({} then {}): a checker bug",
                first.result.verdict(),
                report.result.verdict()
            ));
        }
        runs.push(report);
    }
    let times: Vec<f64> = runs.iter().map(|r| r.elapsed.as_secs_f64() * 1e3).collect();
    let report = runs.into_iter().min_by_key(|r| r.elapsed).expect("at least one run");
    if let Some(out) = &args.html {
        let options = HtmlOptions { title: format!("{file}"), ..HtmlOptions::default() };
        std::fs::write(out, html::render(&history, Some(&report), &options))
            .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    let stdout = if args.json {
        let mut json = to_json(&report, path, format, model);
        json["parse_ms"] = json!(parse.as_secs_f64() * 1e3);
        if times.len() > 1 {
            json["runs_ms"] = json!(times);
        }
        format!("{json}\n")
    } else {
        format!(
            "{file} ({format}, model {}, parsed in {:.1} ms):\n{report}",
            model.name(),
            parse.as_secs_f64() * 1e3
        )
    };
    let code = match report.result {
        CheckResult::Linearizable => 0,
        CheckResult::NotLinearizable(_) => 1,
        CheckResult::Unknown(_) => 2,
    };
    Ok(FileOutcome { code, stdout, stderr: String::new() })
}

fn read_resolved(path: &Path) -> Result<Resolved, String> {
    let text = read_text(path)?;
    Resolved::parse(&text).map_err(|e| format!("{}:line {}: {}", path.display(), e.line, e.message))
}

/// Reads the file as UTF-8, naming the line of the first invalid byte if it is not.
fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
        format!("{}:line {line}: not UTF-8 (byte {at})", path.display())
    })
}

fn to_json(report: &Report, file: &Path, format: Format, model: ModelKind) -> Json {
    let mut out = json!({
        "verdict": report.result.verdict(),
        "ops": report.ops,
        "checked_ops": report.checked_ops,
        "partitions": report.partitions,
        "elapsed_ms": report.elapsed.as_secs_f64() * 1e3,
        "file": file.display().to_string(),
        "format": format.name(),
        "model": model.name(),
    });
    let r = &report.resolved;
    if r.any() {
        out["resolved"] = json!({
            "mandatory": r.mandatory,
            "dropped": r.dropped,
            "conditional": r.conditional,
            "contradicted": r.contradicted,
        });
    }
    match &report.result {
        CheckResult::NotLinearizable(c) => {
            out["counterexample"] = json!({
                "key": c.key.as_ref().map(|k| k.to_json()),
                "failing_op": c.failing_op.as_ref().map(op_json),
                "window": c.window.iter().map(op_json).collect::<Vec<_>>(),
                "longest_prefix": c.longest_prefix.iter()
                    .map(|(op, state)| json!({"op": op_json(op), "state": state}))
                    .collect::<Vec<_>>(),
            });
        }
        CheckResult::Unknown(reason) => out["reason"] = json!(reason),
        CheckResult::Linearizable => {}
    }
    out
}

fn op_json(op: &OpSummary) -> Json {
    json!({
        "id": op.id,
        "process": op.process,
        "f": op.f,
        "value": op.input.to_json(),
        "output": op.output.as_ref().map(|v| v.to_json()),
        "outcome": format!("{:?}", op.outcome).to_lowercase(),
        "line": op.line,
    })
}

/// Checks a watch log (`raftbed sim --watches`): exit 0 when every stream kept etcd's watch
/// guarantees, 1 when one broke one, 3 when the log is malformed.
fn check_watches(args: &CheckArgs, path: &Path, text: &str) -> Result<FileOutcome, String> {
    let log = jepsen_lite::watch::WatchLog::from_jsonl(text)
        .map_err(|e| format!("{}:{e}", path.display()))?;
    let report = log.check();
    let held = report.violations.is_empty();
    let stdout = if args.json {
        let mut line = report.to_json();
        line["file"] = serde_json::json!(path.display().to_string());
        format!("{line}\n")
    } else {
        let mut out = format!(
            "{}: watch {}: {}\n",
            path.display(),
            if held { "held" } else { "BROKEN" },
            report.summary()
        );
        for violation in &report.violations {
            out += &format!("  {violation}\n");
        }
        out
    };
    Ok(FileOutcome { code: u8::from(!held), stdout, stderr: String::new() })
}
