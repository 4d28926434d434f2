//! Simulation speed, the three numbers `raftbed sim` prints for itself: "× real time" and wall
//! time per invoked client operation for the default configuration without its watchers (5
//! nodes, 8 clients, 5 lease readers, 2 lock clients, every fault kind, 60 s) on seeds 1..=5, and "× real time" of
//! an idle 5-node cluster (no clients, no faults). The history check is timed apart and left
//! out, as `raftbed sim` reports it. Each configuration runs on the message transport (the
//! default) and on the wire (HTTP/2 over simulated TCP), interleaved, three rounds; the figures
//! are medians, printed with the load average beside them.
//!
//! Targets (issue "Simulator speed and determinism"): ≥100× real time, ≤25 µs per invoked
//! operation, ≥400× idle.

use std::time::Duration;

use raftbed::sim::{SimOptions, SimTransport, run};

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// (× real time, µs per invoked operation) of one run.
fn measure(options: &SimOptions) -> (f64, f64) {
    let report = run(options);
    assert!(report.ok(), "{}\nreplay: {}", report, report.options.replay_command());
    (report.speed(), report.us_per_op())
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument, if any, is ignored.
    let rounds = 3;
    for transport in [SimTransport::Messages, SimTransport::Wire] {
        let (mut speeds, mut per_op, mut idle) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            for seed in 1..=5 {
                // Without watchers: the configuration the targets and earlier numbers are for.
                let options = SimOptions { transport, watchers: 0, ..SimOptions::new(seed) };
                let (speed, us) = measure(&options);
                speeds.push(speed);
                per_op.push(us);
            }
            let quiet = SimOptions {
                clients: 0,
                faults: Vec::new(),
                duration: Duration::from_secs(60),
                transport,
                ..SimOptions::new(1)
            };
            idle.push(measure(&quiet).0);
        }
        println!(
            "sim {transport:?}: {:.0}x real time (median of seeds 1..=5, {rounds} rounds), \
             {:.0} µs per invoked operation, idle 5-node cluster {:.0}x; load average {}",
            median(speeds),
            median(per_op),
            median(idle),
            load_average()
        );
    }
}
