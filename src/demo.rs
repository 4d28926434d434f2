//! `raftbed demo`: a short, readable story told by five Raft cores on an in-memory network.
//! The leader is cut off with one follower; the minority keeps taking proposals it can never
//! commit, the majority elects a new leader and commits, and after the heal every node agrees.

use std::fmt::Write as _;

use bytes::Bytes;

use crate::raft::testkit::MemCluster;
use crate::raft::{LogIndex, NodeId, Role};

/// The outcome of a demo run.
#[derive(Debug)]
pub struct DemoReport {
    /// The narrative, one line per event.
    pub text: String,
    /// Whether every safety check passed.
    pub ok: bool,
}

/// Runs the demo with `seed` (it picks the election timeouts).
pub fn run(seed: u64) -> DemoReport {
    let mut cluster = MemCluster::new(5, |config| config.seed = seed);
    let mut text = String::new();
    let mut ok = true;
    let mut ticks = 0u64;

    let elected_at = loop {
        let now = step(&mut cluster, &mut ticks);
        if cluster.leader().is_some() {
            break now;
        }
    };
    let first = cluster.leader().expect("elected");
    let term = cluster.node(first).term();
    writeln!(text, "tick {elected_at:>3}  {first} elected leader of term {term}").unwrap();

    for i in 0..20 {
        cluster.node(first).propose(Bytes::from(format!("before-{i}"))).expect("leader");
    }
    cluster.stabilize();
    let commit = cluster.node(first).log().commit();
    writeln!(text, "          20 writes committed through {first} (commit index {commit})")
        .unwrap();

    let buddy = *cluster.nodes.keys().find(|id| **id != first).expect("5 nodes");
    let majority: Vec<NodeId> =
        cluster.nodes.keys().copied().filter(|id| *id != first && *id != buddy).collect();
    cluster.partition(&[vec![first, buddy], majority.clone()]);
    let names: Vec<String> = majority.iter().map(ToString::to_string).collect();
    writeln!(text, "tick {ticks:>3}  partition: {{{first}, {buddy}}} | {{{}}}", names.join(", "))
        .unwrap();

    let mut stale = 0;
    for i in 0..10 {
        if cluster.node(first).propose(Bytes::from(format!("stale-{i}"))).is_ok() {
            stale += 1;
        }
    }
    let stale_from = cluster.node(first).log().commit();
    let mut second = None;
    let mut stepped_down = None;
    for _ in 0..200 {
        let now = step(&mut cluster, &mut ticks);
        if second.is_none()
            && let Some(leader) = cluster.leader().filter(|l| majority.contains(l))
        {
            let term = cluster.node(leader).term();
            writeln!(text, "tick {now:>3}  {leader} elected leader of term {term} in the majority")
                .unwrap();
            second = Some(leader);
        }
        if stepped_down.is_none() && cluster.node(first).role() != Role::Leader {
            writeln!(text, "tick {now:>3}  {first} stepped down: no quorum heard within an election timeout (check-quorum)").unwrap();
            stepped_down = Some(now);
        }
        if second.is_some() && stepped_down.is_some() {
            break;
        }
    }
    let Some(second) = second else {
        writeln!(text, "FAIL: the majority elected no leader").unwrap();
        return DemoReport { text, ok: false };
    };
    let committed_stale = cluster.node(first).log().commit() > stale_from;
    writeln!(
        text,
        "          {stale} writes proposed to the cut-off {first}: committed={committed_stale}"
    )
    .unwrap();
    ok &= !committed_stale;

    for i in 0..10 {
        cluster.node(second).propose(Bytes::from(format!("after-{i}"))).expect("leader");
    }
    cluster.stabilize();
    let commit = cluster.node(second).log().commit();
    writeln!(text, "          10 writes committed through {second} (commit index {commit})")
        .unwrap();

    cluster.heal();
    writeln!(text, "tick {ticks:>3}  heal").unwrap();
    for _ in 0..50 {
        step(&mut cluster, &mut ticks);
    }
    let leader = cluster.leader();
    let digests: Vec<(NodeId, LogIndex, u64, u64)> = cluster
        .nodes
        .iter()
        .map(|(id, m)| (*id, m.machine.applied, m.machine.digest, m.machine.commands))
        .collect();
    for (id, applied, digest, commands) in &digests {
        writeln!(
            text,
            "          {id}: applied {applied}, {commands} commands, digest {digest:016x}"
        )
        .unwrap();
    }
    let agree = digests.windows(2).all(|w| w[0].1 == w[1].1 && w[0].2 == w[1].2);
    let commands = digests.first().map_or(0, |d| d.3);
    ok &= agree && commands == 30 && leader.is_some();
    writeln!(
        text,
        "\nverdict: {} — {} leader after heal, state machines {}, {commands} of 30 acknowledged writes applied, {stale} unacknowledged stale writes discarded",
        if ok { "SAFE" } else { "UNSAFE" },
        leader.map_or("no".to_string(), |l| l.to_string()),
        if agree { "identical" } else { "DIVERGED" },
    )
    .unwrap();
    DemoReport { text, ok }
}

/// One tick on every node, then run the cluster until it is quiet.
fn step(cluster: &mut MemCluster, ticks: &mut u64) -> u64 {
    cluster.tick_all();
    cluster.stabilize();
    *ticks += 1;
    *ticks
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_is_safe_and_deterministic() {
        let a = super::run(7);
        assert!(a.ok, "{}", a.text);
        assert_eq!(a.text, super::run(7).text);
    }
}
