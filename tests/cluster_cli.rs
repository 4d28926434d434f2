//! `raftbed cluster`, `raftbed nemesis` and `raftbed node` as a user runs them: real processes
//! on loopback (a free port range), etcdctl against them, faults injected live, and bad input
//! refused with a clear error and no data touched.

use std::process::{Command, Output};

fn raftbed(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftbed")).args(args).output().expect("runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[path = "support/cluster.rs"]
mod cluster;
use cluster::Down;

/// A base port for 5 nodes, free now: in 10000-16999, below the ephemeral range and apart
/// from `raftbed test`'s and the durability test's.
fn free_base() -> u16 {
    cluster::free_base(10000, 5)
}

fn etcdctl(endpoints: &str, args: &[&str]) -> Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--command-timeout=2s")
        .args(args)
        .output()
        .expect("etcdctl runs (.ci/test installs etcd-client)")
}

#[test]
fn a_cluster_comes_up_serves_etcdctl_and_takes_live_faults() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let d = dir.to_str().unwrap();
    let base = free_base().to_string();
    let up = raftbed(&["cluster", "up", "--data-dir", d, "--base-port", &base, "--detach"]);
    let _down = Down(&dir);
    assert!(up.status.success(), "{}", text(&up));
    let out = text(&up);
    assert!(out.contains("5 nodes up, leader n"), "{out}");
    let line =
        out.lines().find(|l| l.starts_with("etcdctl --endpoints=")).expect("the etcdctl line");
    let endpoints =
        line.split_whitespace().nth(1).unwrap().trim_start_matches("--endpoints=").to_string();
    let all: Vec<&str> = endpoints.split(',').collect();

    // The leader holds its lease while healthy (retried: the first round may be in flight).
    let held = (0..20).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        text(&raftbed(&["cluster", "status", "--data-dir", d])).contains("held, ")
    });
    assert!(held, "{}", text(&raftbed(&["cluster", "status", "--data-dir", d])));

    let put = etcdctl(&endpoints, &["put", "k", "v1"]);
    assert!(text(&put).contains("OK"), "{}", text(&put));
    let get = etcdctl(all[2], &["get", "k", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "v1");

    // A minority cannot write; the majority can.
    let cut = raftbed(&["nemesis", "--data-dir", d, "partition", "n1,n2", "n3,n4,n5"]);
    assert!(cut.status.success(), "{}", text(&cut));
    std::thread::sleep(std::time::Duration::from_secs(2));
    let minority =
        raftbed(&["kv", "--endpoints", all[0], "--timeout", "1s", "put", "k", "minority"]);
    assert_eq!(minority.status.code(), Some(2), "{}", text(&minority));
    let majority = raftbed(&["kv", "--endpoints", all[3], "put", "k", "v2"]);
    assert!(majority.status.success(), "{}", text(&majority));
    assert!(raftbed(&["nemesis", "--data-dir", d, "heal"]).status.success());

    // Kill the leader, restart it; the data is still there.
    let killed = raftbed(&["cluster", "kill-leader", "--data-dir", d]);
    assert!(killed.status.success(), "{}", text(&killed));
    let victim =
        String::from_utf8_lossy(&killed.stdout).split_whitespace().next().unwrap().to_string();
    let again = raftbed(&["nemesis", "--data-dir", d, "restart", &victim]);
    assert!(again.status.success(), "{}", text(&again));
    let pause = raftbed(&["nemesis", "--data-dir", d, "pause", "n2"]);
    assert!(pause.status.success(), "{}", text(&pause));
    let get = raftbed(&["kv", "--endpoints", &endpoints, "get", "k"]);
    assert!(text(&get).contains("v2"), "{}", text(&get));
    assert!(raftbed(&["nemesis", "--data-dir", d, "resume", "n2"]).status.success());
    assert!(raftbed(&["nemesis", "--data-dir", d, "clock", "n1", "+1s"]).status.success());
    let status = raftbed(&["cluster", "status", "--data-dir", d]);
    assert!(text(&status).contains("leader"), "{}", text(&status));

    // Bad input: a port in use, a node on another's data dir, an unknown node, a bad jump.
    let twice = raftbed(&["cluster", "up", "--data-dir", d, "--base-port", &base, "--detach"]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(text(&twice).contains("not free"), "{}", text(&twice));
    let n1 = dir.join("n1");
    let foreign = raftbed(&[
        "node",
        "--id",
        "2",
        "--listen",
        all[1],
        "--peers",
        &endpoints,
        "--data-dir",
        n1.to_str().unwrap(),
    ]);
    assert_eq!(foreign.status.code(), Some(2));
    assert!(text(&foreign).contains("belongs to another node"), "{}", text(&foreign));
    assert!(n1.join("raftbed-identity").exists(), "nothing deleted");
    for bad in [vec!["kill", "n9"], vec!["clock", "n1", "-1s"], vec!["partition", "n1", "n1,n2"]] {
        let mut args = vec!["nemesis", "--data-dir", d];
        args.extend(bad.iter().copied());
        let out = raftbed(&args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out));
    }
    let before = text(&raftbed(&["cluster", "status", "--data-dir", d]));
    let down = raftbed(&["cluster", "down", "--data-dir", d]);
    let logs: Vec<String> = (1..=5)
        .map(|n| {
            let log = std::fs::read_to_string(dir.join(format!("n{n}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            format!("n{n}.log ends: {:?}", tail)
        })
        .collect();
    assert!(
        text(&down).contains("stopped 5 nodes"),
        "{}\nstatus before: {before}\n{}",
        text(&down),
        logs.join("\n")
    );
    assert!(n1.join("raftbed-identity").exists(), "down keeps the data");

    // A torn tail on n1 is cut; damage early in n2's log is refused, and the file left alone.
    let segments = |node: &str| {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(node))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        files.sort();
        files
    };
    let torn = segments("n1").pop().unwrap();
    let mut tail = std::fs::read(&torn).unwrap();
    tail.extend_from_slice(b"\x20\x00\x00\x00half-written record");
    std::fs::write(&torn, tail).unwrap();
    let damaged = segments("n2").remove(0);
    let original = std::fs::read(&damaged).unwrap();
    let mut bytes = original.clone();
    bytes[40] ^= 0xff;
    std::fs::write(&damaged, &bytes).unwrap();
    let refused = raftbed(&["cluster", "up", "--data-dir", d, "--base-port", &base, "--detach"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("corrupt at byte"), "{}", text(&refused));
    assert_eq!(std::fs::read(&damaged).unwrap(), bytes, "the damaged log is left as it was");
    std::fs::write(&damaged, &original).unwrap();
    let up = raftbed(&["cluster", "up", "--data-dir", d, "--base-port", &base, "--detach"]);
    assert!(up.status.success(), "{}", text(&up));
    let get = raftbed(&["kv", "--endpoints", &endpoints, "get", "k"]);
    assert!(text(&get).contains("v2"), "nothing acknowledged was lost: {}", text(&get));
}

#[test]
fn a_jepsen_style_run_against_real_processes_is_linearizable_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report");
    let output = raftbed(&[
        "test",
        "--time",
        "30s",
        "--faults",
        "partition,kill",
        "--report",
        report.to_str().unwrap(),
    ]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("linearizable: yes"), "{out}");
    assert!(out.contains("split brain:  no"), "{out}");
    let history = std::fs::read_to_string(report.join("history.jsonl")).unwrap();
    assert!(history.lines().count() > 1000, "a real workload ran");
    // The writes' fates, read from the stopped nodes' logs: every acknowledged write of the
    // history is committed, so the check with them is the check the run reported.
    let resolved = std::fs::read_to_string(report.join("resolved.jsonl")).unwrap();
    assert!(resolved.matches("\"committed\":true").count() > 500, "{}", &resolved[..200]);
    let check = Command::new(env!("CARGO_BIN_EXE_raftbed"))
        .arg("check")
        .arg(report.join("history.jsonl"))
        .arg("--resolved")
        .arg(report.join("resolved.jsonl"))
        .arg("--json")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(json["verdict"], "linearizable", "{json}");
    assert_eq!(json["resolved"]["contradicted"].as_u64().unwrap_or(0), 0, "{json}");
    // The watchers' streams, checked again offline against the committed history and the
    // nodes' own leader timelines.
    let watches = Command::new(env!("CARGO_BIN_EXE_raftbed"))
        .args(["check", "--format", "watches"])
        .arg(report.join("watches.jsonl"))
        .output()
        .unwrap();
    assert!(watches.status.success(), "{}", text(&watches));
    let log = std::fs::read_to_string(report.join("watches.jsonl")).unwrap();
    assert!(log.contains("\"leaders\"") && log.contains("\"received\""), "{}", &log[..200]);
    assert!(out.contains("watch held"), "{out}");
    let trace = std::fs::read_to_string(report.join("trace.txt")).unwrap();
    assert!(trace.contains("nemesis "), "faults were injected");
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("class=\"fault\""), "the faults are drawn");
    assert!(html.contains("<h3>Watches</h3>"), "the watch verdict is in the report");
    // Every node is gone, those the nemesis restarted included.
    let dir = out.split("nodes up in ").nth(1).and_then(|rest| rest.split(',').next()).unwrap();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(" node ") && cmdline.contains(dir))
        .collect();
    assert!(left.is_empty(), "node processes left running on {dir}: {left:?}");
}

