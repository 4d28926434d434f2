//! Linearizable reads without writing to the log: ReadIndex (§6.4) and the leader lease
//! (§6.4.1).
//!
//! Every heartbeat broadcast is a *round* with a fresh context, the tick it was sent at, and the
//! commit index at that moment. A follower that answers a round's heartbeat (or a later one)
//! acknowledged this node as leader at or after the round was sent. When a quorum has, the round
//! is confirmed:
//! - its ReadIndex requests may be served once the state machine reaches the round's index;
//! - the lease extends to the round's send tick plus `lease_ticks`, since no other leader can be
//!   elected before the followers that answered have waited a full election timeout.
//!
//! Invariants:
//! 1. Rounds are kept in context order; confirming one confirms every earlier one.
//! 2. A read is only answered from an index committed in this leader's term (§6.4: the leader
//!    must first commit its no-op to know the commit index).
//! 3. The lease never outlives `lease_ticks` from a heartbeat a quorum answered, is void
//!    during a leadership transfer, and is not extended by rounds sent during one.

use std::collections::{BTreeSet, VecDeque};

use super::node::Node;
use super::types::{LogIndex, NodeId, Role};

/// A confirmed ReadIndex request: serve it once the state machine has applied `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The caller's id for the request.
    pub request: u64,
    /// The index the state machine must reach first.
    pub index: LogIndex,
}

/// One heartbeat round.
#[derive(Clone, Debug)]
pub(super) struct Round {
    pub(super) context: u64,
    pub(super) sent_at_tick: u64,
    pub(super) index: LogIndex,
    pub(super) acks: BTreeSet<NodeId>,
    pub(super) requests: Vec<u64>,
    /// Sent while a leadership transfer was under way: its acknowledgements prove nothing
    /// about the future, since the transferee may be elected at once (§3.10).
    pub(super) during_transfer: bool,
}

/// A leader's read bookkeeping.
#[derive(Clone, Debug, Default)]
pub(super) struct ReadOnly {
    pub(super) rounds: VecDeque<Round>,
    /// Requests waiting for this leader to commit an entry of its term.
    pub(super) deferred: Vec<u64>,
    /// Requests for the next round, sent when the driver next asks for a `Ready`.
    pub(super) queued: Vec<u64>,
    /// The lease holds while the tick counter is below this.
    pub(super) lease_until_tick: u64,
    pub(super) next_context: u64,
}

/// At most this many unconfirmed rounds are kept; older ones are dropped (with their requests,
/// which the driver times out).
const MAX_ROUNDS: usize = 1024;

impl Node {
    /// Asks for a linearizable read: when leadership is confirmed, a `ReadState` with this
    /// `request` id appears in a `Ready`. Calls between two `ready()`s share one heartbeat
    /// round, sent by the next `ready()`.
    ///
    /// # Errors
    /// `NotLeader` when this node does not lead; the read did not happen.
    pub fn read_index(&mut self, request: u64) -> Result<(), super::Error> {
        if self.role != Role::Leader {
            return Err(super::Error::NotLeader { leader_hint: self.leader });
        }
        if self.committed_in_current_term() || self.config.bugs.read_index_before_term_commit {
            self.read_only.queued.push(request);
        } else {
            self.read_only.deferred.push(request);
        }
        Ok(())
    }

    /// Sends the round for the reads queued since the last `ready()`.
    pub(super) fn flush_queued_reads(&mut self) {
        if !self.read_only.queued.is_empty() {
            let requests = std::mem::take(&mut self.read_only.queued);
            self.request_reads(requests);
        }
    }

    /// Whether reads wait to be sent.
    pub(super) fn has_queued_reads(&self) -> bool {
        !self.read_only.queued.is_empty()
    }

    /// The index a lease read may be served at, if this leader's lease holds now: the commit
    /// index, once an entry of this term is committed. `None` means: use `read_index`.
    pub fn lease_read_index(&self) -> Option<LogIndex> {
        let valid = self.role == Role::Leader
            && self.config.lease_reads
            && self.lead_transferee.is_none()
            && self.committed_in_current_term()
            && self.ticks < self.lease_until();
        valid.then(|| self.log.commit())
    }

