//! Simulation speed: simulated seconds per wall second for 5 nodes and 8 clients with
//! partitions and crashes over 60 simulated seconds, for each peer transport. The clients
//! speak the etcd gRPC API, with the lease readers and lock clients of every run.
//!
//! Criterion reports the wall time of one 60 s run; the speed is 60 s divided by it. Each
//! iteration runs the next of four pinned seeds, so the figure averages over fault schedules.

use std::cell::Cell;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use raftbed::sim::nemesis::FaultKind;
use raftbed::sim::{SimOptions, run};
use raftbed::transport::PeerTransport;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sim-60s-5-nodes-8-clients-partition-crash");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    for (name, transport) in
        [("framed-tcp", PeerTransport::Framed), ("grpc-http2", PeerTransport::Grpc)]
    {
        let seed = Cell::new(0u64);
        group.bench_function(name, |b| {
            b.iter(|| {
                let options = SimOptions {
                    faults: vec![FaultKind::Partition, FaultKind::Crash],
                    peer_transport: Some(transport),
                    ..SimOptions::new(1 + seed.get() % 4)
                };
                seed.set(seed.get() + 1);
                let report = run(&options);
                assert!(report.ok(), "{report}");
                report.sim_time
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
