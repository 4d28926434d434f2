//! The checks that depend on configurations (chapter 4): whether the quorums of two
//! configurations must overlap, and whether a node lacking a committed entry could gather a
//! quorum of its own configuration.
//!
//! Every safety argument of Raft rests on one fact: any two quorums that decide (elect a
//! leader, commit an entry) share a server. A membership change keeps it only if every
//! quorum of the new configuration meets every quorum of each configuration that may still
//! decide: the last committed one, and any appended after it (§4.2, §4.3). Two single-server
//! changes in flight at once, or a change made before the leader's term has a committed entry
//! (the raft-dev post of July 2015), can break it; this is where the check looks.

use std::collections::BTreeSet;

use crate::raft::{Membership, NodeId};

/// The voter sets whose majorities a decision of `m` needs: one, or two while joint.
fn voter_sets(m: &Membership) -> Vec<&BTreeSet<NodeId>> {
    if m.is_joint() { vec![&m.voters, &m.outgoing] } else { vec![&m.voters] }
}

fn majority(voters: &BTreeSet<NodeId>) -> usize {
    voters.len() / 2 + 1
}

/// Whether some majority of `a` and some majority of `b` share no member. The first takes
/// what only `a` has before any common member, which leaves the second the most.
fn majorities_can_miss(a: &BTreeSet<NodeId>, b: &BTreeSet<NodeId>) -> bool {
    let common = a.intersection(b).count();
    let only_a = a.len() - common;
    let only_b = b.len() - common;
    let common_for_a = majority(a).saturating_sub(only_a);
    common_for_a <= common && only_b + common - common_for_a >= majority(b)
}

/// Whether every quorum of `a` shares a member with every quorum of `b`. A joint
/// configuration's quorum holds a majority of each of its voter sets, so the quorums meet if
/// the majorities of any one set of `a` and any one set of `b` always do.
pub fn quorums_overlap(a: &Membership, b: &Membership) -> bool {
    voter_sets(a).iter().any(|x| voter_sets(b).iter().any(|y| !majorities_can_miss(x, y)))
}

/// Whether a candidate of configuration `m` is kept from winning by the voters that would
/// refuse it (`refuses`): in some voter set of `m`, fewer than a majority remain to grant.
pub fn blocked(m: &Membership, refuses: impl Fn(NodeId) -> bool) -> bool {
    voter_sets(m).iter().any(|set| {
        let granting = set.iter().filter(|v| !refuses(**v)).count();
        granting < majority(set)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voters(ids: &[u64]) -> Membership {
        Membership::of_voters(ids.iter().copied().map(NodeId))
    }

    #[test]
    fn one_server_changes_overlap_and_two_at_once_may_not() {
        let three = voters(&[1, 2, 3]);
        assert!(quorums_overlap(&three, &voters(&[1, 2, 3, 4])), "add one");
        assert!(quorums_overlap(&three, &voters(&[1, 2])), "remove one");
        assert!(!quorums_overlap(&three, &voters(&[1, 2, 4])), "replace: {{2,3}} vs {{1,4}}");
        let five = voters(&[1, 2, 3, 4, 5]);
        assert!(
            !quorums_overlap(&five, &voters(&[1, 2, 3])),
            "shrink by two: {{3,4,5}} vs {{1,2}}"
        );
        assert!(!quorums_overlap(&five, &voters(&[1, 2, 3, 4, 6])));
        assert!(quorums_overlap(&five, &voters(&[1, 2, 3, 4, 5, 6])));
        // Through joint consensus any change overlaps, each step with the next.
        let joint = Membership { outgoing: five.voters.clone(), ..voters(&[1, 2, 6]) };
        assert!(quorums_overlap(&five, &joint) && quorums_overlap(&joint, &voters(&[1, 2, 6])));
        assert!(!quorums_overlap(&five, &voters(&[1, 2, 6])));
    }

    #[test]
    fn a_candidate_is_blocked_when_too_few_would_grant() {
        let five = voters(&[1, 2, 3, 4, 5]);
        assert!(blocked(&five, |v| v.0 <= 3), "three of five refuse");
        assert!(!blocked(&five, |v| v.0 <= 2), "three of five grant");
        let four = voters(&[1, 2, 3, 4]);
        assert!(blocked(&four, |v| v.0 <= 2), "two of four refuse: two cannot win");
        let joint = Membership { outgoing: voters(&[1, 2, 3]).voters, ..voters(&[3, 4, 5]) };
        assert!(blocked(&joint, |v| v.0 <= 2), "the old majority refuses");
        assert!(!blocked(&joint, |v| v.0 == 1), "both majorities may grant");
    }
}
