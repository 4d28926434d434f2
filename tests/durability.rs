//! Durability against real processes: five `raftbed node` processes on loopback, writers
//! putting unique keys, and a killer that SIGKILLs a node (the leader every other time) and
//! restarts it on its data dir, 24 times. Afterwards every acknowledged write must be there,
//! read linearizably through the cluster.
//!
//! Goal: fsync before acknowledging, WAL recovery and the commit rule hold with real disks and
//! real SIGKILL. Bounded: about 40 s; hard timeouts on every wait.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftbed::client::Client;
use raftbed::server::calls::Consistency;
use raftbed::transport::net::TokioNet;

const NODES: usize = 5;
const KILLS: usize = 24;

/// A base port whose 2 x NODES ports (client, peer per node, 10 apart) are free now: in
/// 17000-23999, below the ephemeral range (an outgoing connection could take a restarting
/// node's port) and apart from the other real-process tests'.
fn free_base() -> u16 {
    let seed = std::process::id() as u16;
    for attempt in 0..200u16 {
        let base = 17_000 + (seed.wrapping_add(attempt * 97) % 70) * 100;
        let ports: Vec<u16> =
            (1..=NODES as u16).flat_map(|i| [base + 10 * i, base + 10 * i + 1]).collect();
        if ports.iter().all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok()) {
            return base;
        }
    }
    panic!("no free ports");
}

fn spawn(id: usize, endpoints: &[String], dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("n{id}.log")))
        .expect("log");
    Command::new(env!("CARGO_BIN_EXE_raftbed"))
        .args(["node", "--id", &id.to_string(), "--listen", &endpoints[id - 1]])
        .args(["--peers", &endpoints.join(",")])
        // Compact often, so kills land around snapshots too and a restart must find sled at
        // or past the compaction point.
        .args(["--snapshot-count", "5000"])
        // The core's whole-state check after every input, as in the simulator.
        .arg("--validate")
        .arg("--data-dir")
        .arg(dir.join(format!("n{id}")))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("raftbed node starts")
}

async fn leader(endpoints: &[String]) -> Option<usize> {
    let mut client = Client::new(TokioNet, endpoints.to_vec(), 0);
    client.timeout = Duration::from_millis(300);
    for i in 0..endpoints.len() {
        if let Ok(status) = client.status(i).await
            && status.leader != 0
        {
            return Some(status.leader as usize);
        }
    }
    None
}

#[test]
fn sigkill_under_write_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = free_base();
    let endpoints: Vec<String> =
        (1..=NODES).map(|i| format!("127.0.0.1:{}", base as usize + 10 * i)).collect();
    let mut children: Vec<Child> =
        (1..=NODES).map(|id| spawn(id, &endpoints, dir.path())).collect();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let outcome = runtime.block_on(async {
        let start = Instant::now();
        while leader(&endpoints).await.is_none() {
            assert!(start.elapsed() < Duration::from_secs(20), "no leader within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut writers = Vec::new();
        for w in 0..4u64 {
            let (endpoints, acked, stop) = (endpoints.clone(), acked.clone(), stop.clone());
            writers.push(tokio::spawn(async move {
                let mut client = Client::new(TokioNet, endpoints, 100 + w);
                client.timeout = Duration::from_millis(800);
                client.attempts = 5;
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let (key, value) = (format!("d/{w}/{i}"), format!("{w}.{i}"));
                    if client
                        .put(Bytes::from(key.clone()), Bytes::from(value.clone()))
                        .await
                        .is_ok()
                    {
                        acked.lock().unwrap().insert(key, value);
                    }
                }
            }));
        }
        let mut kills = 0;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        while kills < KILLS {
            tokio::time::sleep(Duration::from_millis(600)).await;
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let victim = if kills % 2 == 0 {
                leader(&endpoints).await.unwrap_or(1 + (seed % NODES as u64) as usize)
            } else {
                1 + (seed % NODES as u64) as usize
            };
            children[victim - 1].kill().expect("SIGKILL");
            children[victim - 1].wait().expect("reaped");
            kills += 1;
            tokio::time::sleep(Duration::from_millis(200 + seed % 400)).await;
            children[victim - 1] = spawn(victim, &endpoints, dir.path());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
        }
        // Read everything back, linearizably, through any node.
        let start = Instant::now();
        let mut client = Client::new(TokioNet, endpoints.clone(), 0);
        client.timeout = Duration::from_secs(2);
        client.attempts = 10;
        loop {
            match client
                .get(
                    Bytes::from_static(b"d/"),
                    Bytes::from_static(b"d0"),
                    Consistency::Linearizable,
                )
                .await
            {
                Ok(range) => break (kills, range),
                Err(e) if start.elapsed() < Duration::from_secs(30) => {
                    eprintln!("read back: {}", e.message);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot read back: {}", e.message),
            }
        }
    });
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let (kills, range) = outcome;
    let stored: BTreeMap<String, String> = range
        .kvs
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
            )
        })
        .collect();
    let acked = acked.lock().unwrap();
    assert!(kills >= 20, "{kills} kills");
    assert!(
        acked.len() > 200,
        "only {} writes acknowledged: the cluster was mostly down",
        acked.len()
    );
    let lost: Vec<&String> =
        acked.iter().filter(|(k, v)| stored.get(*k) != Some(v)).map(|(k, _)| k).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost after {kills} SIGKILLs, e.g. {:?} (logs in {})",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)],
        dir.keep().display()
    );
    eprintln!("{kills} SIGKILLs, {} acknowledged writes, all present", acked.len());
}
