//! `raftbed bench`: a load generator speaking the etcd v3 API, so one binary measures raftbed
//! and etcd alike. The workloads follow `../shared/peers/etcd-bench.sh`: puts of 256-byte
//! values to 8-byte keys over 100,000, gets of one key, bounded by an op count; and the
//! failover probe: writers across every endpoint with a short per-op timeout, a kill command
//! run at 3 s, and the longest gap without a successful write.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Args;

use crate::client::Client;
use crate::server::calls::Consistency;
use crate::server::local::{DEFAULT_BASE_PORT, default_endpoints};
use crate::transport::net::TokioNet;

/// `raftbed bench` arguments.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Client endpoints, comma-separated (default: the local 5-node cluster).
    #[arg(long, value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// put, get-l (linearizable: ReadIndex on raftbed), get-lease (raftbed's lease reads),
    /// get-s (serializable), failover, or watch (--watchers on a prefix over every member, one
    /// writer putting --ops values to the leader).
    #[arg(long, default_value = "put", value_parser = ["put", "get-l", "get-lease", "get-s", "failover", "watch"])]
    pub workload: String,
    /// watch: how many watchers.
    #[arg(long, default_value_t = 64)]
    pub watchers: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Operations in all (put and get).
    #[arg(long, default_value_t = 10_000)]
    pub ops: u64,
    /// Connections shared by the clients (etcd-bench.sh uses 8 for 64 clients).
    #[arg(long, default_value_t = 8)]
    pub conns: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Keys for puts (8-byte keys 00000000..).
    #[arg(long, default_value_t = 100_000)]
    pub key_space: u64,
    /// Per-operation timeout (failover: 250ms).
    #[arg(long, value_parser = super::sim::parse_duration)]
    pub op_timeout: Option<Duration>,
    /// failover: the shell command that kills the leader; it prints `<node> <epoch_ns>`.
    #[arg(long)]
    pub kill_cmd: Option<String>,
    /// failover: when to run --kill-cmd.
    #[arg(long, default_value = "3s", value_parser = super::sim::parse_duration)]
    pub kill_at: Duration,
    /// failover: how long the writers run.
    #[arg(long, default_value = "12s", value_parser = super::sim::parse_duration)]
    pub duration: Duration,
    /// A label for the RESULT line.
    #[arg(long, default_value = "")]
    pub name: String,
}

pub(super) fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p / 100.0 + 0.5) as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

