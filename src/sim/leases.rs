//! Leader leases as the nodes report them: the exclusivity check (§6.4.1) and its safety
//! margin, the slack in true time between the moment a term's lease lapsed and the first
//! moment a newer leader could serve (its first commit in its term). A run whose smallest
//! slack is a few milliseconds came that close to a stale lease read.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::raft::{NodeId, Term};

/// A lease still valid by its holder's clock while a newer leader led.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overlap {
    /// The lease holder and its term.
    pub holder: (NodeId, Term),
    /// How long the lease still had to run, on the holder's clock.
    pub left: Duration,
}

/// The leases held now, and what the run has shown of them.
#[derive(Debug, Default)]
pub struct Leases {
    /// Per node, its term and until when (its own clock) its lease holds, as last reported.
    held: BTreeMap<NodeId, (Term, Duration)>,
    /// Overlaps already reported (a run that keeps going would report one every step).
    overlaps: BTreeSet<(NodeId, Term)>,
    /// Per term, the last true instant a lease of that term was seen valid.
    last_valid: BTreeMap<Term, Duration>,
    /// First commits in a term not yet judged: (term, when).
    first_commits: Vec<(Term, Duration)>,
    /// The smallest slack seen, in true microseconds (negative: the lease still ran).
    slack_us: Option<i64>,
}

impl Leases {
    /// A node's lease as it reported it: until `until` on its own clock, or none. (When it
    /// was last valid is noted by `check`, after every step.)
    pub fn report(&mut self, node: NodeId, term: Term, until: Option<Duration>) {
        match until {
            Some(until) => self.held.insert(node, (term, until)),
            None => self.held.remove(&node),
        };
    }

    /// A node went down: its lease went with it.
    pub fn crashed(&mut self, node: NodeId) {
        self.held.remove(&node);
    }

    /// Whether `node` holds a lease valid by its clock, which reads `local`.
    pub fn holds(&self, node: NodeId, local: Duration) -> bool {
        self.held.get(&node).is_some_and(|(_, until)| local < *until)
    }

    /// At `at`, with `newest` the leader of the highest term: notes which leases are still
    /// valid (by each holder's clock, which `local` reads) and returns the first one of an
    /// older term not reported before.
    pub fn check(
        &mut self,
        at: Duration,
        newest: Option<(NodeId, Term)>,
        local: impl Fn(NodeId) -> Duration,
    ) -> Option<Overlap> {
        for (term, when) in std::mem::take(&mut self.first_commits) {
            self.judge_first_commit(term, when, &local);
        }
        let mut overlap = None;
        for (node, (term, until)) in &self.held {
            if local(*node) >= *until {
                continue;
            }
            self.last_valid.insert(*term, at);
            if let Some((_, leader_term)) = newest
                && leader_term > *term
                && overlap.is_none()
                && self.overlaps.insert((*node, *term))
            {
                overlap = Some(Overlap { holder: (*node, *term), left: *until - local(*node) });
            }
        }
        overlap
    }

    /// The leader of `term` first committed an entry of its term at `at`: from then on it may
    /// serve, so every older lease must have lapsed by now. Judged at the next `check`, which
    /// knows the clocks.
    pub fn first_commit(&mut self, term: Term, at: Duration) {
        self.first_commits.push((term, at));
    }

    fn judge_first_commit(&mut self, term: Term, at: Duration, local: impl Fn(NodeId) -> Duration) {
        let running = self
            .held
            .iter()
            .filter(|(node, (t, until))| *t < term && local(**node) < *until)
            .map(|(node, (_, until))| -((*until - local(*node)).as_micros() as i64))
            .min();
        let lapsed = self
            .last_valid
            .range(..term)
            .map(|(_, last)| *last)
            .max()
            .map(|last| at.saturating_sub(last).as_micros() as i64);
        if let Some(slack) = running.or(lapsed) {
            self.slack_us = Some(self.slack_us.map_or(slack, |s| s.min(slack)));
        }
    }

    /// The smallest slack seen, in microseconds of true time.
    pub fn slack_us(&self) -> Option<i64> {
        self.slack_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn the_slack_is_the_time_from_the_last_valid_lease_to_the_next_terms_first_commit() {
        let mut leases = Leases::default();
        leases.report(NodeId(1), Term(2), Some(MS(1000)));
        // Valid at 500 ms, lapsed by 1200 ms.
        assert_eq!(leases.check(MS(500), Some((NodeId(1), Term(2))), |_| MS(500)), None);
        assert_eq!(leases.check(MS(1200), None, |_| MS(1200)), None);
        leases.first_commit(Term(3), MS(1800));
        leases.check(MS(1800), None, |_| MS(1800));
        assert_eq!(leases.slack_us(), Some(1_300_000));
        // A later, closer call lowers it.
        leases.report(NodeId(2), Term(3), Some(MS(2500)));
        leases.check(MS(2400), None, |_| MS(2400));
        leases.first_commit(Term(4), MS(2450));
        leases.check(MS(2450), None, |_| MS(2400));
        assert_eq!(leases.slack_us(), Some(-100_000), "n2's lease still had 100 ms to run");
    }

    #[test]
    fn a_lease_valid_under_a_newer_leader_is_reported_once() {
        let mut leases = Leases::default();
        leases.report(NodeId(1), Term(2), Some(MS(1000)));
        let newer = Some((NodeId(2), Term(3)));
        let overlap = leases.check(MS(600), newer, |_| MS(600));
        assert_eq!(overlap, Some(Overlap { holder: (NodeId(1), Term(2)), left: MS(400) }));
        assert_eq!(leases.check(MS(700), newer, |_| MS(700)), None);
        assert!(leases.holds(NodeId(1), MS(700)) && !leases.holds(NodeId(1), MS(1000)));
    }
}
