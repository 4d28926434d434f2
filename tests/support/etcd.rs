//! etcdctl against a raftbed or an etcd 3.4 cluster, and etcd itself on loopback (shared by
//! the etcd compatibility test files through `#[path]`).

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raftbed::server::local::free_ports;
use serde_json::Value;

/// Runs etcdctl against `endpoints` with `args` (and `stdin`), with a hard deadline.
pub fn etcdctl(endpoints: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = etcdctl_command(endpoints, args)
        .stdin(Stdio::piped())
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
pub fn ok(endpoints: &str, args: &[&str]) -> String {
    let (success, out, err) = etcdctl(endpoints, args, None);
    assert!(success, "etcdctl {args:?} failed: {out} {err}");
    out
}

pub fn json(endpoints: &str, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["-w", "json"]);
    let out = ok(endpoints, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("etcdctl {args:?} printed {out}: {e}"))
}

/// Waits until every endpoint reports the same leader; answers the endpoint statuses.
pub fn wait_for_leader(endpoints: &str) -> Vec<Value> {
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

/// etcd 3.4 processes on loopback, stopped (SIGKILL) when dropped.
pub struct Etcd {
    children: Vec<Child>,
    /// Client endpoints.
    pub endpoints: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// A fresh etcd cluster of `nodes` members on free loopback ports.
    pub fn start(nodes: usize) -> Etcd {
        let dir = tempfile::tempdir().expect("a temp dir");
        let ports = free_ports(2 * nodes).expect("free ports");
        let peer = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i + 1]);
        let client = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i]);
        let initial: Vec<String> = (0..nodes).map(|i| format!("n{i}={}", peer(i))).collect();
        let children = (0..nodes)
            .map(|i| {
                let log = std::fs::File::create(dir.path().join(format!("n{i}.log"))).expect("log");
                Command::new("etcd")
                    .args(["--name", &format!("n{i}")])
                    .arg(format!("--data-dir={}", dir.path().join(format!("n{i}")).display()))
                    .arg(format!("--listen-client-urls={}", client(i)))
                    .arg(format!("--advertise-client-urls={}", client(i)))
                    .arg(format!("--listen-peer-urls={}", peer(i)))
                    .arg(format!("--initial-advertise-peer-urls={}", peer(i)))
                    .arg(format!("--initial-cluster={}", initial.join(",")))
                    .args(["--initial-cluster-token", "raftbed-compare", "--logger", "zap"])
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("etcd runs (install Debian's etcd-server; .ci/test does)")
            })
            .collect();
        let endpoints = (0..nodes).map(|i| format!("127.0.0.1:{}", ports[2 * i])).collect();
        Etcd { children, endpoints, _dir: dir }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn etcdctl_command(endpoints: &str, args: &[&str]) -> Command {
    let mut command = Command::new("etcdctl");
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs etcdctl to completion (30 s at most): "exit=.. out=.." and, on failure, its error.
pub fn run(endpoints: &str, args: &[&str]) -> String {
    let (success, out, err) = etcdctl(endpoints, args, None);
    let mut result = format!("exit={success} out={out:?}");
    if !success {
        // clientv3 logs its retries as JSON lines with timestamps; etcdctl's own error is the rest.
        let error: Vec<&str> = err.lines().filter(|l| !l.starts_with('{')).collect();
        result.push_str(&format!(" err={:?}", error.join("\n")));
    }
    result
}

/// Member ids and cluster ids (hex, or raftbed's small bootstrap ids) as `<id>`, spaces
/// collapsed: `Member <id> added to cluster <id>`.
fn hexless(line: &str) -> String {
    let token = |t: &str| {
        let hex = !t.is_empty() && t.chars().all(|c| c.is_ascii_hexdigit());
        if hex && t.chars().any(|c| c.is_ascii_digit()) {
            "<id>".to_string()
        } else {
            t.to_string()
        }
    };
    line.split_whitespace().map(token).collect::<Vec<_>>().join(" ")
}

/// A member command: whether it succeeded, its first line of output with ids normalised, and
/// etcdctl's error.
pub fn member(endpoints: &str, args: &[&str]) -> String {
    let (success, out, err) = etcdctl(endpoints, args, None);
    let first = hexless(out.lines().next().unwrap_or(""));
    let error: Vec<&str> = err.lines().filter(|l| !l.starts_with('{')).collect();
    format!("exit={success} out={first:?} err={:?}", error.join("\n"))
}