pub(super) fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// Runs `raftbed bench`.
pub fn run(args: &BenchArgs) -> ExitCode {
    let endpoints = if args.endpoints.is_empty() {
        default_endpoints(5, DEFAULT_BASE_PORT)
    } else {
        args.endpoints.clone()
    };
    if args.clients == 0 || args.conns == 0 {
        eprintln!("raftbed bench: --clients and --conns must be at least 1");
        return ExitCode::from(2);
    }
    if args.workload == "failover" && args.kill_cmd.is_none() {
        eprintln!(
            "raftbed bench: --workload failover needs --kill-cmd (e.g. `raftbed cluster kill-leader`)"
        );
        return ExitCode::from(2);
    }
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread().enable_all().build() else {
        eprintln!("raftbed bench: cannot start the async runtime");
        return ExitCode::from(2);
    };
    let result = if args.workload == "failover" {
        runtime.block_on(failover(args, endpoints))
    } else if args.workload == "watch" {
        runtime.block_on(super::bench_watch::run(args, endpoints))
    } else {
        runtime.block_on(load(args, endpoints))
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("raftbed bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The endpoint index of the leader, by asking each node's status.
pub(super) async fn leader_index(endpoints: &[String]) -> Option<usize> {
    let mut client = Client::new(TokioNet, endpoints.to_vec(), 0);
    client.timeout = Duration::from_secs(1);
    let mut members = Vec::new();
    let mut leader = 0;
    for i in 0..endpoints.len() {
        let status = client.status(i).await.ok();
        members.push(status.as_ref().and_then(|s| s.header.as_ref()).map_or(0, |h| h.member_id));
        leader = status.map_or(leader, |s| if s.leader != 0 { s.leader } else { leader });
    }
    members.iter().position(|m| *m == leader && leader != 0)
}

async fn load(args: &BenchArgs, endpoints: Vec<String>) -> Result<String, String> {
    let timeout = args.op_timeout.unwrap_or(Duration::from_secs(5));
    let leader = leader_index(&endpoints).await.ok_or("no leader found")?;
    let value = Bytes::from(vec![b'v'; args.value_size]);
    let consistency = match args.workload.as_str() {
        "get-l" => Consistency::Linearizable,
        "get-lease" => Consistency::Lease,
        _ => Consistency::Serializable,
    };
    let reads = args.workload != "put";
    // Each connection is made before the clients share it (a clone shares what is connected).
    let mut conns: Vec<Client<TokioNet>> = Vec::new();
    for _ in 0..args.conns {
        let mut client = Client::new(TokioNet, endpoints.clone(), 0);
        client.timeout = timeout;
        client.attempts = 1;
        client.status(leader).await.map_err(|e| format!("{}: {}", endpoints[leader], e.message))?;
        client.prefer(leader);
        conns.push(client);
    }
    if reads {
        let mut seed = conns[0].clone();
        seed.put(Bytes::from_static(b"foo"), value.clone())
            .await
            .map_err(|e| format!("seed put: {}", e.message))?;
    }
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(args.ops as usize)));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let mut client = conns[c % conns.len()].clone();
        let (next, errors, latencies, value) =
            (next.clone(), errors.clone(), latencies.clone(), value.clone());
        let (ops, key_space) = (args.ops, args.key_space.max(1));
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut x = 0x2545_f491_4f6c_dd1du64 ^ (c as u64 + 1);
            while next.fetch_add(1, Ordering::Relaxed) < ops {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let began = Instant::now();
                let ok = if reads {
                    client.get(Bytes::from_static(b"foo"), Bytes::new(), consistency).await.is_ok()
                } else {
                    let key = Bytes::from(format!("{:08}", x % key_space));
                    client.put(key, value.clone()).await.is_ok()
                };
                if ok {
                    mine.push(began.elapsed());
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies.lock().expect("not poisoned").extend(mine);
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())?;
    }
    let secs = start.elapsed().as_secs_f64();
    let mut all = std::mem::take(&mut *latencies.lock().expect("not poisoned"));
    all.sort_unstable();
    Ok(format!(
        "RESULT name={} tool=raftbed-bench mode={} clients={} conns={} ok={} err={} secs={secs:.3} ops_s={:.1} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3}",
        args.name,
        args.workload,
        args.clients,
        args.conns,
        all.len(),
        errors.load(Ordering::Relaxed),
        all.len() as f64 / secs,
        pct(&all, 50.0),
        pct(&all, 99.0),
        pct(&all, 99.9),
        pct(&all, 100.0),
    ))
}

async fn failover(args: &BenchArgs, endpoints: Vec<String>) -> Result<String, String> {
    let timeout = args.op_timeout.unwrap_or(Duration::from_millis(250));
    let writers = args.clients.max(8);
    let value = Bytes::from(vec![b'v'; args.value_size]);
    let stop = Instant::now() + args.duration;
    let records: Arc<Mutex<Vec<(i64, i64, bool)>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut client = Client::new(TokioNet, endpoints.clone(), 0);
        client.timeout = timeout;
        client.attempts = 1;
        client.prefer(w % endpoints.len());
        let (records, value) = (records.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while Instant::now() < stop {
                seq += 1;
                let began = now_ns();
                let ok = client
                    .put(Bytes::from(format!("failover/{w}/{seq}")), value.clone())
                    .await
                    .is_ok();
                records.lock().expect("not poisoned").push((began, now_ns(), ok));
                if !ok {
                    client.prefer(client.current() + 1);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    tokio::time::sleep(args.kill_at).await;
    let command = args.kill_cmd.clone().unwrap_or_default();
    let output = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&command)
        .output()
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut fields = text.split_whitespace();
    let killed = fields.next().unwrap_or("?").to_string();
    let t_kill: i64 = fields.next().and_then(|f| f.parse().ok()).ok_or_else(|| {
        format!(
            "--kill-cmd printed {text:?}, not `<node> <epoch_ns>` ({})",
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })?;
    for task in tasks {
        task.await.map_err(|e| e.to_string())?;
    }
    let mut all = std::mem::take(&mut *records.lock().expect("not poisoned"));
    all.sort_by_key(|r| r.1);
    let ok_before = all.iter().filter(|r| r.1 < t_kill && r.2).count();
    let last_before = all.iter().filter(|r| r.1 < t_kill && r.2).map(|r| r.1).max();
    let first_after = all.iter().filter(|r| r.0 >= t_kill && r.2).map(|r| r.1).min();
    let (mut gap, mut prev) = (0i64, last_before);
    for r in all.iter().filter(|r| r.2 && r.1 >= t_kill) {
        if let Some(p) = prev {
            gap = gap.max(r.1 - p);
        }
        prev = Some(r.1);
    }
    let ok_after = all.iter().filter(|r| r.1 >= t_kill && r.2).count();
    let err_after = all.iter().filter(|r| r.1 >= t_kill && !r.2).count();
    Ok(format!(
        "RESULT name={} tool=raftbed-bench mode=failover writers={writers} op_timeout_ms={} killed_node={killed} ok_before={ok_before} pre_kill_ops_s={:.1} ok_after={ok_after} err_after={err_after} kill_to_first_ok_ms={:.1} max_write_gap_ms={:.1}",
        args.name,
        timeout.as_millis(),
        ok_before as f64 / args.kill_at.as_secs_f64(),
        first_after.map_or(-1.0, |f| (f - t_kill) as f64 / 1e6),
        gap as f64 / 1e6,
    ))
}
