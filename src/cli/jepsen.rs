//! `raftbed test`: a Jepsen-style run against real node processes on loopback. It starts a
//! cluster, runs the simulation's workload (the same client code, on real sockets), injects
//! faults from a seeded schedule through the fault primitives on the real cluster
//! (`real.rs`: partitions in the nodes' transports, SIGKILL and restart, SIGSTOP and SIGCONT),
//! records the history, then heals, reads back every acknowledged write of a writer of unique
//! keys, checks the history with jepsen-lite and runs the split-brain detector. The report is
//! the same as `replay`'s, and so are the verdict and the exit codes.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use jepsen_lite::{EventType, Value};

use super::cluster::{
    free_base_port, start_cluster, stop_children, stop_recorded, wait_for_leader,
};
use super::real::RealCluster;
use crate::client::Client;
use crate::faults::{Cut, Effect, Faults};
use crate::raft::{MembershipChange, NodeId};
use crate::rng::SplitMix64;
use crate::scenario::{self, Evidence, ReplayReport, RoleSpan, RunInfo, System};
use crate::server::calls::Consistency;
use crate::sim::fencing::FencingLog;
use crate::sim::trace::Trace;
use crate::sim::workload::{self, ClientParams, DEFAULT_MIX, Role, Shared};
use crate::sim::{CheckBudget, check_history};
use crate::transport::net::TokioNet;
use crate::verdict::{EXIT_BAD_INPUT, EXIT_HELD};

/// `raftbed test` arguments.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Nodes (3 to 9).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(3..=9))]
    pub nodes: u16,
    /// How long the workload and faults run (at most 1h).
    #[arg(long, default_value = "60s", value_parser = super::sim::parse_run_duration)]
    pub time: Duration,
    /// Fault kinds, comma-separated: partition, kill, pause, member (or none). With member,
    /// two spare nodes run beside the --nodes voters: the nemesis adds a spare as a learner
    /// and promotes it, removes a voter (or the leader), or replaces a crashed voter with a
    /// spare.
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
    /// What the clients do: kv (put, get, cas, delete, checked for linearizability) or append
    /// (list-append transactions over etcd's Txn, checked for Elle's anomalies).
    #[arg(long, default_value = "kv", value_parser = ["kv", "append"])]
    pub workload: String,
}

