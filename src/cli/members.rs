//! `raftbed cluster add|promote|remove|replace`: membership changes of a local cluster, made as
//! an operator makes them. `add` asks the cluster for the member through etcd's API (so it gets
//! a 64-bit id, as etcd's) and starts a node that joins with it; `remove` asks for the removal,
//! and the removed node stops by itself; `replace` adds the new node as a learner, waits until
//! it has caught up, then swaps it for the old one in one joint-consensus change (§4.3), which
//! etcd's API cannot ask for, through the leader's admin port.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use super::cluster::{
    ClusterFile, node_pid_alive, read_cluster, spawn_slot, wait_for_leader, write_cluster,
};
use super::runtime;
use crate::client::Client;
use crate::transport::net::TokioNet;

/// A client of the nodes of `file` that are running.
fn client(file: &ClusterFile, dir: &Path) -> Result<Client<TokioNet>, String> {
    let running: Vec<String> = (1..=file.endpoints.len())
        .filter(|slot| file.pids[slot - 1] != 0 && node_pid_alive(file.pids[slot - 1], dir))
        .map(|slot| file.endpoints[slot - 1].clone())
        .collect();
    if running.is_empty() {
        return Err("no node of the cluster is running".into());
    }
    let mut client = Client::new(TokioNet, running, 0);
    client.timeout = Duration::from_secs(5);
    Ok(client)
}

/// The position (from 1) of node `name` (`n3`).
fn slot(file: &ClusterFile, name: &str) -> Result<usize, String> {
    let n = file.endpoints.len();
    name.trim_start_matches('n')
        .parse::<usize>()
        .ok()
        .filter(|slot| (1..=n).contains(slot))
        .ok_or_else(|| format!("{name:?} is not a node (n1 to n{n})"))
}

