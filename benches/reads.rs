//! Read throughput and latency on a real 5-node cluster on loopback (in-process nodes, real
//! sockets, fsync'd WAL): 64 concurrent clients spread over every endpoint (as etcd's
//! `benchmark` tool spreads its connections), each reading random keys of 1,000 preloaded
//! ones with 256-byte values, at each consistency level:
//!
//! - lease: the leader answers while its lease holds (§6.4.1);
//! - linearizable: ReadIndex, a heartbeat round per batch of reads (§6.4);
//! - serializable: each node answers from its own state (the baseline: no coordination).
//!
//! A follower forwards lease and ReadIndex reads to the leader, so they pay one more hop.
//! Prints ops/s and p50/p99 latency per mode, and each mode's throughput relative to
//! serializable reads measured in the same run. Run: `cargo bench --bench reads`
//! (`RAFTBED_BENCH_OPS` sets the reads per mode, default 40,000).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftbed::client::Client;
use raftbed::server::calls::Consistency;
use raftbed::server::local::LocalCluster;
use raftbed::transport::net::TokioNet;

const CLIENTS: usize = 64;
const THREADS: usize = 4;
const KEYS: u64 = 1000;

fn key(i: u64) -> Bytes {
    Bytes::from(format!("{i:08}"))
}

/// Runs `ops` reads at `consistency` with `CLIENTS` clients; returns (ops/s, latencies).
fn measure(endpoints: &[String], consistency: Consistency, ops: usize) -> (f64, Vec<Duration>) {
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(ops)));
    let per_client = ops / CLIENTS;
    let start = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let endpoints = endpoints.to_vec();
            let latencies = latencies.clone();
            std::thread::spawn(move || {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    let mut tasks = Vec::new();
                    for c in (t..CLIENTS).step_by(THREADS) {
                        let endpoints = endpoints.clone();
                        let latencies = latencies.clone();
                        tasks.push(tokio::task::spawn_local(async move {
                            let mut client = Client::new(TokioNet, endpoints, 0);
                            client.prefer(c);
                            let mut rng = raftbed::rng::SplitMix64::new(c as u64);
                            let mut mine = Vec::with_capacity(per_client);
                            for _ in 0..per_client {
                                let k = key(rng.below(KEYS));
                                let began = Instant::now();
                                let read = client.get(k, Bytes::new(), consistency).await;
                                mine.push(began.elapsed());
                                assert!(
                                    read.is_ok_and(|r| r.kvs.len() == 1),
                                    "a preloaded key reads back"
                                );
                            }
                            latencies.lock().unwrap().extend(mine);
                        }));
                    }
                    for task in tasks {
                        task.await.unwrap();
                    }
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let elapsed = start.elapsed();
    let mut latencies = Arc::try_unwrap(latencies).unwrap().into_inner().unwrap();
    latencies.sort();
    (latencies.len() as f64 / elapsed.as_secs_f64(), latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let ops: usize =
        std::env::var("RAFTBED_BENCH_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(40_000);
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(5, dir.path()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut client = Client::new(TokioNet, cluster.endpoints.clone(), 1);
        client.attempts = 5;
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.put(key(0), Bytes::from(vec![b'v'; 256])).await.is_err() {
            assert!(Instant::now() < deadline, "no leader within 30s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for i in 0..KEYS {
            client.put(key(i), Bytes::from(vec![b'v'; 256])).await.unwrap();
        }
    });
    println!("reads on a 5-node loopback cluster, {CLIENTS} clients, {ops} reads per mode");
    println!("{:<14} {:>10} {:>10} {:>10} {:>12}", "mode", "ops/s", "p50", "p99", "vs serial.");
    let modes = [
        ("serializable", Consistency::Serializable),
        ("lease", Consistency::Lease),
        ("readindex", Consistency::Linearizable),
    ];
    // Warm up connections and caches.
    for (_, consistency) in modes {
        measure(&cluster.endpoints, consistency, CLIENTS * 20);
    }
    let mut baseline = None;
    for (name, consistency) in modes {
        let (rate, latencies) = measure(&cluster.endpoints, consistency, ops);
        let base = *baseline.get_or_insert(rate);
        println!(
            "{name:<14} {rate:>10.0} {:>8.2}ms {:>8.2}ms {:>11.2}x",
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            rate / base
        );
    }
}
