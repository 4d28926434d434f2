//! Membership changes under faults, on the core alone: seeded random runs of an in-memory
//! cluster of cores whose leader keeps changing the configuration (learners added and
//! promoted, voters removed, the leader among them, joint changes to arbitrary sets) while
//! messages are dropped, links cut, nodes crash and restart, and logs are compacted into
//! snapshots that carry the configuration.
//!
//! Goal: no two leaders in one term and no two different entries committed at one index,
//! whatever the configuration did; and the `unsafe_membership` switch (the 2015 bug) broken
//! by the same checks on some seeds, so the checks are shown to bite.
//! Method: one `SplitMix64` per seed picks every action; each node validates its own state
//! after every input (`validate_every = 1`); after every action the cluster-wide checks run
//! over every node's log and role. A failure names the seed and how to run it again.

use std::collections::BTreeMap;

use bytes::Bytes;
use raftbed::raft::testkit::MemCluster;
use raftbed::raft::{EntryKind, LogIndex, MembershipChange, NodeId, Role, Term};
use raftbed::rng::SplitMix64;

/// Nodes that exist; the cluster starts with the first three as voters.
const NODES: u64 = 6;
const STEPS: usize = 3000;

/// What each index committed to, and who led each term, as first seen.
#[derive(Default)]
struct Seen {
    committed: BTreeMap<LogIndex, (Term, EntryKind, Bytes, NodeId)>,
    leaders: BTreeMap<Term, NodeId>,
}

impl Seen {
    /// Election safety and state machine safety over every running node.
    fn check(&mut self, cluster: &MemCluster) -> Result<(), String> {
        for (id, member) in &cluster.nodes {
            let Some(node) = &member.node else { continue };
            if node.role() == Role::Leader {
                let first = *self.leaders.entry(node.term()).or_insert(*id);
                if first != *id {
                    return Err(format!("two leaders in term {}: {first} and {id}", node.term()));
                }
            }
            let log = node.log();
            let mut index = log.first_index();
            while index <= log.commit() {
                let Some(entry) = log.entry(index) else { break };
                let this = (entry.term, entry.kind, entry.data.clone(), *id);
                let first = self.committed.entry(index).or_insert(this.clone());
                if (first.0, first.1, &first.2) != (this.0, this.1, &this.2) {
                    return Err(format!(
                        "index {index} committed as term {} on {} and as term {} on {id}",
                        first.0, first.3, this.0
                    ));
                }
                index = index.next();
            }
        }
        Ok(())
    }
}

/// One run; `Err` names what broke and at which step.
fn run(seed: u64, unsafe_membership: bool) -> Result<Stats, String> {
    let mut rng = SplitMix64::new(seed);
    let mut cluster = MemCluster::new(3, |config| {
        config.validate_every = 1;
        config.pre_vote = seed.is_multiple_of(2);
        config.check_quorum = seed % 4 < 2;
        config.bugs.unsafe_membership = unsafe_membership;
    });
    (4..=NODES).for_each(|id| cluster.add_node(NodeId(id)));
    let mut seen = Seen::default();
    let mut stats = Stats::default();
    for step in 0..STEPS {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            act(&mut cluster, &mut rng, &mut stats);
        }));
        if let Err(panic) = outcome {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Err(format!("step {step}: a node panicked: {text}"));
        }
        seen.check(&cluster).map_err(|e| format!("step {step}: {e}"))?;
    }
    Ok(stats)
}

/// What a run did, so a run that changed nothing cannot pass unnoticed.
#[derive(Default, Debug)]
struct Stats {
    changes: usize,
    joint: usize,
    leader_removed: usize,
    compactions: usize,
}

fn act(cluster: &mut MemCluster, rng: &mut SplitMix64, stats: &mut Stats) {
    let ids: Vec<NodeId> = cluster.nodes.keys().copied().collect();
    let pick = |rng: &mut SplitMix64| ids[rng.below(ids.len() as u64) as usize];
    match rng.below(100) {
        0..=19 => {
            let id = pick(rng);
            cluster.tick(id);
        }
        20..=39 => cluster.tick_all(),
        40..=69 => {
            // Deliver most of what is in flight, in order; drop a little, keep the rest for
            // later (so messages arrive late and out of order).
            let messages: Vec<_> = cluster.in_flight.drain(..).collect();
            let mut later = Vec::new();
            for message in messages {
                match rng.below(100) {
                    0..=4 => {}
                    5..=74 => cluster.in_flight.push_back(message),
                    _ => later.push(message),
                }
            }
            cluster.deliver(&[]);
            cluster.in_flight.extend(later);
        }
        70..=77 => {
            if let Some(leader) = cluster.leader() {
                let _ = cluster.node(leader).propose(Bytes::from(format!("{}", rng.next_u64())));
            }
        }
        78..=89 => change(cluster, rng, stats),
        90..=93 => {
            cluster.heal();
            let mut a = Vec::new();
            let mut b = Vec::new();
            for id in &ids {
                if rng.chance(0.5) { a.push(*id) } else { b.push(*id) }
            }
            cluster.partition(&[a, b]);
        }
        94 => cluster.heal(),
        95 => {
            // Compaction folds the configuration into the snapshot, which lagging members
            // and new learners then receive (§5.1).
            let id = pick(rng);
            if let Some(node) = cluster.nodes[&id].node.as_ref() {
                let applied = node.log().applied();
                if applied > node.log().snapshot().index {
                    cluster.compact(id, applied).expect("the machine is at the applied index");
                    stats.compactions += 1;
                }
            }
        }
        96..=97 => {
            let id = pick(rng);
            if cluster.nodes[&id].node.is_some() {
                cluster.crash(id);
            }
        }
        _ => {
            let id = pick(rng);
            if cluster.nodes[&id].node.is_none() {
                cluster.restart(id);
            }
        }
    }
    // Every running node hands out what it has (persist, send, apply, advance).
    for id in &ids {
        while cluster.process_ready(*id).is_some() {}
    }
}

