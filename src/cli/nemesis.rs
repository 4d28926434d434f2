//! `raftbed nemesis`: faults injected into a running `raftbed cluster`. Partitions are enforced
//! by the nodes themselves, through their admin port (loopback only, the cluster's token);
//! kill, pause and resume are signals to the processes `cluster.json` names (each pid is
//! checked to still be that node); restart starts the node again on its data dir.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::cluster::{
    ClusterFile, libc_signal, node_pid_alive, read_cluster, signal, spawn_slot, token_file,
    wait_for_leader, write_cluster,
};
use super::node::admin_addr;
use crate::transport::frame::{read_frame, write_frame};

/// `raftbed nemesis` arguments.
#[derive(Debug, Args)]
pub struct NemesisArgs {
    /// The cluster's data dir (as given to `cluster up`).
    #[arg(long, global = true, default_value = "raftbed-data")]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    command: Fault,
}

/// A fault.
#[derive(Debug, Subcommand)]
pub(crate) enum Fault {
    /// Cut the cluster into sides, e.g. `partition n1,n2 n3,n4,n5` (nodes on no side keep
    /// every link).
    Partition {
        /// Two or more sides: comma-separated nodes.
        #[arg(required = true, num_args = 2..)]
        sides: Vec<String>,
    },
    /// Cut the current leader off from every other node.
    IsolateLeader,
    /// Undo every partition.
    Heal,
    /// SIGKILL a node.
    Kill {
        /// The node, `n3` or `3`.
        node: String,
    },
    /// Start a killed node again on its data dir.
    Restart {
        /// The node.
        node: String,
    },
    /// SIGSTOP a node.
    Pause {
        /// The node.
        node: String,
    },
    /// SIGCONT a paused node.
    Resume {
        /// The node.
        node: String,
    },
    /// Jump a node's clock forward, e.g. `clock n3 +500ms`.
    Clock {
        /// The node.
        node: String,
        /// How far: `+500ms`, `+2s`.
        jump: String,
    },
    /// Grow the cluster by a node (`raftbed cluster add`).
    Add {
        /// As a learner.
        #[arg(long)]
        learner: bool,
    },
    /// Promote a learner (`raftbed cluster promote`).
    Promote {
        /// The node.
        node: String,
    },
    /// Remove a member (`raftbed cluster remove`).
    Remove {
        /// The node.
        node: String,
    },
    /// Replace a voter with a new node in one joint change (`raftbed cluster replace`).
    Replace {
        /// The node.
        node: String,
    },
}

fn node_index(name: &str, nodes: usize) -> Result<usize, String> {
    let id: usize = name
        .trim_start_matches('n')
        .parse()
        .map_err(|_| format!("{name:?} is not a node (n1 to n{nodes})"))?;
    if (1..=nodes).contains(&id) {
        Ok(id)
    } else {
        Err(format!("{name:?} is not a node (n1 to n{nodes})"))
    }
}

