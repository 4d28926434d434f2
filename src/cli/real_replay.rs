//! `raftbed replay SCENARIO --real`: the scenario on real processes. The same timeline, lowered
//! to the same fault primitives (`real_world`), played at wall-clock times; the same client
//! groups, each reaching its nodes through its site's links; the same detector and report.
//! Roles are polled from each node; lost writes come from Raft's stored log or the surviving
//! naive primary's binlog; the history is checked as the simulator's is.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message as _;

use super::real_links::{LinkTable, Proxy, bind_pair};
use super::real_world::{RealWorld, spawn};
use crate::client::Client;
use crate::faults::{Faults, NodeState};
use crate::naive::{Msg, monitor, msg};
use crate::raft::NodeId;
use crate::rng::SplitMix64;
use crate::scenario::{self, MONITOR_HOST, ReplayReport, RoleSpan, Scenario, System, group_host};
use crate::sim::CheckBudget;
use crate::sim::trace::Trace;
use crate::sim::workload::{self, Role, Shared};
use crate::transport::frame::{read_frame, write_frame};
use crate::transport::net::TokioNet;

/// What a real replay cannot run yet, named.
fn unsupported(scenario: &Scenario) -> Option<String> {
    if !scenario.locks.is_empty() {
        return Some("lock clients and the fenced resource run only in the simulator".into());
    }
    if scenario.raft.spares > 0
        || scenario.events.iter().any(|e| {
            matches!(e.action, scenario::Action::Member(_) | scenario::Action::Replace(..))
        })
    {
        return Some("membership changes run only in the simulator (raftbed test --faults member runs them on real processes)".into());
    }
    if scenario.sim.is_some() {
        return Some(
            "a drawn scenario (from raftbed sim --emit-scenario) replays only in the simulator"
                .into(),
        );
    }
    None
}

/// Ports `p`, `p + 1` and `p + 2` free a moment ago (a node's client, peer and admin ports).
fn free_triple() -> Result<u16, String> {
    for _ in 0..64 {
        let (first, _second) = bind_pair()?;
        let port = first.local_addr().map_err(|e| e.to_string())?.port();
        let Some(third) = port.checked_add(2) else { continue };
        if std::net::TcpListener::bind(("127.0.0.1", third)).is_ok() {
            return Ok(port);
        }
    }
    Err("no three consecutive free loopback ports in 64 tries".into())
}

/// Every proxy of the run, bound: per directed node pair a client and a peer port; per client
/// group and node a client port; per node the monitor's peer port.
struct Plan {
    /// Each node's own client address.
    real: Vec<String>,
    /// `peers[i][j]`: node `j`'s client address as node `i` reaches it.
    peers: Vec<Vec<String>>,
    /// Each group's endpoints for its `talk_to` nodes.
    groups: Vec<Vec<String>>,
    /// The monitor's address of each node's peer port.
    monitor: Vec<String>,
    listeners: Vec<(std::net::TcpListener, Proxy)>,
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn plan(scenario: &Scenario) -> Result<Plan, String> {
    let n = scenario.nodes.len();
    let mut real = Vec::new();
    for _ in 0..n {
        real.push(free_triple()?);
    }
    let mut listeners = Vec::new();
    let mut add = |listener: std::net::TcpListener, from: &str, to: usize, port: u16| {
        let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let proxy = Proxy { from: from.to_string(), to: scenario.nodes[to].clone(), upstream };
        listeners.push((listener, proxy));
    };
    let mut peers = vec![Vec::new(); n];
    for (i, row) in peers.iter_mut().enumerate() {
        for (j, &port) in real.iter().enumerate() {
            if i == j {
                row.push(addr(port));
                continue;
            }
            let (client, peer) = bind_pair()?;
            let proxy_port = client.local_addr().map_err(|e| e.to_string())?.port();
            add(client, &scenario.nodes[i], j, port);
            add(peer, &scenario.nodes[i], j, port + 1);
            row.push(addr(proxy_port));
        }
    }
    let mut groups = Vec::new();
    for group in &scenario.clients {
        let mut endpoints = Vec::new();
        for &j in &group.talk_to {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            endpoints.push(addr(listener.local_addr().map_err(|e| e.to_string())?.port()));
            add(listener, &group_host(&group.name), j, real[j]);
        }
        groups.push(endpoints);
    }
    let mut monitor = Vec::new();
    for (j, port) in real.iter().enumerate() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        monitor.push(addr(listener.local_addr().map_err(|e| e.to_string())?.port()));
        add(listener, MONITOR_HOST, j, port + 1);
    }
    Ok(Plan { real: real.into_iter().map(addr).collect(), peers, groups, monitor, listeners })
}

