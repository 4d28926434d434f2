//! The leader's lease clock (etcd's lessor). Only the leader keeps deadlines, on its own
//! monotonic clock; when one passes it proposes `LeaseExpire`, so every node deletes the lease's
//! keys at the same point of the log. A new leader cannot know how long its predecessor had
//! left, so it restarts every lease's full TTL (as etcd does): a lease may outlive its TTL
//! across a leader change, never fall short of it.

use std::collections::BTreeMap;
use std::time::Duration;

/// How long to wait before proposing an expiry again (the first proposal may have been lost).
const RETRY: Duration = Duration::from_secs(1);

/// Lease deadlines, kept while this node leads.
#[derive(Debug, Default)]
pub struct Lessor {
    deadlines: BTreeMap<i64, Duration>,
    /// Expiries proposed, with when.
    proposed: BTreeMap<i64, Duration>,
    leading: bool,
}

fn ttl(seconds: i64) -> Duration {
    Duration::from_secs(seconds.max(1) as u64)
}

impl Lessor {
    /// This node became leader at `now`: every lease gets its full TTL from now.
    pub fn promote(&mut self, now: Duration, leases: impl Iterator<Item = (i64, i64)>) {
        self.leading = true;
        self.proposed.clear();
        self.deadlines = leases.map(|(id, seconds)| (id, now + ttl(seconds))).collect();
    }

    /// This node no longer leads.
    pub fn demote(&mut self) {
        self.leading = false;
        self.deadlines.clear();
        self.proposed.clear();
    }

    /// Brings the deadlines in line with the leases that exist: new ones start their TTL now,
    /// vanished ones are forgotten.
    pub fn sync(&mut self, now: Duration, leases: impl Iterator<Item = (i64, i64)>) {
        if !self.leading {
            return;
        }
        let mut deadlines = BTreeMap::new();
        for (id, seconds) in leases {
            let deadline = self.deadlines.get(&id).copied().unwrap_or(now + ttl(seconds));
            deadlines.insert(id, deadline);
        }
        self.proposed.retain(|id, _| deadlines.contains_key(id));
        self.deadlines = deadlines;
    }

    /// Renews lease `id` (granted `seconds`) from `now`; false if this node does not know it.
    pub fn renew(&mut self, id: i64, seconds: i64, now: Duration) -> bool {
        match self.deadlines.get_mut(&id) {
            Some(deadline) if self.leading => {
                *deadline = now + ttl(seconds);
                self.proposed.remove(&id);
                true
            }
            _ => false,
        }
    }

    /// The time lease `id` has left.
    pub fn remaining(&self, id: i64, now: Duration) -> Option<Duration> {
        self.deadlines.get(&id).map(|deadline| deadline.saturating_sub(now))
    }

    /// Leases past their deadline whose expiry should be proposed now.
    pub fn expired(&mut self, now: Duration) -> Vec<i64> {
        if !self.leading {
            return Vec::new();
        }
        let due: Vec<i64> = self
            .deadlines
            .iter()
            .filter(|(id, deadline)| {
                **deadline <= now && self.proposed.get(id).is_none_or(|at| now >= *at + RETRY)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &due {
            self.proposed.insert(*id, now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn only_a_leader_expires_and_a_new_one_restarts_the_ttl() {
        let mut lessor = Lessor::default();
        lessor.sync(S(0), [(1, 5)].into_iter());
        assert!(lessor.expired(S(100)).is_empty(), "a follower keeps no deadlines");
        lessor.promote(S(10), [(1, 5)].into_iter());
        assert!(lessor.expired(S(14)).is_empty());
        assert_eq!(lessor.expired(S(15)), vec![1]);
        assert!(lessor.expired(S(15)).is_empty(), "proposed once per retry interval");
        assert_eq!(lessor.expired(S(16)), vec![1]);
        assert!(lessor.renew(1, 5, S(16)));
        assert_eq!(lessor.remaining(1, S(17)), Some(S(4)));
        lessor.sync(S(17), [(2, 3)].into_iter());
        assert_eq!(lessor.remaining(1, S(17)), None, "revoked");
        assert_eq!(lessor.remaining(2, S(17)), Some(S(3)), "granted");
        lessor.demote();
        assert!(!lessor.renew(2, 3, S(18)));
    }
}
