//! Determinism at every size and load: a seed's trace hash depends on the seed and the
//! configuration, never on the machine.
//!
//! Goal: no wall clock, thread schedule, hash order or OS randomness reaches simulated
//! behaviour, on either transport. Method: seven configurations (1, 8, 32 and 64 clients at 5
//! nodes; 3 and 9 nodes at 8 clients; 64 clients again while spinning threads keep every core
//! busy), plus the wire transport at 64 clients under the same load, each run twice in this one
//! process (so process-wide counters, such as tokio's task ids, differ between the runs) with a
//! 20 s fault phase and the history check off; the two hashes must match. The sources found and
//! how each is neutralised are listed in the README ("Determinism").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use raftbed::sim::{CheckBudget, SimOptions, SimTransport, run};

/// Keeps every core busy until dropped.
struct Spinners {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Spinners {
    fn start() -> Spinners {
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..cores)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        Spinners { stop, threads }
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn options(seed: u64, nodes: usize, clients: usize, transport: SimTransport) -> SimOptions {
    SimOptions {
        nodes,
        clients,
        duration: Duration::from_secs(20),
        transport,
        // The history is not part of the trace; its check only costs time here.
        check: CheckBudget { timeout: Duration::ZERO, memory_bytes: 0 },
        ..SimOptions::new(seed)
    }
}

/// Runs `options` twice (the second time under load when `busy`): both hashes, and the run.
fn twice(options: &SimOptions, busy: bool) -> (u64, u64) {
    let first = run(options);
    assert!(first.ops.0 > 50, "{}: too few operations to mean anything", options.replay_command());
    let second = {
        let _load = busy.then(Spinners::start);
        run(options)
    };
    (first.trace_hash, second.trace_hash)
}

#[test]
fn every_configuration_replays_its_trace_at_any_load() {
    let messages = SimTransport::Messages;
    let configurations = [
        (options(1, 5, 1, messages), false),
        (options(1, 5, 8, messages), false),
        (options(1, 5, 32, messages), false),
        (options(1, 5, 64, messages), false),
        (options(1, 3, 8, messages), false),
        (options(1, 9, 8, messages), false),
        (options(1, 5, 64, messages), true),
        (options(1, 5, 64, SimTransport::Wire), true),
    ];
    let mut diverged = Vec::new();
    for (options, busy) in &configurations {
        let (first, second) = twice(options, *busy);
        if first != second {
            let load = if *busy { " (second run on a busy machine)" } else { "" };
            diverged.push(format!(
                "{}{load}: {first:016x} then {second:016x}",
                options.replay_command()
            ));
        }
    }
    assert!(diverged.is_empty(), "traces that did not replay:\n{}", diverged.join("\n"));
}