/// The link table as the scenario builds it: every pair of hosts at its sites' latency and
/// loss.
fn links(scenario: &Scenario) -> LinkTable {
    let table = LinkTable::default();
    let mut hosts = scenario.nodes.clone();
    hosts.extend(scenario.clients.iter().map(|g| group_host(&g.name)));
    hosts.push(MONITOR_HOST.to_string());
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            let sites = (scenario::site_of_host(scenario, a), scenario::site_of_host(scenario, b));
            let (latency, loss) = scenario.latency(sites.0, sites.1);
            table.build(a, b, latency, loss);
        }
    }
    table
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// Node `i`'s command line.
fn node_args(
    scenario: &Scenario,
    system: System,
    plan: &Plan,
    dir: &Path,
    i: usize,
) -> Vec<String> {
    let t = &scenario.timing;
    let r = &scenario.raft;
    let mut args: Vec<String> = vec![
        "node".into(),
        "--id".into(),
        (i + 1).to_string(),
        "--listen".into(),
        plan.real[i].clone(),
        "--peers".into(),
        plan.peers[i].join(","),
        "--data-dir".into(),
        dir.join(&scenario.nodes[i]).display().to_string(),
        "--admin-token-file".into(),
        super::cluster::token_file(dir).display().to_string(),
        "--system".into(),
        system.name().into(),
        "--first-primary".into(),
        (scenario.leader + 1).to_string(),
        "--cluster-id".into(),
        format!("{:x}", 0x5ce7_a210_u64 ^ scenario.nodes.len() as u64),
        "--heartbeat".into(),
        ms(t.raft.heartbeat),
        "--election-timeout".into(),
        ms(t.raft.election_timeout),
        "--drift-margin".into(),
        ms(t.raft.drift_margin),
        "--request-timeout".into(),
        ms(t.request_timeout),
        "--lease-reads".into(),
        t.lease.to_string(),
        "--pre-vote".into(),
        r.pre_vote.to_string(),
        "--check-quorum".into(),
        r.check_quorum.to_string(),
        "--max-entries-per-message".into(),
        r.max_entries_per_message.to_string(),
        "--snapshot-count".into(),
        r.snapshot_every.to_string(),
    ];
    if i == scenario.leader && system == System::Raft {
        args.push("--campaign-first".into());
    }
    args
}

/// The node that leads now (Raft's leader; the naive primary of the newest epoch), asked of
/// every running node directly, with its term or epoch.
pub(super) async fn leader_now(endpoints: &[String], up: &[bool]) -> Option<(usize, u64)> {
    let mut client = Client::new(TokioNet, endpoints.to_vec(), 0);
    client.timeout = Duration::from_millis(300);
    let mut best: Option<(usize, u64)> = None;
    for (i, _) in endpoints.iter().enumerate().filter(|(i, _)| up[*i]) {
        let Ok(status) = client.status(i).await else { continue };
        let me = status.header.as_ref().map_or(0, |h| h.member_id);
        if status.leader == me && best.is_none_or(|(_, term)| status.raft_term > term) {
            best = Some((i, status.raft_term));
        }
    }
    best
}

