//! `Node`: one Raft participant as a pure state machine. Inputs are `tick`, `step`, `propose`,
//! `transfer_leadership` and `compact`; the output is a `Ready` (see `ready.rs`).
//!
//! This file holds the state, the public inputs, the term rules every message passes through,
//! and the role transitions. Elections live in `election.rs`, replication in `replication.rs`.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::config::{Config, ConfigError};
use super::log::RaftLog;
use super::membership::{Configurations, Membership};
use super::message::{Body, Message};
use super::progress::Progress;
use super::read_only::{ReadOnly, ReadState};
use super::types::{
    Entry, EntryKind, HardState, LogIndex, NodeId, Role, Snapshot, SoftState, Term,
};
use crate::rng::SplitMix64;

/// A caller's mistake, or a request this node cannot serve. Protocol rejections are messages,
/// not errors; bugs are assertions.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Only the leader accepts proposals and transfers. Definite: nothing was appended.
    #[error("not the leader (leader: {})", leader_hint.map_or("unknown".into(), |l| l.to_string()))]
    NotLeader {
        /// The leader this node knows of, if any.
        leader_hint: Option<NodeId>,
    },
    /// The leader is handing over leadership (§3.10) and takes no proposals meanwhile. Definite.
    #[error("proposal dropped: leadership transfer to {0} in progress")]
    ProposalDropped(NodeId),
    /// The node id is not a voter of this cluster.
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    /// A configuration change is already in flight (§4.2: one at a time). Definite.
    #[error("configuration change at {0} not committed yet: one change at a time")]
    ChangeInFlight(LogIndex),
    /// This leader has not committed an entry of its term yet, which it must before any
    /// configuration change (the rule of Ongaro's raft-dev post of July 2015). Definite.
    #[error("no entry of term {0} committed yet: a new leader commits one before any change")]
    NotCommittedInTerm(Term),
    /// The change cannot be made from the current configuration. Definite.
    #[error("invalid configuration change: {0}")]
    InvalidChange(String),
    /// A learner is promoted only once it holds every committed entry (§4.2.1). Definite.
    #[error("learner {id} has not caught up: it holds {matched} of {commit} committed entries")]
    LearnerBehind {
        /// The learner.
        id: NodeId,
        /// What it holds.
        matched: LogIndex,
        /// The leader's commit index.
        commit: LogIndex,
    },
    /// A message addressed to another node, or from this one.
    #[error("misrouted message {0}")]
    Misrouted(String),
    /// Compaction asked for an index that is not applied, or already compacted.
    #[error("cannot compact at {index}: applied {applied}, already compacted through {compacted}")]
    Compaction {
        /// The index asked for.
        index: LogIndex,
        /// The applied index.
        applied: LogIndex,
        /// The current snapshot index.
        compacted: LogIndex,
    },
    /// Restored state is inconsistent (for example a commit index past the log's end).
    #[error("invalid restored state: {0}")]
    InvalidState(String),
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// What storage hands back on start-up (§3.8: term, vote and log survive restarts).
#[derive(Clone, Debug, Default)]
pub struct Restored {
    /// The last persisted hard state.
    pub hard_state: HardState,
    /// The latest persisted snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// The persisted entries after the snapshot, in order.
    pub entries: Vec<Entry>,
    /// The index the state machine reflects (at least the snapshot's). Committed entries after
    /// it are handed out again for applying.
    pub applied: LogIndex,
}

/// Inputs since the last validation, and the role and commit index it saw.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Validation {
    inputs: u32,
    seen: Option<(Role, LogIndex)>,
}

/// A proposal's place in the log: it succeeded if the entry applied at `index` has `term`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The leader's term.
    pub term: Term,
    /// The first index assigned.
    pub index: LogIndex,
}

/// Bookkeeping for the `Ready` handed out and not yet advanced.
#[derive(Clone, Copy, Debug)]
pub(super) struct Outstanding {
    pub(super) last_entry: Option<LogIndex>,
    pub(super) last_committed: Option<LogIndex>,
    pub(super) snapshot: Option<LogIndex>,
    pub(super) hard_state: HardState,
    pub(super) soft_state: SoftState,
}

