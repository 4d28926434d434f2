//! `raftbed monitor`: naive-failover's monitor as a process of its own, for a cluster of
//! `raftbed node --system naive-failover[-fenced]` processes (`raftbed cluster up --system
//! naive-failover` starts one). It pings every node, and after losing the primary's answers
//! for `--failover-after` promotes the most up-to-date replica it reaches, without asking any
//! quorum: the design whose split brain the scenarios show.

use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Args;

use crate::naive::monitor::{self, MonitorObserver, MonitorParams};
use crate::raft::NodeId;
use crate::transport::net::TokioNet;

/// `raftbed monitor` arguments.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Every naive node's peer address (its client port plus one), in id order.
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<String>,
    /// The first primary's id.
    #[arg(long, default_value_t = 1)]
    pub primary: u64,
    /// Time between ping rounds.
    #[arg(long, default_value = "1s", value_parser = super::sim::parse_duration)]
    pub interval: Duration,
    /// Promote a replica after the primary has not answered for this long.
    #[arg(long, default_value = "3s", value_parser = super::sim::parse_duration)]
    pub failover_after: Duration,
}

/// Says what the monitor does on stderr.
struct Stderr;

impl MonitorObserver for Stderr {
    fn note(&self, text: String) {
        eprintln!("raftbed {text}");
    }
}

/// The monitor's settings from its flags, or what is wrong with them.
fn params(args: &MonitorArgs) -> Result<MonitorParams, String> {
    if args.nodes.len() > 9 {
        return Err(format!("--nodes: {} nodes; a cluster has 1 to 9", args.nodes.len()));
    }
    for node in &args.nodes {
        if node.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("--nodes: {node:?} is not an address like 127.0.0.1:24011"));
        }
    }
    if args.primary == 0 || args.primary > args.nodes.len() as u64 {
        return Err(format!("--primary {}: --nodes lists {}", args.primary, args.nodes.len()));
    }
    if args.interval < Duration::from_millis(10) {
        return Err(format!("--interval {:?}: at least 10ms", args.interval));
    }
    if args.failover_after < args.interval {
        return Err(format!(
            "--failover-after {:?}: at least one --interval ({:?})",
            args.failover_after, args.interval
        ));
    }
    Ok(MonitorParams {
        nodes: args
            .nodes
            .iter()
            .enumerate()
            .map(|(i, a)| (NodeId(i as u64 + 1), a.clone()))
            .collect(),
        primary: NodeId(args.primary),
        interval: args.interval,
        failover_after: args.failover_after,
    })
}

/// Runs `raftbed monitor` until SIGTERM or SIGINT (exit 0); bad flags exit 2.
pub fn run(args: &MonitorArgs) -> ExitCode {
    let params = match params(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("raftbed monitor: {e}");
            return ExitCode::from(2);
        }
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        eprintln!("raftbed monitor: cannot start the async runtime");
        return ExitCode::FAILURE;
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            eprintln!("raftbed monitor: cannot watch SIGTERM");
            return ExitCode::FAILURE;
        };
        eprintln!("raftbed monitor: watching {} nodes, primary {}", args.nodes.len(), args.primary);
        tokio::select! {
            _ = monitor::run(TokioNet, params, Rc::new(Stderr)) => ExitCode::FAILURE,
            _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
            _ = term.recv() => ExitCode::SUCCESS,
        }
    })
}