/// Each node's role, polled every 100 ms until `stop`; paused and crashed nodes as the fault
/// backend says.
async fn poll_roles(
    endpoints: Vec<String>,
    names: (&'static str, &'static str),
    states: Arc<Mutex<Vec<NodeState>>>,
    clock: Rc<dyn Fn() -> Duration>,
    stop: Rc<Cell<bool>>,
) -> Vec<RoleSpan> {
    let mut spans = Vec::new();
    // Each node's first role is what its first answer says, from the start.
    let mut current: Vec<Option<(String, Duration)>> = vec![None; endpoints.len()];
    let mut client = Client::new(TokioNet, endpoints.clone(), 0);
    client.timeout = Duration::from_millis(150);
    while !stop.get() {
        for (i, cur) in current.iter_mut().enumerate() {
            let state = states.lock().expect("states poisoned")[i];
            let role = match state {
                NodeState::Paused => "paused".to_string(),
                NodeState::Crashed => "down".to_string(),
                NodeState::Up => match client.status(i).await {
                    Ok(s) => {
                        let me = s.header.as_ref().map_or(0, |h| h.member_id);
                        if s.leader == me { names.0 } else { names.1 }.to_string()
                    }
                    Err(_) => continue,
                },
            };
            let now = clock();
            match cur {
                None => *cur = Some((role, Duration::ZERO)),
                Some((was, _)) if *was == role => {}
                Some(_) => {
                    let (old, since) = cur.replace((role, now)).expect("matched");
                    spans.push(RoleSpan { node: i, role: old, from: since, to: now });
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stop = clock();
    for (i, (role, since)) in current.into_iter().enumerate().filter_map(|(i, c)| Some((i, c?))) {
        spans.push(RoleSpan { node: i, role, from: since, to: stop });
    }
    spans.sort_by_key(|s| (s.node, s.from));
    spans
}

/// The binlog of the naive node at `peer` (its own peer port), read as a replica would.
async fn binlog_of(peer: &str) -> Result<BTreeSet<(u64, u64)>, String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(peer).await.map_err(|e| e.to_string())?;
        write_frame(&mut stream, &Msg::subscribe(0, 0).encode_to_vec())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        read_frame(&mut stream, &mut buf).await.map_err(|e| e.to_string())?;
        match Msg::decode(buf.as_slice()).map_err(|e| e.to_string())?.body {
            Some(msg::Body::Snapshot(s)) => Ok(s.binlog_pairs().into_iter().collect()),
            _ => Err("it sent no snapshot".to_string()),
        }
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "no answer in 5 s".to_string())?
}

/// Writes the monitor's notes into the trace.
struct MonitorNotes {
    trace: Rc<RefCell<Trace>>,
    clock: Rc<dyn Fn() -> Duration>,
}

impl monitor::MonitorObserver for MonitorNotes {
    fn note(&self, text: String) {
        self.trace.borrow_mut().record((self.clock)(), format_args!("{text}"));
    }
}

/// What the run left once its clients stopped.
struct Ran {
    world: RealWorld,
    windows: Vec<(Duration, Duration, String)>,
    end: Duration,
    roles: Vec<RoleSpan>,
    /// The naive survivor's binlog, or why it is not known.
    binlog: Option<Result<BTreeSet<(u64, u64)>, String>>,
    /// The naive survivor's epoch.
    epoch: u64,
}

/// Replays `scenario` against `system` on real processes with their data dirs and logs in
/// `dir`, its history checked within `budget`; `path` names the scenario file in the replay
/// command.
///
/// # Errors
/// A scenario this backend cannot run, or a cluster that could not be started.
pub fn replay_real(
    scenario: &Scenario,
    system: System,
    seed: u64,
    budget: CheckBudget,
    dir: &Path,
    path: &str,
) -> Result<ReplayReport, String> {
    if let Some(why) = unsupported(scenario) {
        return Err(format!("--real: {why}"));
    }
    let wall = Instant::now();
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let token = super::cluster::new_token()?;
    std::fs::write(super::cluster::token_file(dir), token).map_err(|e| e.to_string())?;
    let mut plan = plan(scenario)?;
    let table = Arc::new(links(scenario));
    let proxies = start_proxies(std::mem::take(&mut plan.listeners), table.clone())?;
    let n = scenario.nodes.len();
    let commands: Vec<Vec<String>> =
        (0..n).map(|i| node_args(scenario, system, &plan, dir, i)).collect();
    let mut children = Vec::new();
    for (i, args) in commands.iter().enumerate() {
        match spawn(dir, &scenario.nodes[i], args) {
            Ok(child) => children.push(child),
            Err(e) => {
                super::cluster::stop_children(&mut children);
                return Err(e);
            }
        }
    }
    let children = children.into_iter().map(Some).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let mut control: Vec<String> = scenario.clients.iter().map(|g| group_host(&g.name)).collect();
    control.push(MONITOR_HOST.into());
    let start = Instant::now();
    let world = RealWorld {
        dir: dir.to_path_buf(),
        system,
        nodes: scenario.nodes.clone(),
        endpoints: plan.real.clone(),
        commands,
        children,
        states: Arc::new(Mutex::new(vec![NodeState::Up; n])),
        table,
        control,
        start,
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?,
        sink: Box::new(|_, _| {}),
        skewed: Vec::new(),
    };
    let local = tokio::task::LocalSet::new();
    let ran = local.block_on(&runtime, drive(scenario, system, seed, &plan, world));
    let _ = proxies.send(());
    let (mut ran, run) = ran?;
    ran.world.stop();
    let parts = super::real_report::Parts {
        windows: ran.windows,
        end: ran.end,
        roles: ran.roles,
        binlog: ran.binlog,
        fenced: if system == System::Raft {
            0
        } else {
            fenced_in_logs(dir, &scenario.nodes, ran.epoch)
        },
        path: path.to_string(),
    };
    Ok(super::real_report::report(scenario, system, seed, budget, dir, parts, run, wall))
}

/// The naive nodes' fencing at work, from their logs (as the simulator counts it): every
/// replication refused for an old epoch, and every write of a primary whose epoch was already
/// superseded (`newest`) that no replica stored.
fn fenced_in_logs(dir: &Path, names: &[String], newest: u64) -> u64 {
    let mut count = 0;
    for name in names {
        let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
        for line in log.lines() {
            if line.contains(" refuses ") {
                count += 1;
            } else if let Some(rest) = line.split(": a write at epoch ").nth(1) {
                let epoch: u64 = rest.split(' ').next().and_then(|e| e.parse().ok()).unwrap_or(0);
                count += u64::from(epoch < newest && rest.ends_with("was stored by no replica"));
            }
        }
    }
    count
}

/// Serves every proxy on a thread of its own until the sender is used or dropped.
fn start_proxies(
    listeners: Vec<(std::net::TcpListener, Proxy)>,
    table: Arc<LinkTable>,
) -> Result<tokio::sync::oneshot::Sender<()>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the proxies' runtime: {e}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        runtime.block_on(async move {
            for (listener, proxy) in listeners {
                tokio::spawn(super::real_links::serve(listener, proxy, table.clone()));
            }
            let _ = stopped.await;
        });
    });
    Ok(stop)
}