/// One Raft node. See the module docs of `raft` for the contract.
#[derive(Debug)]
pub struct Node {
    pub(super) config: Config,
    pub(super) term: Term,
    pub(super) vote: Option<NodeId>,
    pub(super) role: Role,
    pub(super) leader: Option<NodeId>,
    pub(super) log: RaftLog,
    /// The latest snapshot with its data, sent to followers behind the compaction point.
    pub(super) snapshot: Option<Snapshot>,
    /// A snapshot received from the leader, to persist and restore through the next `Ready`.
    pub(super) pending_snapshot: Option<Snapshot>,
    /// The configurations in the log and as of the snapshot; the latest is in effect (§4.1).
    pub(super) configs: Configurations,
    /// Leader only: every member's progress (voters and learners), this node's included.
    pub(super) progress: BTreeMap<NodeId, Progress>,
    /// Ticks each follower has spent in snapshot state (leader only).
    pub(super) snapshot_ticks: BTreeMap<NodeId, u32>,
    /// Votes received in the current (pre-)election.
    pub(super) votes: BTreeMap<NodeId, bool>,
    pub(super) election_elapsed: u32,
    pub(super) heartbeat_elapsed: u32,
    pub(super) randomized_election_timeout: u32,
    pub(super) lead_transferee: Option<NodeId>,
    pub(super) rng: SplitMix64,
    pub(super) messages: Vec<Message>,
    pub(super) prev_hard_state: HardState,
    pub(super) prev_soft_state: SoftState,
    pub(super) outstanding: Option<Outstanding>,
    /// Ticks since this node started.
    pub(super) ticks: u64,
    /// Still within the first election timeout after starting (see
    /// `Config::startup_stickiness`).
    pub(super) starting: bool,
    pub(super) read_only: ReadOnly,
    /// Reads confirmed since the last `Ready`.
    pub(super) read_states: Vec<ReadState>,
    /// Reads that can no longer be confirmed (leadership was lost) since the last `Ready`.
    pub(super) failed_reads: Vec<u64>,
    /// Where `check_invariants` stands.
    pub(super) validation: Validation,
    /// Deposed by a higher term while leading, and no leader of it known yet (read only by
    /// the `append_after_step_down` bug).
    pub(super) deposed: bool,
}

/// The configurations of a restarted node: its snapshot's (or, when the snapshot recorded
/// none, the bootstrap voters of `config`) and those of the entries after it.
fn restored_configurations(
    config: &Config,
    snapshot: Option<&Snapshot>,
    entries: &[Entry],
) -> Result<Configurations, Error> {
    let mut configs = Configurations::new(super::reconfig::base_membership(config, snapshot));
    for entry in entries.iter().filter(|e| e.kind == EntryKind::Config) {
        let membership = Membership::decode(&entry.data).map_err(|e| {
            Error::InvalidState(format!("entry {}/{}: {e}", entry.term, entry.index))
        })?;
        configs.record(entry.index, membership);
    }
    Ok(configs)
}

impl Node {
    /// Creates a node from its configuration and what storage restored (`Restored::default()`
    /// for a fresh node).
    ///
    /// # Errors
    /// If the configuration is invalid or the restored state contradicts itself.
    pub fn new(config: Config, restored: Restored) -> Result<Node, Error> {
        config.validate()?;
        let Restored { hard_state, snapshot, entries, applied } = restored;
        if hard_state.vote == Some(NodeId(0)) {
            return Err(Error::InvalidState("vote for node 0".into()));
        }
        let configs = restored_configurations(&config, snapshot.as_ref(), &entries)?;
        let meta = snapshot.as_ref().map(|s| s.meta).unwrap_or_default();
        if entries.last().is_some_and(|entry| entry.term > hard_state.term)
            || meta.term > hard_state.term
        {
            return Err(Error::InvalidState(format!(
                "log holds terms above the persisted term {}",
                hard_state.term
            )));
        }
        let mut log = RaftLog::restore(meta, entries, hard_state.commit, applied.max(meta.index))
            .map_err(Error::InvalidState)?;
        log.keep_conflicting_tail = config.bugs.keep_conflicting_tail;
        let soft_state = SoftState { role: Role::Follower, leader: None };
        // One stream per node: equal draws on two nodes would time out their elections in
        // lockstep, every round a split vote (§3.4 relies on the timeouts differing).
        let rng = SplitMix64::stream(config.seed, config.id.0);
        let mut node = Node {
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            prev_hard_state: HardState { commit: log.commit(), ..hard_state },
            log,
            snapshot,
            pending_snapshot: None,
            configs,
            progress: BTreeMap::new(),
            snapshot_ticks: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: 0,
            lead_transferee: None,
            rng,
            messages: Vec::new(),
            prev_soft_state: soft_state,
            outstanding: None,
            ticks: 0,
            starting: config.startup_stickiness,
            read_only: ReadOnly::default(),
            read_states: Vec::new(),
            failed_reads: Vec::new(),
            validation: Validation::default(),
            deposed: false,
            config,
        };
        node.randomize_election_timeout();
        Ok(node)
    }