/// Adds a node (a learner if `learner`): returns its name.
///
/// # Errors
/// No free port, the cluster refuses the member, or the node does not start.
pub fn add(dir: &Path, learner: bool) -> Result<String, String> {
    let mut file = read_cluster(dir)?;
    let slot = file.endpoints.len() + 1;
    let first: SocketAddr = file.endpoints[0].parse().map_err(|_| "cluster.json: bad endpoint")?;
    let port = (first.port() as usize - 10 + 10 * slot) as u16;
    for p in [port, port + 1, port + 2] {
        std::net::TcpListener::bind(("127.0.0.1", p))
            .map_err(|e| format!("port {p} for n{slot} is not free: {e}"))?;
    }
    let endpoint = format!("127.0.0.1:{port}");
    let peer_url = format!("http://127.0.0.1:{}", port + 1);
    let runtime = runtime()?;
    let mut client = client(&file, dir)?;
    let added = runtime
        .block_on(client.member_add(vec![peer_url], learner))
        .map_err(|e| format!("member add: {}", e.message))?;
    let id = added.member.map_or(0, |m| m.id);
    file.push_joined(endpoint.clone(), 0, id);
    let child = spawn_slot(&file, slot, dir)?;
    file.pids[slot - 1] = child.id();
    write_cluster(dir, &file)?;
    let mut status = Client::new(TokioNet, vec![endpoint.clone()], 0);
    status.timeout = Duration::from_millis(500);
    let start = Instant::now();
    while runtime.block_on(status.status(0)).is_err() {
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "n{slot} did not start within 30 s; see {}/n{slot}.log",
                dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let kind = if learner { "a learner" } else { "a voter" };
    Ok(format!("added n{slot} (member {id:x}) as {kind}, serving clients on {endpoint}"))
}

/// Promotes learner `name`, waiting (up to 60 s) until it has caught up enough.
///
/// # Errors
/// The cluster refuses for another reason, or the learner does not catch up.
pub fn promote(dir: &Path, name: &str) -> Result<String, String> {
    let file = read_cluster(dir)?;
    let slot = slot(&file, name)?;
    let runtime = runtime()?;
    let mut client = client(&file, dir)?;
    let start = Instant::now();
    loop {
        match runtime.block_on(client.member_promote(file.id(slot))) {
            Ok(_) => return Ok(format!("promoted n{slot}")),
            Err(e)
                if e.message.contains("in sync") && start.elapsed() < Duration::from_secs(60) =>
            {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(format!("member promote: {}", e.message)),
        }
    }
}

/// Removes node `name`; waits (up to 10 s) until it has stopped by itself.
///
/// # Errors
/// The cluster refuses.
pub fn remove(dir: &Path, name: &str) -> Result<String, String> {
    let mut file = read_cluster(dir)?;
    let slot = slot(&file, name)?;
    let runtime = runtime()?;
    let mut client = client(&file, dir)?;
    runtime
        .block_on(client.member_remove(file.id(slot)))
        .map_err(|e| format!("member remove: {}", e.message))?;
    let stopped = wait_stopped(&mut file, slot, dir)?;
    Ok(format!("removed n{slot}{stopped}"))
}

/// Waits until node `slot`, removed, has stopped; records it.
fn wait_stopped(file: &mut ClusterFile, slot: usize, dir: &Path) -> Result<&'static str, String> {
    let pid = file.pids[slot - 1];
    let start = Instant::now();
    while pid != 0 && node_pid_alive(pid, dir) {
        if start.elapsed() > Duration::from_secs(10) {
            return Ok(" (it has not stopped yet: it may not have heard of its removal)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    file.pids[slot - 1] = 0;
    write_cluster(dir, file)?;
    Ok("; it stopped")
}

/// Replaces voter `name` with a new node: added as a learner, caught up, then swapped in one
/// joint-consensus change.
///
/// # Errors
/// Any step is refused or does not finish in time.
pub fn replace(dir: &Path, name: &str) -> Result<String, String> {
    let file = read_cluster(dir)?;
    let old = slot(&file, name)?;
    let old_id = file.id(old);
    let runtime = runtime()?;
    let is_voter = |file: &ClusterFile| -> Result<Vec<u64>, String> {
        let list = runtime.block_on(client(file, dir)?.member_list()).map_err(|e| e.message)?;
        let voters: Vec<u64> =
            list.members.iter().filter(|m| !m.is_learner).map(|m| m.id).collect();
        if voters.contains(&old_id) { Ok(voters) } else { Err(format!("n{old} is not a voter")) }
    };
    is_voter(&file)?;
    let added = add(dir, true)?;
    let mut file = read_cluster(dir)?;
    let new = file.endpoints.len();
    let new_id = file.id(new);
    caught_up(&runtime, &file, new)?;
    let mut voters = is_voter(&file)?;
    let mut client = client(&file, dir)?;
    voters.retain(|v| *v != old_id);
    voters.push(new_id);
    let ids: Vec<String> = voters.iter().map(u64::to_string).collect();
    let command = format!("change joint {}", ids.join(","));
    let start = Instant::now();
    loop {
        let leader = leader_slot(&runtime, &file)?;
        let answer =
            runtime.block_on(super::nemesis::admin(dir, &file.endpoints[leader - 1], &command));
        match answer {
            Ok(_) => break,
            // Refused while another change is in flight or the leader has just changed.
            Err(_) if start.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(format!("the joint change was refused: {e}")),
        }
    }
    let start = Instant::now();
    while runtime
        .block_on(client.member_list())
        .is_ok_and(|l| l.members.iter().any(|m| m.id == old_id))
    {
        if start.elapsed() > Duration::from_secs(20) {
            return Err(format!("n{old} is still a member 20 s after the joint change"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped = wait_stopped(&mut file, old, dir)?;
    Ok(format!("{added}; replaced n{old} with n{new} in one joint change{stopped}"))
}

/// The node (its position, from 1) that leads now, waiting up to 5 s for one.
fn leader_slot(runtime: &tokio::runtime::Runtime, file: &ClusterFile) -> Result<usize, String> {
    let leader = runtime.block_on(wait_for_leader(&file.endpoints, Duration::from_secs(5)));
    leader.and_then(|id| file.slot_of(id)).ok_or_else(|| "no leader".to_string())
}

/// Waits (up to 60 s) until node `slot` has applied what the leader had committed when asked.
fn caught_up(
    runtime: &tokio::runtime::Runtime,
    file: &ClusterFile,
    slot: usize,
) -> Result<(), String> {
    let mut client = Client::new(TokioNet, file.endpoints.clone(), 0);
    client.timeout = Duration::from_millis(500);
    let leader = leader_slot(runtime, file)?;
    let target = runtime.block_on(client.status(leader - 1)).map_err(|e| e.message)?.raft_index;
    let start = Instant::now();
    while runtime.block_on(client.status(slot - 1)).map_or(0, |s| s.raft_applied_index) < target {
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!("n{slot} did not catch up within 60 s"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