/// The history and trace the clients and the timeline wrote.
pub(super) struct Recorded {
    pub(super) shared: Rc<Shared>,
    pub(super) trace: Rc<RefCell<Trace>>,
}

async fn drive(
    scenario: &Scenario,
    system: System,
    seed: u64,
    plan: &Plan,
    mut world: RealWorld,
) -> Result<(Ran, Recorded), String> {
    let up = wait_until_serving(&plan.real, system).await;
    if let Err(e) = up {
        world.stop();
        return Err(format!("{e}; node logs in {}", world.dir.display()));
    }
    let start = Instant::now();
    world.start = start;
    let clock: Rc<dyn Fn() -> Duration> = Rc::new(move || start.elapsed());
    let shared = Rc::new(Shared::default());
    let trace = Rc::new(RefCell::new(Trace::new(true)));
    let (notes, mut heard) = tokio::sync::mpsc::unbounded_channel::<(Duration, String)>();
    world.sink = Box::new(move |at, text| {
        let _ = notes.send((at, text.to_string()));
    });
    let mut rng = SplitMix64::new(seed);
    let total = scenario.client_count() as u64;
    let mut clients = Vec::new();
    let mut next = 0u64;
    for (group, endpoints) in scenario.clients.iter().zip(&plan.groups) {
        let params = scenario::group_params(group, endpoints.clone(), total);
        for id in next..next + group.count as u64 {
            let task = workload::run_on(
                TokioNet,
                clock.clone(),
                id,
                Role::Mixed,
                params.clone(),
                rng.fork(),
                shared.clone(),
                trace.clone(),
            );
            clients.push(tokio::task::spawn_local(task));
        }
        next += group.count as u64;
    }
    let monitor = (system != System::Raft).then(|| {
        let params = monitor::MonitorParams {
            nodes: plan
                .monitor
                .iter()
                .enumerate()
                .map(|(j, a)| (NodeId(j as u64 + 1), a.clone()))
                .collect(),
            primary: NodeId(scenario.leader as u64 + 1),
            interval: scenario.timing.monitor_interval,
            failover_after: scenario.timing.failover_after,
        };
        let notes = MonitorNotes { trace: trace.clone(), clock: clock.clone() };
        tokio::task::spawn_local(monitor::run(TokioNet, params, Rc::new(notes)))
    });
    let names =
        if system == System::Raft { ("leader", "follower") } else { ("primary", "replica") };
    let stop_polling = Rc::new(Cell::new(false));
    let poller = tokio::task::spawn_local(poll_roles(
        plan.real.clone(),
        names,
        world.states.clone(),
        clock.clone(),
        stop_polling.clone(),
    ));
    let recorder = {
        let trace = trace.clone();
        tokio::task::spawn_local(async move {
            while let Some((at, text)) = heard.recv().await {
                trace.borrow_mut().record(at, format_args!("{text}"));
            }
        })
    };
    let (done, finished) = tokio::sync::oneshot::channel();
    let (owned, duration) = (scenario.clone(), scenario.duration);
    std::thread::spawn(move || {
        let _ = done.send(play(&owned, system, world, duration));
    });
    let (world, windows, end) =
        finished.await.map_err(|_| "the fault thread stopped".to_string())?;
    shared.stop.set(true);
    for task in clients {
        let _ = task.await;
    }
    tokio::time::sleep(scenario::settle_time(scenario)).await;
    stop_polling.set(true);
    let roles = poller.await.unwrap_or_default();
    let mut epoch = 0;
    let binlog = if system == System::Raft {
        None
    } else {
        let up: Vec<bool> = vec![true; plan.real.len()];
        Some(match leader_now(&plan.real, &up).await {
            Some((survivor, term)) => {
                epoch = term;
                let peer = format!("127.0.0.1:{}", port_of(&plan.real[survivor]) + 1);
                binlog_of(&peer).await.map_err(|e| format!("{}: {e}", scenario.nodes[survivor]))
            }
            None => Err("no primary at the end".into()),
        })
    };
    if let Some(task) = monitor {
        task.abort();
    }
    // The trace has every note once the last sender is gone.
    let mut world = world;
    world.sink = Box::new(|_, _| {});
    let _ = recorder.await;
    let ran = Ran { world, windows, end, roles, binlog, epoch };
    Ok((ran, Recorded { shared, trace }))
}

