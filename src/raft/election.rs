//! Elections (§3.4, §3.6.1), the pre-vote round (§9.6), and the leader's check-quorum (§6.2).

use super::message::Body;
use super::node::Node;
use super::quorum::VoteResult;
use super::types::{LogIndex, NodeId, Role, Term};

impl Node {
    /// A follower or candidate tick: campaign once the randomized election timeout passes.
    /// A node that may not campaign (a learner, a spare, a removed node) keeps counting: the
    /// time since it last heard a leader must grow past the minimum timeout, or it would
    /// ignore vote requests (§4.2.3's rule) in a cycle that can keep in step with a
    /// candidate's forever — a learner promoted without knowing it then blocks every
    /// election its vote is needed for.
    pub(super) fn tick_election(&mut self) {
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.election_elapsed >= self.randomized_election_timeout && self.promotable() {
            self.election_elapsed = 0;
            self.hup(false);
        }
    }

    /// A leader tick: heartbeats, the check-quorum round, and the transfer deadline.
    pub(super) fn tick_leader(&mut self) {
        self.election_elapsed += 1;
        self.heartbeat_elapsed += 1;
        self.tick_snapshot_retries();
        if self.election_elapsed >= self.config.election_timeout_ticks_min {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.quorum_recently_active() {
                // §6.2: a leader cut off from a quorum steps down, so clients stop waiting on
                // it and a lease (when used) cannot outlive the leadership.
                self.become_follower(self.term, None);
                return;
            }
            // §3.10: a transfer that did not finish within an election timeout is abandoned.
            self.lead_transferee = None;
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed = 0;
            // Every heartbeat is a read round: its answers keep the lease (§6.4.1).
            let context = self.new_round(Vec::new());
            self.broadcast_heartbeat(context);
        }
    }

    /// Whether the voters heard from since the last round (this node included, if it votes)
    /// make a quorum; starts a new round.
    fn quorum_recently_active(&mut self) -> bool {
        let id = self.config.id;
        let progress = &self.progress;
        let active = self
            .membership()
            .has_quorum(|v| v == id || progress.get(&v).is_some_and(|p| p.recent_active));
        self.progress.values_mut().for_each(|p| p.recent_active = false);
        active
    }

    /// Whether this node may campaign: it votes in its latest configuration, or it did in
    /// the configuration its commit index is in, so a change removing it may not be committed
    /// yet. §4.2.2: "a server that is not part of its own latest configuration should still
    /// start new elections, as it might still be needed until the C_new entry is committed";
    /// it does not count its own vote then (the vote count uses the latest configuration).
    /// Without this, a leader that removed itself and was cut off before replicating the
    /// change refuses its vote to the others (its log is longer) and never campaigns, and
    /// they may need its vote (`raftbed sim` seed 49). A learner, a spare, or a server whose
    /// removal it knows committed never campaigns (§4.2.1, §4.2.3).
    pub(super) fn promotable(&self) -> bool {
        let id = self.config.id;
        self.membership().is_voter(id) || self.membership_at(self.log.commit()).is_voter(id)
    }

    /// Starts an election: a pre-vote round first when enabled, unless a leadership transfer
    /// asked for this election (§3.10), which goes straight to a real one.
    pub(super) fn hup(&mut self, leadership_transfer: bool) {
        if self.role == Role::Leader || !self.promotable() {
            return;
        }
        if self.config.pre_vote && !leadership_transfer {
            self.campaign_pre_vote();
        } else {
            self.campaign_vote(leadership_transfer);
        }
    }

    fn campaign_pre_vote(&mut self) {
        self.become_pre_candidate();
        self.votes.insert(self.config.id, true);
        if self.vote_result() == VoteResult::Won {
            self.campaign_vote(false);
            return;
        }
        // The pre-vote asks about the term this node would campaign in.
        let term = Term(self.term.0 + 1);
        self.request_votes(term, true, false);
    }

    fn campaign_vote(&mut self, leadership_transfer: bool) {
        self.become_candidate();
        self.votes.insert(self.config.id, true);
        if self.vote_result() == VoteResult::Won {
            self.become_leader();
            self.broadcast_append();
            return;
        }
        self.request_votes(self.term, false, leadership_transfer);
    }

