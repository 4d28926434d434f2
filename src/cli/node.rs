//! `raftbed node`: one node process on real sockets, a real on-disk WAL (fsync before every
//! acknowledgement) and the real clock. `raftbed cluster up` starts several.
//!
//! A data dir carries an identity file naming its cluster and node; a node refuses a data dir
//! of another cluster or node id, and never deletes anything because of a bad flag.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::join::Joined;
use crate::clock::RealClock;
use crate::raft::NodeId;
use crate::server::api::cluster_id;
use crate::server::local::loopback_config;
use crate::server::timing::Timing;
use crate::server::{Member, run_node};
use crate::storage::fs::StdFs;
use crate::transport::net::TokioNet;

/// `raftbed node` arguments.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// This node's id: its position in --peers, from 1 (a node that joins learns its id).
    #[arg(long, required_unless_present = "join")]
    pub id: Option<u64>,
    /// This node's client address (etcd API); it talks to its peers on the next port.
    #[arg(long)]
    pub listen: String,
    /// Every member's client address, in id order, this node's included.
    #[arg(long, value_delimiter = ',', required_unless_present = "join", conflicts_with = "join")]
    pub peers: Vec<String>,
    /// Join a running cluster at these client addresses, which has added this node (etcd's
    /// `member add`, then `--initial-cluster-state existing`): its id, the cluster's id and
    /// its peers come from the cluster's member list, where its peer URL (the port after
    /// --listen) names it.
    #[arg(long, value_delimiter = ',', conflicts_with = "id")]
    pub join: Vec<String>,
    /// The first this many members of --peers are the voters at start; the others run as
    /// spares, members of no configuration until the cluster adds them (default: all).
    #[arg(long, conflicts_with = "join", value_parser = clap::value_parser!(u64).range(1..=9))]
    pub voters: Option<u64>,
    /// The name a joining node publishes (default: its id in hex).
    #[arg(long, requires = "join")]
    pub name: Option<String>,
    /// Where the WAL and snapshots live. Created if its parent exists.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Heartbeat interval (a multiple of the 10 ms tick).
    #[arg(long, default_value = "50ms", value_parser = super::sim::parse_duration)]
    pub heartbeat: Duration,
    /// Minimum election timeout (the maximum is twice it), as etcd's --election-timeout.
    #[arg(long, default_value = "300ms", value_parser = super::sim::parse_duration)]
    pub election_timeout: Duration,
    /// Snapshot the state machine and compact the log every this many applied entries (etcd's
    /// --snapshot-count, with its default).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_count: u64,
    /// Serve the admin port (client port + 2, on 127.0.0.1 only) to whoever presents the token
    /// in this file: `raftbed nemesis` uses it to cut links and jump the clock.
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// etcd's --auto-compaction-mode: `periodic` (keep a retention's time of history) or
    /// `revision` (keep a retention's number of revisions, checked every 5 minutes).
    #[arg(long, default_value = "periodic")]
    pub auto_compaction_mode: String,
    /// etcd's --auto-compaction-retention: a duration (`1h`, `30m`) or whole hours in periodic
    /// mode, a number of revisions in revision mode; 0 keeps every revision until a client
    /// compacts.
    #[arg(long, default_value = "0")]
    pub auto_compaction_retention: String,
    /// How often a watch that asked for progress notifications gets one (etcd's
    /// --experimental-watch-progress-notify-interval).
    #[arg(long, alias = "experimental-watch-progress-notify-interval", default_value = "10m", value_parser = super::sim::parse_duration)]
    pub watch_progress_notify_interval: Duration,
    /// The largest write request accepted, encoded (etcd's --max-request-bytes, 1.5 MiB):
    /// larger ones get `etcdserver: request is too large`, and gRPC itself refuses messages
    /// more than 512 KiB past it.
    #[arg(long, default_value_t = crate::server::DEFAULT_MAX_REQUEST_BYTES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=(1 << 30)))]
    pub max_request_bytes: usize,
    /// Check the Raft core's whole state after every input and at every role change and commit
    /// advance (the simulator always does); a broken invariant stops the node with its name.
    #[arg(long)]
    pub validate: bool,
    /// What the node runs: `raft`, or a comparison system, `naive-failover` or
    /// `naive-failover-fenced` (its monitor is `raftbed monitor`).
    #[arg(long, default_value = "raft", value_parser = ["raft", "naive-failover", "naive-failover-fenced"])]
    pub system: String,
    /// (naive systems) The first primary, by id; the monitor promotes others later.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=9))]
    pub first_primary: u64,
    /// Campaign at once on a fresh start instead of waiting an election timeout (a
    /// scenario's designated first leader).
    #[arg(long)]
    pub campaign_first: bool,
    /// The cluster's id in hex, when the nodes are given different addresses for the same
    /// peers (a replay on real processes gives each node its links' proxies) and so cannot
    /// derive it alike.
    #[arg(long, hide = true, value_parser = parse_hex)]
    pub cluster_id: Option<u64>,
    /// The leader lease's margin for clock drift (default: half the election timeout).
    #[arg(long, value_parser = super::sim::parse_duration)]
    pub drift_margin: Option<Duration>,
    /// A write with no outcome after this long is answered with a timeout.
    #[arg(long, default_value = "3s", value_parser = super::sim::parse_duration)]
    pub request_timeout: Duration,
    /// Leader-lease reads (§6.4.1), with check-quorum.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub lease_reads: bool,
    /// Pre-vote (§9.6).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pre_vote: bool,
    /// Check-quorum (§6.2), implied by lease reads.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub check_quorum: bool,
    /// At most this many entries in one AppendEntries.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub max_entries_per_message: Option<u64>,
    /// Start a new single-member cluster from this snapshot (`etcdctl snapshot save` against a
    /// raftbed member): its digest checked, the data dir new or empty, a new cluster id.
    #[arg(long, conflicts_with_all = ["join", "system"])]
    pub restore: Option<PathBuf>,
}

