//! Seed sweeps: many runs on every core, each seed's outcome as one JSON line (so shards of a
//! sweep run on many machines merge into one table), and the table itself: every seed, the
//! failing ones first with their replay commands, the coverage each situation got, and the
//! worst safety margins with the seeds that had them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::coverage::{self, Coverage, Margins};
use super::{SimOptions, SimReport, run};

/// The outcome of one seed, kept small (reports hold whole histories).
#[derive(Clone, Debug, PartialEq)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// The world it ran: nodes, clients, faults, bugs, ...
    pub configuration: serde_json::Value,
    /// `OK`, `SAFETY VIOLATION`, `UNDECIDED`, ...
    pub verdict: String,
    /// Its exit code: 0 held, 1 violated, 4 undecided.
    pub exit_code: u8,
    /// The first problem, if any.
    pub problem: Option<String>,
    /// Client operations invoked.
    pub ops: usize,
    /// Faults injected.
    pub faults: usize,
    /// Terms with a leader.
    pub terms: usize,
    /// What it reached.
    pub coverage: Coverage,
    /// How close it came.
    pub margins: Margins,
    /// The trace hash.
    pub trace_hash: u64,
    /// Simulated seconds per wall second.
    pub speed: f64,
    /// How to replay it.
    pub replay: String,
}

impl SeedResult {
    /// The outcome of `report`.
    pub fn from(report: &SimReport) -> SeedResult {
        let verdict = report.verdict();
        let o = &report.options;
        let configuration = serde_json::json!({
            "swarm": o.swarm.is_some(),
            "nodes": o.nodes,
            "clients": o.clients,
            "workload": o.workload.name(),
            "append_clients": o.append_clients,
            "lock_clients": o.lock_clients,
            "watchers": o.watchers,
            "faults": o.faults.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "fault_gap_max_ms": o.density.gap_max.as_millis() as u64,
            "fault_length_max_ms": o.density.length_max.as_millis() as u64,
            "figure8_share": o.density.figure8,
            "bridge_share": o.density.bridge,
            "skew_share": o.density.skew,
            "skewed_cut_share": o.density.skewed_cut,
            "history_kept": o.history_kept,
            "duration_ms": o.duration.as_millis() as u64,
            "bugs": o.bugs.names(),
        });
        SeedResult {
            seed: o.seed,
            configuration,
            verdict: report.headline().to_string(),
            exit_code: verdict.exit_code(),
            problem: verdict.overall().detail().map(|d| d.to_string()),
            ops: report.ops.0,
            faults: report.faults.len(),
            terms: report.leaders.len(),
            coverage: report.coverage.clone(),
            margins: report.margins,
            trace_hash: report.trace_hash,
            speed: report.speed(),
            replay: o.replay_command(),
        }
    }

    /// Whether the seed passed.
    pub fn ok(&self) -> bool {
        self.exit_code == crate::verdict::EXIT_HELD
    }

    /// One JSON line (`--jsonl`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "seed": self.seed,
            "configuration": self.configuration,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "problem": self.problem,
            "ops": self.ops,
            "faults": self.faults,
            "terms": self.terms,
            "coverage": self.coverage.to_json(),
            "margins": self.margins.to_json(),
            "trace_hash": format!("{:016x}", self.trace_hash),
            "speed": self.speed,
            "replay": self.replay,
        })
    }

    /// Reads one line `to_json` wrote.
    ///
    /// # Errors
    /// Not JSON, or a field missing or of the wrong type (named).
    pub fn from_json(line: &str) -> Result<SeedResult, String> {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let field = |name: &str| value.get(name).ok_or_else(|| format!("no {name:?} field"));
        let u64_of = |name: &str| {
            field(name)?.as_u64().ok_or_else(|| format!("{name:?} is not a whole number"))
        };
        let str_of = |name: &str| {
            field(name)?
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{name:?} is not a string"))
        };
        let hash = str_of("trace_hash")?;
        Ok(SeedResult {
            seed: u64_of("seed")?,
            configuration: field("configuration")?.clone(),
            verdict: str_of("verdict")?,
            exit_code: u8::try_from(u64_of("exit_code")?)
                .map_err(|_| "\"exit_code\" is past 255".to_string())?,
            problem: value.get("problem").and_then(|p| p.as_str()).map(str::to_string),
            ops: u64_of("ops")? as usize,
            faults: u64_of("faults")? as usize,
            terms: u64_of("terms")? as usize,
            coverage: Coverage::from_json(field("coverage")?),
            margins: Margins::from_json(field("margins")?),
            trace_hash: u64::from_str_radix(&hash, 16)
                .map_err(|_| format!("\"trace_hash\" {hash:?} is not hexadecimal"))?,
            speed: field("speed")?.as_f64().ok_or("\"speed\" is not a number")?,
            replay: str_of("replay")?,
        })
    }
}