fn port_of(address: &str) -> u16 {
    address.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0)
}

/// Plays the timeline on `world` at wall-clock times until `duration`, then undoes every
/// fault. Returns the world, the fault windows and when the scenario ended.
fn play(
    scenario: &Scenario,
    system: System,
    mut world: RealWorld,
    duration: Duration,
) -> (RealWorld, Vec<(Duration, Duration, String)>, Duration) {
    let mut timeline = scenario::Timeline::new(scenario, system);
    while world.now() < duration {
        timeline.advance(&mut world);
        std::thread::sleep(Duration::from_millis(10));
    }
    let end = world.now();
    let healed = world.heal_all();
    if healed.cuts {
        world.note("heal (end of scenario)");
    }
    for node in healed.resumed {
        let text = format!("resume {} (end of scenario)", world.nodes[node]);
        world.note(&text);
    }
    for node in healed.restarted {
        let text = format!("restart {} (end of scenario)", world.nodes[node]);
        world.note(&text);
    }
    for why in healed.failed {
        world.note(&format!("not undone: {why}"));
    }
    (world, timeline.windows(end), end)
}

/// Waits until the cluster serves: Raft with a leader, every naive node answering.
async fn wait_until_serving(endpoints: &[String], system: System) -> Result<(), String> {
    let within = Duration::from_secs(20);
    if system == System::Raft {
        return super::cluster::wait_for_leader(endpoints, within)
            .await
            .map(|_| ())
            .ok_or_else(|| format!("no leader within {within:?}"));
    }
    let deadline = Instant::now() + within;
    let mut client = Client::new(TokioNet, endpoints.to_vec(), 0);
    client.timeout = Duration::from_millis(300);
    let mut waiting: BTreeMap<usize, ()> = (0..endpoints.len()).map(|i| (i, ())).collect();
    while !waiting.is_empty() {
        if Instant::now() > deadline {
            return Err(format!("{} naive nodes not serving within {within:?}", waiting.len()));
        }
        let ids: Vec<usize> = waiting.keys().copied().collect();
        for i in ids {
            if client.status(i).await.is_ok() {
                waiting.remove(&i);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Where a real replay keeps its data dirs and logs.
pub fn run_dir(system: System) -> PathBuf {
    std::env::temp_dir().join(format!("raftbed-replay-{}-{}", std::process::id(), system.name()))
}