/// The leader proposes a random change: add a learner, promote one, remove a member (itself
/// too), or move to a random set of voters through joint consensus.
fn change(cluster: &mut MemCluster, rng: &mut SplitMix64, stats: &mut Stats) {
    let Some(leader) = cluster.leader() else { return };
    let membership = cluster.node(leader).membership().clone();
    let all: Vec<NodeId> = (1..=NODES).map(NodeId).collect();
    let outsiders: Vec<NodeId> =
        all.iter().copied().filter(|id| !membership.contains(*id)).collect();
    let members = membership.members();
    let change = match rng.below(4) {
        0 if !outsiders.is_empty() => {
            MembershipChange::AddLearner(outsiders[rng.below(outsiders.len() as u64) as usize])
        }
        1 if !membership.learners.is_empty() => {
            let learners: Vec<NodeId> = membership.learners.iter().copied().collect();
            MembershipChange::AddVoter(learners[rng.below(learners.len() as u64) as usize])
        }
        2 => MembershipChange::Remove(members[rng.below(members.len() as u64) as usize]),
        _ => {
            let voters = all.iter().copied().filter(|_| rng.chance(0.5)).collect();
            MembershipChange::Joint { voters, learners: Default::default() }
        }
    };
    if cluster.node(leader).propose_membership(&change).is_ok() {
        stats.changes += 1;
        match change {
            MembershipChange::Joint { .. } => stats.joint += 1,
            MembershipChange::Remove(id) if id == leader => stats.leader_removed += 1,
            _ => {}
        }
    }
}

/// The seeds to run: `MEMBERSHIP_SEEDS=83` (or `=0..200`) runs those again.
fn seeds(default: std::ops::Range<u64>) -> std::ops::Range<u64> {
    let Ok(text) = std::env::var("MEMBERSHIP_SEEDS") else { return default };
    let parse = |t: &str| t.trim().parse::<u64>().expect("MEMBERSHIP_SEEDS: a seed or A..B");
    match text.split_once("..") {
        Some((a, b)) => parse(a)..parse(b),
        None => parse(&text)..parse(&text) + 1,
    }
}

/// The command that runs `seed` again.
fn replay(seed: u64, test: &str) -> String {
    format!(
        "MEMBERSHIP_SEEDS={seed} cargo test --release --test membership_fuzz {test} -- --nocapture"
    )
}

#[test]
fn membership_changes_under_faults_keep_one_leader_per_term_and_every_commit() {
    let mut total = Stats::default();
    let range = seeds(0..200);
    for seed in range.clone() {
        match run(seed, false) {
            Ok(stats) => {
                total.changes += stats.changes;
                total.joint += stats.joint;
                total.leader_removed += stats.leader_removed;
                total.compactions += stats.compactions;
            }
            Err(e) => panic!("seed {seed}: {e}\nreplay: {}", replay(seed, "membership_changes")),
        }
    }
    // The runs did what they are for: many changes, joint ones and leaders removing
    // themselves (on the default seeds; a single seed may do little).
    if range == (0..200) {
        assert!(
            total.changes > 500
                && total.joint > 200
                && total.leader_removed > 30
                && total.compactions > 500,
            "{total:?}"
        );
    }
    eprintln!("seeds {range:?}: {total:?}");
}

#[test]
fn unsafe_membership_breaks_safety_on_some_seeds() {
    let range = seeds(0..1000);
    let caught: Vec<(u64, String)> =
        range.clone().filter_map(|seed| run(seed, true).err().map(|e| (seed, e))).collect();
    assert!(!caught.is_empty(), "unsafe-membership was never caught on seeds {range:?}");
    let (seed, what) = &caught[0];
    eprintln!(
        "unsafe-membership caught on {} of seeds {range:?}; first: seed {seed}: {what}\nreplay: {}",
        caught.len(),
        replay(*seed, "unsafe_membership")
    );
}