/// Sends one admin command to node `id`; returns its answer.
pub(crate) async fn admin(dir: &Path, endpoint: &str, command: &str) -> Result<String, String> {
    let token = std::fs::read_to_string(token_file(dir))
        .map_err(|e| format!("{}: {e}", token_file(dir).display()))?;
    let addr = admin_addr(endpoint).ok_or_else(|| format!("{endpoint}: no admin port"))?;
    let exchange = async {
        let mut stream =
            tokio::net::TcpStream::connect(&addr).await.map_err(|e| format!("{addr}: {e}"))?;
        let request = format!("{}\n{command}", token.trim());
        write_frame(&mut stream, request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        read_frame(&mut stream, &mut answer).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .map_err(|_| format!("{addr}: no answer in 2 s (paused or down?)"))??;
    if answer.starts_with("ok") { Ok(answer) } else { Err(answer) }
}

/// Whether process `pid` has exited: gone, or a zombie (its files, sockets included, are
/// closed by then).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// Runs `raftbed nemesis`.
pub fn run(args: &NemesisArgs) -> ExitCode {
    let dir = args.data_dir.as_path();
    // Membership changes drive the cluster as `raftbed cluster` does (on runtimes of their own).
    let done = match &args.command {
        Fault::Add { learner } => super::members::add(dir, *learner),
        Fault::Promote { node } => super::members::promote(dir, node),
        Fault::Remove { node } => super::members::remove(dir, node),
        Fault::Replace { node } => super::members::replace(dir, node),
        fault => super::runtime().and_then(|runtime| runtime.block_on(apply(dir, fault))),
    };
    match done {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("raftbed nemesis: {e}");
            ExitCode::from(2)
        }
    }
}

/// Tells each node of `file` which nodes (by position, from 1) it is cut off from; returns
/// the nodes that could not be told.
async fn block(dir: &Path, file: &ClusterFile, cuts: &[BTreeSet<usize>]) -> Vec<String> {
    let mut failed = Vec::new();
    for (i, endpoint) in file.endpoints.iter().enumerate() {
        let list: Vec<String> = cuts[i].iter().map(|slot| file.id(*slot).to_string()).collect();
        if let Err(e) = admin(dir, endpoint, &format!("block {}", list.join(","))).await {
            failed.push(format!("n{}: {e}", i + 1));
        }
    }
    failed
}

/// Applies `fault` to the cluster in `dir`; says what it did.
pub(crate) async fn apply(dir: &Path, fault: &Fault) -> Result<String, String> {
    let mut file = read_cluster(dir)?;
    let n = file.endpoints.len();
    let endpoints = file.endpoints.clone();
    let note = |failed: Vec<String>| {
        if failed.is_empty() {
            String::new()
        } else {
            format!(" (not reached: {})", failed.join("; "))
        }
    };
    match fault {
        Fault::Add { .. }
        | Fault::Promote { .. }
        | Fault::Remove { .. }
        | Fault::Replace { .. } => {
            Err("membership changes run from `raftbed nemesis` or `raftbed cluster`".into())
        }
        Fault::Partition { sides } => {
            let mut side_of = vec![None; n + 1];
            for (s, side) in sides.iter().enumerate() {
                for name in side.split(',').filter(|x| !x.is_empty()) {
                    let id = node_index(name, n)?;
                    if side_of[id].replace(s).is_some() {
                        return Err(format!("n{id} is on two sides"));
                    }
                }
            }
            let cuts: Vec<BTreeSet<usize>> = (1..=n)
                .map(|a| {
                    (1..=n)
                        .filter(
                            |b| matches!((side_of[a], side_of[*b]), (Some(x), Some(y)) if x != y),
                        )
                        .collect()
                })
                .collect();
            let failed = block(dir, &file, &cuts).await;
            Ok(format!("partitioned {}{}", sides.join(" | "), note(failed)))
        }
        Fault::IsolateLeader => {
            let leader = wait_for_leader(&endpoints, Duration::from_secs(3))
                .await
                .and_then(|id| file.slot_of(id))
                .ok_or("no leader to isolate")?;
            let cuts: Vec<BTreeSet<usize>> = (1..=n)
                .map(|a| {
                    if a == leader {
                        (1..=n).filter(|b| *b != a).collect()
                    } else {
                        BTreeSet::from([leader])
                    }
                })
                .collect();
            let failed = block(dir, &file, &cuts).await;
            Ok(format!("isolated the leader n{leader}{}", note(failed)))
        }
        Fault::Heal => {
            let failed = block(dir, &file, &vec![BTreeSet::new(); n]).await;
            Ok(format!("healed{}", note(failed)))
        }
        Fault::Kill { node } | Fault::Pause { node } | Fault::Resume { node } => {
            let id = node_index(node, n)?;
            let pid = file.pids.get(id - 1).copied().unwrap_or(0);
            if pid == 0 || !node_pid_alive(pid, dir) {
                return Err(format!("n{id} is not running"));
            }
            let (sig, done) = match fault {
                Fault::Kill { .. } => (libc_signal::KILL, "killed (SIGKILL)"),
                Fault::Pause { .. } => (libc_signal::STOP, "paused (SIGSTOP)"),
                _ => (libc_signal::CONT, "resumed (SIGCONT)"),
            };
            if !signal(pid, sig) {
                return Err(format!("cannot signal pid {pid}"));
            }
            if sig == libc_signal::KILL {
                // The process is dead, and its ports free, only once it has exited: a restart
                // started before then found its admin port still taken and exited at once.
                // Its command line is gone before its sockets are closed (the kernel releases
                // its memory first), so the wait is for the process to be a zombie or gone.
                let start = std::time::Instant::now();
                while !exited(pid) && start.elapsed() < Duration::from_secs(5) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                file.pids[id - 1] = 0;
                write_cluster(dir, &file)?;
            }
            Ok(format!("n{id} {done}"))
        }
        Fault::Restart { node } => {
            let id = node_index(node, n)?;
            let pid = file.pids.get(id - 1).copied().unwrap_or(0);
            if pid != 0 && node_pid_alive(pid, dir) {
                return Err(format!("n{id} is running (pid {pid}): kill it first"));
            }
            let child = spawn_slot(&file, id, dir)?;
            file.pids[id - 1] = child.id();
            write_cluster(dir, &file)?;
            Ok(format!("n{id} restarted (pid {}), with every link healed", child.id()))
        }
        Fault::Clock { node, jump } => {
            let id = node_index(node, n)?;
            let delta =
                jump.strip_prefix('+').ok_or("a clock jumps forward only: write +500ms").and_then(
                    |d| super::sim::parse_duration(d).map_err(|_| "a duration like +500ms"),
                )?;
            admin(dir, &endpoints[id - 1], &format!("jump {}", delta.as_millis())).await?;
            Ok(format!("n{id}'s clock jumped {jump}"))
        }
    }
}
