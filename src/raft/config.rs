//! A node's static configuration. Every timing is in ticks; the driver decides how long a tick is.

use super::types::NodeId;

/// Static configuration of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node.
    pub id: NodeId,
    /// The bootstrap configuration's voters, in effect until the log or a snapshot holds a
    /// configuration (§4.1). A node that joins a running cluster lists the voters it knows
    /// and not itself: it will not campaign until a configuration makes it a voter.
    pub voters: Vec<NodeId>,
    /// Lower bound of the randomized election timeout (§3.4). Also the window of check-quorum
    /// and of leader stickiness.
    pub election_timeout_ticks_min: u32,
    /// Upper bound (inclusive) of the randomized election timeout.
    pub election_timeout_ticks_max: u32,
    /// How often a leader sends heartbeats. Must be well below the election timeout.
    pub heartbeat_interval_ticks: u32,
    /// Run a PreVote round before raising the term (§9.6).
    pub pre_vote: bool,
    /// A leader steps down when it has not heard from a quorum within an election timeout, and
    /// a follower that heard from its leader within one ignores vote requests (§6.2, §9.6).
    pub check_quorum: bool,
    /// At most this many entries in one AppendEntries.
    pub max_entries_per_message: usize,
    /// At most about this many bytes of entries in one AppendEntries (one entry always fits).
    pub max_bytes_per_message: usize,
    /// At most this many AppendEntries in flight to one follower in replicate state.
    pub max_inflight_messages: usize,
    /// At most this many committed entries handed out in one `Ready`.
    pub max_apply_entries_per_ready: usize,
    /// Serve reads under a leader lease (§6.4.1) while it holds. Requires `check_quorum`.
    pub lease_reads: bool,
    /// The lease is the minimum election timeout less this margin, which covers clock drift
    /// between the leader and its followers (§6.4.1) and the tick's granularity: with a
    /// margin of half the timeout, a follower's clock may run up to 1.6 times as fast as the
    /// leader's (with 10 ticks or more per timeout).
    pub lease_drift_margin_ticks: u32,
    /// Refuse votes for one minimum election timeout after starting: a restarted node cannot
    /// know whether it answered a leader's heartbeat just before, and that leader may be
    /// serving lease reads on the strength of it.
    pub startup_stickiness: bool,
    /// Seeds the election-timeout randomization, mixed with `id`.
    pub seed: u64,
    /// Run `Node::validate` after every this many inputs, and at every role change and commit
    /// advance, panicking on a broken invariant (0: only under `debug_assert!`). The simulator
    /// sets 1; `raftbed node --validate` sets 1.
    pub validate_every: u32,
    /// Deliberately broken modes, so the checks that must catch them can be shown to.
    pub bugs: Bugs,
}

impl Config {
    /// Turns on lease reads with the drift margin of `lease_drift_margin_ticks`' docs, and the
    /// check-quorum and start-up stickiness they rely on.
    pub fn with_lease_reads(mut self) -> Config {
        self.lease_reads = true;
        self.check_quorum = true;
        self.startup_stickiness = true;
        self.lease_drift_margin_ticks = self.election_timeout_ticks_min / 2;
        self
    }
}