    /// The tick through which the lease holds (a tick count of this node's clock), if any.
    pub fn lease_until_tick(&self) -> Option<u64> {
        let until = self.lease_until();
        (self.role == Role::Leader && until > self.ticks).then_some(until)
    }

    /// The lease's end; with `lease_until_step_down`, the next step-down check, which is
    /// all that switch lets end it.
    fn lease_until(&self) -> u64 {
        if self.config.bugs.lease_until_step_down {
            let check =
                self.config.election_timeout_ticks_min.saturating_sub(self.election_elapsed);
            return self.ticks + u64::from(check.max(1));
        }
        self.read_only.lease_until_tick
    }

    /// Ticks this node has counted since it started.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    pub(super) fn committed_in_current_term(&self) -> bool {
        self.log.term(self.log.commit()) == Some(self.term)
    }

    /// Starts a round for `requests` now (or confirms at once with no peers).
    fn request_reads(&mut self, requests: Vec<u64>) {
        let round = self.new_round(requests);
        if self.membership().is_single_voter(self.config.id) {
            self.confirm_through(round);
            return;
        }
        self.broadcast_heartbeat(round);
    }

    /// Opens a round and returns its context.
    pub(super) fn new_round(&mut self, requests: Vec<u64>) -> u64 {
        self.read_only.next_context += 1;
        let context = self.read_only.next_context;
        let mut acks = BTreeSet::new();
        acks.insert(self.config.id);
        self.read_only.rounds.push_back(Round {
            context,
            sent_at_tick: self.ticks,
            index: self.log.commit(),
            acks,
            requests,
            during_transfer: self.lead_transferee.is_some(),
        });
        if self.read_only.rounds.len() > MAX_ROUNDS {
            self.read_only.rounds.pop_front();
        }
        context
    }

    /// A follower answered the heartbeat of round `context`: it acknowledges this leader for
    /// every round up to that one.
    pub(super) fn handle_round_ack(&mut self, from: NodeId, context: u64) {
        let membership = self.configs.current();
        let mut confirmed = None;
        for round in self.read_only.rounds.iter_mut().take_while(|r| r.context <= context) {
            round.acks.insert(from);
            if membership.has_quorum(|v| round.acks.contains(&v)) {
                confirmed = Some(round.context);
            }
        }
        if let Some(context) = confirmed {
            self.confirm_through(context);
        }
    }

    /// Confirms every round up to `context`: releases their reads, extends the lease.
    fn confirm_through(&mut self, context: u64) {
        while self.read_only.rounds.front().is_some_and(|r| r.context <= context) {
            let round = self.read_only.rounds.pop_front().expect("checked");
            if !round.during_transfer {
                let until = round.sent_at_tick + self.lease_ticks();
                self.read_only.lease_until_tick = self.read_only.lease_until_tick.max(until);
            }
            for request in round.requests {
                self.read_states.push(ReadState { request, index: round.index });
            }
        }
    }

    /// The lease length in ticks: the minimum election timeout less the drift margin.
    fn lease_ticks(&self) -> u64 {
        let election = u64::from(self.config.election_timeout_ticks_min);
        election.saturating_sub(u64::from(self.config.lease_drift_margin_ticks))
    }

    /// Called when the commit index moves: reads deferred until this term had a committed
    /// entry can go now.
    pub(super) fn release_deferred_reads(&mut self) {
        if !self.read_only.deferred.is_empty() && self.committed_in_current_term() {
            let requests = std::mem::take(&mut self.read_only.deferred);
            self.request_reads(requests);
        }
    }

    /// Leadership is gone: pending reads can no longer be confirmed; their requests are
    /// returned so the caller can fail them.
    pub(super) fn drop_reads(&mut self) -> Vec<u64> {
        let mut dropped: Vec<u64> = self.read_only.deferred.drain(..).collect();
        dropped.append(&mut self.read_only.queued);
        for round in self.read_only.rounds.drain(..) {
            dropped.extend(round.requests);
        }
        self.read_only.lease_until_tick = 0;
        dropped
    }
}