    fn request_votes(&mut self, term: Term, pre_vote: bool, leadership_transfer: bool) {
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        let membership = self.membership();
        let id = self.config.id;
        let voters: Vec<NodeId> = membership
            .members()
            .into_iter()
            .filter(|m| *m != id && membership.is_voter(*m))
            .collect();
        for peer in voters {
            let body =
                Body::RequestVote { pre_vote, last_log_index, last_log_term, leadership_transfer };
            self.send_with_term(peer, term, body);
        }
    }

    /// Answers a (pre-)vote request whose term is at least ours (§3.4, §3.6.1, §9.6).
    pub(super) fn handle_request_vote(
        &mut self,
        from: NodeId,
        term: Term,
        pre_vote: bool,
        last_log_index: LogIndex,
        last_log_term: Term,
    ) {
        // One vote per term (§3.4): repeat a vote already given, or give one if this node has
        // neither voted nor seen a leader in this term. A pre-vote for a later term commits to
        // nothing, so it may be granted regardless.
        // A learner votes when asked: a candidate that counts it as a voter knows of a
        // configuration that promoted it, which may be committed without it (etcd-io/etcd#10998).
        let learner_refuses = self.config.bugs.learner_refuses_vote
            && self.membership().learners.contains(&self.config.id);
        let can_vote = !learner_refuses
            && (self.vote == Some(from)
                || (self.vote.is_none() && self.leader.is_none())
                || (pre_vote && term > self.term));
        let up_to_date = if self.config.bugs.vote_by_index_only {
            last_log_index >= self.log.last_index()
        } else {
            self.log.is_up_to_date(last_log_index, last_log_term)
        };
        if can_vote && up_to_date {
            // A granted answer carries the term asked about, so a pre-candidate can tell it
            // apart from answers to an older round.
            self.send_with_term(from, term, Body::RequestVoteResponse { pre_vote, granted: true });
            if !pre_vote {
                self.election_elapsed = 0;
                self.vote = Some(from);
            }
        } else {
            self.send(from, Body::RequestVoteResponse { pre_vote, granted: false });
        }
    }

    pub(super) fn handle_vote_response(&mut self, from: NodeId, pre_vote: bool, granted: bool) {
        let expected = match self.role {
            Role::PreCandidate => pre_vote,
            Role::Candidate => !pre_vote || self.config.bugs.pre_vote_counted_as_vote,
            Role::Follower | Role::Leader => return,
        };
        if !expected {
            return;
        }
        self.votes.insert(from, granted);
        match (self.vote_result(), self.role) {
            (VoteResult::Won, Role::PreCandidate) => self.campaign_vote(false),
            (VoteResult::Won, _) => {
                self.become_leader();
                self.broadcast_append();
            }
            (VoteResult::Lost, _) => self.become_follower(self.term, None),
            (VoteResult::Pending, _) => {}
        }
    }

    fn vote_result(&self) -> VoteResult {
        self.membership().vote_result(&self.votes)
    }
}

#[cfg(test)]
mod tests {
    //! One event in, exact output out: each test builds a node in a known state, feeds it one
    //! message, and compares the whole `Ready`.

    use bytes::Bytes;

    use crate::raft::{
        Body, Config, Entry, HardState, LogIndex, Message, Node, NodeId, Restored, Role, Term,
    };

    fn node_with_log(id: u64, term: u64, vote: Option<u64>, log_terms: &[u64]) -> Node {
        let voters = (1..=3).map(NodeId).collect();
        let entries = log_terms
            .iter()
            .enumerate()
            .map(|(i, t)| Entry::command(Term(*t), LogIndex(i as u64 + 1), Bytes::new()))
            .collect();
        let restored = Restored {
            hard_state: HardState { term: Term(term), vote: vote.map(NodeId), commit: LogIndex(0) },
            entries,
            ..Restored::default()
        };
        Node::new(Config::new(NodeId(id), voters), restored).unwrap()
    }

    fn vote_request(from: u64, to: u64, term: u64, last_term: u64, last_index: u64) -> Message {
        Message {
            from: NodeId(from),
            to: NodeId(to),
            term: Term(term),
            body: Body::RequestVote {
                pre_vote: false,
                last_log_index: LogIndex(last_index),
                last_log_term: Term(last_term),
                leadership_transfer: false,
            },
        }
    }

