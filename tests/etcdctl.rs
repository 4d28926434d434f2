//! etcd compatibility: Debian's `etcdctl` (package `etcd-client`, which `.ci/test` installs)
//! against a 3-node raftbed cluster on loopback (in-process nodes, real sockets, real disks).
//! Checks what etcdctl prints: values, counts, revisions, lease TTLs, the status table's
//! fields; never timings.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use raftbed::server::local::LocalCluster;
use serde_json::Value;

/// Runs etcdctl against `endpoints` with `args` (and `stdin`), with a hard deadline.
fn etcdctl(endpoints: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl runs (install Debian's etcd-client; .ci/test does)");
    let mut input = child.stdin.take().expect("piped");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("etcdctl reads stdin");
    }
    drop(input);
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("waitable").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("etcdctl {args:?} did not finish within 30s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim_end().to_string();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

/// Runs etcdctl and insists it succeeds.
fn ok(endpoints: &str, args: &[&str]) -> String {
    let (success, out, err) = etcdctl(endpoints, args, None);
    assert!(success, "etcdctl {args:?} failed: {out} {err}");
    out
}

fn json(endpoints: &str, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["-w", "json"]);
    let out = ok(endpoints, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("etcdctl {args:?} printed {out}: {e}"))
}

/// base64 of etcdctl's JSON output, decoded.
fn unbase64(value: &Value) -> String {
    let text = value.as_str().expect("a base64 string");
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = alphabet.iter().position(|a| *a == c).expect("base64") as u32;
        bits = (bits << 6) | v;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8(out).expect("utf-8")
}

/// Waits until every endpoint reports the same leader; answers the endpoint statuses.
fn wait_for_leader(endpoints: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (success, out, _) = etcdctl(endpoints, &["endpoint", "status", "-w", "json"], None);
        if success && let Ok(Value::Array(statuses)) = serde_json::from_str::<Value>(&out) {
            let leaders: Vec<u64> =
                statuses.iter().map(|s| s["Status"]["leader"].as_u64().unwrap_or(0)).collect();
            if leaders.len() == 3 && leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]) {
                return statuses;
            }
        }
        assert!(Instant::now() < deadline, "no leader within 30s: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn etcdctl_works_against_raftbed() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let cluster = LocalCluster::start(3, dir.path()).expect("a cluster");
    let all = cluster.endpoints.join(",");
    let statuses = wait_for_leader(&all);
    let leader = statuses[0]["Status"]["leader"].as_u64().unwrap();
    let follower = cluster.endpoints[if leader == 1 { 1 } else { 0 }].clone();

    // put and get, with etcd's revisions: an empty store is at 1, each write adds one.
    assert_eq!(ok(&all, &["put", "foo", "bar"]), "OK");
    assert_eq!(ok(&all, &["get", "foo"]), "foo\nbar");
    let got = json(&all, &["get", "foo"]);
    assert_eq!(got["header"]["revision"], 2);
    assert_eq!(got["count"], 1);
    let kv = &got["kvs"][0];
    assert_eq!((unbase64(&kv["key"]), unbase64(&kv["value"])), ("foo".into(), "bar".into()));
    assert_eq!((kv["create_revision"].as_i64(), kv["mod_revision"].as_i64()), (Some(2), Some(2)));
    assert_eq!(kv["version"], 1);
    assert!(got["header"]["cluster_id"].as_u64().unwrap() != 0);
    assert!(got["header"]["raft_term"].as_u64().unwrap() >= 1);

    // A write through a follower is forwarded to the leader.
    assert_eq!(ok(&follower, &["put", "foo/a", "1"]), "OK");
    assert_eq!(ok(&follower, &["put", "foo/b", "2"]), "OK");
    assert_eq!(ok(&all, &["get", "foo", "--prefix"]), "foo\nbar\nfoo/a\n1\nfoo/b\n2");
    assert_eq!(ok(&all, &["get", "foo/", "--prefix", "--keys-only"]), "foo/a\n\nfoo/b");
    let limited = json(&all, &["get", "foo", "--prefix", "--limit", "1"]);
    assert_eq!((limited["count"].as_i64(), limited["more"].as_bool()), (Some(3), Some(true)));
    assert_eq!(limited["kvs"].as_array().unwrap().len(), 1);
    assert_eq!(ok(&follower, &["get", "foo/b", "--consistency", "s"]), "foo/b\n2");

    // del prints the number deleted.
    assert_eq!(ok(&all, &["del", "foo/a"]), "1");
    assert_eq!(ok(&all, &["del", "nothing"]), "0");
    assert_eq!(ok(&all, &["get", "foo/a"]), "");
    assert_eq!(json(&all, &["get", "foo"])["header"]["revision"], 5);

    // txn: compare a value, then put; a failed compare runs the failure branch.
    let txn = "value(\"foo\") = \"bar\"\n\nput foo baz\n\nget foo\n\n";
    let (success, out, err) = etcdctl(&all, &["txn"], Some(txn));
    assert!(success, "txn failed: {err}");
    assert_eq!(out, "SUCCESS\n\nOK");
    let (success, out, err) = etcdctl(&all, &["txn"], Some(txn));
    assert!(success, "txn failed: {err}");
    assert_eq!(out, "FAILURE\n\nfoo\nbaz", "the compare failed and the failure branch read foo");
    assert_eq!(json(&all, &["get", "foo"])["kvs"][0]["version"], 2);

    // Leases: grant, attach a key, keep alive once, time to live, revoke (deletes the key).
    let granted = ok(&all, &["lease", "grant", "60"]);
    let id = granted.split_whitespace().nth(1).expect("lease <id> granted").to_string();
    assert!(granted.ends_with("granted with TTL(60s)"), "{granted}");
    assert_eq!(ok(&all, &["put", "--lease", &id, "leased", "v"]), "OK");
    assert_eq!(
        ok(&follower, &["lease", "keep-alive", "--once", &id]),
        format!("lease {id} keepalived with TTL(60)")
    );
    let ttl = ok(&all, &["lease", "timetolive", "--keys", &id]);
    assert!(
        ttl.contains("granted with TTL(60s)") && ttl.contains("attached keys([leased])"),
        "{ttl}"
    );
    assert!(ok(&all, &["lease", "list"]).contains(&id));
    assert_eq!(ok(&all, &["lease", "revoke", &id]), format!("lease {id} revoked"));
    assert_eq!(ok(&all, &["get", "leased"]), "");
    let (success, _, err) = etcdctl(&all, &["lease", "keep-alive", "--once", &id], None);
    assert!(!success && err.contains("requested lease not found"), "{err}");

    // endpoint status: one leader, one term, the same applied revision everywhere.
    let statuses = wait_for_leader(&all);
    for status in &statuses {
        let s = &status["Status"];
        assert!(s["version"].as_str().unwrap().contains("raftbed"));
        assert_eq!(s["header"]["revision"], 8, "put tmp and its deletion by the revoke");
        assert!(s["raftIndex"].as_u64().unwrap() >= s["raftAppliedIndex"].as_u64().unwrap());
        assert_eq!(s["raftTerm"], statuses[0]["Status"]["raftTerm"]);
    }
    let members = ok(&all, &["member", "list"]);
    assert_eq!(members.lines().count(), 3);
    assert!(members.lines().all(|l| l.contains("started")), "{members}");

    // Errors reach etcdctl with etcd's messages.
    let (success, _, err) = etcdctl(&all, &["put", "--lease", "12345", "k", "v"], None);
    assert!(!success && err.contains("requested lease not found"), "{err}");
}