fn parse_hex(text: &str) -> Result<u64, String> {
    u64::from_str_radix(text.trim_start_matches("0x"), 16)
        .map_err(|_| format!("{text:?} is not a hex cluster id"))
}

/// The Raft options the flags set beyond `loopback_config`'s.
fn raft_options(args: &NodeArgs, raft: &mut crate::raft::Config) {
    raft.pre_vote = args.pre_vote;
    if !args.lease_reads {
        raft.lease_reads = false;
        raft.check_quorum = args.check_quorum;
    }
    if let Some(n) = args.max_entries_per_message {
        raft.max_entries_per_message = n as usize;
    }
}

/// The admin port of the node whose client address is `client`.
pub fn admin_addr(client: &str) -> Option<String> {
    let addr: SocketAddr = client.parse().ok()?;
    Some(format!("127.0.0.1:{}", addr.port().checked_add(2)?))
}

/// Serves admin commands: `block 2,3` (cut this node off from those peers; `block` alone
/// heals), `jump 500` (move the clock forward 500 ms), `rate 1.2` (run the clock 20% fast),
/// `status`.
async fn serve_admin(
    listener: tokio::net::TcpListener,
    token: String,
    live: std::sync::Arc<crate::server::LiveFaults>,
    clock: RealClock,
) {
    use crate::transport::frame::{read_frame, write_frame};
    while let Ok((mut stream, _)) = listener.accept().await {
        let (token, live, clock) = (token.clone(), live.clone(), clock.clone());
        tokio::task::spawn_local(async move {
            let mut buf = Vec::new();
            let Ok(true) = read_frame(&mut stream, &mut buf).await else { return };
            let text = String::from_utf8_lossy(&buf).into_owned();
            let (given, command) = text.split_once('\n').unwrap_or(("", ""));
            let answer = if given != token {
                "error: bad admin token".to_string()
            } else if let Some(change) = command.trim().strip_prefix("change ") {
                admin_change(change, &live).await
            } else {
                admin_command(command.trim(), &live, &clock)
            };
            let _ = write_frame(&mut stream, answer.as_bytes()).await;
        });
    }
}

