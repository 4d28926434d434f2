//! Datadriven interaction tests for the Raft core (after etcd-io/raft's `interaction_env`).
//!
//! Goal: show, message by message, that the core behaves as the dissertation says in the cases
//! that matter (elections, pre-vote, check-quorum, conflicting logs, the Figure 8 commit rule,
//! leadership transfer, snapshots, restarts).
//! Method: each file in `tests/testdata/interaction/` opens with a prose paragraph, then drives a
//! `MemCluster` by hand with the commands below and compares every output with its golden text.
//! `REWRITE=1 cargo test --test interaction` regenerates the golden output; review the diff.
//!
//! Arguments are named (the datadriven parser does not keep order): node ids are bare numbers,
//! everything else is `key=value`.

use std::fmt::Write as _;

use bytes::Bytes;
use datadriven::{TestCase, walk};
use raftbed::raft::testkit::{Delivery, DigestMachine, MemCluster, MemStorage};
use raftbed::raft::{
    Entry, EntryKind, HardState, LogIndex, Membership, MembershipChange, NodeId, ProgressState,
    Ready, Role, Snapshot, SnapshotMeta, Term,
};

#[test]
fn interaction() {
    walk("tests/testdata/interaction", |file| {
        let mut env: Option<MemCluster> = None;
        file.run(|case| match run(&mut env, case) {
            Ok(out) => out,
            Err(err) => format!("error: {err}\n"),
        });
    });
}

type Result<T> = std::result::Result<T, String>;

fn run(env: &mut Option<MemCluster>, case: &mut TestCase) -> Result<String> {
    if case.directive == "add-nodes" {
        return add_nodes(env, case);
    }
    let cluster = env.as_mut().ok_or("add-nodes first")?;
    // `quiet` runs a command for its effect and prints only "ok".
    let quiet = case.take_flag("quiet").map_err(|e| e.to_string())?;
    let ids = node_ids(case)?;
    let out = dispatch(cluster, case, &ids)?;
    Ok(if quiet { "ok\n".into() } else { out })
}

