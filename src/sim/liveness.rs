//! Liveness during faults: a quorum that is fully connected, cut off from every other running
//! node and untouched by faults for a whole window (ten election timeouts, that is five
//! elections at the longest randomized timeout, stretched for the slowest clock a fault can
//! give) must by the window's end have a leader
//! that all of it knows and that has committed an entry of its term (the no-op a leader
//! commits on election, §6.4, stands for the write submitted to it).
//!
//! Why cut off from the rest: a node outside the quorum that still reaches part of it can
//! legitimately hold the leadership (a bridge), or, without pre-vote, disrupt it; the check
//! judges only the situation where Raft owes progress. Why fully connected: a lossy or slowed
//! link inside the quorum may starve an election without any bug. Many real liveness bugs
//! (hashicorp/raft#605, openraft#2080) leave a cluster exactly here: connected, and leaderless.
//!
//! Judged only with pre-vote on (§9.6): without it, a node of the quorum whose log is too
//! stale to win still bumps the term whenever it times out first, deposing every candidate,
//! and no window bounds that (seeds 130 and 194 of the fixed world: a connected quorum
//! leaderless for 2.5 s, its candidates deposed one after another).

use std::collections::BTreeMap;
use std::time::Duration;

use super::checks::{Checks, Violation};
use crate::raft::NodeId;

/// Which nodes run, and how each pair of them is linked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connectivity {
    up: Vec<bool>,
    /// `whole[a][b]`: neither way cut, nor lossy, nor slowed.
    whole: Vec<Vec<bool>>,
    /// `severed[a][b]`: cut both ways.
    severed: Vec<Vec<bool>>,
    /// The voter sets a quorum needs a majority of (two while joint, §4.3).
    voter_sets: Vec<Vec<usize>>,
    /// The members (voters and learners): those that must know the leader.
    members: Vec<bool>,
}

impl Connectivity {
    /// From which nodes are up and, per pair `(a, b)` with `a < b`, (whole, severed).
    pub fn new(up: Vec<bool>, pair: impl Fn(usize, usize) -> (bool, bool)) -> Connectivity {
        let n = up.len();
        let (mut whole, mut severed) = (vec![vec![false; n]; n], vec![vec![false; n]; n]);
        for a in 0..n {
            for b in a + 1..n {
                let (w, s) = pair(a, b);
                (whole[a][b], whole[b][a], severed[a][b], severed[b][a]) = (w, w, s, s);
            }
        }
        let voter_sets = vec![(0..n).collect()];
        Connectivity { up, whole, severed, voter_sets, members: vec![true; n] }
    }

    /// The configurations that may decide now (the applied one, and newer ones the nodes
    /// already use): only their voters count toward a quorum, which needs a majority of every
    /// voter set of each, and only the members of all of them must know the leader (spares and
    /// removed nodes need not). Judging fewer windows is the price
    /// of never owing a leader to a side that Raft cannot elect one on.
    pub fn with_configurations(
        mut self,
        configurations: &[crate::raft::Membership],
    ) -> Connectivity {
        let index = |id: &NodeId| id.0 as usize - 1;
        let n = self.up.len();
        self.voter_sets = configurations
            .iter()
            .flat_map(|m| [&m.voters, &m.outgoing])
            .filter(|set| !set.is_empty())
            .map(|set| set.iter().map(index).filter(|i| *i < n).collect())
            .collect();
        self.members = (0..n)
            .map(|i| configurations.iter().all(|m| m.contains(NodeId(i as u64 + 1))))
            .collect();
        self
    }

    /// The running members that hold a quorum of the cluster's configuration, are whole among
    /// themselves and with the other running nodes they reach, and severed from every other
    /// running node, if there are such (at most one set can be).
    pub fn isolated_quorum(&self) -> Option<Vec<usize>> {
        let n = self.up.len();
        let mut seen = vec![false; n];
        for start in (0..n).filter(|s| self.up[*s]) {
            if seen[start] {
                continue;
            }
            // The component of `start` over links that are not severed.
            let mut component = vec![start];
            seen[start] = true;
            let mut i = 0;
            while i < component.len() {
                let a = component[i];
                let joining: Vec<usize> =
                    (0..n).filter(|b| self.up[*b] && !seen[*b] && !self.severed[a][*b]).collect();
                for b in joining {
                    seen[b] = true;
                    component.push(b);
                }
                i += 1;
            }
            let quorum = self
                .voter_sets
                .iter()
                .all(|set| set.iter().filter(|v| component.contains(v)).count() > set.len() / 2);
            let whole =
                component.iter().all(|a| component.iter().all(|b| a == b || self.whole[*a][*b]));
            if quorum && whole {
                component.retain(|node| self.members[*node]);
                component.sort_unstable();
                return Some(component);
            }
        }
        None
    }
}

/// Follows the isolated quorum over a run and judges each window it survives.
#[derive(Debug)]
pub struct LiveQuorum {
    window: Duration,
    /// The quorum now, and since when it has been one.
    current: Option<(Vec<usize>, Duration)>,
    /// Windows judged, by start: one verdict per stable quorum.
    judged: BTreeMap<Duration, bool>,
}

impl LiveQuorum {
    /// Judges quorums that hold for `window`.
    pub fn new(window: Duration) -> LiveQuorum {
        LiveQuorum { window, current: None, judged: BTreeMap::new() }
    }

    /// Judges nothing (a cluster without pre-vote owes no bound).
    pub fn off() -> LiveQuorum {
        LiveQuorum::new(Duration::MAX)
    }

    /// The window for a cluster whose (minimum) election timeout is `election`: ten of them,
    /// stretched by the slowest clock rate a fault gives (0.78).
    pub fn window_for(election: Duration) -> Duration {
        (election * 10).mul_f64(1.0 / 0.75)
    }