    fn vote_response(from: u64, to: u64, term: u64, granted: bool) -> Message {
        Message {
            from: NodeId(from),
            to: NodeId(to),
            term: Term(term),
            body: Body::RequestVoteResponse { pre_vote: false, granted },
        }
    }

    #[test]
    fn grants_vote_to_up_to_date_candidate_and_persists_it_first() {
        let mut node = node_with_log(2, 1, None, &[1, 1]);
        node.step(vote_request(1, 2, 2, 1, 2)).unwrap();
        let ready = node.ready().expect("a vote produces work");
        let expected = HardState { term: Term(2), vote: Some(NodeId(1)), commit: LogIndex(0) };
        assert_eq!(ready.hard_state, Some(expected));
        assert!(ready.must_sync, "the vote must be durable before the response leaves");
        assert_eq!(ready.messages, vec![vote_response(2, 1, 2, true)]);
        assert!(ready.entries.is_empty());
    }

    #[test]
    fn rejects_candidate_with_older_last_term() {
        let mut node = node_with_log(2, 2, None, &[1, 2]);
        node.step(vote_request(1, 2, 3, 1, 5)).unwrap();
        let ready = node.ready().unwrap();
        assert_eq!(ready.hard_state.map(|hs| (hs.term, hs.vote)), Some((Term(3), None)));
        assert_eq!(ready.messages, vec![vote_response(2, 1, 3, false)]);
    }

    #[test]
    fn rejects_shorter_log_with_equal_last_term() {
        let mut node = node_with_log(2, 2, None, &[1, 2, 2]);
        node.step(vote_request(1, 2, 3, 2, 2)).unwrap();
        assert_eq!(node.ready().unwrap().messages, vec![vote_response(2, 1, 3, false)]);
    }

    #[test]
    fn votes_at_most_once_per_term() {
        let mut node = node_with_log(2, 2, Some(3), &[1]);
        node.step(vote_request(1, 2, 2, 1, 1)).unwrap();
        let ready = node.ready().unwrap();
        assert_eq!(ready.hard_state, None, "nothing durable changes");
        assert_eq!(ready.messages, vec![vote_response(2, 1, 2, false)]);
    }

    #[test]
    fn repeats_a_vote_already_given() {
        let mut node = node_with_log(2, 2, Some(1), &[1]);
        node.step(vote_request(1, 2, 2, 1, 1)).unwrap();
        assert_eq!(node.ready().unwrap().messages, vec![vote_response(2, 1, 2, true)]);
    }

    #[test]
    fn ignores_vote_requests_from_older_terms() {
        let mut node = node_with_log(2, 5, None, &[1]);
        node.step(vote_request(1, 2, 4, 1, 1)).unwrap();
        assert!(node.ready().is_none());
    }

    #[test]
    fn candidate_wins_with_a_majority_and_appends_a_noop() {
        let mut config = Config::new(NodeId(1), (1..=3).map(NodeId).collect());
        config.pre_vote = false;
        let mut node = Node::new(config, Restored::default()).unwrap();
        node.campaign();
        let ready = node.ready().unwrap();
        assert_eq!(ready.messages.len(), 2);
        node.advance();
        node.step(vote_response(2, 1, 1, true)).unwrap();
        assert_eq!(node.role(), Role::Leader);
        let ready = node.ready().unwrap();
        assert_eq!(ready.entries.len(), 1);
        assert!(ready.entries[0].data.is_empty(), "the first entry of a term is a no-op");
    }

    #[test]
    fn pre_candidate_keeps_its_term_until_a_quorum_grants() {
        let mut node = node_with_log(1, 3, None, &[1]);
        node.campaign();
        assert_eq!((node.role(), node.term()), (Role::PreCandidate, Term(3)));
        let ready = node.ready().unwrap();
        assert_eq!(ready.hard_state, None, "a pre-vote persists nothing");
        assert!(ready.messages.iter().all(|m| m.term == Term(4)));
        node.advance();
        let granted = Message {
            from: NodeId(2),
            to: NodeId(1),
            term: Term(4),
            body: Body::RequestVoteResponse { pre_vote: true, granted: true },
        };
        node.step(granted).unwrap();
        assert_eq!((node.role(), node.term()), (Role::Candidate, Term(4)));
    }
}
