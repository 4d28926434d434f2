//! The bug switches: deliberately broken modes each check must catch (a detector that never
//! fires proves nothing). The zoo's switches are modelled on bugs real Raft implementations
//! shipped; each cites its source, which the README's zoo table repeats.

/// Deliberately broken modes the checks must catch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimBugs {
    /// Acknowledge before the WAL sync (never sync).
    pub skip_fsync: bool,
    /// Do not persist the vote.
    pub forget_vote: bool,
    /// Commit an older term's entry by counting replicas.
    pub commit_old_term: bool,
    /// A leader lease as long as the minimum election timeout (no clock-drift margin).
    pub lease_no_drift_margin: bool,
    /// Followers answer linearizable reads from their own state.
    pub stale_follower_read: bool,
    /// A resumed watch starts at its new member's next revision, skipping what it missed.
    pub watch_resume_skip: bool,
    /// A member without a leader keeps require-leader watch streams open.
    pub require_leader_ignored: bool,
    /// A new leader confirms ReadIndex reads before committing an entry of its term
    /// (etcd-io/etcd#7331).
    pub read_index_before_term_commit: bool,
    /// The leader answers reads from its own state without confirming it still leads
    /// (Jepsen, "etcd and Consul", 2014).
    pub leader_local_read: bool,
    /// A follower commits past what the leader's message proved to match (atomix/copycat#265).
    pub commit_beyond_match: bool,
    /// A follower acknowledges the index it held before truncating a conflicting suffix
    /// (rabbitmq/ra#637).
    pub stale_ack_after_truncation: bool,
    /// A candidate counts granted pre-votes as votes (canonical/raft#196).
    pub pre_vote_counted_as_vote: bool,
    /// A deposed leader appends client writes with its new term until it learns the new
    /// leader (camunda/camunda#5360).
    pub append_after_step_down: bool,
    /// Voters compare candidates' logs by last index alone (sile/noraft#22).
    pub vote_by_index_only: bool,
    /// A follower overwrites a conflicting suffix in place and keeps what followed
    /// (mofa-org/mofa#1150).
    pub keep_conflicting_tail: bool,
    /// A write is acknowledged once the log is applied past its position, whatever entry is
    /// there (kurrent-io/KurrentDB#3472).
    pub ack_by_position: bool,
    /// A leader serves lease reads until its step-down check deposes it, whatever the lease
    /// (sofastack/sofa-jraft#34).
    pub lease_until_step_down: bool,
    /// A follower answers read-only transactions from its own state.
    pub stale_follower_txn_read: bool,
    /// Single-server changes without their two rules: several may be in flight, and a new
    /// leader may change the configuration before its term has a committed entry (Ongaro,
    /// raft-dev, July 2015).
    pub unsafe_membership: bool,
    /// A learner that was promoted without knowing it refuses to vote (etcd-io/etcd#10998,
    /// tikv/raft-rs#57).
    pub learner_refuses_vote: bool,
}

/// One switch: its command-line name, where the bug comes from, and its field.
pub struct Bug {
    /// The command-line name.
    pub name: &'static str,
    /// The documented bug it is modelled on, or "invented" for the testbed's own.
    pub source: &'static str,
    /// The clients it needs to show (`--bug-zoo` runs it with them): a bug in transactions
    /// shows only when the clients send some.
    pub workload: super::Workload,
    field: fn(&mut SimBugs) -> &mut bool,
}

const KV: super::Workload = super::Workload::Kv;

