//! `raftbed cluster up|down|status`: a local cluster of `raftbed node` processes on 127.0.0.1.
//!
//! `up` starts the nodes (each in its own process group, logging to `DIR/nI.log`), records
//! their pids in `DIR/cluster.json`, waits for a leader and prints the endpoints; then it stays
//! in the foreground until Ctrl-C (or returns at once with `--detach`). `down` stops the
//! processes `cluster.json` names, after checking each pid still runs `raftbed node` on that
//! data dir. Data dirs are never deleted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use crate::client::Client;
use crate::server::local::{DEFAULT_BASE_PORT, default_endpoints};
use crate::transport::net::TokioNet;

/// `raftbed cluster` arguments.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Start N node processes on 127.0.0.1 and wait for a leader.
    Up {
        /// Nodes (1 to 9).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=9))]
        nodes: u16,
        /// Where each node's data dir (DIR/n1 ...), log and cluster.json go.
        #[arg(long, default_value = "raftbed-data")]
        data_dir: PathBuf,
        /// Node I serves clients on BASE+10*I and peers on the port after.
        #[arg(long, default_value_t = DEFAULT_BASE_PORT)]
        base_port: u16,
        /// Return once a leader is elected, leaving the nodes running (stop them with `down`).
        #[arg(long)]
        detach: bool,
        /// Heartbeat interval, passed to every node.
        #[arg(long, default_value = "50ms")]
        heartbeat: String,
        /// Minimum election timeout, passed to every node.
        #[arg(long, default_value = "300ms")]
        election_timeout: String,
        /// Entries between snapshots, passed to every node (etcd's --snapshot-count).
        #[arg(long, default_value_t = 100_000)]
        snapshot_count: u64,
        /// etcd's --auto-compaction-mode (periodic or revision), passed to every node.
        #[arg(long, default_value = "periodic")]
        auto_compaction_mode: String,
        /// etcd's --auto-compaction-retention (0: off), passed to every node.
        #[arg(long, default_value = "0")]
        auto_compaction_retention: String,
        /// Progress notification interval for watches that ask, passed to every node.
        #[arg(long, alias = "experimental-watch-progress-notify-interval", default_value = "10m")]
        watch_progress_notify_interval: String,
        /// etcd's --max-request-bytes, passed to every node.
        #[arg(long, default_value_t = crate::server::DEFAULT_MAX_REQUEST_BYTES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=(1 << 30)))]
        max_request_bytes: usize,
        /// What the nodes run: `raft`, or a comparison system (`naive-failover`,
        /// `naive-failover-fenced`), whose monitor (`raftbed monitor`) is started too.
        #[arg(long, default_value = "raft", value_parser = ["raft", "naive-failover", "naive-failover-fenced"])]
        system: String,
        /// (naive systems) The monitor promotes a replica after the primary has not answered
        /// for this long.
        #[arg(long, default_value = "3s")]
        failover_after: String,
        /// (naive systems) Time between the monitor's ping rounds.
        #[arg(long, default_value = "1s")]
        monitor_interval: String,
    },
    /// Stop the nodes `up` started.
    Down {
        /// The cluster's data dir.
        #[arg(long, default_value = "raftbed-data")]
        data_dir: PathBuf,
    },
    /// SIGKILL the leader's process; prints `<node> <epoch_ns>` (for `raftbed bench
    /// --workload failover --kill-cmd`).
    KillLeader {
        /// The cluster's data dir.
        #[arg(long, default_value = "raftbed-data")]
        data_dir: PathBuf,
    },
    /// Add a node: the cluster adds a member (etcd's MemberAdd), and a new node process joins
    /// as it.
    Add {
        /// The cluster's data dir.
        #[arg(long, default_value = "raftbed-data")]
        data_dir: PathBuf,
        /// Add it as a learner (promote it with `cluster promote`).
        #[arg(long)]
        learner: bool,
    },
    /// Promote a learner once it has caught up (etcd's MemberPromote).
    Promote {
        /// The node (n4).
        node: String,
        /// The cluster's data dir.
        #[arg(long, default_value = "raftbed-data")]
        data_dir: PathBuf,
    },
    /// Remove a member (etcd's MemberRemove); the removed node stops by itself.
    Remove {
        /// The node (n2).
        node: String,
        /// The cluster's data dir.
        #[arg(long, default_value = "raftbed-data")]
        data_dir: PathBuf,
    },
    /// Replace a voter with a new node: added as a learner, caught up, then swapped in with
    /// one joint-consensus change (§4.3).
    Replace {
        /// The node to replace (n2).
        node: String,
        /// The cluster's data dir.
        #[arg(long, default_value = "raftbed-data")]
        data_dir: PathBuf,
    },
    /// Per node: id, role, term, commit, applied.
    Status {
        /// The cluster's data dir.
        #[arg(long, default_value = "raftbed-data")]
        data_dir: PathBuf,
    },
}