#[test]
fn raftbed_test_checks_list_append_transactions_on_real_processes() {
    // The simulator's append workload on real sockets, with a leader killed meanwhile: every
    // transaction is checked for Elle's anomalies and the history file carries them.
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report");
    let output = raftbed(&[
        "test",
        "--time",
        "8s",
        "--faults",
        "kill",
        "--workload",
        "append",
        "--report",
        report.to_str().unwrap(),
    ]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    let line = out.lines().find(|l| l.starts_with("transactions: ")).expect("a transactions line");
    assert!(line.ends_with("list-append transactions, valid"), "{out}");
    let count: usize = line["transactions: ".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!(count > 500, "a real workload ran: {out}");
    let check = Command::new(env!("CARGO_BIN_EXE_raftbed"))
        .args(["check", "--format", "list-append"])
        .arg(report.join("history.jsonl"))
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
}

#[test]
fn raftbed_test_changes_the_membership_while_the_workload_runs() {
    // Two spares beside three voters: seed 2 draws replacements (a voter crashed, removed, and
    // a spare added as a voter), asked of the leader's core through its admin port.
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report");
    let output = raftbed(&[
        "test",
        "--nodes",
        "3",
        "--time",
        "20s",
        "--faults",
        "member",
        "--seed",
        "2",
        "--report",
        report.to_str().unwrap(),
    ]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("linearizable: yes"), "{out}");
    assert!(out.contains("5 nodes up"), "three voters and two spares: {out}");
    let trace = std::fs::read_to_string(report.join("trace.txt")).unwrap();
    let changes: Vec<&str> = trace.lines().filter(|l| l.contains(": appended at ")).collect();
    assert!(changes.iter().any(|l| l.contains("nemesis remove n")), "{trace}");
    assert!(changes.iter().any(|l| l.contains("nemesis add voter n")), "{trace}");
    assert!(
        out.contains("watch held"),
        "the committed log replays without its configurations: {out}"
    );
}

#[test]
fn a_naive_failover_cluster_serves_etcdctl_and_its_monitor_promotes_a_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("naive");
    let d = dir.to_str().unwrap();
    let base = free_base();
    let up = raftbed(&[
        "cluster",
        "up",
        "--nodes",
        "3",
        "--system",
        "naive-failover",
        "--failover-after",
        "1s",
        "--monitor-interval",
        "300ms",
        "--data-dir",
        d,
        "--base-port",
        &base.to_string(),
        "--detach",
    ]);
    let _down = Down(&dir);
    assert!(up.status.success(), "cluster up --system naive-failover: {}", text(&up));
    assert!(text(&up).contains("failover monitor runs as pid"), "{}", text(&up));
    let all: Vec<String> = (1..=3).map(|i| format!("127.0.0.1:{}", base + 10 * i)).collect();
    let put = etcdctl(&all.join(","), &["put", "k", "v1"]);
    assert!(put.status.success(), "etcdctl put on the primary: {}", text(&put));

    // The primary dies; the monitor promotes a replica, which serves what it had copied.
    let killed = raftbed(&["cluster", "kill-leader", "--data-dir", d]);
    assert!(killed.status.success(), "{}", text(&killed));
    assert!(text(&killed).starts_with("n1 "), "n1 was the first primary: {}", text(&killed));
    let replicas = all[1..].join(",");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let put = etcdctl(&replicas, &["put", "k", "v2"]);
        if put.status.success() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no replica promoted: {}", text(&put));
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let get = etcdctl(&replicas, &["get", "k", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "v2", "{}", text(&get));
    let log = std::fs::read_to_string(dir.join("monitor.log")).unwrap_or_default();
    assert!(log.contains("promotes"), "the monitor says what it did: {log}");

    let down = raftbed(&["cluster", "down", "--data-dir", d]);
    assert!(down.status.success(), "{}", text(&down));
    let monitor_left = std::process::Command::new("pgrep")
        .args(["-f", &format!("monitor --nodes 127.0.0.1:{}", base + 11)])
        .output()
        .expect("pgrep runs");
    assert!(!monitor_left.status.success(), "cluster down stops the monitor too");
}

#[test]
fn a_snapshot_of_a_loaded_cluster_restores_a_new_cluster_with_every_key_at_its_revision() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let d = dir.to_str().unwrap();
    let base = free_base();
    let up =
        raftbed(&["cluster", "up", "--data-dir", d, "--base-port", &base.to_string(), "--detach"]);
    let _down = Down(&dir);
    assert!(up.status.success(), "cluster up: {}", text(&up));
    let all: Vec<String> = (1..=5).map(|i| format!("127.0.0.1:{}", base + 10 * i)).collect();
    let endpoints = all.join(",");
    // Load: two writers overwrite and delete keys while the snapshot is taken.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (endpoints, stop) = (endpoints.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || i < 40 {
                    let key = format!("k/{w}/{}", i % 25);
                    let _ = etcdctl(&endpoints, &["put", &key, &format!("v{i}")]);
                    if i % 7 == 0 {
                        let _ = etcdctl(&endpoints, &["del", &format!("k/{w}/{}", i % 5)]);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let file = tmp.path().join("snap.db");
    let saved = etcdctl(&all[1], &["snapshot", "save", file.to_str().unwrap()]);
    assert!(saved.status.success(), "etcdctl snapshot save: {}", text(&saved));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }

    // A new single-member cluster from it.
    let restored_dir = tmp.path().join("restored");
    // A client port and the peer port after it, free now.
    let port = (0..100)
        .find_map(|_| {
            let first = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
            let port = first.local_addr().ok()?.port();
            std::net::TcpListener::bind(("127.0.0.1", port.checked_add(1)?)).ok().map(|_| port)
        })
        .expect("two free ports");
    let listen = format!("127.0.0.1:{port}");
    let mut node = std::process::Command::new(env!("CARGO_BIN_EXE_raftbed"))
        .args(["node", "--id", "1", "--listen", &listen, "--peers", &listen])
        .args(["--data-dir", restored_dir.to_str().unwrap(), "--restore", file.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("raftbed node runs");
    let status = (0..100)
        .find_map(|_| {
            let out = etcdctl(&listen, &["endpoint", "status", "-w", "json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let leader = v[0]["Status"]["leader"].as_u64().filter(|l| *l != 0);
            if leader.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            leader.map(|_| v)
        })
        .expect("the restored node leads");
    let revision = status[0]["Status"]["header"]["revision"].as_u64().expect("a revision");
    assert!(revision > 10, "the snapshot holds the writes made before it: revision {revision}");
    let read = |endpoints: &str, extra: &[&str]| {
        let mut args = vec!["get", "k/", "--prefix", "-w", "json"];
        args.extend(extra);
        let out = etcdctl(endpoints, &args);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["kvs"].as_array().cloned().unwrap_or_default()
    };
    let restored = read(&listen, &[]);
    let original = read(&endpoints, &["--rev", &revision.to_string()]);
    let _ = node.kill();
    let _ = node.wait();
    assert!(!restored.is_empty(), "the restored cluster holds keys");
    assert_eq!(
        restored, original,
        "every key, as the original cluster had it at revision {revision}"
    );

    // A damaged file is refused and nothing is written.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[30] ^= 0xff;
    let damaged = tmp.path().join("damaged.db");
    std::fs::write(&damaged, bytes).unwrap();
    let fresh = tmp.path().join("fresh");
    let refused = raftbed(&[
        "node",
        "--id",
        "1",
        "--listen",
        &listen,
        "--peers",
        &listen,
        "--data-dir",
        fresh.to_str().unwrap(),
        "--restore",
        damaged.to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("digest does not match"), "{}", text(&refused));
    assert!(!fresh.exists(), "nothing written for a damaged snapshot");
}
