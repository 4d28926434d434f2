//! Membership changes on the leader and in every log (chapter 4): proposing a change,
//! following the configuration entries a log holds as it grows, is truncated or is replaced
//! by a snapshot (§4.1), leaving a committed joint configuration (§4.3), and stepping down
//! once a configuration without the leader is committed (§4.2.2).

use std::collections::BTreeMap;

use super::config::Config;
use super::membership::{Membership, MembershipChange};
use super::message::Body;
use super::node::{Error, Node, Proposal};
use super::progress::Progress;
use super::types::{Entry, EntryKind, LogIndex, NodeId, Role, Snapshot};

impl Node {
    /// Appends a configuration entry that makes `change`, if this node leads and may change
    /// the configuration now: no change in flight (§4.2), an entry of its term committed
    /// (the 2015 rule), and a learner promoted only once it holds every committed entry.
    ///
    /// # Errors
    /// `NotLeader`, `ProposalDropped`, `ChangeInFlight`, `NotCommittedInTerm`,
    /// `LearnerBehind` or `InvalidChange`; all definite: nothing was appended.
    pub fn propose_membership(&mut self, change: &MembershipChange) -> Result<Proposal, Error> {
        self.propose_configuration(change, None)
    }

    /// As `propose_membership`, with `attrs` as the new configuration's member attributes
    /// (those of servers it does not name are dropped); `None` keeps the current ones.
    ///
    /// # Errors
    /// As `propose_membership`.
    pub fn propose_configuration(
        &mut self,
        change: &MembershipChange,
        attrs: Option<&BTreeMap<NodeId, String>>,
    ) -> Result<Proposal, Error> {
        self.assert_no_outstanding_ready();
        if self.role != Role::Leader {
            return Err(Error::NotLeader { leader_hint: self.leader });
        }
        if let Some(transferee) = self.lead_transferee {
            return Err(Error::ProposalDropped(transferee));
        }
        // The `unsafe_membership` bug skips both rules: two changes may be in flight, and a
        // new leader may change the configuration before its term has a committed entry.
        if !self.config.bugs.unsafe_membership {
            let latest = self.configs.latest_index();
            if latest > self.log.commit() {
                return Err(Error::ChangeInFlight(latest));
            }
            if !self.committed_in_current_term() {
                return Err(Error::NotCommittedInTerm(self.term));
            }
        }
        if let MembershipChange::AddVoter(id) = change
            && self.membership().learners.contains(id)
        {
            let matched = self.progress.get(id).map_or(LogIndex(0), |p| p.match_index);
            let commit = self.log.commit();
            if matched < commit {
                return Err(Error::LearnerBehind { id: *id, matched, commit });
            }
        }
        let mut next = self.membership().apply(change).map_err(Error::InvalidChange)?;
        if let Some(attrs) = attrs {
            next.attrs = attrs.clone();
            next.keep_members_attrs();
        }
        let proposal = Proposal { term: self.term, index: self.log.last_index().next() };
        self.append_config(next);
        self.broadcast_append();
        self.check_invariants();
        Ok(proposal)
    }

    /// Appends `membership` to the leader's log; it takes effect at once (§4.1).
    fn append_config(&mut self, membership: Membership) {
        let index = self.log.last_index().next();
        self.log.append([Entry::config(self.term, index, &membership)]);
        self.configs.record(index, membership);
        self.track_members();
        let id = self.config.id;
        self.progress.get_mut(&id).expect("leader tracks itself").maybe_update(index);
        self.maybe_commit();
    }

    /// The leader tracks exactly the members of the configuration in effect, and itself.
    fn track_members(&mut self) {
        let (id, last) = (self.config.id, self.log.last_index());
        let members = self.membership().members();
        self.progress.retain(|peer, _| *peer == id || members.binary_search(peer).is_ok());
        self.snapshot_ticks.retain(|peer, _| members.binary_search(peer).is_ok());
        for member in members {
            self.progress.entry(member).or_insert_with(|| Progress::new(last));
        }
        if self.lead_transferee.is_some_and(|t| !self.membership().is_voter(t)) {
            self.lead_transferee = None;
        }
    }

    /// After every input on a leader: once the configuration in effect is committed, a joint
    /// one is left for C_new (§4.3), and a leader that is not among its voters steps down
    /// (§4.2.2; it led the cluster until then without counting itself), handing over to the
    /// most caught-up voter with TimeoutNow (§3.10) so that the cluster does not wait out an
    /// election timeout for its next leader.
    pub(super) fn finish_membership_change(&mut self) {
        if self.role != Role::Leader || self.configs.latest_index() > self.log.commit() {
            return;
        }
        let current = self.membership();
        if current.is_joint() {
            self.append_config(current.leave_joint());
            self.broadcast_append();
        } else if !current.is_voter(self.config.id) {
            let last = self.log.last_index();
            let successor = current
                .voters
                .iter()
                .find(|v| self.progress.get(v).is_some_and(|p| p.match_index == last));
            if let Some(successor) = successor.copied() {
                self.send(successor, Body::TimeoutNow);
            }
            self.become_follower(self.term, None);
        }
    }

    /// A follower's log took `entries` after `prev` (and lost whatever conflicted with them):
    /// the configuration entries after `prev` are the log's again, and the latest left is in
    /// effect (§4.1: a truncation reverts to the configuration before it).
    pub(super) fn follow_configs(&mut self, prev: LogIndex, last_new: LogIndex) {
        self.configs.truncate_after(self.log.last_index());
        self.configs.forget(prev.next(), last_new);
        let mut index = prev.next();
        while index <= last_new {
            let entry = self.log.entry(index).expect("just appended");
            if entry.kind == EntryKind::Config {
                let membership = Membership::decode(&entry.data)
                    .expect("configuration entries are checked where they enter");
                self.configs.record(index, membership);
            }
            index = index.next();
        }
    }

    /// The log was replaced by `snapshot`: its configuration is in effect (§5.1).
    pub(super) fn restore_configs(&mut self, snapshot: &Snapshot) {
        self.configs.restore(base_membership(&self.config, Some(snapshot)));
    }
}

/// The configuration as of `snapshot` (none: the log's start), or the bootstrap voters of
/// `config` when there is no snapshot or it recorded none (written before membership changes).
pub(super) fn base_membership(config: &Config, snapshot: Option<&Snapshot>) -> Membership {
    match snapshot {
        Some(s) if !s.membership.voters.is_empty() => s.membership.clone(),
        _ => Membership::of_voters(config.voters.iter().copied()),
    }
}