/// Deliberately broken behaviours. Every check in raftbed has one it must catch; a detector that
/// never fires proves nothing. All off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Commit an entry from an older term by counting replicas, which §3.6.2 (Figure 3.7, the
    /// "Figure 8" case of the paper) forbids.
    pub commit_old_term: bool,
    /// Confirm ReadIndex requests before this leader has committed an entry of its term
    /// (etcd-io/etcd#7331, fixed in etcd 3.1.1): a new leader's commit index may still be
    /// below entries its predecessor committed and acknowledged, so a read at it is stale.
    pub read_index_before_term_commit: bool,
    /// A follower commits up to the leader's commit index even past the entries the leader's
    /// message proved to match, and heartbeats carry the leader's own commit index rather
    /// than what the follower is known to hold, so a stale suffix of an older term becomes
    /// committed (atomix/copycat#265: an empty AppendRequest with a matching previous entry
    /// and a higher commit index; the same class as scylladb/scylladb#9965).
    pub commit_beyond_match: bool,
    /// A follower that truncated a conflicting suffix acknowledges the last index it held
    /// before the truncation, so the leader counts it as holding entries it does not
    /// (rabbitmq/ra#637: a stale `last_written` index after truncation).
    pub stale_ack_after_truncation: bool,
    /// A candidate counts granted pre-votes as votes: a pre-vote asks about the term the
    /// candidate then campaigns in, so its late answers look like votes for that term, but
    /// they bind no one (canonical/raft#196, fixed in canonical/raft#248).
    pub pre_vote_counted_as_vote: bool,
    /// A leader deposed by a higher term keeps appending the client writes that reach it,
    /// stamped with the new term, until it learns that term's leader: its appender still holds
    /// the leader role (camunda/camunda#5360, Zeebe's Atomix Raft, 2020; the role change is
    /// asynchronous, camunda/camunda#6346). The new leader's entry at such an index carries
    /// the same term, so the follower keeps its own as a duplicate: two logs with the same
    /// entry (index and term) and different commands.
    pub append_after_step_down: bool,
    /// A voter judges a candidate's log by its last index alone, not by its last term first
    /// (§3.6.1): a longer log of older terms wins over a shorter one holding a newer term's
    /// committed entries, which the new leader then overwrites (sile/noraft#22, fixed 2026).
    pub vote_by_index_only: bool,
    /// A follower replaces conflicting entries in place and keeps whatever followed them,
    /// instead of deleting the conflicting entry and all that follow it (§3.5): a deposed
    /// leader's stale entries stay behind the new leader's (mofa-org/mofa#1150, fixed in
    /// #1151; the same rule was missing in amino-os/Amino.Run#143).
    pub keep_conflicting_tail: bool,
    /// A leader serves lease reads for as long as it leads: only its periodic step-down check
    /// (check-quorum, once an election timeout) ends them, not the lease's own expiry, so a
    /// leader cut off just after a check keeps serving after the other side elected and
    /// committed (sofastack/sofa-jraft#25 and #34, fixed in 1.2.4 by checking a lease timeout
    /// on every read; hashicorp/consul#54 describes the same window).
    pub lease_until_step_down: bool,
    /// A leader changes the configuration without the two rules that make single-server
    /// changes safe: one change in flight at a time, and an entry of the leader's term
    /// committed first (the bug in the dissertation's single-server change that Ongaro's
    /// raft-dev post of July 2015 described: overlapping changes around a leader change can
    /// lose a committed entry or elect two leaders).
    pub unsafe_membership: bool,
    /// A node that is a learner in its own configuration refuses every vote request, though
    /// a configuration that made it a voter may be committed without it knowing yet, and the
    /// remaining voters may need its vote to elect anyone (etcd-io/etcd#10998, "raft: let
    /// learners vote", 2019; the same case in tikv/raft-rs#57).
    pub learner_refuses_vote: bool,
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A field is out of range; the message names it.
    #[error("invalid raft config: {0}")]
    Invalid(String),
}

impl Config {
    /// A configuration with the defaults used across raftbed: 10–20 tick election timeouts, a
    /// heartbeat every tick, pre-vote and check-quorum on.
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Config {
        Config {
            id,
            voters,
            election_timeout_ticks_min: 10,
            election_timeout_ticks_max: 20,
            heartbeat_interval_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            max_entries_per_message: 64,
            max_bytes_per_message: 1 << 20,
            max_inflight_messages: 256,
            max_apply_entries_per_ready: 4096,
            lease_reads: false,
            lease_drift_margin_ticks: 0,
            startup_stickiness: false,
            seed: 0,
            validate_every: 0,
            bugs: Bugs::default(),
        }
    }

    /// Checks that the configuration can work.
    ///
    /// # Errors
    /// Names the first field out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |what: String| Err(ConfigError::Invalid(what));
        if self.id.0 == 0 {
            return invalid("id must not be 0".into());
        }
        if self.voters.is_empty() {
            return invalid("no voters".into());
        }
        let mut sorted = self.voters.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != self.voters.len() || sorted.contains(&NodeId(0)) {
            return invalid(format!("voters {:?} repeat an id or contain 0", self.voters));
        }
        if self.election_timeout_ticks_min == 0
            || self.election_timeout_ticks_max < self.election_timeout_ticks_min
        {
            return invalid(format!(
                "election timeout range {}..={} is empty",
                self.election_timeout_ticks_min, self.election_timeout_ticks_max
            ));
        }
        if self.heartbeat_interval_ticks == 0
            || self.heartbeat_interval_ticks >= self.election_timeout_ticks_min
        {
            return invalid(format!(
                "heartbeat_interval_ticks {} must be in 1..{}",
                self.heartbeat_interval_ticks, self.election_timeout_ticks_min
            ));
        }
        if self.lease_reads && !self.check_quorum {
            return invalid(
                "lease_reads requires check_quorum: a lease must end with leadership".into(),
            );
        }
        if self.lease_drift_margin_ticks >= self.election_timeout_ticks_min {
            return invalid(format!(
                "lease_drift_margin_ticks {} leaves no lease within {} ticks",
                self.lease_drift_margin_ticks, self.election_timeout_ticks_min
            ));
        }
        if self.max_entries_per_message == 0
            || self.max_inflight_messages == 0
            || self.max_apply_entries_per_ready == 0
        {
            return invalid("message, inflight and apply bounds must be at least 1".into());
        }
        Ok(())
    }
}