/// Every switch, in the order reports list them.
pub const BUGS: [Bug; 20] = [
    Bug { name: "skip-fsync", source: "invented", workload: KV, field: |b| &mut b.skip_fsync },
    Bug { name: "forget-vote", source: "invented", workload: KV, field: |b| &mut b.forget_vote },
    Bug {
        name: "commit-old-term",
        source: "invented (Raft dissertation, Figure 3.7)",
        workload: KV,
        field: |b| &mut b.commit_old_term,
    },
    Bug {
        name: "lease-no-drift-margin",
        source: "invented",
        workload: KV,
        field: |b| &mut b.lease_no_drift_margin,
    },
    Bug {
        name: "stale-follower-read",
        source: "invented",
        workload: KV,
        field: |b| &mut b.stale_follower_read,
    },
    Bug {
        name: "watch-resume-skip",
        source: "invented",
        workload: KV,
        field: |b| &mut b.watch_resume_skip,
    },
    Bug {
        name: "require-leader-ignored",
        source: "invented",
        workload: KV,
        field: |b| &mut b.require_leader_ignored,
    },
    Bug {
        name: "read-index-before-term-commit",
        source: "etcd-io/etcd#7331",
        workload: KV,
        field: |b| &mut b.read_index_before_term_commit,
    },
    Bug {
        name: "leader-local-read",
        source: "Jepsen, etcd and Consul (2014): etcd 0.4.1",
        workload: KV,
        field: |b| &mut b.leader_local_read,
    },
    Bug {
        name: "commit-beyond-match",
        source: "atomix/copycat#265",
        workload: KV,
        field: |b| &mut b.commit_beyond_match,
    },
    Bug {
        name: "stale-ack-after-truncation",
        source: "rabbitmq/ra#637",
        workload: KV,
        field: |b| &mut b.stale_ack_after_truncation,
    },
    Bug {
        name: "pre-vote-counted-as-vote",
        source: "canonical/raft#196",
        workload: KV,
        field: |b| &mut b.pre_vote_counted_as_vote,
    },
    Bug {
        name: "append-after-step-down",
        source: "camunda/camunda#5360",
        workload: KV,
        field: |b| &mut b.append_after_step_down,
    },
    Bug {
        name: "vote-by-index-only",
        source: "sile/noraft#22",
        workload: KV,
        field: |b| &mut b.vote_by_index_only,
    },
    Bug {
        name: "keep-conflicting-tail",
        source: "mofa-org/mofa#1150",
        workload: KV,
        field: |b| &mut b.keep_conflicting_tail,
    },
    Bug {
        name: "ack-by-position",
        source: "kurrent-io/KurrentDB#3472",
        workload: KV,
        field: |b| &mut b.ack_by_position,
    },
    Bug {
        name: "lease-until-step-down",
        source: "sofastack/sofa-jraft#34",
        workload: KV,
        field: |b| &mut b.lease_until_step_down,
    },
    Bug {
        name: "stale-follower-txn-read",
        source: "invented",
        workload: super::Workload::Append,
        field: |b| &mut b.stale_follower_txn_read,
    },
    Bug {
        name: "unsafe-membership",
        source: "Ongaro, raft-dev, July 2015 (the single-server change bug)",
        workload: KV,
        field: |b| &mut b.unsafe_membership,
    },
    Bug {
        name: "learner-refuses-vote",
        source: "etcd-io/etcd#10998, tikv/raft-rs#57",
        workload: KV,
        field: |b| &mut b.learner_refuses_vote,
    },
];

/// Every bug's command-line name.
pub const BUG_NAMES: [&str; BUGS.len()] = {
    let mut names = [""; BUGS.len()];
    let mut i = 0;
    while i < BUGS.len() {
        names[i] = BUGS[i].name;
        i += 1;
    }
    names
};

impl SimBugs {
    /// The command-line names of the bugs switched on.
    pub fn names(&self) -> Vec<&'static str> {
        let mut copy = *self;
        BUGS.iter().filter(|bug| *(bug.field)(&mut copy)).map(|bug| bug.name).collect()
    }

    /// Switches on a bug by its command-line name.
    ///
    /// # Errors
    /// An unknown name, with the known ones.
    pub fn enable(&mut self, name: &str) -> Result<(), String> {
        let Some(bug) = BUGS.iter().find(|bug| bug.name == name) else {
            return Err(format!("unknown bug {name} ({})", BUG_NAMES.join(", ")));
        };
        *(bug.field)(self) = true;
        Ok(())
    }

    /// Only the bug named `name`.
    ///
    /// # Errors
    /// An unknown name.
    pub fn only(name: &str) -> Result<SimBugs, String> {
        let mut bugs = SimBugs::default();
        bugs.enable(name)?;
        Ok(bugs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_switches_on_its_own_field_alone() {
        for name in BUG_NAMES {
            let bugs = SimBugs::only(name).unwrap();
            assert_eq!(bugs.names(), vec![name]);
        }
        assert!(SimBugs::default().names().is_empty());
        assert!(SimBugs::only("nope").unwrap_err().contains("skip-fsync"));
    }
}