    /// Advances logical time by one tick: followers and candidates count towards an election,
    /// leaders towards heartbeats and the check-quorum round.
    pub fn tick(&mut self) {
        self.assert_no_outstanding_ready();
        self.ticks += 1;
        if self.ticks >= u64::from(self.config.election_timeout_ticks_min) {
            self.starting = false;
        }
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.tick_election();
        }
        self.finish_membership_change();
        self.check_invariants();
    }

    /// Starts an election now, as if the election timeout had passed (with a pre-vote round
    /// first when enabled). Does nothing on a leader.
    pub fn campaign(&mut self) {
        self.assert_no_outstanding_ready();
        self.hup(false);
        self.check_invariants();
    }

    /// Handles one message from a peer.
    ///
    /// # Errors
    /// If the message is not addressed to this node or comes from it. Messages from unknown
    /// nodes and stale messages are ignored, as the protocol allows.
    pub fn step(&mut self, message: Message) -> Result<(), Error> {
        self.assert_no_outstanding_ready();
        if message.to != self.config.id || message.from == self.config.id {
            return Err(Error::Misrouted(message.to_string()));
        }
        // Any sender is heard: a joining node learns the cluster from its leader, and a
        // member's view of the configuration may lag. A server outside the configuration
        // cannot disrupt it (§4.2.3, `accept_higher_term`), and the leader ignores answers
        // from nodes it does not track.
        self.step_checked(message);
        self.finish_membership_change();
        self.check_invariants();
        Ok(())
    }

    /// Appends `data` to the log as one entry, if this node leads.
    ///
    /// # Errors
    /// `NotLeader` or `ProposalDropped`; both are definite: nothing was appended.
    pub fn propose(&mut self, data: Bytes) -> Result<Proposal, Error> {
        self.propose_batch(std::iter::once(data))
    }

    /// Appends several entries at once and replicates them in as few messages as the bounds
    /// allow (the driver batches concurrent client requests this way: group commit).
    ///
    /// # Errors
    /// As `propose`.
    pub fn propose_batch(
        &mut self,
        batch: impl IntoIterator<Item = Bytes>,
    ) -> Result<Proposal, Error> {
        self.assert_no_outstanding_ready();
        if self.still_appends() {
            let proposal = Proposal { term: self.term, index: self.log.last_index().next() };
            self.append_in_term(batch);
            return Ok(proposal);
        }
        if self.role != Role::Leader {
            return Err(Error::NotLeader { leader_hint: self.leader });
        }
        if let Some(transferee) = self.lead_transferee {
            return Err(Error::ProposalDropped(transferee));
        }
        let proposal = Proposal { term: self.term, index: self.log.last_index().next() };
        self.append_as_leader(batch);
        self.broadcast_append();
        self.finish_membership_change();
        self.check_invariants();
        Ok(proposal)
    }

    /// Hands leadership to `target` (§3.10): once its log is caught up it receives TimeoutNow.
    /// Proposals are refused meanwhile; the transfer is abandoned after an election timeout.
    ///
    /// # Errors
    /// `NotLeader`, or `UnknownNode` if `target` is not a voter.
    pub fn transfer_leadership(&mut self, target: NodeId) -> Result<(), Error> {
        self.assert_no_outstanding_ready();
        if self.role != Role::Leader {
            return Err(Error::NotLeader { leader_hint: self.leader });
        }
        if !self.membership().is_voter(target) {
            return Err(Error::UnknownNode(target));
        }
        if target == self.config.id || self.lead_transferee == Some(target) {
            return Ok(());
        }
        self.lead_transferee = Some(target);
        // The transfer must finish within an election timeout, counted from now.
        self.election_elapsed = 0;
        if self.progress[&target].match_index == self.log.last_index() {
            self.send(target, Body::TimeoutNow);
        } else {
            self.send_append(target, true);
        }
        self.check_invariants();
        Ok(())
    }

    /// Discards the log through `index`, which the state machine has applied, keeping `data`
    /// (the state machine as of `index`) as the snapshot to send to followers that fall behind.
    ///
    /// # Errors
    /// If `index` is not applied yet or not past the current snapshot.
    pub fn compact(&mut self, index: LogIndex, data: Bytes) -> Result<(), Error> {
        self.assert_no_outstanding_ready();
        let compacted = self.log.snapshot().index;
        let applied = self.log.applied();
        if index > applied || index <= compacted || self.pending_snapshot.is_some() {
            return Err(Error::Compaction { index, applied, compacted });
        }
        let meta = self.log.compact(index);
        self.configs.compact(index);
        let membership = self.configs.at(index).clone();
        self.snapshot = Some(Snapshot { meta, data, membership });
        self.check_invariants();
        Ok(())
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The vote cast in the current term.
    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader known in the current term.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Whether this node takes proposals though it no longer leads: only with the
    /// `append_after_step_down` bug, from when a higher term deposed it until it learns that
    /// term's leader.
    pub fn still_appends(&self) -> bool {
        self.config.bugs.append_after_step_down
            && self.role == Role::Follower
            && self.deposed
            && self.leader.is_none()
    }

    /// The log.
    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    /// The latest snapshot this node holds.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The configuration in effect: the latest in the log (§4.1).
    pub fn membership(&self) -> &Membership {
        self.configs.current()
    }

    /// The index of the log entry that holds the configuration in effect; 0 when it comes
    /// from the snapshot or the bootstrap (committed, either way).
    pub fn membership_index(&self) -> LogIndex {
        self.configs.latest_index()
    }

    /// The configuration in effect as of `index` (for a snapshot taken there).
    pub fn membership_at(&self, index: LogIndex) -> Membership {
        self.configs.at(index).clone()
    }

    /// A leader's view of `peer`.
    pub fn progress(&self, peer: NodeId) -> Option<&Progress> {
        self.progress.get(&peer)
    }

    /// The leadership transfer in progress, if any.
    pub fn lead_transferee(&self) -> Option<NodeId> {
        self.lead_transferee
    }

    /// The current election timeout, in ticks, drawn from the configured range.
    pub fn randomized_election_timeout(&self) -> u32 {
        self.randomized_election_timeout
    }

    /// Ticks since the last election-timer reset.
    pub fn election_elapsed(&self) -> u32 {
        self.election_elapsed
    }

    /// The hard state as it stands (persisted or not).
    pub fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.log.commit() }
    }

    /// The soft state as it stands.
    pub fn soft_state(&self) -> SoftState {
        SoftState { role: self.role, leader: self.leader }
    }

    // ----- the term rules (§3.3, §9.6) -------------------------------------------------------

    fn step_checked(&mut self, message: Message) {
        if message.term > self.term {
            if !self.accept_higher_term(&message) {
                return;
            }
        } else if message.term < self.term {
            self.handle_stale_term(&message);
            return;
        }
        self.dispatch(message);
    }

    /// Applies the rule "a higher term makes you a follower", with its exceptions. Returns
    /// whether the message should still be handled.
    fn accept_higher_term(&mut self, message: &Message) -> bool {
        if let Body::RequestVote { leadership_transfer, .. } = message.body {
            // §9.6 and §6.2: a node that heard from a leader within the minimum election
            // timeout ignores vote requests, so a node rejoining after a partition cannot
            // depose a working leader. A TimeoutNow-triggered election is exempt.
            // §4.2.3: the same rule keeps a server removed from the configuration (which no
            // longer hears the leader and times out) from deposing it, check-quorum or not.
            let outsider = !self.membership().is_voter(message.from);
            let in_lease = (self.config.check_quorum || outsider)
                && (self.leader.is_some() || self.starting)
                && self.election_elapsed < self.config.election_timeout_ticks_min;
            if in_lease && !leadership_transfer {
                return false;
            }
        }
        match message.body {
            // A pre-vote never changes the receiver's term.
            Body::RequestVote { pre_vote: true, .. } => {}
            // A granted pre-vote carries the term the pre-candidate asked about; it only
            // raises our term once a quorum granted (§9.6).
            Body::RequestVoteResponse { pre_vote: true, granted: true } => {}
            Body::AppendEntries { .. } | Body::Heartbeat { .. } | Body::InstallSnapshot { .. } => {
                self.become_follower(message.term, Some(message.from));
            }
            _ => self.become_follower(message.term, None),
        }
        true
    }

    fn handle_stale_term(&mut self, message: &Message) {
        match message.body {
            // A deposed leader that cannot hear the cluster's new term would retry forever;
            // answering tells it the term so it steps down. Needed once check-quorum or
            // pre-vote can keep a partitioned node's term from rising (etcd-io/raft).
            Body::AppendEntries { .. } | Body::Heartbeat { .. }
                if self.config.check_quorum || self.config.pre_vote =>
            {
                self.send(
                    message.from,
                    Body::AppendEntriesResponse {
                        success: false,
                        index: LogIndex(0),
                        reject_hint_index: LogIndex(0),
                        reject_hint_term: Term(0),
                    },
                );
            }
            Body::RequestVote { pre_vote: true, .. } => {
                self.send(
                    message.from,
                    Body::RequestVoteResponse { pre_vote: true, granted: false },
                );
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, message: Message) {
        let from = message.from;
        match message.body {
            Body::RequestVote { pre_vote, last_log_index, last_log_term, .. } => self
                .handle_request_vote(from, message.term, pre_vote, last_log_index, last_log_term),
            Body::RequestVoteResponse { pre_vote, granted } => {
                self.handle_vote_response(from, pre_vote, granted)
            }
            Body::AppendEntries { prev_log_index, prev_log_term, entries, leader_commit } => {
                if self.follow(from) {
                    self.handle_append_entries(
                        from,
                        prev_log_index,
                        prev_log_term,
                        &entries,
                        leader_commit,
                    );
                }
            }
            Body::Heartbeat { leader_commit, context } => {
                if self.follow(from) {
                    self.handle_heartbeat(from, leader_commit, context);
                }
            }
            Body::InstallSnapshot { snapshot } => {
                if self.follow(from) {
                    self.handle_install_snapshot(from, snapshot);
                }
            }
            Body::AppendEntriesResponse { success, index, reject_hint_index, reject_hint_term } => {
                if self.role == Role::Leader && self.progress.contains_key(&from) {
                    self.handle_append_response(
                        from,
                        success,
                        index,
                        reject_hint_index,
                        reject_hint_term,
                    );
                }
            }
            Body::HeartbeatResponse { context } => {
                if self.role == Role::Leader && self.progress.contains_key(&from) {
                    self.handle_heartbeat_response(from, context);
                }
            }
            Body::TimeoutNow => {
                if self.role != Role::Leader && self.membership().is_voter(self.config.id) {
                    self.hup(true);
                }
            }
        }
    }

    /// Accepts `from` as the leader of the current term. Returns false if this node leads the
    /// same term itself: two leaders in one term means election safety is already broken (a
    /// lost vote, say); the message is dropped and the simulator's checks report it.
    fn follow(&mut self, from: NodeId) -> bool {
        match self.role {
            Role::Leader => false,
            Role::Candidate | Role::PreCandidate => {
                self.become_follower(self.term, Some(from));
                true
            }
            Role::Follower => {
                self.leader = Some(from);
                self.election_elapsed = 0;
                true
            }
        }
    }

    // ----- role transitions ------------------------------------------------------------------

    pub(super) fn reset(&mut self, term: Term) {
        self.deposed = false;
        if self.role == Role::Leader {
            let dropped = self.drop_reads();
            self.failed_reads.extend(dropped);
        }
        if self.term != term {
            self.term = term;
            self.vote = None;
        }
        self.leader = None;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.randomize_election_timeout();
        self.lead_transferee = None;
        self.votes.clear();
        self.progress.clear();
        self.snapshot_ticks.clear();
    }

    pub(super) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        let deposed = self.role == Role::Leader && term > self.term;
        self.reset(term);
        self.role = Role::Follower;
        self.leader = leader;
        self.deposed = deposed;
    }

    pub(super) fn become_pre_candidate(&mut self) {
        assert!(self.role != Role::Leader, "{}: leader cannot become pre-candidate", self.id());
        // The term and vote stay: a pre-election changes nothing durable (§9.6).
        self.votes.clear();
        self.leader = None;
        self.role = Role::PreCandidate;
    }

    pub(super) fn become_candidate(&mut self) {
        assert!(self.role != Role::Leader, "{}: leader cannot become candidate", self.id());
        self.reset(Term(self.term.0 + 1));
        self.vote = Some(self.config.id);
        self.role = Role::Candidate;
    }

    pub(super) fn become_leader(&mut self) {
        assert!(self.role == Role::Candidate, "{}: only a candidate becomes leader", self.id());
        self.reset(self.term);
        self.role = Role::Leader;
        self.leader = Some(self.config.id);
        let last_index = self.log.last_index();
        for member in self.membership().members() {
            self.progress.insert(member, Progress::new(last_index));
        }
        let own = self.progress.entry(self.config.id).or_insert(Progress::new(last_index));
        own.match_index = last_index;
        own.become_replicate();
        // §6.4 (and §3.6.2): an entry of the leader's own term must commit before the leader
        // knows which older entries are committed; the no-op gets it there without waiting for
        // a client.
        self.append_as_leader(std::iter::once(Bytes::new()));
    }

    pub(super) fn randomize_election_timeout(&mut self) {
        let (lo, hi) =
            (self.config.election_timeout_ticks_min, self.config.election_timeout_ticks_max);
        self.randomized_election_timeout = self.rng.range_inclusive(lo, hi);
    }

    pub(super) fn send(&mut self, to: NodeId, body: Body) {
        self.send_with_term(to, self.term, body);
    }

    pub(super) fn send_with_term(&mut self, to: NodeId, term: Term, body: Body) {
        debug_assert!(to != self.config.id, "{}: message to self", self.id());
        self.messages.push(Message { from: self.config.id, to, term, body });
    }

    /// The other members, voters and learners: whom a leader replicates to.
    pub(super) fn peers(&self) -> impl Iterator<Item = NodeId> + use<> {
        let id = self.config.id;
        self.membership().members().into_iter().filter(move |member| *member != id)
    }

    pub(super) fn assert_no_outstanding_ready(&self) {
        assert!(
            self.outstanding.is_none(),
            "{}: input while a Ready is outstanding; call advance() first",
            self.id()
        );
    }

    /// Validates the whole state after an input when `Config::validate_every` says: every Nth
    /// input and at every role change and commit advance (otherwise under `debug_assert!`).
    ///
    /// # Panics
    /// On a broken invariant, naming it: the node cannot be trusted past it.
    pub(super) fn check_invariants(&mut self) {
        let every = self.config.validate_every;
        if every == 0 {
            debug_assert!(self.validate().is_ok(), "{:?}", self.validate());
            return;
        }
        let (role, commit) = (self.role, self.log.commit());
        self.validation.inputs += 1;
        if self.validation.inputs < every && Some((role, commit)) == self.validation.seen {
            return;
        }
        self.validation = Validation { inputs: 0, seen: Some((role, commit)) };
        if let Err(violation) = self.validate() {
            panic!("invariant broken on {violation}");
        }
    }
}