fn dispatch(cluster: &mut MemCluster, case: &mut TestCase, ids: &[NodeId]) -> Result<String> {
    let ids = ids.to_vec();
    let needs_running =
        ["campaign", "propose", "tick-election", "tick-heartbeat", "tick", "compact", "change"];
    let needs_running = needs_running.contains(&case.directive.as_str())
        || ["transfer-leadership", "raft-log", "status", "read-index", "lease-read", "membership"]
            .contains(&case.directive.as_str());
    for id in ids.iter().filter(|_| case.directive != "add-node") {
        let running = cluster.nodes.get(id).ok_or(format!("unknown node {id}"))?.node.is_some();
        if needs_running && !running {
            return Err(format!("{id} is crashed"));
        }
    }
    match case.directive.as_str() {
        // Example: campaign 1
        "campaign" => each(&ids, |id| cluster.node(id).campaign()),
        // Example: propose 1 data=x
        "propose" => propose(cluster, &ids, case),
        // Example: tick-election 1
        "tick-election" => each(&ids, |id| {
            let node = cluster.node(id);
            let remaining =
                node.randomized_election_timeout().saturating_sub(node.election_elapsed());
            (0..remaining.max(1)).for_each(|_| cluster.tick(id));
        }),
        // Example: tick-heartbeat 1 n=3
        "tick-heartbeat" => {
            let n: u32 = take_or(case, "n", 1)?;
            each(&ids, |id| {
                let interval = cluster.node(id).config().heartbeat_interval_ticks;
                (0..n * interval).for_each(|_| cluster.tick(id));
            })
        }
        // Example: tick 1 n=3
        "tick" => {
            let n: u32 = take_or(case, "n", 1)?;
            each(&ids, |id| (0..n).for_each(|_| cluster.tick(id)))
        }
        // Example: read-index 1 req=7
        "read-index" => {
            let request: u64 = take_or(case, "req", 1)?;
            let id = *ids.first().ok_or("which node?")?;
            Ok(match cluster.node(id).read_index(request) {
                Ok(()) => "ok\n".into(),
                Err(err) => format!("rejected: {err}\n"),
            })
        }
        // Example: lease-read 1
        "lease-read" => Ok(ids
            .iter()
            .map(|id| {
                let node = cluster.node(*id);
                match node.lease_read_index() {
                    Some(index) => format!("{id}: lease holds, read at {index}\n"),
                    None => format!("{id}: no lease (ticks={})\n", node.ticks()),
                }
            })
            .collect()),
        // Example: process-ready 1 2
        "process-ready" => Ok(ids.iter().map(|id| process_ready(cluster, *id)).collect()),
        // Example: deliver-msgs 2 3 from=1
        "deliver-msgs" => {
            let from: Option<u64> = case.try_take_arg("from").map_err(|e| e.to_string())?;
            Ok(deliver(cluster, &ids, from.map(NodeId)))
        }
        // Example: drop-msgs 2 5
        "drop-msgs" => {
            let dropped = cluster.take_matching(|m| ids.is_empty() || ids.contains(&m.to));
            Ok(dropped.iter().map(|m| format!("{m} DROPPED\n")).collect::<String>() + "ok\n")
        }
        // Example: stabilize
        "stabilize" => Ok(stabilize(cluster)),
        // Example: partition a=(1,2) b=(3,4,5)
        "partition" => partition(cluster, case),
        // Example: heal
        "heal" => {
            cluster.heal();
            Ok("ok\n".into())
        }
        // Example: crash 3
        "crash" => each(&ids, |id| cluster.crash(id)),
        // Example: restart 3
        "restart" => each(&ids, |id| cluster.restart(id)),
        // Example: set-log 2 terms=(1,1,2) commit=1 term=2
        "set-log" => set_log(cluster, &ids, case),
        // Example: compact 1
        "compact" => {
            let mut out = String::new();
            for id in &ids {
                let applied = cluster.node(*id).log().applied();
                match cluster.compact(*id, applied) {
                    Ok(()) => writeln!(out, "{id}: compacted through {applied}").unwrap(),
                    Err(err) => writeln!(out, "{id}: {err}").unwrap(),
                }
            }
            Ok(out)
        }
        // Example: transfer-leadership 1 to=3
        "transfer-leadership" => {
            let to = NodeId(take_or(case, "to", 0)?);
            let id = *ids.first().ok_or("which leader?")?;
            Ok(match cluster.node(id).transfer_leadership(to) {
                Ok(()) => "ok\n".into(),
                Err(err) => format!("{err}\n"),
            })
        }
        // Example: add-node 4 (a fresh node that joins: no vote until a configuration says)
        "add-node" => each(&ids, |id| cluster.add_node(id)),
        // Example: change 1 add-learner=4 | add-voter=4 | remove=2 | voters=(4,5,6) learners=(7)
        "change" => change(cluster, &ids, case),
        // Example: membership 1 2 3
        "membership" => {
            Ok(ids.iter().map(|id| format!("{id}: {}\n", cluster.node(*id).membership())).collect())
        }
        // Example: raft-state
        "raft-state" => Ok(raft_state(cluster)),
        // Example: raft-log 1
        "raft-log" => Ok(ids.iter().map(|id| raft_log(cluster, *id)).collect()),
        // Example: status 1
        "status" => Ok(status(cluster, *ids.first().ok_or("which leader?")?)),
        other => Err(format!("unknown command {other}")),
    }
}

/// Node ids are the bare numeric arguments, in ascending order.
fn node_ids(case: &TestCase) -> Result<Vec<NodeId>> {
    let mut ids: Vec<NodeId> = case
        .args
        .iter()
        .filter(|(_, values)| values.is_empty())
        .map(|(key, _)| key.parse().map(NodeId).map_err(|_| format!("not a node id: {key}")))
        .collect::<Result<_>>()?;
    ids.sort();
    Ok(ids)
}

fn take_or<T>(case: &mut TestCase, key: &str, default: T) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(case.try_take_arg::<T>(key).map_err(|e| e.to_string())?.unwrap_or(default))
}

fn each(ids: &[NodeId], mut f: impl FnMut(NodeId)) -> Result<String> {
    ids.iter().for_each(|id| f(*id));
    Ok("ok\n".into())
}