/// What `up` records.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ClusterFile {
    /// Client endpoints, node 1 first.
    pub endpoints: Vec<String>,
    /// Process ids, node 1 first (0: not running).
    pub pids: Vec<u32>,
    /// The arguments every node was started with beyond its address and data dir.
    #[serde(default)]
    pub node_args: Vec<String>,
    /// Member ids, node 1 first (missing: a bootstrap node's id, its position).
    #[serde(default)]
    pub ids: Vec<u64>,
    /// Which nodes joined the running cluster (`cluster add`), node 1 first (missing: no).
    #[serde(default)]
    pub joined: Vec<bool>,
    /// The naive systems' monitor process (0: none).
    #[serde(default)]
    pub monitor_pid: u32,
}

impl ClusterFile {
    /// The member id of node `slot` (n1 is slot 1).
    pub fn id(&self, slot: usize) -> u64 {
        self.ids.get(slot - 1).copied().unwrap_or(slot as u64)
    }

    /// The node whose member id is `id`.
    pub fn slot_of(&self, id: u64) -> Option<usize> {
        (1..=self.endpoints.len()).find(|slot| self.id(*slot) == id)
    }

    /// Whether node `slot` joined the running cluster.
    pub fn joined(&self, slot: usize) -> bool {
        self.joined.get(slot - 1).copied().unwrap_or(false)
    }

    /// The endpoints of the nodes that bootstrapped the cluster (what their --peers lists).
    pub fn bootstrap_endpoints(&self) -> Vec<String> {
        let slots = 1..=self.endpoints.len();
        slots.filter(|s| !self.joined(*s)).map(|s| self.endpoints[s - 1].clone()).collect()
    }

    /// Records a node that joined as member `id` at `endpoint`, running as `pid`.
    pub fn push_joined(&mut self, endpoint: String, pid: u32, id: u64) {
        let n = self.endpoints.len();
        self.ids = (1..=n).map(|slot| self.id(slot)).chain([id]).collect();
        self.joined = (1..=n).map(|slot| self.joined(slot)).chain([true]).collect();
        self.endpoints.push(endpoint);
        self.pids.push(pid);
    }
}

/// The admin token file of a cluster's data dir.
pub fn token_file(dir: &Path) -> PathBuf {
    dir.join("admin-token")
}

/// 128 random bits, in hex, from the OS.
pub(super) fn new_token() -> Result<String, String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `file` to `DIR/cluster.json`.
pub fn write_cluster(dir: &Path, file: &ClusterFile) -> Result<(), String> {
    let json = serde_json::to_string_pretty(file).expect("serializable");
    std::fs::write(cluster_file(dir), json)
        .map_err(|e| format!("{}: {e}", cluster_file(dir).display()))
}

fn cluster_file(dir: &Path) -> PathBuf {
    dir.join("cluster.json")
}

