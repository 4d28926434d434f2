//! `raftbed check --format list-append`: Elle-style checking of transactional list-append
//! histories (Jepsen's EDN, or the same fields as JSON lines), against the consistency models
//! `--consistency` names (all of them by default, so the weakest one violated is named).

use std::path::Path;

use jepsen_lite::txn::{self, Anomaly, Model, SearchBudget};

use super::check::{CheckArgs, FileOutcome};

/// Checks one list-append history: exit 0 when it satisfies every model asked about, 1 when
/// it violates one, 2 when the cycle search ran out of budget before finding anything.
pub(super) fn check_list_append(
    args: &CheckArgs,
    path: &Path,
    text: &str,
) -> Result<FileOutcome, String> {
    let file = path.display();
    let started = std::time::Instant::now();
    let first = text.lines().find(|l| !l.trim().is_empty() && !l.starts_with('#'));
    let history = if first.is_some_and(|l| l.trim_start().starts_with("{\"")) {
        txn::read_jsonl(text)
    } else {
        txn::read_edn(text)
    }
    .map_err(|e| format!("{file}:{e}"))?;
    let models = models(args.consistency.as_deref())?;
    let read = started.elapsed();
    let report = txn::check(&history, &models, SearchBudget::default());
    let checked = started.elapsed() - read;
    let code = if !report.valid() {
        1
    } else if report.incomplete {
        2
    } else {
        0
    };
    let stdout = if args.json {
        let line = serde_json::json!({
            "file": file.to_string(),
            "valid": report.valid(),
            "incomplete": report.incomplete,
            "txns": report.txns,
            "edges": report.edges,
            "anomaly_types": report.anomaly_types(),
            "violated": report.violated.iter().map(|m| m.name()).collect::<Vec<_>>(),
            "anomalies": report.anomalies.iter().map(Anomaly::to_string).collect::<Vec<_>>(),
            "read_ms": read.as_millis() as u64,
            "check_ms": checked.as_millis() as u64,
        });
        format!("{line}\n")
    } else {
        let mut out = text_report(&file.to_string(), &history, &report);
        out += &format!(
            "  read in {:.2}s, checked in {:.2}s ({:.0} transactions/s)\n",
            read.as_secs_f64(),
            checked.as_secs_f64(),
            report.txns as f64 / checked.as_secs_f64().max(1e-9)
        );
        out
    };
    Ok(FileOutcome { code, stdout, stderr: String::new() })
}

/// Whether a history's first operations are transactions (`f: "txn"`, or Elle's micro-ops as
/// values): `--format auto` then checks it as list-append.
pub(super) fn looks_transactional(text: &str) -> bool {
    const MARKS: [&str; 6] =
        ["\"f\":\"txn\"", "\"f\": \"txn\"", ":f :txn", "[[:append ", "[[:r ", "[[\"append\","];
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .take(20)
        .any(|line| MARKS.iter().any(|mark| line.contains(mark)))
}

fn models(names: Option<&str>) -> Result<Vec<Model>, String> {
    let Some(names) = names else { return Ok(Model::ALL.to_vec()) };
    names
        .split(',')
        .map(|name| {
            Model::parse(name.trim()).ok_or_else(|| {
                let known: Vec<&str> = Model::ALL.iter().map(|m| m.name()).collect();
                format!("unknown --consistency {name} ({})", known.join(", "))
            })
        })
        .collect()
}

fn text_report(file: &str, history: &txn::TxnHistory, report: &txn::TxnReport) -> String {
    let verdict = match (report.valid(), report.incomplete) {
        (false, _) => "INVALID",
        (true, false) => "valid",
        (true, true) => "unknown (the cycle search ran out of budget)",
    };
    let mut out = format!(
        "{file}: list-append {verdict}: {} transactions, {} dependency edges\n",
        report.txns, report.edges
    );
    if let Some((weakest, stronger)) = report.violated.split_first() {
        out += &format!("  violates {weakest}");
        if !stronger.is_empty() {
            let names: Vec<&str> = stronger.iter().map(|m| m.name()).collect();
            out += &format!("; also {}", names.join(", "));
        }
        out += "\n";
    }
    for anomaly in &report.anomalies {
        out += &format!("  {anomaly}\n");
        if let Anomaly::Cycle { steps, .. } = anomaly {
            for step in steps {
                out += &format!("      {}\n", history.txns[step.from]);
            }
        }
    }
    out
}