// Example: add-nodes 5 pre-vote=false check-quorum=false election=10 max-msg-entries=1 index=10
//          heartbeat=2 lease=true lease-until-step-down=true unsafe-membership=true
//          learner-refuses-vote=true
fn add_nodes(env: &mut Option<MemCluster>, case: &mut TestCase) -> Result<String> {
    let n = node_ids(case)?.first().ok_or("how many nodes?")?.0;
    let pre_vote: bool = take_or(case, "pre-vote", true)?;
    let check_quorum: bool = take_or(case, "check-quorum", true)?;
    let election: u32 = take_or(case, "election", 10)?;
    let max_entries: usize = take_or(case, "max-msg-entries", 64)?;
    let max_inflight: usize = take_or(case, "max-inflight", 256)?;
    let lease: bool = take_or(case, "lease", false)?;
    let lease_until_step_down: bool = take_or(case, "lease-until-step-down", false)?;
    let unsafe_membership: bool = take_or(case, "unsafe-membership", false)?;
    let learner_refuses_vote: bool = take_or(case, "learner-refuses-vote", false)?;
    let heartbeat: u32 = take_or(case, "heartbeat", 1)?;
    let index: u64 = take_or(case, "index", 0)?;
    let mut cluster = MemCluster::new(n, |config| {
        config.pre_vote = pre_vote;
        config.check_quorum = check_quorum;
        config.election_timeout_ticks_min = election;
        config.election_timeout_ticks_max = election * 2;
        config.max_entries_per_message = max_entries;
        config.max_inflight_messages = max_inflight;
        config.heartbeat_interval_ticks = heartbeat;
        if lease {
            *config = config.clone().with_lease_reads();
        }
        config.bugs.lease_until_step_down = lease_until_step_down;
        config.bugs.unsafe_membership = unsafe_membership;
        config.bugs.learner_refuses_vote = learner_refuses_vote;
    });
    if index > 0 {
        // Start every node from a snapshot at `index` in term 1, as if a long history
        // had already been committed and compacted.
        let machine = DigestMachine { applied: LogIndex(index), ..DigestMachine::default() };
        let snapshot = Snapshot {
            meta: SnapshotMeta { index: LogIndex(index), term: Term(1) },
            data: machine.encode(),
            membership: Membership::default(),
        };
        for member in cluster.nodes.values_mut() {
            member.storage = MemStorage {
                hard_state: HardState { term: Term(1), vote: None, commit: LogIndex(index) },
                snapshot: Some(snapshot.clone()),
                entries: Vec::new(),
            };
        }
        let ids: Vec<NodeId> = cluster.nodes.keys().copied().collect();
        ids.iter().for_each(|id| cluster.restart(*id));
    }
    *env = Some(cluster);
    Ok(format!(
        "{n} nodes, pre-vote={pre_vote} check-quorum={check_quorum} election={election}..={}\n",
        election * 2
    ))
}

fn propose(cluster: &mut MemCluster, ids: &[NodeId], case: &mut TestCase) -> Result<String> {
    let data: String = case.take_arg("data").map_err(|e| e.to_string())?;
    let id = *ids.first().ok_or("which node?")?;
    Ok(match cluster.node(id).propose(Bytes::from(data)) {
        Ok(proposal) => format!("ok: index {} term {}\n", proposal.index, proposal.term),
        Err(err) => format!("rejected: {err}\n"),
    })
}

fn change(cluster: &mut MemCluster, ids: &[NodeId], case: &mut TestCase) -> Result<String> {
    let id = *ids.first().ok_or("which leader?")?;
    let one = |case: &mut TestCase, key: &str| -> Result<Option<NodeId>> {
        Ok(case.try_take_arg::<u64>(key).map_err(|e| e.to_string())?.map(NodeId))
    };
    let set = |case: &mut TestCase, key: &str| -> Result<Option<Vec<NodeId>>> {
        let list: Option<Vec<u64>> = case.try_take_args(key).map_err(|e| e.to_string())?;
        Ok(list.map(|l| l.into_iter().map(NodeId).collect()))
    };
    let change = if let Some(learner) = one(case, "add-learner")? {
        MembershipChange::AddLearner(learner)
    } else if let Some(voter) = one(case, "add-voter")? {
        MembershipChange::AddVoter(voter)
    } else if let Some(removed) = one(case, "remove")? {
        MembershipChange::Remove(removed)
    } else if let Some(voters) = set(case, "voters")? {
        let learners = set(case, "learners")?.unwrap_or_default();
        MembershipChange::Joint {
            voters: voters.into_iter().collect(),
            learners: learners.into_iter().collect(),
        }
    } else {
        return Err("change: add-learner=, add-voter=, remove= or voters=(..)".into());
    };
    Ok(match cluster.node(id).propose_membership(&change) {
        Ok(proposal) => {
            format!("ok: {change} at index {} term {}\n", proposal.index, proposal.term)
        }
        Err(err) => format!("rejected: {err}\n"),
    })
}