/// Runs `base` with every seed in `seeds` on `jobs` threads; `progress` is called after each.
pub fn sweep(
    base: &SimOptions,
    seeds: &[u64],
    jobs: usize,
    progress: &(dyn Fn(&SeedResult) + Sync),
) -> Vec<SeedResult> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                while let Some(seed) = seeds.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let options = SimOptions { seed: *seed, ..base.clone() };
                    let result = SeedResult::from(&run(&options));
                    progress(&result);
                    results.lock().expect("no panic while held").push(result);
                }
            });
        }
    });
    let mut results = results.into_inner().expect("no panic while held");
    results.sort_by_key(|r| r.seed);
    results
}

/// The sweep's table: the failing seeds first, then the rest, each in seed order; then the
/// coverage of each situation and the worst margins, with the seeds that had them.
pub fn table(results: &[SeedResult]) -> String {
    let mut out = format!(
        "{:>6}  {:<22} {:>6} {:>6} {:>6} {:>7}  trace-hash\n",
        "seed", "verdict", "ops", "faults", "terms", "speed"
    );
    let (failing, passing): (Vec<&SeedResult>, Vec<&SeedResult>) =
        results.iter().partition(|r| !r.ok());
    for r in failing.iter().chain(&passing) {
        out += &format!(
            "{:>6}  {:<22} {:>6} {:>6} {:>6} {:>6.0}x  {:016x}\n",
            r.seed, r.verdict, r.ops, r.faults, r.terms, r.speed, r.trace_hash
        );
    }
    out += &format!("\n{}", coverage_table(results));
    out += &format!("\n{} of {} seeds passed\n", passing.len(), results.len());
    for r in &failing {
        out += &format!(
            "{} seed {}: {}\n  replay: {}\n",
            r.verdict,
            r.seed,
            r.problem.clone().unwrap_or_default(),
            r.replay
        );
    }
    out
}

/// Per situation, how many seeds reached it and how often; then the worst margins.
pub fn coverage_table(results: &[SeedResult]) -> String {
    let mut out = format!("{:<26} {:>13} {:>10}\n", "situation", "seeds reached", "total");
    for name in coverage::names() {
        let seeds = results.iter().filter(|r| r.coverage.count(name) > 0).count();
        let total: u64 = results.iter().map(|r| r.coverage.count(name)).sum();
        let reached = format!("{seeds}/{}", results.len());
        out += &format!("{name:<26} {reached:>13} {total:>10}\n");
    }
    let worst = |margin: fn(&SeedResult) -> Option<i64>| {
        results.iter().filter_map(|r| margin(r).map(|m| (m, r))).min_by_key(|(m, r)| (*m, r.seed))
    };
    out += &match worst(|r| r.margins.lease_slack_us) {
        Some((us, r)) => format!(
            "smallest lease slack: {} ms, seed {} ({})\n",
            coverage::ms(us),
            r.seed,
            r.replay
        ),
        None => "smallest lease slack: no seed had a lease outlived by a newer leader\n".into(),
    };
    out += &match worst(|r| r.margins.fence_gap) {
        Some((gap, r)) => {
            format!(
                "closest refused token: {gap} below the highest, seed {} ({})\n",
                r.seed, r.replay
            )
        }
        None => "closest refused token: no seed had a write refused\n".into(),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(seed: u64, exit_code: u8, slack: Option<i64>) -> SeedResult {
        let mut coverage = Coverage::default();
        coverage.node(crate::server::events::NodeEvent::LeaseRead);
        SeedResult {
            seed,
            configuration: serde_json::json!({ "nodes": 5 }),
            verdict: if exit_code == 0 { "OK" } else { "SAFETY VIOLATION" }.into(),
            exit_code,
            problem: (exit_code != 0).then(|| "invariants: broken".into()),
            ops: 10,
            faults: 2,
            terms: 3,
            coverage,
            margins: Margins { lease_slack_us: slack, fence_gap: None },
            trace_hash: 0xabc,
            speed: 50.0,
            replay: format!("raftbed sim --seed {seed}"),
        }
    }

    #[test]
    fn a_result_survives_its_json_line_and_a_broken_line_names_its_field() {
        let r = result(7, 1, Some(-250));
        assert_eq!(SeedResult::from_json(&r.to_json().to_string()), Ok(r));
        let broken = r#"{"seed": 1, "configuration": {}, "verdict": "OK"}"#;
        assert_eq!(SeedResult::from_json(broken).unwrap_err(), "no \"trace_hash\" field");
        assert!(SeedResult::from_json("{oops").unwrap_err().starts_with("not JSON"));
    }

    #[test]
    fn the_table_puts_failing_seeds_first_and_names_the_worst_margin() {
        let table = table(&[result(1, 0, Some(900)), result(2, 1, Some(40)), result(3, 0, None)]);
        let rows: Vec<&str> = table.lines().skip(1).take(3).collect();
        assert!(rows[0].trim_start().starts_with("2 "), "{table}");
        let row = |l: &str| l.split_whitespace().collect::<Vec<_>>() == ["lease-read", "3/3", "3"];
        assert!(table.lines().any(row), "{table}");
        assert!(table.contains("smallest lease slack: 0.0 ms, seed 2"), "{table}");
        assert!(table.contains("2 of 3 seeds passed"), "{table}");
    }
}
