//! `raftbed check FILE`: the verdict of jepsen-lite's checker on any history file.
//! Exit codes: 0 linearizable, 1 not linearizable, 2 unknown, 3 unreadable or malformed input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use jepsen_lite::formats::{self, Format};
use jepsen_lite::html::{self, HtmlOptions};
use jepsen_lite::{CheckOptions, CheckResult, ModelKind, OpSummary, RegisterModel, Report, check};
use serde_json::{Value as Json, json};

/// Exit code for input that cannot be checked.
pub const EXIT_MALFORMED: u8 = 3;

/// Arguments of `raftbed check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The history file.
    file: PathBuf,
    /// auto, jsonl, edn, jepsen-log or porcupine-kv.
    #[arg(long, default_value = "auto")]
    format: String,
    /// register, cas-register or kv (default: the one the history fits).
    #[arg(long)]
    model: Option<String>,
    /// Give up after this long, with verdict "unknown" (exit 2).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML timeline here.
    #[arg(long)]
    html: Option<PathBuf>,
}

/// Runs `raftbed check`.
pub fn run(args: &CheckArgs) -> ExitCode {
    match run_checked(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("raftbed check: {message}");
            ExitCode::from(EXIT_MALFORMED)
        }
    }
}

fn run_checked(args: &CheckArgs) -> Result<ExitCode, String> {
    let file = args.file.display();
    let text = read_text(&args.file)?;
    let format = match args.format.as_str() {
        "auto" => formats::detect(&text),
        name => Format::parse(name).ok_or_else(|| {
            format!("unknown --format {name} (auto, jsonl, edn, jepsen-log, porcupine-kv)")
        })?,
    };
    let history = formats::read(&text, format).map_err(|e| format!("{file}:{e}"))?;
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
        ..CheckOptions::default()
    };
    let report =
        check(&RegisterModel::new(model), &history, &options).map_err(|e| format!("{file}:{e}"))?;
    if let Some(path) = &args.html {
        let options = HtmlOptions { title: format!("{file}"), ..HtmlOptions::default() };
        std::fs::write(path, html::render(&history, Some(&report), &options))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if args.json {
        println!("{}", to_json(&report, &args.file, format, model));
    } else {
        println!("{file} ({format}, model {}):", model.name());
        print!("{report}");
    }
    Ok(ExitCode::from(match report.result {
        CheckResult::Linearizable => 0,
        CheckResult::NotLinearizable(_) => 1,
        CheckResult::Unknown(_) => 2,
    }))
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
