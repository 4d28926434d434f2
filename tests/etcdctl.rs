//! etcd compatibility: Debian's `etcdctl` (package `etcd-client`, which `.ci/test` installs)
//! against a 3-node raftbed cluster on loopback (in-process nodes, real sockets, real disks).
//! Checks what etcdctl prints: values, counts, revisions, lease TTLs, the status table's
//! fields; never timings.
//!
//! raftbed against etcd 3.4 in the same test run: the same etcdctl session (revisions, `get
//! --rev`, `watch` from history and live, `compaction`, contended `lock` and `elect`,
//! `endpoint status --cluster`) against a 3-node raftbed cluster and a 3-node etcd cluster
//! (Debian's `etcd-server`, which `.ci/test` installs), each on fresh loopback ports and temp
//! dirs. Every step's exit status and output must match after lease ids are normalised; the
//! only differences allowed are the ones the README lists under "Deliberate differences".

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use raftbed::server::local::{LocalCluster, free_ports};
use serde_json::Value;

#[path = "support/etcd.rs"]
mod etcd;
use etcd::{Etcd, etcdctl, etcdctl_command, json, member, ok, run, wait_for_leader};

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

/// An etcdctl left running, its stdout lines collected as they come.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    /// etcdctl's own error lines (clientv3's JSON logs left out).
    errors: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Running {
    fn start(endpoints: &str, args: &[&str]) -> Running {
        let mut child = etcdctl_command(endpoints, args).spawn().expect("etcdctl runs");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let errors = std::thread::spawn(move || {
            let lines = BufReader::new(stderr).lines().map_while(Result::ok);
            lines.filter(|l| !l.starts_with('{')).collect()
        });
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Running { child, lines, seen: Vec::new(), errors: Some(errors) }
    }

    /// Waits (at most `within`) until `count` lines in all have been printed; answers them all.
    fn lines(&mut self, count: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        while self.seen.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => break,
            }
        }
        self.seen.clone()
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-s", signal, &pid]).status().expect("kill runs");
        assert!(status.success(), "kill -s {signal} {pid}");
    }

    /// Waits for it to exit (10 s at most, then kills it); answers whether it succeeded, its
    /// output lines and its error lines.
    fn finish(mut self) -> (bool, Vec<String>, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let success = loop {
            if let Some(status) = self.child.try_wait().expect("waitable") {
                break status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break false;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
        let errors = self.errors.take().map(|e| e.join().unwrap_or_default()).unwrap_or_default();
        (success, std::mem::take(&mut self.seen), errors)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lease ids differ between the two (etcd's are random 64-bit, raftbed's count up): a lock or
/// election key `NAME/<hex id>` becomes `NAME/<lease>`.
fn normalise(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = ["L/", "M/", "E/"].iter().filter_map(|name| rest.find(name)).min() {
        let after = &rest[at + 2..];
        let id_len = after.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(after.len());
        out.push_str(&rest[..at + 2]);
        if id_len > 0 {
            out.push_str("<lease>");
        }
        rest = &after[id_len..];
    }
    out.push_str(rest);
    out
}

/// The session: (step, what it printed), in order.
fn session(endpoints: &[String]) -> Vec<(String, String)> {
    let all = endpoints.join(",");
    let one = endpoints[0].as_str();
    wait_for_leader(&all);
    let mut steps: Vec<(String, String)> = Vec::new();
    let mut step = |name: &str, result: String| steps.push((name.to_string(), normalise(&result)));

    // Revisions: the store starts at 1; each write adds one, a transaction one for all.
    for args in [["put", "a", "1"], ["put", "a", "2"], ["put", "b", "x"]] {
        step(&args.join(" "), run(&all, &args));
    }
    step("del a", run(&all, &["del", "a"]));
    let (success, out, _) = etcdctl(&all, &["txn"], Some("\nput p/1 one\nput p/2 two\n\n\n"));
    step("txn", format!("{success} {out}"));
    for rev in ["2", "3", "5", "6", "99"] {
        step(&format!("get a --rev {rev}"), run(&all, &["get", "a", "--rev", rev]));
    }
    step("get --prefix p --rev 6", run(&all, &["get", "p", "--prefix", "--rev", "6"]));
    step("get --prefix p --rev 5", run(&all, &["get", "p", "--prefix", "--rev", "5"]));

    // Watches from history: every event since the revision, in order, prev_kv when asked.
    let mut watch = Running::start(one, &["watch", "a", "--rev", "2", "--prev-kv"]);
    step("watch a --rev 2 --prev-kv", watch.lines(13, Duration::from_secs(5)).join("\n"));
    drop(watch);
    let mut watch = Running::start(one, &["watch", "--prefix", "p", "--rev", "1"]);
    step("watch --prefix p --rev 1", watch.lines(6, Duration::from_secs(5)).join("\n"));
    drop(watch);
    // A live watch on one member sees writes made through another.
    let mut live = Running::start(one, &["watch", "--prefix", "live"]);
    std::thread::sleep(Duration::from_secs(1));
    step("put live/1", run(endpoints[1].as_str(), &["put", "live/1", "v"]));
    step("del live/1", run(endpoints[2].as_str(), &["del", "live/1"]));
    step("live watch", live.lines(5, Duration::from_secs(5)).join("\n"));
    drop(live);

    // Compaction: reads and watches below it fail with etcd's errors.
    step("compaction 4", run(&all, &["compaction", "4"]));
    step("compaction 4 again", run(&all, &["compaction", "4"]));
    step("compaction 99", run(&all, &["compaction", "99"]));
    for rev in ["3", "4", "5"] {
        step(
            &format!("get a --rev {rev} (compacted at 4)"),
            run(&all, &["get", "a", "--rev", rev]),
        );
    }
    step("get b --rev 4", run(&all, &["get", "b", "--rev", "4"]));
    let watch = Running::start(one, &["watch", "a", "--rev", "2"]);
    let (success, lines, errors) = watch.finish();
    step("watch a --rev 2 (compacted)", format!("exit={success} {lines:?} {errors:?}"));

    lock(&all, &mut step);
    elect(&all, &mut step);

    let status = run(one, &["endpoint", "status", "--cluster", "-w", "table"]);
    let rows: Vec<&str> = status.split("\\n").filter(|l| l.contains("http://")).collect();
    let leaders = rows.iter().filter(|r| r.contains("|      true |")).count();
    step(
        "endpoint status --cluster",
        format!("ok={} rows={} leaders={leaders}", status.starts_with("exit=true"), rows.len()),
    );
    steps
}

/// Contended locks: the second waits for the first to release, or for its lease to expire
/// after it was killed.
fn lock(all: &str, step: &mut impl FnMut(&str, String)) {
    let mut first = Running::start(all, &["lock", "L", "--", "sh", "-c", "echo first; sleep 2"]);
    step("lock L (first)", first.lines(1, Duration::from_secs(10)).join("\n"));
    let mut second = Running::start(all, &["lock", "L", "echo", "second"]);
    let early = second.lines(1, Duration::from_millis(500));
    step("lock L: the second waits while the first holds", format!("{early:?}"));
    let held = run(all, &["get", "L", "--prefix", "--keys-only"]);
    step("lock L: both keys queued", held.replace("\\n\\n", "\\n"));
    let (first_ok, _, _) = first.finish();
    let released = Instant::now();
    let (second_ok, lines, _) = second.finish();
    step("lock L (second, after release)", format!("{first_ok} {second_ok} {lines:?}"));
    step(
        "lock L: waited for the release",
        (released.elapsed() < Duration::from_secs(5)).to_string(),
    );

    let holder = Running::start(all, &["lock", "--ttl", "2", "M", "sleep", "5"]);
    std::thread::sleep(Duration::from_secs(1));
    step("lock M held", run(all, &["get", "M", "--prefix", "--keys-only"]));
    holder.signal("KILL");
    let killed = Instant::now();
    let (success, lines, _) = Running::start(all, &["lock", "M", "echo", "after-expiry"]).finish();
    let waited = killed.elapsed();
    step("lock M after the holder was killed", format!("{success} {lines:?}"));
    step(
        "lock M: waited for the lease (TTL 2s)",
        (waited >= Duration::from_millis(500)).to_string(),
    );
}

/// A contended election: the second candidate waits; an observer sees both leaders in turn.
fn elect(all: &str, step: &mut impl FnMut(&str, String)) {
    let mut first = Running::start(all, &["elect", "E", "first"]);
    step("elect E first", first.lines(2, Duration::from_secs(10)).join("\n"));
    let mut second = Running::start(all, &["elect", "E", "second"]);
    let mut observer = Running::start(all, &["elect", "-l", "E"]);
    step("elect -l E (first)", observer.lines(2, Duration::from_secs(10)).join("\n"));
    step("elect E second (waiting)", second.lines(1, Duration::from_secs(1)).join("\n"));
    first.signal("INT");
    let _ = first.finish();
    step("elect E second (elected)", second.lines(2, Duration::from_secs(10)).join("\n"));
    step("elect -l E (second)", observer.lines(4, Duration::from_secs(10)).join("\n"));
}

#[test]
fn etcdctl_sees_raftbed_as_it_sees_etcd() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let raftbed = LocalCluster::start(3, dir.path()).expect("a raftbed cluster");
    let ours = session(&raftbed.endpoints);
    drop(raftbed);
    let etcd = Etcd::start(3);
    let theirs = session(&etcd.endpoints);
    drop(etcd);
    let mut differences = Vec::new();
    for ((step, ours), (_, theirs)) in ours.iter().zip(&theirs) {
        if ours != theirs {
            differences.push(format!("{step}:\n  raftbed: {ours}\n  etcd:    {theirs}"));
        }
    }
    assert_eq!(ours.len(), theirs.len());
    for (step, result) in &ours {
        println!("{step}: {result}");
    }
    // Not only the same: what etcd does.
    let ours: std::collections::BTreeMap<_, _> = ours.into_iter().collect();
    let expect = [
        ("get a --rev 2", "exit=true out=\"a\\n1\""),
        ("lock L: the second waits while the first holds", "[]"),
        ("lock L (second, after release)", "true true [\"second\"]"),
        ("lock M after the holder was killed", "true [\"after-expiry\"]"),
        ("elect E second (waiting)", ""),
        ("elect E second (elected)", "E/<lease>\nsecond"),
        ("endpoint status --cluster", "ok=true rows=3 leaders=1"),
    ];
    for (step, want) in expect {
        assert_eq!(ours[step], want, "{step}");
    }
    assert!(ours["live watch"].contains("DELETE\nlive/1"), "{}", ours["live watch"]);
    assert!(differences.is_empty(), "etcdctl saw differences:\n{}", differences.join("\n"));
}

/// A member as (started, peer URLs, client URLs, learner).
type Row = (bool, usize, usize, bool);

/// The member list as (started, peer URLs, client URLs, learner) per member, sorted: names,
/// ids and ports differ between the two clusters.
fn member_rows(endpoints: &str) -> (Vec<Row>, Vec<Value>) {
    let list = json(endpoints, &["member", "list"]);
    let members = list["members"].as_array().cloned().unwrap_or_default();
    let count = |m: &Value, key: &str| m[key].as_array().map_or(0, Vec::len);
    let mut rows: Vec<_> = members
        .iter()
        .map(|m| {
            let started = m["name"].as_str().is_some_and(|n| !n.is_empty());
            (started, count(m, "peerURLs"), count(m, "clientURLs"), m["isLearner"] == true)
        })
        .collect();
    rows.sort();
    (rows, members)
}

/// The id (hex) of the member whose peer URL is `url` (`none` if there is none).
fn member_id(endpoints: &str, url: &str) -> String {
    let (_, members) = member_rows(endpoints);
    let found = members.iter().find(|m| m["peerURLs"][0] == url);
    found.and_then(|m| m["ID"].as_u64()).map_or("none".into(), |id| format!("{id:x}"))
}

/// The member session: etcd's member API, its rules and errors, and a learner that runs
/// (started by `start_learner(client port, ETCD_INITIAL_CLUSTER)`, its peer port the next).
fn member_session(
    endpoints: &[String],
    start_learner: &dyn Fn(u16, &str) -> Child,
) -> Vec<(String, String)> {
    let all = endpoints.join(",");
    wait_for_leader(&all);
    // etcd adds a member only once its leader has been connected to every voter for its
    // health interval (5 s); raftbed does not check it (README, "Deliberate differences").
    std::thread::sleep(Duration::from_secs(6));
    let mut steps: Vec<(String, String)> = Vec::new();
    let mut step = |name: &str, result: String| steps.push((name.to_string(), result));
    let ports = free_ports(4).expect("free ports");
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let flag = |i: usize| format!("--peer-urls={}", url(i));
    let rows = |all: &str| format!("{:?}", member_rows(all).0);
    step("list", rows(&all));
    step("add learner", member(&all, &["member", "add", "l1", &flag(0), "--learner"]));
    step("list with an unstarted learner", rows(&all));
    step("add a second learner", member(&all, &["member", "add", "l2", &flag(1), "--learner"]));
    // etcd's ids hash the peer URLs with the time in seconds: within the same second as the
    // first add, etcd answers "member ID already exist" instead.
    std::thread::sleep(Duration::from_millis(1100));
    step("add a taken peer URL", member(&all, &["member", "add", "v1", &flag(0)]));
    let learner = member_id(&all, &url(0));
    step("promote an unstarted learner", member(&all, &["member", "promote", &learner]));
    let (_, members) = member_rows(&all);
    let voter = members.iter().find(|m| m["isLearner"] != true).expect("a voter");
    let voter = format!("{:x}", voter["ID"].as_u64().expect("an id"));
    step("promote a voter", member(&all, &["member", "promote", &voter]));
    step("update a learner", member(&all, &["member", "update", &learner, &flag(1)]));
    // Not compared: updating to a voter's peer URL, which etcd 3.4.23 refused in one run here
    // and accepted in another; raftbed refuses it (`Peer URLs already exists`).
    step("remove the learner", member(&all, &["member", "remove", &learner]));
    step("remove it again", member(&all, &["member", "remove", &learner]));
    step("remove an unknown member", member(&all, &["member", "remove", "fffffffff"]));
    step("add an unstarted voter", member(&all, &["member", "add", "v2", &flag(2)]));
    step("list with an unstarted voter", rows(&all));
    let unstarted = member_id(&all, &url(2));
    step("remove the unstarted voter", member(&all, &["member", "remove", &unstarted]));
    std::thread::sleep(Duration::from_secs(6));

    // A learner that runs: it serves serializable reads and its status only, and is promoted
    // once it has caught up.
    step("put before the learner", member(&all, &["put", "k", "v"]));
    let (success, out, err) = etcdctl(&all, &["member", "add", "l3", &flag(3), "--learner"], None);
    step("add a learner to run", format!("{success} {}", if success { "" } else { err.as_str() }));
    if !success {
        return steps;
    }
    let initial =
        out.lines().find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=")).expect("printed");
    let mut process = start_learner(ports[3] - 1, initial.trim_matches('"'));
    let learner_endpoint = format!("127.0.0.1:{}", ports[3] - 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let started = |m: &Value| m["name"].as_str().is_some_and(|n| !n.is_empty());
    while !member_rows(&all).1.iter().any(|m| m["peerURLs"][0] == url(3).as_str() && started(m)) {
        assert!(Instant::now() < deadline, "the learner did not start within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    step("list with a started learner", rows(&all));
    // The cluster lists it started once its name is applied; the learner itself may still be
    // on its way to that entry.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !json(&learner_endpoint, &["endpoint", "status"])[0]["Status"]["isLearner"]
        .as_bool()
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "the learner does not know it is one");
        std::thread::sleep(Duration::from_millis(100));
    }
    step("learner: put", member(&learner_endpoint, &["put", "k", "w"]));
    step("learner: linearizable get", member(&learner_endpoint, &["get", "k"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    let serializable = loop {
        let got = member(&learner_endpoint, &["get", "k", "--consistency=s", "--print-value-only"]);
        if got.contains("\"v\"") || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    step("learner: serializable get", serializable);
    step("learner: member list", member(&learner_endpoint, &["member", "list"]));
    let id = member_id(&all, &url(3));
    let deadline = Instant::now() + Duration::from_secs(30);
    let promoted = loop {
        let promoted = member(&all, &["member", "promote", &id]);
        if promoted.starts_with("exit=true") || Instant::now() > deadline {
            break promoted;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    step("promote the caught-up learner", promoted);
    step("list after the promotion", rows(&all));
    step("remove the promoted member", member(&all, &["member", "remove", &id]));
    let deadline = Instant::now() + Duration::from_secs(20);
    let stopped = loop {
        if let Ok(Some(_)) = process.try_wait() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = process.kill();
    let _ = process.wait();
    step("the removed member stops by itself", stopped.to_string());
    step("list at the end", rows(&all));
    steps
}

#[test]
fn etcdctl_member_commands_see_raftbed_as_they_see_etcd() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let raftbed = LocalCluster::start(3, dir.path()).expect("a raftbed cluster");
    let joined = dir.path().join("joined");
    let endpoints = raftbed.endpoints.join(",");
    let start = |client: u16, _: &str| {
        let log = std::fs::File::create(dir.path().join("joined.log")).expect("a log");
        Command::new(env!("CARGO_BIN_EXE_raftbed"))
            .args(["node", "--listen", &format!("127.0.0.1:{client}"), "--join", &endpoints])
            .args(["--name", "l3", "--data-dir"])
            .arg(&joined)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("raftbed runs")
    };
    let ours = member_session(&raftbed.endpoints, &start);
    drop(raftbed);
    let etcd = Etcd::start(3);
    let etcd_dir = tempfile::tempdir().expect("a temp dir");
    let start = |client: u16, initial: &str| {
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{}", client + 1);
        Command::new("etcd")
            .args(["--name", "l3", "--initial-cluster-state", "existing"])
            .arg(format!("--data-dir={}", etcd_dir.path().join("l3").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={initial}"))
            .args(["--initial-cluster-token", "raftbed-compare", "--logger", "zap"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd runs")
    };
    let theirs = member_session(&etcd.endpoints, &start);
    drop(etcd);
    for ((step, result), (_, etcd)) in ours.iter().zip(&theirs) {
        println!("{step}: {result}\n    etcd: {etcd}");
    }
    assert_eq!(ours.len(), theirs.len());
    let differences: Vec<String> = ours
        .iter()
        .zip(&theirs)
        .filter(|(a, b)| a != b)
        .map(|((step, ours), (_, theirs))| {
            format!("{step}:\n  raftbed: {ours}\n  etcd:    {theirs}")
        })
        .collect();
    assert!(differences.is_empty(), "etcdctl saw differences:\n{}", differences.join("\n"));
    // Not only the same: what etcd does.
    let ours: std::collections::BTreeMap<_, _> = ours.into_iter().collect();
    for (step, error) in [
        ("add a second learner", "etcdserver: too many learner members in cluster"),
        ("add a taken peer URL", "etcdserver: Peer URLs already exists"),
        (
            "promote an unstarted learner",
            "etcdserver: can only promote a learner member which is in sync with leader",
        ),
        ("promote a voter", "etcdserver: can only promote a learner member"),
        ("remove it again", "etcdserver: member not found"),
        ("learner: put", "etcdserver: rpc not supported for learner"),
        ("learner: member list", "etcdserver: rpc not supported for learner"),
    ] {
        assert!(ours[step].ends_with(&format!("err=\"Error: {error}\"")), "{step}: {}", ours[step]);
    }
    assert_eq!(ours["the removed member stops by itself"], "true");
    assert!(ours["promote the caught-up learner"].starts_with("exit=true"));
}