/// Reads `DIR/cluster.json`.
pub fn read_cluster(dir: &Path) -> Result<ClusterFile, String> {
    let path = cluster_file(dir);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!("{}: {e} (is a cluster up with --data-dir {}?)", path.display(), dir.display())
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every port of `nodes` nodes from `base`: node I's client port BASE+10·I, its peer port after
/// it, and its admin port after that.
fn cluster_ports(base: u16, nodes: usize) -> impl Iterator<Item = u16> {
    (1..=nodes as u16).flat_map(move |i| [0, 1, 2].map(|k| base + 10 * i + k))
}

/// A base port from which `nodes` nodes' client, peer and admin ports are free now: in
/// 25000-31999, below Linux's ephemeral range (32768-60999), so that no outgoing connection
/// takes a node's port while the node restarts.
pub fn free_base_port(nodes: usize) -> Option<u16> {
    let seed = std::process::id() as u16;
    (0..200u16).map(|attempt| 25_000 + (seed.wrapping_add(attempt * 53) % 70) * 100).find(|base| {
        cluster_ports(*base, nodes).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
    })
}

/// Runs `raftbed cluster`.
pub fn run(args: &ClusterArgs) -> ExitCode {
    let result = match &args.command {
        ClusterCommand::Up {
            nodes,
            data_dir,
            base_port,
            detach,
            heartbeat,
            election_timeout,
            snapshot_count,
            auto_compaction_mode,
            auto_compaction_retention,
            watch_progress_notify_interval,
            max_request_bytes,
            system,
            failover_after,
            monitor_interval,
        } => {
            let compaction = crate::server::api::compactor::AutoCompaction::parse(
                auto_compaction_mode,
                auto_compaction_retention,
            );
            if let Err(e) = compaction {
                eprintln!("raftbed cluster: {e}");
                return ExitCode::from(2);
            }
            let node_flags = vec![
                "--heartbeat".to_string(),
                heartbeat.clone(),
                "--election-timeout".to_string(),
                election_timeout.clone(),
                "--snapshot-count".to_string(),
                snapshot_count.to_string(),
                "--auto-compaction-mode".to_string(),
                auto_compaction_mode.clone(),
                "--auto-compaction-retention".to_string(),
                auto_compaction_retention.clone(),
                "--watch-progress-notify-interval".to_string(),
                watch_progress_notify_interval.clone(),
                "--max-request-bytes".to_string(),
                max_request_bytes.to_string(),
                "--system".to_string(),
                system.clone(),
            ];
            let monitor = (system != "raft").then(|| {
                vec![
                    "--interval".to_string(),
                    monitor_interval.clone(),
                    "--failover-after".to_string(),
                    failover_after.clone(),
                ]
            });
            up(*nodes as usize, data_dir, *base_port, *detach, &node_flags, monitor)
        }
        ClusterCommand::Down { data_dir } => down(data_dir).map(|()| ExitCode::SUCCESS),
        ClusterCommand::Status { data_dir } => status(data_dir),
        ClusterCommand::Add { data_dir, learner } => said(super::members::add(data_dir, *learner)),
        ClusterCommand::Promote { node, data_dir } => said(super::members::promote(data_dir, node)),
        ClusterCommand::Remove { node, data_dir } => said(super::members::remove(data_dir, node)),
        ClusterCommand::Replace { node, data_dir } => said(super::members::replace(data_dir, node)),
        ClusterCommand::KillLeader { data_dir } => {
            kill_leader(data_dir).map(|()| ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("raftbed cluster: {e}");
        ExitCode::from(2)
    })
}

/// The node command line for node `id` of `endpoints`.
pub fn node_command(id: usize, endpoints: &[String], dir: &Path) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("raftbed"));
    let mut command = Command::new(exe);
    command
        .arg("node")
        .arg("--id")
        .arg(id.to_string())
        .arg("--listen")
        .arg(&endpoints[id - 1])
        .arg("--peers")
        .arg(endpoints.join(","))
        .arg("--data-dir")
        .arg(dir.join(format!("n{id}")));
    command
}

/// The command line of node `slot` of the cluster `file` records: a bootstrap node with the
/// bootstrap nodes as --peers, a node that joined with --join and its name.
pub fn slot_command(file: &ClusterFile, slot: usize, dir: &Path) -> Command {
    if !file.joined(slot) {
        return node_command(slot, &file.bootstrap_endpoints(), dir);
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("raftbed"));
    let mut command = Command::new(exe);
    let others: Vec<&String> =
        file.endpoints.iter().enumerate().filter(|(i, _)| i + 1 != slot).map(|(_, e)| e).collect();
    let others: Vec<&str> = others.into_iter().map(String::as_str).collect();
    command
        .arg("node")
        .arg("--listen")
        .arg(&file.endpoints[slot - 1])
        .arg("--join")
        .arg(others.join(","))
        .arg("--name")
        .arg(format!("n{slot}"))
        .arg("--data-dir")
        .arg(dir.join(format!("n{slot}")));
    command
}

