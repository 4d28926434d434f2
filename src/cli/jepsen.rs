//! `raftbed test`: a Jepsen-style run against real node processes on loopback. It starts a
//! cluster, runs the simulation's workload (the same client code, on real sockets), injects
//! faults from a seeded schedule through `raftbed nemesis`'s machinery (partitions in the
//! nodes' transports, SIGKILL and restart, SIGSTOP and SIGCONT), records the history, then
//! heals, reads back every acknowledged write of a writer of unique keys, checks the history
//! with jepsen-lite and runs the split-brain detector. The report is the same as `replay`'s.

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use jepsen_lite::{CheckOptions, CheckResult, EventType, ModelKind, RegisterModel, Value};

use super::cluster::{
    free_base_port, start_cluster, stop_children, stop_recorded, wait_for_leader,
};
use super::nemesis::{Fault, apply};
use crate::client::Client;
use crate::rng::SplitMix64;
use crate::scenario::{self, Evidence, ReplayReport, RoleSpan, System};
use crate::server::calls::Consistency;
use crate::sim::fencing::FencingLog;
use crate::sim::trace::Trace;
use crate::sim::workload::{self, ClientParams, DEFAULT_MIX, Role, Shared};
use crate::transport::net::TokioNet;

/// `raftbed test` arguments.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Nodes (3 to 9).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(3..=9))]
    pub nodes: u16,
    /// How long the workload and faults run.
    #[arg(long, default_value = "60s", value_parser = super::sim::parse_duration)]
    pub time: Duration,
    /// Fault kinds, comma-separated: partition, kill, pause (or none).
    #[arg(long, default_value = "partition,kill,pause", value_delimiter = ',')]
    pub faults: Vec<String>,
    /// Workload clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Seeds the fault schedule and the workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write report.html, history.jsonl, history.edn and the trace here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Runs `raftbed test`: exit 0 when the history is linearizable and nothing acknowledged was
/// lost, 1 otherwise, 2 when the cluster could not be run.
pub fn run(args: &TestArgs) -> ExitCode {
    for fault in &args.faults {
        if !["partition", "kill", "pause", "none"].contains(&fault.as_str()) {
            eprintln!("raftbed test: unknown fault {fault:?} (partition, kill, pause, none)");
            return ExitCode::from(2);
        }
    }
    if args.clients == 0 || args.clients > 64 {
        eprintln!("raftbed test: --clients must be 1 to 64");
        return ExitCode::from(2);
    }
    let dir = std::env::temp_dir().join(format!("raftbed-test-{}", std::process::id()));
    let nodes = args.nodes as usize;
    let Some(base) = free_base_port(nodes) else {
        eprintln!("raftbed test: no free loopback ports");
        return ExitCode::from(2);
    };
    let mut started = match start_cluster(nodes, &dir, base, &[]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("raftbed test: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!("raftbed test: {nodes} nodes up in {}, leader n{}", dir.display(), started.leader);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let report = runtime.map_err(|e| e.to_string()).map(|runtime| {
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, drive(args, &dir, started.file.endpoints.clone()))
    });
    stop_children(&mut started.children);
    // Nodes the nemesis restarted are not our children; cluster.json names them.
    if let Err(e) = stop_recorded(&dir) {
        eprintln!("raftbed test: {e}");
    }
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("raftbed test: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", super::replay::summary(&report, "-"));
    if let Some(out) = &args.report {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        if let Err(e) = scenario::write_report(out, std::slice::from_ref(&report), "-", &command) {
            eprintln!("raftbed test: cannot write the report to {}: {e}", out.display());
            return ExitCode::from(2);
        }
        println!("report: {}", out.join("report.html").display());
    }
    if report.ok() {
        let _ = std::fs::remove_dir_all(&dir);
        ExitCode::SUCCESS
    } else {
        println!("data dirs and logs kept in {}", dir.display());
        ExitCode::FAILURE
    }
}

/// What the test tracks while it runs.
struct Run {
    start: Instant,
    trace: Rc<RefCell<Trace>>,
    faults: Vec<(Duration, Duration, String)>,
}

impl Run {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn note(&self, text: &str) {
        self.trace.borrow_mut().record(self.now(), format_args!("nemesis {text}"));
    }
}

