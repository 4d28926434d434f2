//! Membership changes on real processes under load: a cluster of `raftbed node` processes on
//! loopback grows from 3 voters to 5 (a learner added, caught up and promoted; a voter added)
//! and shrinks back to 3 (the leader removed, a voter replaced through one joint change, a
//! voter removed) while 64 clients write, and every acknowledged write is read back at the end.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use raftbed::client::Client;
use raftbed::server::calls::Consistency;
use raftbed::transport::net::TokioNet;

fn raftbed(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftbed")).args(args).output().expect("runs")
}

fn ok(args: &[&str]) -> String {
    let output = raftbed(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "raftbed {args:?} failed: {text}");
    text
}

#[path = "support/cluster.rs"]
mod cluster;
use cluster::Down;

/// A base port for 8 nodes, free now: in 17000-23999, apart from the other loopback tests' ranges.
fn free_base() -> u16 {
    cluster::free_base(17000, 8)
}

/// The node that leads now, from `cluster status`.
fn leader(dir: &str) -> String {
    for _ in 0..50 {
        let status = raftbed(&["cluster", "status", "--data-dir", dir]);
        let text = String::from_utf8_lossy(&status.stdout).into_owned();
        if let Some(line) = text.lines().find(|l| l.contains(" leader ")) {
            return line.split_whitespace().next().expect("a node").to_string();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no leader");
}

/// Writes unique keys from `clients` sessions until `stop`; the acknowledged ones.
fn load(endpoints: Vec<String>, clients: u64, stop: Arc<AtomicBool>) -> Vec<(String, String)> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let tasks: Vec<_> = (1..=clients)
            .map(|c| {
                let (endpoints, stop, acked) = (endpoints.clone(), stop.clone(), acked.clone());
                tokio::task::spawn_local(async move {
                    let mut client = Client::new(TokioNet, endpoints, c);
                    client.prefer(c as usize);
                    client.timeout = Duration::from_secs(2);
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let (key, value) = (format!("c{c}/{n}"), format!("v{n}"));
                        let put = client.put(Bytes::from(key.clone()), Bytes::from(value.clone()));
                        if put.await.is_ok() {
                            acked.lock().unwrap().push((key, value));
                        } else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    });
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

/// Every acknowledged write, read back through a linearizable read: the keys that are missing
/// or hold another value.
fn lost(endpoints: Vec<String>, acked: &[(String, String)]) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut client = Client::new(TokioNet, endpoints, 0);
        client.attempts = 10;
        let mut lost = Vec::new();
        for (key, value) in acked {
            let got = client
                .get(Bytes::from(key.clone()), Bytes::new(), Consistency::Linearizable)
                .await
                .unwrap_or_else(|e| panic!("reading {key} back: {}", e.message));
            let found = got.kvs.first().map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
            if found.as_deref() != Some(value.as_str()) {
                lost.push(format!("{key}={value} (found {found:?})"));
            }
        }
        lost
    })
}

#[test]
fn a_cluster_grows_to_five_and_shrinks_to_three_under_load_without_losing_a_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let d = dir.to_str().unwrap();
    let base = free_base();
    ok(&[
        "cluster",
        "up",
        "--nodes",
        "3",
        "--data-dir",
        d,
        "--base-port",
        &base.to_string(),
        "--detach",
    ]);
    let _down = Down(&dir);
    // Every endpoint a node may have during the test: clients move on from those not serving.
    let endpoints: Vec<String> =
        (1..=6u16).map(|i| format!("127.0.0.1:{}", base + 10 * i)).collect();
    // A node the cluster has not added cannot join it.
    let stranger = tmp.path().join("stranger");
    let listen = format!("127.0.0.1:{}", base + 80);
    let refused = Command::new(env!("CARGO_BIN_EXE_raftbed"))
        .args(["node", "--listen", &listen, "--join", &endpoints[..3].join(","), "--data-dir"])
        .arg(&stranger)
        .output()
        .unwrap();
    let refusal = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{refusal}");
    let named = refusal.contains("no member has the peer URL");
    assert!(named && refusal.contains("add it first"), "{refusal}");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (endpoints, stop) = (endpoints.clone(), stop.clone());
        std::thread::spawn(move || load(endpoints, 64, stop))
    };
    std::thread::sleep(Duration::from_secs(2));
    let mut said = Vec::new();
    said.push(ok(&["cluster", "add", "--learner", "--data-dir", d]));
    said.push(ok(&["cluster", "promote", "n4", "--data-dir", d]));
    said.push(ok(&["cluster", "add", "--data-dir", d]));
    // A member's peer URLs cannot become another's.
    let n4 = said[0].split("(member ").nth(1).and_then(|rest| rest.split(')').next()).unwrap();
    let update = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints[..3].join(",")))
        .args(["member", "update", n4, &format!("--peer-urls=http://127.0.0.1:{}", base + 51)])
        .output()
        .expect("etcdctl runs (.ci/test installs etcd-client)");
    let refusal = String::from_utf8_lossy(&update.stderr);
    assert!(refusal.contains("Error: etcdserver: Peer URLs already exists"), "{refusal}");
    let grown = ok(&["cluster", "status", "--data-dir", d]);
    let voters = grown.lines().filter(|l| l.contains("leader") || l.contains("follower"));
    assert_eq!(voters.count(), 5, "five voters after growing:\n{grown}");
    std::thread::sleep(Duration::from_secs(1));
    let first = leader(d);
    said.push(ok(&["cluster", "remove", &first, "--data-dir", d]));
    let second = leader(d);
    let replaced = ["n1", "n2", "n3", "n4"].into_iter().find(|n| *n != first && *n != second);
    said.push(ok(&["cluster", "replace", replaced.unwrap(), "--data-dir", d]));
    let third = leader(d);
    let removed = ["n1", "n2", "n3", "n4", "n5"]
        .into_iter()
        .find(|n| ![first.as_str(), third.as_str(), replaced.unwrap()].contains(n));
    said.push(ok(&["cluster", "remove", removed.unwrap(), "--data-dir", d]));
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let acked = writer.join().expect("the writers finish");
    let shrunk = ok(&["cluster", "status", "--data-dir", d]);
    let serving = shrunk.lines().filter(|l| l.contains("leader") || l.contains("follower"));
    assert_eq!(serving.count(), 3, "three voters after shrinking:\n{shrunk}");
    assert_eq!(shrunk.matches("removed from the cluster").count(), 3, "{shrunk}");
    assert!(acked.len() > 100, "the load ran: {} writes acknowledged", acked.len());
    // A removed member never starts again on its data dir: one of the bootstrap nodes was
    // removed (three of the five voters were, and only two joined).
    let bootstrap: Vec<String> = endpoints[..3].to_vec();
    let removed_slots = [first.as_str(), replaced.unwrap(), removed.unwrap()];
    let slot = removed_slots
        .iter()
        .map(|n| n.trim_start_matches('n').parse::<usize>().unwrap())
        .find(|slot| *slot <= 3)
        .expect("a bootstrap node was removed");
    let gone = format!("n{slot}");
    let again = Command::new(env!("CARGO_BIN_EXE_raftbed"))
        .args(["node", "--id", &slot.to_string(), "--listen", &bootstrap[slot - 1]])
        .args(["--peers", &bootstrap.join(","), "--data-dir"])
        .arg(dir.join(&gone))
        .output()
        .unwrap();
    let said_again = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{said_again}");
    assert!(said_again.contains("permanently removed"), "{said_again}");
    let lost = lost(endpoints, &acked);
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {:?}\nsteps: {said:#?}\n{shrunk}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
    println!("{} writes acknowledged and read back; {said:#?}", acked.len());
}
