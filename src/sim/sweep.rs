//! Seed sweeps: many runs on every core, a progress bar, a summary, and the replay command of
//! every failing seed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{SimOptions, SimReport, run};

/// The outcome of one seed, kept small (reports hold whole histories).
#[derive(Clone, Debug)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// `OK`, `SAFETY VIOLATION`, `UNDECIDED`, ...
    pub verdict: &'static str,
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
    /// The trace hash.
    pub trace_hash: u64,
    /// Simulated seconds per wall second.
    pub speed: f64,
    /// How to replay it.
    pub replay: String,
}

impl SeedResult {
    fn from(report: &SimReport) -> SeedResult {
        let verdict = report.verdict();
        SeedResult {
            seed: report.options.seed,
            verdict: report.headline(),
            exit_code: verdict.exit_code(),
            problem: verdict.overall().detail().map(|d| d.to_string()),
            ops: report.ops.0,
            faults: report.faults.len(),
            terms: report.leaders.len(),
            trace_hash: report.trace_hash,
            speed: report.speed(),
            replay: report.options.replay_command(),
        }
    }

    /// Whether the seed passed.
    pub fn ok(&self) -> bool {
        self.exit_code == crate::verdict::EXIT_HELD
    }
}

/// Runs `base` with every seed in `seeds` on `jobs` threads; `progress` is called after each.
pub fn sweep(
    base: &SimOptions,
    seeds: std::ops::Range<u64>,
    jobs: usize,
    progress: &(dyn Fn(&SeedResult) + Sync),
) -> Vec<SeedResult> {
    let next = AtomicU64::new(seeds.start);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        break;
                    }
                    let options = SimOptions { seed, ..base.clone() };
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