/// Starts node `slot` of `file`, logging to `DIR/nI.log`, in its own process group (so the
/// terminal's Ctrl-C reaches only `up`, which stops the nodes in order).
pub fn spawn_slot(file: &ClusterFile, slot: usize, dir: &Path) -> Result<Child, String> {
    spawn_with(slot, slot_command(file, slot, dir), dir, &file.node_args)
}

/// Starts bootstrap node `id` of `endpoints`, as `spawn_slot`.
pub fn spawn_node(
    id: usize,
    endpoints: &[String],
    dir: &Path,
    extra: &[String],
) -> Result<Child, String> {
    spawn_with(id, node_command(id, endpoints, dir), dir, extra)
}

fn spawn_with(
    id: usize,
    mut command: Command,
    dir: &Path,
    extra: &[String],
) -> Result<Child, String> {
    command.args(extra);
    spawn_logged(command, &dir.join(format!("n{id}.log")), &format!("node {id}"))
}

/// Starts `command` with its output appended to `log_path`, in a process group of its own (so
/// a terminal's Ctrl-C reaches only the command that started it, which stops the rest in
/// order).
pub fn spawn_logged(mut command: Command, log_path: &Path, what: &str) -> Result<Child, String> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    command
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))
}

/// Waits until some node reports a leader; returns its id.
pub async fn wait_for_leader(endpoints: &[String], within: Duration) -> Option<u64> {
    let mut client = Client::new(TokioNet, endpoints.to_vec(), 0);
    client.timeout = Duration::from_millis(500);
    let start = Instant::now();
    while start.elapsed() < within {
        for i in 0..endpoints.len() {
            if let Ok(status) = client.status(i).await
                && status.leader != 0
            {
                return Some(status.leader);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// A started cluster: its processes and what `cluster.json` records.
pub struct Started {
    /// The node processes, node 1 first.
    pub children: Vec<Child>,
    /// The recorded endpoints, pids and node arguments.
    pub file: ClusterFile,
    /// The leader elected first.
    pub leader: u64,
}

/// Starts `nodes` node processes with data under `dir` from port `base`, each with `node_flags`
/// arguments and the cluster's admin token, and waits for a leader.
///
/// # Errors
/// A port is taken, the dir holds a running cluster, a node exits, or no leader is elected.
pub fn start_cluster(
    nodes: usize,
    dir: &Path,
    base: u16,
    node_flags: &[String],
) -> Result<Started, String> {
    if u32::from(base) + 10 * nodes as u32 + 2 > u32::from(u16::MAX) {
        return Err(format!("--base-port {base}: the ports of {nodes} nodes do not fit"));
    }
    let endpoints = default_endpoints(nodes, base);
    for port in cluster_ports(base, nodes) {
        if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return Err(format!(
                "port {port} is not free ({e}): another cluster may be up (`raftbed cluster down`), or use --base-port"
            ));
        }
    }
    if let Ok(previous) = read_cluster(dir)
        && previous.pids.iter().any(|p| *p != 0 && node_pid_alive(*p, dir))
    {
        return Err(format!(
            "a cluster from {} is still running: `raftbed cluster down --data-dir {}`",
            dir.display(),
            dir.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("--data-dir {}: {e}", dir.display()))?;
    let token = token_file(dir);
    std::fs::write(&token, new_token()?).map_err(|e| format!("{}: {e}", token.display()))?;
    let mut node_args = node_flags.to_vec();
    node_args.extend(["--admin-token-file".to_string(), token.display().to_string()]);
    let mut children = Vec::new();
    for id in 1..=nodes {
        match spawn_node(id, &endpoints, dir, &node_args) {
            Ok(child) => children.push(child),
            Err(e) => {
                stop_children(&mut children);
                return Err(e);
            }
        }
    }
    let file = ClusterFile {
        endpoints: endpoints.clone(),
        pids: children.iter().map(Child::id).collect(),
        node_args,
        ids: Vec::new(),
        joined: Vec::new(),
        monitor_pid: 0,
    };
    write_cluster(dir, &file)?;
    let runtime = super::runtime()?;
    let leader = runtime.block_on(wait_for_leader(&endpoints, Duration::from_secs(20)));
    // A node that exited at once (a foreign data dir, a port taken meanwhile) says why in its log.
    for (i, child) in children.iter_mut().enumerate() {
        if let Ok(Some(status)) = child.try_wait() {
            let log =
                std::fs::read_to_string(dir.join(format!("n{}.log", i + 1))).unwrap_or_default();
            stop_children(&mut children);
            return Err(format!("node {} exited ({status}): {}", i + 1, log.trim()));
        }
    }
    let Some(leader) = leader else {
        stop_children(&mut children);
        return Err(format!("no leader within 20 s; see the logs in {}", dir.display()));
    };
    Ok(Started { children, file, leader })
}

/// Starts naive-failover's monitor for the nodes at `endpoints` (their peer ports are the next
/// ones), with `flags`, logging to `DIR/monitor.log`; the first node is the first primary.
fn start_monitor(endpoints: &[String], dir: &Path, flags: &[String]) -> Result<Child, String> {
    let peers: Vec<String> = endpoints
        .iter()
        .map(|e| {
            let addr: std::net::SocketAddr =
                e.parse().map_err(|_| format!("{e}: not an address"))?;
            Ok(std::net::SocketAddr::new(addr.ip(), addr.port() + 1).to_string())
        })
        .collect::<Result<_, String>>()?;
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("raftbed"));
    let mut command = Command::new(exe);
    command.arg("monitor").arg("--nodes").arg(peers.join(",")).args(flags);
    spawn_logged(command, &dir.join("monitor.log"), "the monitor")
}

fn up(
    nodes: usize,
    dir: &Path,
    base: u16,
    detach: bool,
    node_flags: &[String],
    monitor: Option<Vec<String>>,
) -> Result<ExitCode, String> {
    let Started { mut children, mut file, leader } = start_cluster(nodes, dir, base, node_flags)?;
    if let Some(flags) = monitor {
        match start_monitor(&file.endpoints, dir, &flags) {
            Ok(child) => {
                file.monitor_pid = child.id();
                children.push(child);
                write_cluster(dir, &file)?;
            }
            Err(e) => {
                stop_children(&mut children);
                return Err(e);
            }
        }
        println!("raftbed cluster: the failover monitor runs as pid {}", file.monitor_pid);
    }
    let endpoints = file.endpoints.clone();
    let node_args = file.node_args.clone();
    println!("raftbed cluster: {nodes} nodes up, leader n{leader}, data in {}", dir.display());
    for (i, endpoint) in endpoints.iter().enumerate() {
        println!("  n{}  {endpoint}  pid {}", i + 1, file.pids[i]);
    }
    println!("etcdctl --endpoints={} put hello world", endpoints.join(","));
    println!("raftbed kv --endpoints {} get hello", endpoints.join(","));
    if detach {
        println!("stop it with: raftbed cluster down --data-dir {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!("Ctrl-C stops the cluster");
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    stop_children(&mut children);
    // Nodes `nemesis restart` started are not our children; cluster.json names them.
    if stop_recorded(dir).is_err() {
        let pids = vec![0; nodes];
        let file = ClusterFile {
            endpoints,
            pids,
            node_args,
            ids: Vec::new(),
            joined: Vec::new(),
            monitor_pid: 0,
        };
        let _ = write_cluster(dir, &file);
    }
    println!("raftbed cluster: stopped (data kept in {})", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Prints what a command did.
fn said(done: Result<String, String>) -> Result<ExitCode, String> {
    println!("raftbed cluster: {}", done?);
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM, then SIGKILL after 5 s.
pub fn stop_children(children: &mut [Child]) {
    for child in children.iter() {
        signal(child.id(), libc_signal::TERM);
    }
    let start = Instant::now();
    for child in children.iter_mut() {
        while start.elapsed() < Duration::from_secs(5) {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Signal numbers (Linux).
pub mod libc_signal {
    /// SIGKILL.
    pub const KILL: i32 = 9;
    /// SIGTERM.
    pub const TERM: i32 = 15;
    /// SIGCONT.
    pub const CONT: i32 = 18;
    /// SIGSTOP.
    pub const STOP: i32 = 19;
}

/// Sends `sig` to `pid` with kill(1) (no unsafe code here).
pub fn signal(pid: u32, sig: i32) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `pid` is a running `raftbed node` on a data dir under `dir`.
pub fn node_pid_alive(pid: u32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'));
    !zombie && text.contains(" node ") && text.contains(&dir.display().to_string())
}

/// Whether `pid` is a running `raftbed monitor`.
fn monitor_pid_alive(pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'));
    !zombie && String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(" monitor --nodes ")
}

fn down(dir: &Path) -> Result<(), String> {
    let stopped = stop_recorded(dir)?;
    println!("raftbed cluster: stopped {stopped} nodes (data kept in {})", dir.display());
    Ok(())
}

/// Stops every node process `DIR/cluster.json` records that still runs on `dir` (nodes that
/// `nemesis restart` started included; paused ones are resumed so they can exit): SIGTERM, then
/// SIGKILL after 5 s. Returns how many there were.
///
/// # Errors
/// If `cluster.json` cannot be read or written.
pub fn stop_recorded(dir: &Path) -> Result<usize, String> {
    let mut file = read_cluster(dir)?;
    let mut stopped = 0;
    for pid in file.pids.iter().copied().filter(|p| *p != 0) {
        if node_pid_alive(pid, dir) {
            signal(pid, libc_signal::CONT);
            signal(pid, libc_signal::TERM);
            stopped += 1;
        }
    }
    let start = Instant::now();
    while file.pids.iter().any(|p| *p != 0 && node_pid_alive(*p, dir)) {
        if start.elapsed() > Duration::from_secs(5) {
            for pid in file.pids.iter().copied().filter(|p| *p != 0 && node_pid_alive(*p, dir)) {
                signal(pid, libc_signal::KILL);
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if file.monitor_pid != 0 && monitor_pid_alive(file.monitor_pid) {
        signal(file.monitor_pid, libc_signal::TERM);
        let start = Instant::now();
        while monitor_pid_alive(file.monitor_pid) && start.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    file.pids.iter_mut().for_each(|p| *p = 0);
    file.monitor_pid = 0;
    write_cluster(dir, &file)?;
    Ok(stopped)
}

fn kill_leader(dir: &Path) -> Result<(), String> {
    let file = read_cluster(dir)?;
    let runtime = super::runtime()?;
    let leader = runtime
        .block_on(wait_for_leader(&file.endpoints, Duration::from_secs(5)))
        .ok_or("no leader to kill")?;
    let slot = file.slot_of(leader).ok_or("the leader is no node of cluster.json")?;
    let kill = super::nemesis::Fault::Kill { node: format!("n{slot}") };
    runtime.block_on(super::nemesis::apply(dir, &kill))?;
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    println!("n{slot} {at}");
    Ok(())
}

fn status(dir: &Path) -> Result<ExitCode, String> {
    let file = read_cluster(dir)?;
    let runtime = super::runtime()?;
    let mut client = Client::new(TokioNet, file.endpoints.clone(), 0);
    client.timeout = Duration::from_millis(500);
    println!(
        "{:<5}{:<18}{:>8}{:<10}{:>8}{:>10}{:>10}  lease",
        "node", "endpoint", "pid", "  role", "term", "commit", "applied"
    );
    let mut up = 0;
    for (i, endpoint) in file.endpoints.iter().enumerate() {
        let pid = file.pids.get(i).copied().unwrap_or(0);
        match runtime.block_on(client.status_and_lease(i)) {
            Ok((s, lease)) => {
                up += 1;
                let me = s.header.as_ref().map_or(0, |h| h.member_id);
                let role = if s.leader == me {
                    "leader"
                } else if s.is_learner {
                    "learner"
                } else if s.leader == 0 {
                    "no leader"
                } else {
                    "follower"
                };
                let lease = match (lease, role) {
                    (Some(ms), _) => format!("held, {ms} ms left"),
                    (None, "leader") => "lapsed (reads use ReadIndex)".to_string(),
                    _ => "-".to_string(),
                };
                println!(
                    "n{:<4}{:<18}{:>8}  {:<8}{:>8}{:>10}{:>10}  {lease}",
                    i + 1,
                    endpoint,
                    pid,
                    role,
                    s.raft_term,
                    s.raft_index,
                    s.raft_applied_index
                );
            }
            Err(_) if dir.join(format!("n{}", i + 1)).join(super::node::REMOVED_FILE).exists() => {
                up += 1;
                println!("n{:<4}{:<18}{:>8}  removed from the cluster", i + 1, endpoint, pid);
            }
            Err(e) => println!("n{:<4}{:<18}{:>8}  down ({})", i + 1, endpoint, pid, e.message),
        }
    }
    Ok(if up == file.endpoints.len() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
