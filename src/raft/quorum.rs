//! Majority arithmetic, as pure functions: the commit index a quorum supports and the outcome
//! of a vote.

use std::collections::BTreeMap;

use super::types::{LogIndex, NodeId};

/// The largest index that a majority of `match_indexes` (one per voter) has reached (§3.6.2
/// before its current-term condition, which the caller applies).
///
/// Selects the (n/2)-th largest value in place on a stack buffer rather than sorting: this runs
/// on every acknowledgement a leader receives.
pub fn committed_index(match_indexes: &[LogIndex]) -> LogIndex {
    let n = match_indexes.len();
    if n == 0 {
        return LogIndex(0);
    }
    let quorum = n / 2 + 1;
    let mut stack = [0u64; 16];
    let mut heap;
    let values: &mut [u64] = if n <= stack.len() {
        for (slot, index) in stack.iter_mut().zip(match_indexes) {
            *slot = index.0;
        }
        &mut stack[..n]
    } else {
        heap = match_indexes.iter().map(|index| index.0).collect::<Vec<_>>();
        &mut heap
    };
    // The quorum-th largest is the (n - quorum)-th smallest.
    let (_, nth, _) = values.select_nth_unstable(n - quorum);
    LogIndex(*nth)
}

/// The outcome of an election so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A majority granted.
    Won,
    /// A majority rejected: the election cannot be won.
    Lost,
    /// Neither yet.
    Pending,
}

/// Tallies `votes` (voter -> granted) over `voters`; votes from non-voters are ignored.
pub fn vote_result(voters: &[NodeId], votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    let quorum = voters.len() / 2 + 1;
    let (mut granted, mut rejected) = (0, 0);
    for voter in voters {
        match votes.get(voter) {
            Some(true) => granted += 1,
            Some(false) => rejected += 1,
            None => {}
        }
    }
    if granted >= quorum {
        VoteResult::Won
    } else if rejected > voters.len() - quorum {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The obvious definition: sort descending and take the quorum-th value.
    fn committed_index_naive(match_indexes: &[LogIndex]) -> LogIndex {
        if match_indexes.is_empty() {
            return LogIndex(0);
        }
        let mut sorted = match_indexes.to_vec();
        sorted.sort_by(|a, b| b.cmp(a));
        sorted[match_indexes.len() / 2]
    }

    proptest! {
        #[test]
        fn committed_index_matches_sort_and_pick(
            indexes in proptest::collection::vec(0u64..50, 0..40)
        ) {
            let indexes: Vec<LogIndex> = indexes.into_iter().map(LogIndex).collect();
            prop_assert_eq!(committed_index(&indexes), committed_index_naive(&indexes));
        }

        #[test]
        fn committed_index_is_reached_by_a_majority(
            indexes in proptest::collection::vec(0u64..50, 1..12)
        ) {
            let indexes: Vec<LogIndex> = indexes.into_iter().map(LogIndex).collect();
            let committed = committed_index(&indexes);
            let reached = indexes.iter().filter(|index| **index >= committed).count();
            prop_assert!(reached > indexes.len() / 2);
            let beyond = indexes.iter().filter(|index| **index > committed).count();
            prop_assert!(beyond <= indexes.len() / 2);
        }
    }

    #[test]
    fn five_voters_need_three() {
        let m = |v: [u64; 5]| committed_index(&v.map(LogIndex));
        assert_eq!(m([5, 5, 5, 0, 0]), LogIndex(5));
        assert_eq!(m([9, 5, 4, 0, 0]), LogIndex(4));
        assert_eq!(m([9, 9, 0, 0, 0]), LogIndex(0));
    }

    #[test]
    fn vote_result_counts_only_voters() {
        let voters = [NodeId(1), NodeId(2), NodeId(3)];
        let mut votes = BTreeMap::new();
        votes.insert(NodeId(1), true);
        votes.insert(NodeId(9), true);
        assert_eq!(vote_result(&voters, &votes), VoteResult::Pending);
        votes.insert(NodeId(2), false);
        assert_eq!(vote_result(&voters, &votes), VoteResult::Pending);
        votes.insert(NodeId(3), false);
        assert_eq!(vote_result(&voters, &votes), VoteResult::Lost);
        votes.insert(NodeId(3), true);
        assert_eq!(vote_result(&voters, &votes), VoteResult::Won);
    }
}