/// `change learner 6`, `change voter 6`, `change remove 2`, `change joint 1,3,4,6` (the
/// voters after a joint-consensus change, §4.3): asked of this node's core, answered when the
/// configuration entry is appended or refused (`raftbed cluster replace` and `raftbed test
/// --faults member` use it; etcd's member API makes single-member changes only).
async fn admin_change(change: &str, live: &crate::server::LiveFaults) -> String {
    use crate::raft::MembershipChange as C;
    let (kind, ids) = change.split_once(' ').unwrap_or((change, ""));
    let ids: Result<Vec<NodeId>, _> =
        ids.split(',').map(|id| id.trim().parse().map(NodeId)).collect();
    let change = match (kind, ids.as_deref()) {
        ("learner", Ok([id])) => C::AddLearner(*id),
        ("voter", Ok([id])) => C::AddVoter(*id),
        ("remove", Ok([id])) => C::Remove(*id),
        ("joint", Ok(voters)) if !voters.is_empty() => {
            C::Joint { voters: voters.iter().copied().collect(), learners: Default::default() }
        }
        _ => return format!("error: {change:?} is not learner|voter|remove ID or joint ID,ID,..."),
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let call = crate::server::calls::Call::ChangeMembership { change, attrs: None, reply };
    if !live.call(call) {
        return "error: the node is not running".into();
    }
    match tokio::time::timeout(Duration::from_secs(2), answer).await {
        Ok(Ok(Ok(index))) => format!("ok appended at {index}"),
        Ok(Ok(Err(refused))) => format!("error: {refused}"),
        _ => "error: no answer within 2 s".into(),
    }
}

fn admin_command(command: &str, live: &crate::server::LiveFaults, clock: &RealClock) -> String {
    let (verb, rest) = command.split_once(' ').unwrap_or((command, ""));
    match verb {
        "block" => {
            let mut peers = std::collections::BTreeSet::new();
            for id in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match id.trim_start_matches('n').parse::<u64>() {
                    Ok(id) => {
                        peers.insert(NodeId(id));
                    }
                    Err(_) => return format!("error: {id:?} is not a node id"),
                }
            }
            live.block(peers);
            format!("ok blocked={:?}", live.blocked())
        }
        "jump" => match rest.trim().parse::<u64>() {
            Ok(ms) => {
                clock.jump(Duration::from_millis(ms));
                format!("ok jumped {ms}ms")
            }
            Err(_) => format!("error: {rest:?} is not a number of milliseconds"),
        },
        "rate" => match rest.trim().parse::<f64>() {
            Ok(rate) if rate.is_finite() && (0.01..=100.0).contains(&rate) => {
                clock.set_rate(rate);
                format!("ok rate {rate}")
            }
            _ => format!("error: {rest:?} is not a clock rate from 0.01 to 100"),
        },
        "status" => format!("ok blocked={:?}", live.blocked()),
        // `UNIX_NANOS:1` from when the node knew a leader, `:0` from when it did not.
        "leaders" => {
            let timeline: Vec<String> = live
                .leader_timeline()
                .iter()
                .map(|(at, knows)| format!("{at}:{}", u8::from(*knows)))
                .collect();
            format!("ok {}", timeline.join(" "))
        }
        _ => format!("error: unknown admin command {verb:?}"),
    }
}

/// The file naming the cluster and node a data dir belongs to.
pub const IDENTITY_FILE: &str = "raftbed-identity";

/// Written in a data dir whose member was removed from its cluster: it never starts again.
pub const REMOVED_FILE: &str = "raftbed-removed";

/// The members of a cluster from its client addresses: peers listen on the next port.
pub fn members(peers: &[String]) -> Result<BTreeMap<NodeId, Member>, String> {
    let mut members = BTreeMap::new();
    for (i, peer) in peers.iter().enumerate() {
        let addr: SocketAddr = peer
            .parse()
            .map_err(|_| format!("--peers: {peer:?} is not an address like 127.0.0.1:24010"))?;
        if addr.port() == u16::MAX || addr.port() == 0 {
            return Err(format!("--peers: {peer}: the port and the one after it must be usable"));
        }
        let peer_addr = SocketAddr::new(addr.ip(), addr.port() + 1);
        let member = Member { peer_addr: peer_addr.to_string(), client_addr: addr.to_string() };
        if members.values().any(|m: &Member| m.client_addr == member.client_addr) {
            return Err(format!("--peers: {peer} is listed twice"));
        }
        members.insert(NodeId(i as u64 + 1), member);
    }
    if members.is_empty() || members.len() > 9 {
        return Err(format!("--peers: {} members; a cluster has 1 to 9", members.len()));
    }
    Ok(members)
}