async fn drive(args: &TestArgs, dir: &std::path::Path, endpoints: Vec<String>) -> ReplayReport {
    let n = endpoints.len();
    let mut rng = SplitMix64::new(args.seed);
    let shared = Rc::new(Shared::default());
    let run = Rc::new(RefCell::new(Run {
        start: Instant::now(),
        trace: Rc::new(RefCell::new(Trace::new(true))),
        faults: Vec::new(),
    }));
    let start = run.borrow().start;
    let clock: Rc<dyn Fn() -> Duration> = Rc::new(move || start.elapsed());
    let trace = run.borrow().trace.clone();
    let processes = args.clients as u64 + 1;
    let params = ClientParams {
        nodes: endpoints.clone(),
        keys: 5,
        think_max: Duration::from_millis(20),
        timeout: Duration::from_secs(1),
        attempts: 2,
        processes,
        lease_reads: 0.5,
        mix: DEFAULT_MIX,
        read_consistency: None,
        spread: true,
    };
    let mut tasks = Vec::new();
    for c in 0..args.clients as u64 {
        let task = workload::run_on(
            TokioNet,
            clock.clone(),
            c,
            Role::Mixed,
            params.clone(),
            rng.fork(),
            shared.clone(),
            trace.clone(),
        );
        tasks.push(tokio::task::spawn_local(task));
    }
    // A writer of unique keys: what it was told is stored must be there at the end.
    let writer = {
        let (shared, trace, clock, endpoints) =
            (shared.clone(), trace.clone(), clock.clone(), endpoints.clone());
        let process = args.clients as u64;
        tokio::task::spawn_local(async move {
            let mut client = Client::new(TokioNet, endpoints, workload::session_id(process));
            client.timeout = Duration::from_secs(1);
            let mut acked: Vec<(String, usize)> = Vec::new();
            let mut seq = 0u64;
            let mut proc_id = process;
            while !shared.stop.get() {
                seq += 1;
                let key = format!("w/{seq}");
                let value = Value::Str(seq.to_string());
                workload::record(
                    &shared,
                    &trace,
                    clock(),
                    proc_id,
                    EventType::Invoke,
                    "put",
                    &key,
                    value.clone(),
                    "",
                );
                let put = client.put(Bytes::from(key.clone()), Bytes::from(seq.to_string()));
                let outcome = put.await.map(|_| value.clone());
                if outcome.is_ok() {
                    acked.push((key.clone(), shared.history.borrow().events.len()));
                }
                let (kind, value, why) = workload::completion(outcome, value);
                workload::record(&shared, &trace, clock(), proc_id, kind, "put", &key, value, &why);
                if kind == EventType::Info {
                    proc_id += processes;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            acked
        })
    };
    // Roles: every node's status, polled.
    let roles: Rc<RefCell<Vec<RoleSpan>>> = Rc::default();
    let current: Rc<RefCell<Vec<(String, Duration)>>> =
        Rc::new(RefCell::new(vec![("follower".into(), Duration::ZERO); n]));
    let paused: Rc<RefCell<Vec<bool>>> = Rc::new(RefCell::new(vec![false; n]));
    let poller = {
        let (roles, current, paused, endpoints, shared, clock) = (
            roles.clone(),
            current.clone(),
            paused.clone(),
            endpoints.clone(),
            shared.clone(),
            clock.clone(),
        );
        tokio::task::spawn_local(async move {
            let mut client = Client::new(TokioNet, endpoints.clone(), 0);
            client.timeout = Duration::from_millis(150);
            while !shared.stop.get() {
                for i in 0..endpoints.len() {
                    let role = if paused.borrow()[i] {
                        "paused".to_string()
                    } else {
                        match client.status(i).await {
                            Ok(s) => {
                                let me = s.header.as_ref().map_or(0, |h| h.member_id);
                                if s.leader == me { "leader" } else { "follower" }.to_string()
                            }
                            Err(_) => "down".to_string(),
                        }
                    };
                    let now = clock();
                    let mut cur = current.borrow_mut();
                    if cur[i].0 != role {
                        let (old, since) = std::mem::replace(&mut cur[i], (role, now));
                        roles.borrow_mut().push(RoleSpan {
                            node: i,
                            role: old,
                            from: since,
                            to: now,
                        });
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    // The nemesis.
    let kinds: Vec<&str> =
        args.faults.iter().map(String::as_str).filter(|f| *f != "none").collect();
    let until = args.time;
    while run.borrow().now() + Duration::from_secs(4) < until {
        tokio::time::sleep(rng.duration(Duration::from_millis(1500), Duration::from_millis(3000)))
            .await;
        if kinds.is_empty() {
            continue;
        }
        let kind = kinds[rng.below(kinds.len() as u64) as usize];
        let hold = rng.duration(Duration::from_secs(2), Duration::from_secs(5));
        let node = format!("n{}", 1 + rng.below(n as u64));
        let (fault, undo, label) = match kind {
            "partition" if rng.chance(0.5) => {
                (Fault::IsolateLeader, Fault::Heal, "the leader isolated".to_string())
            }
            "partition" => {
                let mut ids: Vec<usize> = (1..=n).collect();
                for i in (1..ids.len()).rev() {
                    ids.swap(i, rng.below(i as u64 + 1) as usize);
                }
                let cut = 1 + rng.below((n / 2) as u64) as usize;
                let side =
                    |s: &[usize]| s.iter().map(|i| format!("n{i}")).collect::<Vec<_>>().join(",");
                let sides = vec![side(&ids[..cut]), side(&ids[cut..])];
                let label = format!("partition {}", sides.join(" | "));
                (Fault::Partition { sides }, Fault::Heal, label)
            }
            "kill" => (
                Fault::Kill { node: node.clone() },
                Fault::Restart { node: node.clone() },
                format!("{node} killed"),
            ),
            _ => (
                Fault::Pause { node: node.clone() },
                Fault::Resume { node: node.clone() },
                format!("{node} paused"),
            ),
        };
        let index = node.trim_start_matches('n').parse::<usize>().unwrap_or(1) - 1;
        let from = run.borrow().now();
        match apply(dir, &fault).await {
            Ok(text) => run.borrow().note(&text),
            Err(e) => {
                run.borrow().note(&format!("{label} failed: {e}"));
                continue;
            }
        }
        if kind == "pause" {
            paused.borrow_mut()[index] = true;
        }
        tokio::time::sleep(hold).await;
        if kind == "pause" {
            paused.borrow_mut()[index] = false;
        }
        match apply(dir, &undo).await {
            Ok(text) => run.borrow().note(&text),
            Err(e) => run.borrow().note(&format!("undo failed: {e}")),
        }
        let to = run.borrow().now();
        run.borrow_mut().faults.push((from, to, label));
    }
    let remaining = until.saturating_sub(run.borrow().now());
    tokio::time::sleep(remaining).await;
    let end = run.borrow().now();
    shared.stop.set(true);
    let _ = apply(dir, &Fault::Heal).await;
    for task in tasks {
        let _ = task.await;
    }
    let acked = writer.await.unwrap_or_default();
    let _ = poller.await;
    // Read back every acknowledged unique write, linearizably.
    let _ = wait_for_leader(&endpoints, Duration::from_secs(10)).await;
    let mut client = Client::new(TokioNet, endpoints.clone(), 0);
    client.timeout = Duration::from_secs(2);
    client.attempts = 2 * n;
    let stored = client
        .get(Bytes::from_static(b"w/"), Bytes::from_static(b"w0"), Consistency::Linearizable)
        .await
        .map(|r| {
            r.kvs
                .into_iter()
                .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
                .collect::<std::collections::BTreeSet<_>>()
        });
    let lost_events: Vec<usize> = match &stored {
        Ok(stored) => acked.iter().filter(|(k, _)| !stored.contains(k)).map(|(_, e)| *e).collect(),
        Err(_) => Vec::new(),
    };
    let stop = run.borrow().now();
    let mut spans = roles.borrow().clone();
    for (i, (role, since)) in current.borrow().iter().enumerate() {
        spans.push(RoleSpan { node: i, role: role.clone(), from: *since, to: stop });
    }
    spans.sort_by_key(|s| (s.node, s.from));
    let history = shared.history.borrow().clone();
    let check = CheckOptions { timeout: Some(Duration::from_secs(120)), ..CheckOptions::default() };
    let mut linearizability =
        jepsen_lite::check(&RegisterModel::new(ModelKind::Kv), &history, &check)
            .map(|r| r.result)
            .unwrap_or_else(|e| CheckResult::Unknown(format!("history malformed: {e}")));
    if let Err(e) = &stored {
        linearizability = CheckResult::Unknown(format!("the final read failed: {}", e.message));
    }
    let findings = scenario::detect(&Evidence {
        history: &history,
        lost_events: &lost_events,
        roles: &spans,
        lease_overlaps: Vec::new(),
        violations: Vec::new(),
        fenced_rejections: 0,
        fencing: &FencingLog::default(),
        end,
    });
    let node_names: Vec<String> = (1..=n).map(|i| format!("\"n{i}\"")).collect();
    let description = format!(
        "{n} raftbed node processes on loopback, {} clients, faults {}",
        args.clients,
        args.faults.join(",")
    );
    let text = format!(
        "name = \"raftbed test\"\ndescription = \"{description}\"\nduration = \"{}ms\"\n[[site]]\nname = \"loopback\"\nnodes = [{}]\n[[clients]]\nname = \"clients\"\nsite = \"loopback\"\ncount = {}\n",
        end.as_millis().max(1),
        node_names.join(", "),
        args.clients
    );
    let scenario = scenario::parse(&text, "raftbed test").expect("a valid scenario");
    let mut groups = vec!["clients".to_string(); args.clients];
    groups.push("unique-key writer".into());
    let faults = run.borrow().faults.clone();
    let trace_cell = run.borrow().trace.clone();
    let trace = trace_cell.borrow();
    ReplayReport {
        scenario,
        system: System::Raft,
        seed: args.seed,
        trace_hash: format!("{:016x}", trace.hash()),
        trace: trace.lines().to_vec(),
        history,
        linearizability,
        findings,
        roles: spans,
        faults,
        groups,
        processes,
        wall: start.elapsed(),
        rerun: Some(format!(
            "raftbed test --nodes {n} --time {}s --faults {} --clients {} --seed {} (real processes: timing differs run to run)",
            args.time.as_secs(),
            args.faults.join(","),
            args.clients,
            args.seed
        )),
    }
}
