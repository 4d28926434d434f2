//! Raw speed of the Raft core: commit 10,000 proposals through a 5-node cluster of cores over an
//! in-memory network (`raft::testkit::MemCluster`), no IO. Two shapes:
//! - `one-per-propose`: 64 clients' requests, each its own `propose` call, then the cluster runs
//!   until quiet; repeated until 10,000 are applied on every node.
//! - `batched-64`: the same requests handed over as one `propose_batch` per round (what the
//!   server's group commit does).
//!
//! Throughput is reported as entries per second (criterion's "elem/s").

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use raftbed::raft::testkit::MemCluster;

const PROPOSALS: u64 = 10_000;
const ROUND: u64 = 64;

fn elected_cluster() -> MemCluster {
    let mut cluster = MemCluster::new(5, |config| config.seed = 1);
    while cluster.leader().is_none() {
        cluster.tick_all();
        cluster.stabilize();
    }
    cluster
}

fn commit_all(batched: bool) -> u64 {
    let mut cluster = elected_cluster();
    let leader = cluster.leader().expect("elected");
    let payload = Bytes::from_static(&[7u8; 64]);
    let mut proposed = 0;
    while proposed < PROPOSALS {
        let round = ROUND.min(PROPOSALS - proposed);
        let node = cluster.node(leader);
        if batched {
            node.propose_batch((0..round).map(|_| payload.clone())).expect("leader");
        } else {
            for _ in 0..round {
                node.propose(payload.clone()).expect("leader");
            }
        }
        proposed += round;
        cluster.stabilize();
    }
    let applied: Vec<u64> = cluster.nodes.values().map(|m| m.machine.commands).collect();
    assert!(applied.iter().all(|n| *n == PROPOSALS), "applied {applied:?}");
    applied[0]
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("core-5-nodes-10k-proposals");
    group.throughput(Throughput::Elements(PROPOSALS));
    group.sample_size(20);
    group.bench_function("one-per-propose", |b| b.iter(|| black_box(commit_all(false))));
    group.bench_function("batched-64", |b| b.iter(|| black_box(commit_all(true))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