    /// Windows judged so far.
    pub fn judged(&self) -> usize {
        self.judged.len()
    }

    /// Looks at the cluster at `now`, whose isolated quorum is `quorum`
    /// ([`Connectivity::isolated_quorum`]); a violation when a quorum held for the whole
    /// window without a leader all of it knows.
    pub fn observe(
        &mut self,
        quorum: Option<&[usize]>,
        checks: &Checks,
        now: Duration,
    ) -> Option<Violation> {
        match (&self.current, quorum) {
            (Some((held, _)), Some(q)) if held == q => {}
            (_, q) => self.current = q.map(|q| (q.to_vec(), now)),
        }
        let (nodes, since) = self.current.as_ref()?;
        if now.saturating_sub(*since) < self.window || self.judged.contains_key(since) {
            return None;
        }
        let ids: Vec<NodeId> = nodes.iter().map(|n| NodeId(*n as u64 + 1)).collect();
        let verdict = checks.leader_of(&ids);
        self.judged.insert(*since, verdict.is_ok());
        verdict.err().map(|views| Violation::NoLeaderWhileConnected {
            quorum: ids,
            since: *since,
            views,
            at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Five nodes; `cut` pairs severed, `lossy` pairs not whole.
    fn five(up: [bool; 5], cut: &[(usize, usize)], lossy: &[(usize, usize)]) -> Connectivity {
        let has = |list: &[(usize, usize)], a, b| list.contains(&(a, b)) || list.contains(&(b, a));
        Connectivity::new(up.to_vec(), |a, b| {
            let severed = has(cut, a, b);
            (!severed && !has(lossy, a, b), severed)
        })
    }

    #[test]
    fn the_majority_side_of_a_clean_partition_is_the_isolated_quorum() {
        let minority_cut = [(0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4)];
        let all = [true; 5];
        assert_eq!(five(all, &minority_cut, &[]).isolated_quorum(), Some(vec![2, 3, 4]));
        assert_eq!(five(all, &[], &[]).isolated_quorum(), Some(vec![0, 1, 2, 3, 4]));
        // A lossy link inside it, or a bridge into it, and nothing is owed.
        assert_eq!(five(all, &minority_cut, &[(2, 3)]).isolated_quorum(), None);
        let bridge = [(0, 3), (0, 4), (1, 3), (1, 4)];
        assert_eq!(five(all, &bridge, &[]).isolated_quorum(), None);
        // Down nodes count toward the cluster's size, not toward the quorum.
        let down = [false, false, false, true, true];
        assert_eq!(five(down, &[], &[]).isolated_quorum(), None);
        let two_down = [false, true, true, true, false];
        assert_eq!(five(two_down, &[], &[]).isolated_quorum(), Some(vec![1, 2, 3]));
    }

    #[test]
    fn only_the_configurations_voters_make_a_quorum_and_only_members_must_know_the_leader() {
        use crate::raft::Membership;
        // Five nodes and three spares (n6..n8); n1 and n2 cut off from the rest.
        let cut: Vec<(usize, usize)> =
            [0, 1].iter().flat_map(|a| (2..8).map(move |b| (*a, b))).collect();
        let eight = |up: [bool; 8]| {
            let has = |a, b| cut.contains(&(a, b)) || cut.contains(&(b, a));
            Connectivity::new(up.to_vec(), |a, b| (!has(a, b), has(a, b)))
        };
        let voters = |ids: &[u64]| Membership::of_voters(ids.iter().copied().map(NodeId));
        // n3..n5 are three of five voters; the spares beside them are not members.
        let first = eight([true; 8]).with_configurations(&[voters(&[1, 2, 3, 4, 5])]);
        assert_eq!(first.isolated_quorum(), Some(vec![2, 3, 4]));
        // Once n1 and n2 are replaced by n6 and n7, the same side holds four of five voters.
        let later = eight([true; 8]).with_configurations(&[voters(&[3, 4, 5, 6, 7])]);
        assert_eq!(later.isolated_quorum(), Some(vec![2, 3, 4, 5, 6]));
        // Three spares do not make a quorum of five voters with two of them down.
        let down = [true, true, false, false, true, true, true, true];
        assert_eq!(
            eight(down).with_configurations(&[voters(&[1, 2, 3, 4, 5])]).isolated_quorum(),
            None
        );
        // While joint, a majority of each half is needed.
        let joint = Membership { outgoing: voters(&[1, 2, 3]).voters, ..voters(&[3, 4, 5]) };
        assert_eq!(eight([true; 8]).with_configurations(&[joint]).isolated_quorum(), None);
    }

    #[test]
    fn a_quorum_that_stays_leaderless_for_the_window_is_reported_once() {
        let mut live = LiveQuorum::new(Duration::from_secs(3));
        let checks = Checks::default();
        let all = five([true; 5], &[], &[]).isolated_quorum();
        let at = Duration::from_secs;
        assert_eq!(live.observe(all.as_deref(), &checks, at(1)), None);
        assert_eq!(live.observe(all.as_deref(), &checks, at(3)), None);
        let violation = live.observe(all.as_deref(), &checks, at(4));
        assert!(
            matches!(&violation, Some(Violation::NoLeaderWhileConnected { since, quorum, .. })
                if *since == at(1) && quorum.len() == 5),
            "{violation:?}"
        );
        assert_eq!(live.observe(all.as_deref(), &checks, at(5)), None, "one verdict per window");
        // A change of the quorum starts a new window.
        let split = five([true; 5], &[(0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4)], &[])
            .isolated_quorum();
        assert_eq!(live.observe(split.as_deref(), &checks, at(6)), None);
        assert!(live.observe(split.as_deref(), &checks, at(9)).is_some());
        assert_eq!(live.judged(), 2);
    }
}
