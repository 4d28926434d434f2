//! etcd's Maintenance service through Debian's `etcdctl`, against a 3-node raftbed cluster and
//! then a 3-node etcd 3.4 cluster in the same test: `endpoint hashkv` (the hashes themselves
//! compared), `alarm`, `defrag`, `snapshot save`, `move-leader`. Every step's exit status and
//! output must match, ids and ports normalised.

use raftbed::server::local::LocalCluster;
use serde_json::Value;

#[path = "support/etcd.rs"]
mod etcd;
use etcd::{Etcd, etcdctl, json, member, run, wait_for_leader};

/// The maintenance session: HashKV over puts, deletes and a transaction, before and after a
/// compaction and at past revisions; alarms; defragmentation; moving the leader.
fn maintenance(endpoints: &[String]) -> Vec<(String, String)> {
    let all = endpoints.join(",");
    wait_for_leader(&all);
    let mut steps: Vec<(String, String)> = Vec::new();
    let mut step = |name: &str, result: String| steps.push((name.to_string(), result));
    for args in [["put", "a", "1"], ["put", "a", "2"], ["put", "b", "x"]] {
        run(&all, &args);
    }
    run(&all, &["del", "a"]);
    let _ = etcdctl(&all, &["txn"], Some("\nput p/1 one\nput p/2 two\ndel b\n\n\n"));
    run(&all, &["put", "a", "3"]);
    // Every member's hash of the same history: the hashes themselves must match etcd's.
    let hashes = |rev: Option<&str>| {
        let mut args = vec!["endpoint", "hashkv", "--cluster", "-w", "json"];
        if let Some(rev) = rev {
            args.extend(["--rev", rev]);
        }
        let (success, out, err) = etcdctl(&all, &args, None);
        if !success {
            let error = err.lines().find(|l| l.starts_with("Error:")).unwrap_or("(none)");
            return format!("exit={success} {error}");
        }
        let Ok(Value::Array(list)) = serde_json::from_str::<Value>(&out) else {
            return format!("exit={success} out={out:?}");
        };
        let mut seen: Vec<String> = list
            .iter()
            .map(|m| {
                let h = &m["HashKV"];
                format!(
                    "hash={} compact={} rev={}",
                    h["hash"], h["compact_revision"], h["header"]["revision"]
                )
            })
            .collect();
        seen.dedup();
        format!("exit={success} members agree={} {}", seen.len() == 1, seen.join(" | "))
    };
    step("hashkv", hashes(None));
    step("hashkv --rev 3", hashes(Some("3")));
    step("hashkv --rev 99", hashes(Some("99")));
    step("compaction 4", run(&all, &["compaction", "4"]));
    step("hashkv after compaction 4", hashes(None));
    step("hashkv --rev 5 after compaction 4", hashes(Some("5")));
    step("hashkv --rev 3 after compaction 4", hashes(Some("3")));
    step("alarm list", run(&all, &["alarm", "list"]));
    step("alarm disarm", run(&all, &["alarm", "disarm"]));
    let defrag = run(endpoints[0].as_str(), &["defrag"]);
    step("defrag", defrag.replace(endpoints[0].as_str(), "<endpoint>"));
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("snap.db");
    let path = file.to_str().expect("a path");
    let saved = run(endpoints[1].as_str(), &["snapshot", "save", path]);
    step("snapshot save", saved.replace(path, "<file>"));
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    step("snapshot: 512-byte sectors and a SHA-256", (size % 512 == 32).to_string());

    let statuses = json(&all, &["endpoint", "status"]);
    let leader = statuses[0]["Status"]["leader"].as_u64().unwrap_or(0);
    let follower = statuses
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["Status"]["header"]["member_id"].as_u64().unwrap_or(0))
        .find(|id| *id != leader && *id != 0)
        .expect("a follower");
    let moved = member(&all, &["move-leader", &format!("{follower:x}")]);
    step("move-leader to a follower", moved);
    wait_for_leader(&all);
    let now = json(&all, &["endpoint", "status"])[0]["Status"]["leader"].as_u64();
    step("the follower leads", (now == Some(follower)).to_string());
    step("move-leader to no member", member(&all, &["move-leader", "abcdef12"]));
    steps
}

#[test]
fn etcdctl_maintenance_commands_see_raftbed_as_they_see_etcd() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let raftbed = LocalCluster::start(3, dir.path()).expect("a raftbed cluster");
    let ours = maintenance(&raftbed.endpoints);
    drop(raftbed);
    let etcd = Etcd::start(3);
    let theirs = maintenance(&etcd.endpoints);
    drop(etcd);
    assert_eq!(ours.len(), theirs.len());
    let mut differences = Vec::new();
    for ((step, ours), (_, theirs)) in ours.iter().zip(&theirs) {
        println!("{step}: {ours}");
        if ours != theirs {
            differences.push(format!("{step}:\n  raftbed: {ours}\n  etcd:    {theirs}"));
        }
    }
    for difference in &differences {
        println!("DIFFERENT {difference}");
    }
    let ours: std::collections::BTreeMap<_, _> = ours.into_iter().collect();
    assert!(ours["hashkv"].contains("members agree=true"), "{}", ours["hashkv"]);
    assert!(
        ours["hashkv --rev 3 after compaction 4"].contains("required revision has been compacted"),
        "{}",
        ours["hashkv --rev 3 after compaction 4"]
    );
    assert_eq!(ours["the follower leads"], "true");
    assert!(differences.is_empty(), "etcdctl saw differences:\n{}", differences.join("\n"));
}