/// Runs `raftbed test`: exit 0 when every check held, 1 when one was violated, 2 when the
/// cluster could not be run, 4 when nothing was violated but a check could not be decided.
pub fn run(args: &TestArgs) -> ExitCode {
    for fault in &args.faults {
        if !["partition", "kill", "pause", "member", "none"].contains(&fault.as_str()) {
            eprintln!(
                "raftbed test: unknown fault {fault:?} (partition, kill, pause, member, none)"
            );
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    }
    if args.clients == 0 || args.clients > 64 {
        eprintln!("raftbed test: --clients must be 1 to 64");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let dir = std::env::temp_dir().join(format!("raftbed-test-{}", std::process::id()));
    let voters = args.nodes as usize;
    let spares = if args.faults.iter().any(|f| f == "member") { SPARES.min(9 - voters) } else { 0 };
    let nodes = voters + spares;
    let Some(base) = free_base_port(nodes) else {
        eprintln!("raftbed test: no free loopback ports");
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let flags = ["--voters".to_string(), voters.to_string()];
    let mut started = match start_cluster(nodes, &dir, base, &flags) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("raftbed test: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    eprintln!("raftbed test: {nodes} nodes up in {}, leader n{}", dir.display(), started.leader);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let finished = runtime.map_err(|e| e.to_string()).and_then(|runtime| {
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, drive(args, &dir, started.file.endpoints.clone()))
    });
    stop_children(&mut started.children);
    // Nodes the nemesis restarted are not our children; cluster.json names them.
    if let Err(e) = stop_recorded(&dir) {
        eprintln!("raftbed test: {e}");
    }
    let report = match finished {
        Ok(finished) => report(args, finished, &dir),
        Err(e) => {
            eprintln!("raftbed test: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    print!("{}", super::replay::summary(&report, "-"));
    if let Some(out) = &args.report {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        if let Err(e) = scenario::write_report(out, std::slice::from_ref(&report), "-", &command) {
            eprintln!("raftbed test: cannot write the report to {}: {e}", out.display());
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        println!("report: {}", out.join("report.html").display());
    }
    let code = report.verdict().exit_code();
    if code == EXIT_HELD {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("data dirs and logs kept in {}", dir.display());
    }
    ExitCode::from(code)
}

/// What the run's tasks share: the history, the trace, the clock.
#[derive(Clone)]
struct Run {
    start: Instant,
    shared: Rc<Shared>,
    trace: Rc<RefCell<Trace>>,
    clock: Rc<dyn Fn() -> Duration>,
}

/// What a run left for the report, once the nodes have stopped.
struct Finished {
    run: Run,
    faults: Vec<(Duration, Duration, String)>,
    roles: Vec<RoleSpan>,
    lost_events: Vec<usize>,
    undecided: Option<String>,
    end: Duration,
    watch_streams: super::jepsen_watch::Streams,
    leaders: jepsen_lite::watch::Leaders,
}

/// Watchers of the workload's keys, resuming across members.
const WATCHERS: u64 = 2;

async fn drive(args: &TestArgs, dir: &Path, endpoints: Vec<String>) -> Result<Finished, String> {
    let start = Instant::now();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let run = Run {
        start,
        shared: Rc::new(Shared::default()),
        trace: Rc::new(RefCell::new(Trace::new(true))),
        clock: Rc::new(move || start.elapsed()),
    };
    let mut rng = SplitMix64::new(args.seed);
    let clients = start_clients(args, &run, &endpoints, &mut rng);
    let (watchers, watch_streams) =
        super::jepsen_watch::start(WATCHERS, &endpoints, run.clock.clone(), &run.shared, &mut rng);
    let writer = tokio::task::spawn_local(unique_writer(
        run.clone(),
        endpoints.clone(),
        args.clients as u64,
    ));
    let paused: Arc<Vec<AtomicBool>> =
        Arc::new((0..endpoints.len()).map(|_| AtomicBool::new(false)).collect());
    let poller =
        tokio::task::spawn_local(poll_roles(run.clone(), endpoints.clone(), paused.clone()));
    let faults = nemesis(args, dir, &endpoints, &run, rng.fork(), paused).await?;
    let end = (run.clock)();
    run.shared.stop.set(true);
    for task in clients.into_iter().chain(watchers) {
        let _ = task.await;
    }
    let acked = writer.await.unwrap_or_default();
    let roles = poller.await.unwrap_or_default();
    let leaders = super::jepsen_watch::leaders(dir, &endpoints, started_unix).await;
    let stored = read_back(&endpoints).await;
    let lost_events: Vec<usize> = match &stored {
        Ok(stored) => acked.iter().filter(|(k, _)| !stored.contains(k)).map(|(_, e)| *e).collect(),
        Err(_) => Vec::new(),
    };
    let undecided = stored.err();
    Ok(Finished { run, faults, roles, lost_events, undecided, end, watch_streams, leaders })
}

/// The workload's clients, on real sockets.
fn start_clients(
    args: &TestArgs,
    run: &Run,
    endpoints: &[String],
    rng: &mut SplitMix64,
) -> Vec<tokio::task::JoinHandle<()>> {
    let params = ClientParams {
        nodes: endpoints.to_vec(),
        keys: 5,
        think_max: Duration::from_millis(20),
        timeout: Duration::from_secs(1),
        attempts: 2,
        processes: args.clients as u64 + 1,
        lease_reads: 0.5,
        mix: DEFAULT_MIX,
        read_consistency: None,
        spread: true,
        workload: crate::sim::Workload::from_name(&args.workload),
    };
    (0..args.clients as u64)
        .map(|c| {
            let task = workload::run_on(
                TokioNet,
                run.clock.clone(),
                c,
                Role::Mixed,
                params.clone(),
                rng.fork(),
                run.shared.clone(),
                run.trace.clone(),
            );
            tokio::task::spawn_local(task)
        })
        .collect()
}

/// A writer of unique keys `w/1`, `w/2`, ...: what it was told is stored must be there at the
/// end. Returns each acknowledged key with its `ok` event.
async fn unique_writer(run: Run, endpoints: Vec<String>, process: u64) -> Vec<(String, usize)> {
    let processes = process + 1;
    let mut client = Client::new(TokioNet, endpoints, workload::session_id(process));
    client.timeout = Duration::from_secs(1);
    let mut acked = Vec::new();
    let mut seq = 0u64;
    let mut proc_id = process;
    let record = |proc_id, kind, key: &str, value, why: &str, session| {
        let (shared, trace, now) = (&run.shared, &run.trace, (run.clock)());
        workload::record(shared, trace, now, proc_id, kind, "put", key, value, why, session);
    };
    while !run.shared.stop.get() {
        seq += 1;
        let key = format!("w/{seq}");
        let value = Value::Str(seq.to_string());
        let session = Some((workload::session_id(process), client.last_seq() + 1));
        record(proc_id, EventType::Invoke, &key, value.clone(), "", session);
        let put = client.put(Bytes::from(key.clone()), Bytes::from(seq.to_string()));
        let outcome = put.await.map(|_| value.clone());
        if outcome.is_ok() {
            acked.push((key.clone(), run.shared.history.borrow().events.len()));
        }
        let (kind, value, why) = workload::completion(outcome, value);
        record(proc_id, kind, &key, value, &why, None);
        if kind == EventType::Info {
            proc_id += processes;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    acked
}

/// Every node's role, polled until the workload stops (a paused node is not asked).
async fn poll_roles(
    run: Run,
    endpoints: Vec<String>,
    paused: Arc<Vec<AtomicBool>>,
) -> Vec<RoleSpan> {
    let mut spans = Vec::new();
    let mut current = vec![("follower".to_string(), Duration::ZERO); endpoints.len()];
    let mut client = Client::new(TokioNet, endpoints.clone(), 0);
    client.timeout = Duration::from_millis(150);
    while !run.shared.stop.get() {
        for (i, cur) in current.iter_mut().enumerate() {
            let role = if paused[i].load(Ordering::Relaxed) {
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
            let now = (run.clock)();
            if cur.0 != role {
                let (old, since) = std::mem::replace(cur, (role, now));
                spans.push(RoleSpan { node: i, role: old, from: since, to: now });
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stop = (run.clock)();
    for (i, (role, since)) in current.into_iter().enumerate() {
        spans.push(RoleSpan { node: i, role, from: since, to: stop });
    }
    spans.sort_by_key(|s| (s.node, s.from));
    spans
}

/// Runs the fault schedule on a thread of its own (the real backend blocks) until `--time`,
/// then heals everything. The trace hears of each fault as it happens. Returns the fault
/// windows.
async fn nemesis(
    args: &TestArgs,
    dir: &Path,
    endpoints: &[String],
    run: &Run,
    rng: SplitMix64,
    paused: Arc<Vec<AtomicBool>>,
) -> Result<Vec<(Duration, Duration, String)>, String> {
    let (notes, mut heard) = tokio::sync::mpsc::unbounded_channel::<(Duration, String)>();
    let sink = Box::new(move |at: Duration, text: &str| {
        let _ = notes.send((at, text.to_string()));
    });
    let real = RealCluster::new(dir.to_path_buf(), endpoints.to_vec(), run.start, sink)?;
    let mut real = real.with_spares(args.nodes as usize);
    let kinds: Vec<String> = args.faults.iter().filter(|f| *f != "none").cloned().collect();
    let until = args.time;
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let windows = schedule(&mut real, &kinds, rng, until, &paused);
        let healed = real.heal_all();
        let failed = if healed.failed.is_empty() {
            String::new()
        } else {
            format!(" (not undone: {})", healed.failed.join("; "))
        };
        real.note(&format!("heal everything (end of test){failed}"));
        let _ = done.send(windows);
    });
    let trace = run.trace.clone();
    let recorder = tokio::task::spawn_local(async move {
        while let Some((at, text)) = heard.recv().await {
            trace.borrow_mut().record(at, format_args!("nemesis {text}"));
        }
    });
    let windows = finished.await.map_err(|_| "the nemesis thread stopped".to_string())?;
    let _ = recorder.await;
    Ok(windows)
}

/// `raftbed test`'s fault schedule lowered to the primitives: every 1.5-3 s one fault of the
/// kinds asked for, held 2-5 s, then undone; none starts in the last 4 s.
fn schedule(
    f: &mut impl Faults,
    kinds: &[String],
    mut rng: SplitMix64,
    until: Duration,
    paused: &[AtomicBool],
) -> Vec<(Duration, Duration, String)> {
    let mut windows = Vec::new();
    let n = f.nodes().len();
    while f.now() + Duration::from_secs(4) < until {
        std::thread::sleep(rng.duration(Duration::from_millis(1500), Duration::from_millis(3000)));
        if kinds.is_empty() {
            continue;
        }
        let kind = kinds[rng.below(kinds.len() as u64) as usize].as_str();
        let hold = rng.duration(Duration::from_secs(2), Duration::from_secs(5));
        let node = rng.below(n as u64) as usize;
        let from = f.now();
        let Some((label, undo)) = start_fault(f, kind, node, &mut rng) else { continue };
        paused[node].store(kind == "pause", Ordering::Relaxed);
        std::thread::sleep(hold);
        paused[node].store(false, Ordering::Relaxed);
        let (effect, done) = match &undo {
            Undo::Heal(cut) => (f.heal(cut), format!("heal ({label})")),
            Undo::Restart(node) => (f.restart(*node), format!("restart {}", f.nodes()[*node])),
            Undo::Resume(node) => (f.resume(*node), format!("resume {}", f.nodes()[*node])),
            Undo::Promote(node) => {
                let promote = MembershipChange::AddVoter(NodeId(*node as u64 + 1));
                (f.change_membership(promote), format!("promote {}", f.nodes()[*node]))
            }
            Undo::Nothing => (Effect::Done, format!("end of {label}")),
        };
        let text = match effect {
            Effect::Failed(e) => format!("{done} failed: {e}"),
            _ => done,
        };
        f.note(&text);
        windows.push((from, f.now(), label));
    }
    let left = until.saturating_sub(f.now());
    std::thread::sleep(left);
    windows
}

/// How a fault of the test's schedule is undone.
enum Undo {
    Heal(Cut),
    Restart(usize),
    Resume(usize),
    /// A learner a grow fault added.
    Promote(usize),
    Nothing,
}

/// Spare nodes beside the voters when membership faults are on.
const SPARES: usize = 2;

/// Fewer voters than this are not shrunk.
const MIN_VOTERS: usize = 3;

/// A membership fault, as the simulator's nemesis makes them: grow (a spare added as a learner,
/// promoted when the fault ends), shrink (a voter or the leader removed) or replace (a voter
/// crashed, removed, and a spare added as a voter in its place).
fn member_fault(f: &mut impl Faults, rng: &mut SplitMix64) -> Option<(String, Undo, Effect)> {
    let id = |node: usize| NodeId(node as u64 + 1);
    let Some(membership) = f.membership() else {
        f.note("membership: no member answered the member list");
        return None;
    };
    let names = f.nodes().to_vec();
    let leader = f.leader();
    let mut voters: Vec<usize> = membership.voters.iter().map(|v| v.0 as usize - 1).collect();
    if !rng.chance(1.0 / 3.0) {
        voters.retain(|v| Some(*v) != leader);
    }
    let victim = (!voters.is_empty()).then(|| voters[rng.below(voters.len() as u64) as usize]);
    match rng.below(3) {
        0 => {
            let spare = f.fresh_node()?;
            let effect = f.change_membership(MembershipChange::AddLearner(id(spare)));
            Some((
                format!("grow: {} added as a learner", names[spare]),
                Undo::Promote(spare),
                effect,
            ))
        }
        1 if membership.voters.len() > MIN_VOTERS => {
            let victim = victim?;
            let effect = f.change_membership(MembershipChange::Remove(id(victim)));
            Some((format!("shrink: {} removed", names[victim]), Undo::Nothing, effect))
        }
        _ => {
            let (victim, spare) = (victim?, f.fresh_node()?);
            let crashed = f.crash(victim);
            if let Effect::Failed(e) = crashed {
                return Some((
                    format!("replace {}", names[victim]),
                    Undo::Nothing,
                    Effect::Failed(e),
                ));
            }
            let mut effect = f.change_membership(MembershipChange::Remove(id(victim)));
            if effect == Effect::Done {
                effect = f.change_membership(MembershipChange::AddVoter(id(spare)));
            }
            let label =
                format!("replace: {} crashed and replaced by {}", names[victim], names[spare]);
            Some((label, Undo::Restart(victim), effect))
        }
    }
}

/// Starts one fault of `kind`; its label and undo, or `None` (noted) if it could not start.
fn start_fault(
    f: &mut impl Faults,
    kind: &str,
    node: usize,
    rng: &mut SplitMix64,
) -> Option<(String, Undo)> {
    let names = f.nodes().to_vec();
    let (label, undo, effect) = match kind {
        "partition" if rng.chance(0.5) => {
            let Some(leader) = f.leader() else {
                f.note("isolate the leader: there is none");
                return None;
            };
            let (cut, effect) = f.isolate(leader);
            (format!("the leader {} isolated", names[leader]), Undo::Heal(cut), effect)
        }
        "partition" => {
            let mut order = names.clone();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let (a, b) = order.split_at(1 + rng.below((names.len() / 2) as u64) as usize);
            let cut = Cut::between(&[a.to_vec(), b.to_vec()], false);
            let effect = f.cut(&cut);
            (format!("partition {} | {}", a.join(","), b.join(",")), Undo::Heal(cut), effect)
        }
        "kill" => (format!("{} killed", names[node]), Undo::Restart(node), f.crash(node)),
        "member" => member_fault(f, rng)?,
        _ => (format!("{} paused", names[node]), Undo::Resume(node), f.pause(node)),
    };
    match effect {
        Effect::Done => {
            f.note(&label);
            Some((label, undo))
        }
        Effect::Nothing(why) => {
            f.note(&format!("{label}: nothing to do ({why})"));
            None
        }
        Effect::Failed(e) => {
            f.note(&format!("{label} failed: {e}"));
            // A partial cut is still undone.
            if let Undo::Heal(cut) = &undo {
                let _ = f.heal(cut);
            }
            None
        }
    }
}

/// Every key the unique-key writer stored, read linearizably once a leader is back.
async fn read_back(endpoints: &[String]) -> Result<BTreeSet<String>, String> {
    let _ = wait_for_leader(endpoints, Duration::from_secs(10)).await;
    let mut client = Client::new(TokioNet, endpoints.to_vec(), 0);
    client.timeout = Duration::from_secs(2);
    client.attempts = 2 * endpoints.len();
    let range = client
        .get(Bytes::from_static(b"w/"), Bytes::from_static(b"w0"), Consistency::Linearizable)
        .await
        .map_err(|e| {
            format!("the final read of the unique-key writer's keys failed: {}", e.message)
        })?;
    Ok(range.kvs.into_iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect())
}

/// The report of a finished test.
fn report(args: &TestArgs, finished: Finished, dir: &Path) -> ReplayReport {
    let Finished { run, faults, roles, lost_events, undecided, end, watch_streams, leaders } =
        finished;
    // Every node that ran, the spares of membership faults included.
    let n = (1..).take_while(|i| dir.join(format!("n{i}")).exists()).count();
    // One read of the stopped nodes' logs serves both the writes' fates and the watch check.
    let stored = most_committed(dir, n);
    let watch = stored.as_ref().map_err(Clone::clone).and_then(|best| {
        super::jepsen_watch::check(best.as_ref(), &watch_streams.borrow(), leaders)
    });
    let (watch, watch_log) = match watch {
        Ok(log) => (Some(log.check()), Some(log)),
        Err(e) => {
            eprintln!("raftbed test: the watches cannot be checked: {e}");
            (None, None)
        }
    };
    let history = run.shared.history.borrow().clone();
    let (single, transactions) = crate::sim::append::split_history(&history);
    let budget = CheckBudget { timeout: Duration::from_secs(120), ..CheckBudget::default() };
    let resolved = match &stored {
        Ok(best) => Some(crate::resolved::resolve(&single, committed_log(best.as_ref()))),
        Err(e) => {
            eprintln!("raftbed test: the writes' fates are not known: {e}");
            None
        }
    };
    let (linearizability, counts) = check_history(&single, budget, resolved.as_ref());
    let resolved = resolved.map(|r| (r, counts));
    let findings = scenario::detect(&Evidence {
        history: &single,
        lost_events: &lost_events,
        roles: &roles,
        lease_overlaps: Vec::new(),
        violations: Vec::new(),
        fenced_rejections: 0,
        fencing: &FencingLog::default(),
        end,
    });
    let description = format!(
        "{n} raftbed node processes on loopback, {} clients, faults {}",
        args.clients,
        args.faults.join(",")
    );
    let mut groups = vec!["clients".to_string(); args.clients];
    groups.push("unique-key writer".into());
    let trace = run.trace.borrow();
    ReplayReport {
        run: RunInfo {
            name: "raftbed test".into(),
            description,
            duration: end,
            nodes: (1..=n).map(|i| format!("n{i}")).collect(),
        },
        system: System::Raft,
        seed: args.seed,
        trace_hash: format!("{:016x}", trace.hash()),
        trace: trace.lines().to_vec(),
        history,
        linearizability,
        resolved,
        findings,
        detector_undecided: undecided,
        roles,
        faults,
        groups,
        processes: args.clients as u64 + 1,
        wall: run.start.elapsed(),
        rerun: Some(format!(
            "raftbed test --nodes {} --time {}s --faults {} --clients {} --seed {}{} (real processes: timing differs run to run)",
            args.nodes,
            args.time.as_secs(),
            args.faults.join(","),
            args.clients,
            args.seed,
            if args.workload == "append" { " --workload append" } else { "" }
        )),
        check: budget,
        bugs: crate::sim::SimBugs::default(),
        watch,
        watch_log,
        coverage: None,
        expected: Vec::new(),
        transactions,
        real: true,
    }
}

/// The stopped nodes' stored state (snapshot and log) of the one that recorded the highest
/// commit index (Log Matching, §3.5: its log holds the committed prefix); `None` without nodes.
fn most_committed(dir: &Path, nodes: usize) -> Result<Option<crate::raft::Restored>, String> {
    let names: Vec<String> = (1..=nodes).map(|id| format!("n{id}")).collect();
    most_committed_in(dir, &names)
}

/// `most_committed` over the data dirs `DIR/NAME` of these nodes.
pub(super) fn most_committed_in(
    dir: &Path,
    names: &[String],
) -> Result<Option<crate::raft::Restored>, String> {
    let mut best: Option<crate::raft::Restored> = None;
    for name in names {
        let path = dir.join(name);
        let restored = crate::storage::read_only(&crate::storage::fs::StdFs, &path)
            .map_err(|e| format!("{name}: {e}"))?;
        if best.as_ref().is_none_or(|b| restored.hard_state.commit > b.hard_state.commit) {
            best = Some(restored);
        }
    }
    Ok(best)
}

/// The committed log, from the entries of `best` (`most_committed`) up to its commit index. A
/// node's log starts after its last snapshot, so a compacted prefix is unknown and only what
/// follows it is resolved.
///
/// Why the logs and not reading back: the workload's writes share a few keys, each overwritten
/// many times, so the final state tells nothing about most writes; the log names every one by
/// its session.
pub(super) fn committed_log(best: Option<&crate::raft::Restored>) -> Vec<crate::resolved::LogSlot> {
    use crate::resolved::LogSlot;
    let Some(best) = best else { return Vec::new() };
    let first = best.snapshot.as_ref().map_or(0, |s| s.meta.index.0);
    let commit = best.hard_state.commit.0;
    let mut log = vec![LogSlot::Unknown; first as usize];
    for entry in best.entries.iter().take_while(|e| e.index.0 <= commit) {
        // A configuration entry (membership faults) is no client's write.
        let config = entry.kind == crate::raft::EntryKind::Config;
        log.push(if config { LogSlot::Other } else { LogSlot::of(&entry.data) });
    }
    if (log.len() as u64) < commit {
        // Committed entries this node's log no longer holds: nothing after them is known.
        log.push(LogSlot::Unknown);
    }
    log
}
