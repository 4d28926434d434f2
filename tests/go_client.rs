//! etcd's own Go client against raftbed: `tests/go/src/raftbedcompat` (clientv3 and its
//! concurrency package from Debian's `golang-etcd-server-dev`, built in GOPATH mode with
//! nothing fetched; `.ci/test` installs `golang-go` and the package) is built into a temp dir
//! and run against a 5-node raftbed cluster with all 5 endpoints: a contended Mutex, a
//! contended Election with Observe, 60 STM transfers at Serializable and SerializableSnapshot
//! isolation from 4 goroutines, and a Watch from history resumed on another member.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use raftbed::server::local::LocalCluster;

/// Builds the compatibility program into `dir`; answers its path.
fn build(dir: &Path) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go");
    let binary = dir.join("raftbedcompat");
    let output = Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg("raftbedcompat")
        .current_dir(&root)
        .env("GOPATH", format!("{}:/usr/share/gocode", root.display()))
        .env("GO111MODULE", "off")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOCACHE", std::env::temp_dir().join("raftbed-go-cache"))
        .output()
        .expect("go runs (install Debian's golang-go and golang-etcd-server-dev; .ci/test does)");
    assert!(
        output.status.success(),
        "go build raftbedcompat failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    binary
}

#[test]
fn etcds_go_client_locks_elects_transacts_and_watches() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let binary = build(dir.path());
    let cluster = LocalCluster::start(5, &dir.path().join("cluster")).expect("a cluster");
    let mut child = Command::new(&binary)
        .arg(cluster.endpoints.join(","))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the compatibility program runs");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("waitable").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // clientv3 logs retries as JSON lines; what failed is the FAIL line.
    let stderr: Vec<&str> = std::str::from_utf8(&output.stderr)
        .unwrap_or("")
        .lines()
        .filter(|l| !l.starts_with('{'))
        .collect();
    assert!(output.status.success(), "clientv3 against raftbed:\n{stdout}\n{}", stderr.join("\n"));
    for part in
        ["mutex:", "election:", "stm serializable: 60 of 60", "stm snapshot: 60 of 60", "watch:"]
    {
        assert!(stdout.contains(part), "no {part:?} in:\n{stdout}");
    }
}