/// Checks (or, for a new data dir, writes) the identity file.
pub fn claim_data_dir(dir: &Path, cluster: u64, id: NodeId) -> Result<(), String> {
    let identity = format!("cluster={cluster:016x} node={}\n", id.0);
    if !dir.exists() {
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(format!(
                "--data-dir {}: its parent {} does not exist",
                dir.display(),
                parent.display()
            ));
        }
        std::fs::create_dir(dir)
            .map_err(|e| format!("--data-dir {}: cannot create: {e}", dir.display()))?;
    }
    if !dir.is_dir() {
        return Err(format!("--data-dir {}: not a directory", dir.display()));
    }
    let path = dir.join(IDENTITY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(found) if found == identity => Ok(()),
        Ok(found) => Err(format!(
            "--data-dir {} belongs to another node or cluster ({}), not node {} of cluster {cluster:016x}; nothing was changed",
            dir.display(),
            found.trim(),
            id.0
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let used = std::fs::read_dir(dir)
                .map_err(|e| format!("--data-dir {}: {e}", dir.display()))?
                .next()
                .is_some();
            if used {
                return Err(format!(
                    "--data-dir {} holds files but no {IDENTITY_FILE}: not a raftbed data dir, or one from elsewhere; nothing was changed",
                    dir.display()
                ));
            }
            std::fs::write(&path, identity)
                .map_err(|e| format!("--data-dir {}: {e}", dir.display()))
        }
        Err(e) => Err(format!("--data-dir {}: cannot read {IDENTITY_FILE}: {e}", dir.display())),
    }
}

/// This node's id and its cluster's members: from `--peers` and `--id`, or from the cluster
/// it joins.
/// This node's id, its cluster's members, and what it learnt if it joined.
type Who = (NodeId, BTreeMap<NodeId, Member>, Option<Joined>);

fn who(args: &NodeArgs) -> Result<Who, String> {
    let listen: SocketAddr = args
        .listen
        .parse()
        .map_err(|_| format!("--listen {}: not an address like 127.0.0.1:24010", args.listen))?;
    if !args.join.is_empty() {
        let joined = super::join::join(&args.join, listen)?;
        return Ok((joined.id, joined.members.clone(), Some(joined)));
    }
    let members = members(&args.peers)?;
    let id = NodeId(args.id.unwrap_or(0));
    let Some(me) = members.get(&id) else {
        return Err(format!("--id {}: --peers lists {} members", id.0, members.len()));
    };
    if listen.to_string() != me.client_addr {
        return Err(format!(
            "--listen {} is not member {}'s address in --peers ({})",
            args.listen, id.0, me.client_addr
        ));
    }
    Ok((id, members, None))
}