fn set_log(cluster: &mut MemCluster, ids: &[NodeId], case: &mut TestCase) -> Result<String> {
    let terms: Vec<u64> = case.take_args("terms").map_err(|e| e.to_string())?;
    let commit: u64 = take_or(case, "commit", 0)?;
    let last_term = terms.last().copied().unwrap_or(0);
    let term: u64 = take_or(case, "term", last_term)?;
    for id in ids {
        cluster.crash(*id);
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, t)| {
                Entry::command(Term(*t), LogIndex(i as u64 + 1), Bytes::from(format!("e{}", i + 1)))
            })
            .collect();
        let member = cluster.nodes.get_mut(id).ok_or("unknown node")?;
        member.storage = MemStorage {
            hard_state: HardState { term: Term(term), vote: None, commit: LogIndex(commit) },
            snapshot: None,
            entries,
        };
        cluster.restart(*id);
    }
    Ok(ids.iter().map(|id| raft_log(cluster, *id)).collect())
}

fn partition(cluster: &mut MemCluster, case: &mut TestCase) -> Result<String> {
    let mut names: Vec<String> = case.args.keys().cloned().collect();
    names.sort();
    let mut groups = Vec::new();
    for name in names {
        let members: Vec<u64> = case.take_args(&name).map_err(|e| e.to_string())?;
        groups.push(members.into_iter().map(NodeId).collect::<Vec<_>>());
    }
    cluster.partition(&groups);
    let text: Vec<String> = groups
        .iter()
        .map(|g| g.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "))
        .collect();
    Ok(format!("cut: {}\n", text.join(" | ")))
}

fn process_ready(cluster: &mut MemCluster, id: NodeId) -> String {
    let mut out = format!("> {id} handling Ready\n");
    match cluster.process_ready(id) {
        Some(ready) => out.push_str(&format_ready(&ready)),
        None => out.push_str("  <empty>\n"),
    }
    out
}

fn format_ready(ready: &Ready) -> String {
    let mut out = String::new();
    if let Some(soft) = ready.soft_state {
        let leader = soft.leader.map_or("none".to_string(), |l| l.to_string());
        writeln!(out, "  role: {} (leader {leader})", soft.role).unwrap();
    }
    if let Some(hs) = ready.hard_state {
        let vote = hs.vote.map_or("none".to_string(), |v| v.to_string());
        let sync = if ready.must_sync { " (sync)" } else { "" };
        writeln!(out, "  hard state: term={} vote={vote} commit={}{sync}", hs.term, hs.commit)
            .unwrap();
    }
    if let Some(snapshot) = &ready.snapshot {
        write!(out, "  snapshot: {}/{}", snapshot.meta.term, snapshot.meta.index).unwrap();
        if !snapshot.membership.voters.is_empty() {
            write!(out, " {}", snapshot.membership).unwrap();
        }
        out.push('\n');
    }
    if !ready.entries.is_empty() {
        writeln!(out, "  persist: {}", join(&ready.entries)).unwrap();
    }
    if !ready.committed_entries.is_empty() {
        writeln!(out, "  apply: {}", join(&ready.committed_entries)).unwrap();
    }
    for message in &ready.messages {
        writeln!(out, "  send: {message}").unwrap();
    }
    for read in &ready.read_states {
        writeln!(out, "  read confirmed: req={} at index {}", read.request, read.index).unwrap();
    }
    if !ready.failed_reads.is_empty() {
        writeln!(out, "  reads failed: {:?}", ready.failed_reads).unwrap();
    }
    out
}

fn join(entries: &[Entry]) -> String {
    entries.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn deliver(cluster: &mut MemCluster, ids: &[NodeId], from: Option<NodeId>) -> String {
    let mut out = String::new();
    let select = |m: &raftbed::raft::Message| {
        (ids.is_empty() || ids.contains(&m.to)) && from.is_none_or(|from| m.from == from)
    };
    for (message, fate) in cluster.deliver_matching(select) {
        match fate {
            Delivery::Delivered => writeln!(out, "{message}").unwrap(),
            Delivery::Partitioned => writeln!(out, "{message} DROPPED (partition)").unwrap(),
            Delivery::Crashed => writeln!(out, "{message} DROPPED (crashed)").unwrap(),
        }
    }
    if out.is_empty() {
        out.push_str("no messages\n");
    }
    out
}

/// Alternates readies and deliveries until nothing moves, printing both.
fn stabilize(cluster: &mut MemCluster) -> String {
    let ids: Vec<NodeId> = cluster.nodes.keys().copied().collect();
    let mut out = String::new();
    for _ in 0..1000 {
        let mut busy = false;
        for id in &ids {
            if let Some(ready) = cluster.process_ready(*id) {
                writeln!(out, "> {id} handling Ready").unwrap();
                out.push_str(&format_ready(&ready));
                busy = true;
            }
        }
        for id in &ids {
            if cluster.in_flight.iter().any(|m| m.to == *id) {
                writeln!(out, "> {id} receiving messages").unwrap();
                for line in deliver(cluster, &[*id], None).lines() {
                    writeln!(out, "  {line}").unwrap();
                }
                busy = true;
            }
        }
        if !busy {
            return out;
        }
    }
    out.push_str("did not stabilize in 1000 rounds\n");
    out
}

fn raft_state(cluster: &mut MemCluster) -> String {
    let mut out = String::new();
    for (id, member) in &cluster.nodes {
        let Some(node) = &member.node else {
            writeln!(out, "{id}: crashed").unwrap();
            continue;
        };
        let leader = node.leader().map_or("none".to_string(), |l| l.to_string());
        let vote = node.vote().map_or("none".to_string(), |v| v.to_string());
        writeln!(
            out,
            "{id}: {} term={} vote={vote} leader={leader} commit={} applied={} last={}",
            node.role(),
            node.term(),
            node.log().commit(),
            node.log().applied(),
            node.log().last_index(),
        )
        .unwrap();
    }
    out
}

fn raft_log(cluster: &mut MemCluster, id: NodeId) -> String {
    let node = cluster.node(id);
    let log = node.log();
    let mut out = format!("{id}:");
    let snapshot = log.snapshot();
    if snapshot.index.0 > 0 {
        write!(out, " [snapshot {}/{}]", snapshot.term, snapshot.index).unwrap();
    }
    let mut index = log.first_index();
    while let Some(entry) = log.entry(index) {
        let kind = if entry.kind == EntryKind::Config { ":config" } else { "" };
        write!(out, " {}/{}{kind}", entry.term, entry.index).unwrap();
        index = index.next();
    }
    if log.last_index() == snapshot.index && snapshot.index.0 == 0 {
        out.push_str(" <empty>");
    }
    writeln!(out, " (commit {})", log.commit()).unwrap();
    out
}

fn status(cluster: &mut MemCluster, id: NodeId) -> String {
    let node = cluster.node(id);
    if node.role() != Role::Leader {
        return format!("{id} is {}, not leader\n", node.role());
    }
    let mut out = String::new();
    for voter in node.membership().members() {
        let progress = node.progress(voter).expect("leader tracks voters");
        let state = match progress.state {
            ProgressState::Probe => "probe".to_string(),
            ProgressState::Replicate => "replicate".to_string(),
            ProgressState::Snapshot { pending } => format!("snapshot({pending})"),
        };
        writeln!(
            out,
            "{voter}: {state} match={} next={} inflight={}",
            progress.match_index,
            progress.next_index,
            progress.inflight.len()
        )
        .unwrap();
    }
    out
}
