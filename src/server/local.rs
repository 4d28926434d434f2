//! Clusters in one process on loopback: every node on its own thread and runtime, with real
//! sockets, a real on-disk WAL and the real clock. Tests and benchmarks use it; `raftbed
//! cluster` runs the same nodes as separate processes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use super::timing::Timing;
use super::{Member, NodeConfig, ServerBugs, run_node};
use crate::clock::RealClock;
use crate::raft::NodeId;
use crate::storage::WalOptions;
use crate::storage::fs::StdFs;
use crate::transport::PeerTransport;
use crate::transport::net::TokioNet;
use crate::transport::peer::TransportConfig;

/// The first port of a local cluster: node `i` serves clients on `base + 10 * i` and peers on
/// the port after (etcd's peer scripts use 23000 and up).
pub const DEFAULT_BASE_PORT: u16 = 24000;

/// The client endpoints of a local cluster of `nodes` nodes from `base`.
pub fn default_endpoints(nodes: usize, base: u16) -> Vec<String> {
    (1..=nodes).map(|i| format!("127.0.0.1:{}", base + 10 * i as u16)).collect()
}

/// A node of a loopback cluster with `timing` (`Timing::loopback()`: elections after
/// 300-600 ms, heartbeats every 50 ms): leases and ReadIndex on, fsync before every
/// acknowledgement.
pub fn loopback_config(
    id: NodeId,
    members: BTreeMap<NodeId, Member>,
    data_dir: PathBuf,
    timing: Timing,
) -> NodeConfig {
    let mut raft = crate::raft::Config::new(id, members.keys().copied().collect());
    raft.pre_vote = true;
    raft.seed = id.0;
    let mut raft = raft.with_lease_reads();
    timing.lower(&mut raft);
    NodeConfig {
        id,
        members,
        raft,
        timing,
        transport: TransportConfig {
            rpc_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(30),
            queue_depth: 4096,
        },
        peer_transport: PeerTransport::Framed,
        wal: WalOptions::default(),
        data_dir,
        request_timeout: Duration::from_secs(3),
        compact_every: 10_000,
        max_batch: 1024,
        bugs: ServerBugs::default(),
        state_at_rest: true,
        live: Default::default(),
        auto_compaction: None,
        watch_progress: crate::server::DEFAULT_WATCH_PROGRESS,
        campaign_first: false,
        max_request_bytes: crate::server::DEFAULT_MAX_REQUEST_BYTES,
        cluster_id: None,
        exit_when_removed: true,
        name: None,
    }
}

/// Loopback ports that were free a moment ago (the OS picks them).
pub fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> =
        (0..count).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
    listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect()
}

/// A running in-process cluster. Dropping it stops every node.
pub struct LocalCluster {
    /// Client endpoints (`127.0.0.1:port`), node 1 first.
    pub endpoints: Vec<String>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl LocalCluster {
    /// Starts `nodes` nodes with data under `dir`, on free loopback ports.
    ///
    /// # Errors
    /// If no ports can be had.
    pub fn start(nodes: usize, dir: &Path) -> std::io::Result<LocalCluster> {
        LocalCluster::start_with(nodes, dir, |_| {})
    }

    /// As `start`, with each node's configuration adjusted by `configure`.
    ///
    /// # Errors
    /// If no ports can be had.
    pub fn start_with(
        nodes: usize,
        dir: &Path,
        configure: impl Fn(&mut NodeConfig),
    ) -> std::io::Result<LocalCluster> {
        let ports = free_ports(2 * nodes)?;
        let members: BTreeMap<NodeId, Member> = (0..nodes)
            .map(|i| {
                let member = Member {
                    peer_addr: format!("127.0.0.1:{}", ports[2 * i]),
                    client_addr: format!("127.0.0.1:{}", ports[2 * i + 1]),
                };
                (NodeId(i as u64 + 1), member)
            })
            .collect();
        let endpoints = members.values().map(|m| m.client_addr.clone()).collect();
        let mut stops = Vec::new();
        let mut threads = Vec::new();
        for id in members.keys() {
            let mut config =
                loopback_config(*id, members.clone(), dir.join(id.to_string()), Timing::loopback());
            configure(&mut config);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            stops.push(stop);
            threads.push(std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    tokio::select! {
                        result = run_node(config, TokioNet, StdFs, RealClock::new(), None) => {
                            if let Err(error) = result {
                                eprintln!("node stopped: {error}");
                            }
                        }
                        _ = stopped => {}
                    }
                });
            }));
        }
        Ok(LocalCluster { endpoints, stops, threads })
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