/// Runs `raftbed node` until SIGTERM or SIGINT (exit 0), or a fatal error (exit 1); bad flags
/// or a foreign data dir exit 2.
pub fn run(args: &NodeArgs) -> ExitCode {
    let fail = |message: String| {
        eprintln!("raftbed node: {message}");
        ExitCode::from(2)
    };
    let (id, members, joined) = match who(args) {
        Ok(found) => found,
        Err(e) => return fail(e),
    };
    if args.data_dir.join(REMOVED_FILE).exists() {
        return fail(format!(
            "--data-dir {}: the member has been permanently removed from the cluster; a new member needs a new data dir",
            args.data_dir.display()
        ));
    }
    let restored = match &args.restore {
        Some(file) => match super::restore::restore(file, &args.data_dir, id, members.len()) {
            Ok(cluster) => Some(cluster),
            Err(e) => return fail(e),
        },
        None => super::restore::restored_cluster(&args.data_dir),
    };
    let cluster = joined
        .as_ref()
        .map(|j| j.cluster)
        .or(args.cluster_id)
        .or(restored)
        .unwrap_or_else(|| cluster_id(&members));
    if let Err(e) = claim_data_dir(&args.data_dir, cluster, id) {
        return fail(e);
    }
    let timing = Timing {
        heartbeat: args.heartbeat,
        election_timeout: args.election_timeout,
        drift_margin: args.drift_margin.unwrap_or(args.election_timeout / 2),
        ..Timing::loopback()
    };
    if let Err(e) = timing.check() {
        let flag = match e.field {
            "heartbeat" => "--heartbeat",
            "drift_margin" => "--drift-margin",
            _ => "--election-timeout",
        };
        return fail(format!("{flag}: {}", e.message));
    }
    let auto_compaction = match crate::server::api::compactor::AutoCompaction::parse(
        &args.auto_compaction_mode,
        &args.auto_compaction_retention,
    ) {
        Ok(mode) => mode,
        Err(e) => return fail(e),
    };
    if args.watch_progress_notify_interval < Duration::from_millis(10) {
        return fail(format!(
            "--watch-progress-notify-interval {:?}: at least 10ms",
            args.watch_progress_notify_interval
        ));
    }
    let mut config = loopback_config(id, members, args.data_dir.clone(), timing);
    if let Some(voters) = args.voters {
        if voters as usize > config.members.len() {
            return fail(format!(
                "--voters {voters}: --peers lists {} members",
                config.members.len()
            ));
        }
        config.raft.voters.truncate(voters as usize);
    }
    if let Some(joined) = joined {
        config.raft.voters = joined.voters;
        config.cluster_id = Some(joined.cluster);
        config.name = Some(args.name.clone().unwrap_or_else(|| format!("{:x}", id.0)));
    }
    config.compact_every = args.snapshot_count;
    config.auto_compaction = auto_compaction;
    config.watch_progress = args.watch_progress_notify_interval;
    config.max_request_bytes = args.max_request_bytes;
    if args.validate {
        config.raft.validate_every = 1;
    }
    config.cluster_id = config.cluster_id.or(args.cluster_id).or(restored);
    config.campaign_first = args.campaign_first;
    config.request_timeout = args.request_timeout;
    raft_options(args, &mut config.raft);
    if args.system != "raft" {
        let fenced = args.system == "naive-failover-fenced";
        return super::node_naive::run(config, fenced, NodeId(args.first_primary));
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return fail("cannot start the async runtime".into());
    };
    let local = tokio::task::LocalSet::new();
    let clock = RealClock::new();
    let admin = match &args.admin_token_file {
        None => None,
        Some(path) => {
            let token = match std::fs::read_to_string(path) {
                Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
                Ok(_) => return fail(format!("--admin-token-file {}: empty", path.display())),
                Err(e) => return fail(format!("--admin-token-file {}: {e}", path.display())),
            };
            let Some(addr) = admin_addr(&args.listen) else {
                return fail(format!(
                    "--listen {}: no port for the admin port after it",
                    args.listen
                ));
            };
            Some((addr, token))
        }
    };
    let live = config.live.clone();
    if admin.is_some() {
        live.record_leaders();
    }
    local.block_on(&runtime, async move {
        if let Some((addr, token)) = admin {
            match tokio::net::TcpListener::bind(&addr).await {
                Ok(listener) => {
                    tokio::task::spawn_local(serve_admin(listener, token, live, clock.clone()));
                }
                Err(e) => {
                    eprintln!("raftbed node: cannot listen on the admin port {addr}: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("raftbed node: cannot watch SIGTERM: {e}");
                    return ExitCode::FAILURE;
                }
            };
        eprintln!("raftbed node {:x} serving clients on {}", id.0, args.listen);
        tokio::select! {
            result = run_node(config, TokioNet, StdFs, clock, None) => {
                match result {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(crate::server::NodeError::Removed) => {
                        let marker = args.data_dir.join(REMOVED_FILE);
                        let _ = std::fs::write(&marker, "removed from the cluster\n");
                        eprintln!("raftbed node {:x}: the member has been permanently removed from the cluster", id.0);
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("raftbed node {:x}: {e}", id.0);
                        ExitCode::FAILURE
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
            _ = term.recv() => ExitCode::SUCCESS,
        }
    })
}
