//! Cluster-wide invariants, checked as every node's `Ready` is processed (so after every
//! simulation step), each against the property of the Raft dissertation it comes from.
//!
//! The probe keeps, per node, the hash chain of its log (`chain[i]` commits to every entry up to
//! `i`), and globally: the leader of each term, the chain of every (index, term) ever stored,
//! the committed prefix with the term in which each index was first known committed, and what
//! was applied at each index.

mod configs;
mod violation;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

pub use violation::Violation;

use crate::raft::{Entry, EntryKind, LogIndex, Membership, Node, NodeId, Ready, Role, Term};
use crate::resolved::LogSlot;

/// What one node looks like to the checks.
#[derive(Debug, Default)]
struct NodeView {
    role: Option<Role>,
    term: Term,
    vote: Option<NodeId>,
    leader: Option<NodeId>,
    /// The commit index in this incarnation (a restart may come back lower: commit is
    /// persisted lazily).
    commit: LogIndex,
    /// `chain[i]`: hash of every entry up to index `i`; `chain[0]` is the empty log.
    chain: Vec<u64>,
    /// The term of the last entry (or of the snapshot, with no entries after it).
    last_term: Term,
    /// The configuration in effect on the node: the latest in its log (§4.1).
    membership: Membership,
    /// The index of its entry (0 when it comes from a snapshot or the bootstrap).
    membership_index: LogIndex,
}

impl NodeView {
    /// (last term, last index): the order of §3.6.1's up-to-date comparison.
    fn last(&self) -> (Term, LogIndex) {
        (self.last_term, LogIndex(self.chain.len() as u64 - 1))
    }
}

/// Something applied at an index: who, the entry's term, its hash, and its client request.
#[derive(Clone, Copy, Debug)]
struct Applied {
    node: NodeId,
    term: Term,
    hash: u64,
    request: Option<(u64, u64)>,
}

/// Events the checks produce for the trace.
pub enum Event {
    /// A node's role or known leader changed.
    Role {
        /// The node.
        node: NodeId,
        /// Its role.
        role: Role,
        /// Its term.
        term: Term,
        /// The leader it knows.
        leader: Option<NodeId>,
    },
    /// A node's commit index moved.
    Commit {
        /// The node.
        node: NodeId,
        /// The new commit index.
        commit: LogIndex,
    },
    /// A node voted (its vote is now durable, unless a bug forgets it).
    Vote {
        /// The voter.
        node: NodeId,
        /// The term.
        term: Term,
        /// The candidate.
        candidate: NodeId,
    },
}

/// The state behind every check.
#[derive(Debug, Default)]
pub struct Checks {
    nodes: BTreeMap<NodeId, NodeView>,
    leaders: BTreeMap<Term, NodeId>,
    /// (index, term) -> chain, for every entry any node stored.
    chains: HashMap<(u64, u64), u64>,
    /// committed[i - 1] = (chain at i, term in which i was first known committed).
    committed: Vec<(u64, Term)>,
    applied: Vec<Option<Applied>>,
    /// The command of every applied entry, as first applied (what the watch check replays).
    commands: Vec<Option<bytes::Bytes>>,
    violations: Vec<Violation>,
    /// The leases the nodes report, checked after every step.
    leases: super::leases::Leases,
    /// Per node, when it came to know a leader and when it stopped (a crash and a restart
    /// included), as its own API saw it: what require-leader watches are judged by.
    leader_known: BTreeMap<NodeId, Vec<(Duration, bool)>>,
    /// The configuration of the highest configuration entry any node applied (the bootstrap
    /// one, at index 0, until then).
    membership: (LogIndex, Membership),
    /// Counts changes of `membership` and of any node's configuration.
    configurations_changed: u64,
}

impl Checks {
    /// The cluster starts with `membership`.
    pub fn bootstrap(&mut self, membership: Membership) {
        self.membership = (LogIndex(0), membership);
    }

    /// The configuration the cluster last applied: the latest committed one that any node
    /// has applied so far.
    pub fn membership(&self) -> &Membership {
        &self.membership.1
    }

    /// Counts changes of any configuration: the applied one, or one a node uses.
    pub fn configurations_changed(&self) -> u64 {
        self.configurations_changed
    }

    /// The configurations a quorum must hold a majority of now: the one the cluster last
    /// applied, and each newer one the nodes `nodes` use (the latest in a log, committed or
    /// not: a node appends a configuration and uses it at once, §4.1). An older one a node
    /// still uses (a removed node that restarted) decides nothing: the voters that applied a
    /// newer one refuse its candidates.
    pub fn deciding_configurations(&self, nodes: impl Iterator<Item = NodeId>) -> Vec<Membership> {
        let mut all = vec![self.membership.1.clone()];
        for view in nodes.filter_map(|n| self.nodes.get(&n)) {
            if view.membership_index > self.membership.0 && !all.contains(&view.membership) {
                all.push(view.membership.clone());
            }
        }
        all
    }

    /// The violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Records a violation from outside (a failed node, a lost write).
    pub fn violate(&mut self, violation: Violation) {
        self.violations.push(violation);
    }

    /// The leader of every term seen.
    pub fn leaders(&self) -> &BTreeMap<Term, NodeId> {
        &self.leaders
    }

    /// The highest index known committed.
    pub fn commit_index(&self) -> LogIndex {
        LogIndex(self.committed.len() as u64)
    }

    /// The current leader with the highest term, by the nodes' own account.
    pub fn current_leader(&self) -> Option<(NodeId, Term)> {
        self.nodes
            .iter()
            .filter(|(_, v)| v.role == Some(Role::Leader))
            .max_by_key(|(_, v)| v.term)
            .map(|(id, v)| (*id, v.term))
    }

    /// Nodes that currently consider themselves leader.
    pub fn leaders_now(&self) -> Vec<(NodeId, Term)> {
        self.nodes
            .iter()
            .filter(|(_, v)| v.role == Some(Role::Leader))
            .map(|(id, v)| (*id, v.term))
            .collect()
    }

    /// The leader all of `nodes` know, if one of them leads and has committed an entry of its
    /// term; else what each knows: (node, leader, term).
    pub fn leader_of(
        &self,
        nodes: &[NodeId],
    ) -> Result<NodeId, Vec<(NodeId, Option<NodeId>, Term)>> {
        let view = |n: &NodeId| self.nodes.get(n);
        let leader = nodes.iter().find(|n| view(n).is_some_and(|v| v.role == Some(Role::Leader)));
        let agreed = leader.filter(|l| {
            let term = view(l).map(|v| v.term);
            let known = nodes.iter().all(|n| view(n).is_some_and(|v| v.leader == Some(**l)));
            // Commits are recorded with the term in which each index was first known
            // committed, in index order.
            let committed = term.is_some_and(|term| {
                self.committed.iter().rev().take_while(|(_, t)| *t >= term).any(|(_, t)| *t == term)
            });
            known && committed
        });
        agreed.copied().ok_or_else(|| {
            nodes
                .iter()
                .map(|n| (*n, view(n).and_then(|v| v.leader), view(n).map_or(Term(0), |v| v.term)))
                .collect()
        })
    }

    /// The last index `node` reported stored before it last went down.
    pub fn stored_last(&self, node: NodeId) -> Option<LogIndex> {
        self.nodes.get(&node).map(|view| view.last().1)
    }

    /// Per node, when it came to know a leader (true) and when it stopped (false).
    pub fn leader_known(&self) -> &BTreeMap<NodeId, Vec<(Duration, bool)>> {
        &self.leader_known
    }

    fn knows_leader(&mut self, node: NodeId, knows: bool, at: Duration) {
        let timeline = self.leader_known.entry(node).or_default();
        if timeline.last().is_none_or(|(_, last)| *last != knows) {
            timeline.push((at, knows));
        }
    }

    /// A node went down at `at`: it no longer leads anything, nor knows a leader.
    pub fn crashed(&mut self, node: NodeId, at: Duration) {
        self.knows_leader(node, false, at);
        if let Some(view) = self.nodes.get_mut(&node) {
            view.role = None;
        }
        self.leases.crashed(node);
    }

    /// A node's lease as it reported it: until `until` on its own clock, or none.
    pub fn lease(&mut self, node: NodeId, term: Term, until: Option<Duration>) {
        self.leases.report(node, term, until);
    }

    /// The leases the nodes hold, and their safety margin.
    pub fn leases(&self) -> &super::leases::Leases {
        &self.leases
    }

    /// Checks that no node holds a valid lease (by its clock, which `local` reads) while
    /// another leads a later term. (Two valid leases at once are a special case.)
    pub fn check_leases(&mut self, at: Duration, local: impl Fn(NodeId) -> Duration) {
        let newest = self.current_leader();
        if let Some(overlap) = self.leases.check(at, newest, local) {
            let leader = newest.expect("an overlap needs a newer leader");
            let super::leases::Overlap { holder, left } = overlap;
            self.violations.push(Violation::LeaseOverlap { holder, leader, left, at });
        }
    }

    /// A node (re)started from storage: rebuild its view from its log.
    pub fn started(&mut self, node: &Node, at: Duration) {
        let log = node.log();
        let snapshot = log.snapshot();
        let mut view = NodeView {
            role: Some(node.role()),
            term: node.term(),
            commit: log.commit(),
            membership: node.membership().clone(),
            membership_index: node.membership_index(),
            ..NodeView::default()
        };
        self.configurations_changed += 1;
        view.chain = self.committed_chain_through(snapshot.index);
        view.last_term = snapshot.term;
        let mut index = log.first_index();
        let mut entries = Vec::new();
        while let Some(entry) = log.entry(index) {
            entries.push(entry.clone());
            index = index.next();
        }
        self.nodes.insert(node.id(), view);
        self.append(node.id(), &entries, at);
        self.knows_leader(node.id(), node.leader().is_some(), at);
    }

    /// Checks one processed `Ready` of `node`. Returns events for the trace.
    pub fn ready(&mut self, node: &Node, ready: &Ready, at: Duration) -> Vec<Event> {
        let id = node.id();
        let mut events = Vec::new();
        if node.role() == Role::Leader && ready.entries.iter().any(|e| e.kind == EntryKind::Config)
        {
            let commit = self.nodes.get(&id).map_or(LogIndex(0), |v| v.commit);
            self.check_quorums_overlap(node, &ready.entries, commit, at);
        }
        if let Some(snapshot) = &ready.snapshot {
            let chain = self.committed_chain_through(snapshot.meta.index);
            let view = self.nodes.entry(id).or_default();
            view.chain = chain;
            view.last_term = snapshot.meta.term;
        }
        if !ready.entries.is_empty() {
            self.append(id, &ready.entries, at);
        }
        let view = self.nodes.entry(id).or_default();
        view.term = node.term();
        // A configuration folded into a snapshot keeps its content and loses its index (0).
        if view.membership_index != node.membership_index() || view.membership != *node.membership()
        {
            view.membership = node.membership().clone();
            view.membership_index = node.membership_index();
            self.configurations_changed += 1;
        }
        if let Some(soft) = ready.soft_state {
            view.role = Some(soft.role);
            view.leader = soft.leader;
            self.knows_leader(id, soft.leader.is_some(), at);
            events.push(Event::Role {
                node: id,
                role: soft.role,
                term: node.term(),
                leader: soft.leader,
            });
            if soft.role == Role::Leader {
                self.check_election_safety(id, node.term(), at);
            }
        }
        if let Some(hard_state) = ready.hard_state {
            let view = self.nodes.get_mut(&id).expect("inserted above");
            if let Some(candidate) = hard_state.vote
                && candidate != id
                && view.vote != hard_state.vote
            {
                events.push(Event::Vote { node: id, term: hard_state.term, candidate });
            }
            view.vote = hard_state.vote;
            if hard_state.commit < view.commit {
                let from = view.commit;
                self.violations.push(Violation::CommitDecreased {
                    node: id,
                    from,
                    to: hard_state.commit,
                    at,
                });
            } else if hard_state.commit > view.commit {
                view.commit = hard_state.commit;
                events.push(Event::Commit { node: id, commit: hard_state.commit });
                self.check_commit(id, hard_state.commit, node.term(), at);
            }
        }
        if node.role() == Role::Leader {
            self.check_leader_completeness(id, node.term(), at);
        }
        events
    }

    /// Checks an applied entry (State Machine Safety).
    pub fn applied(&mut self, node: NodeId, entry: &Entry, at: Duration) {
        let slot = entry.index.0 as usize;
        if self.applied.len() <= slot {
            self.applied.resize(slot + 1, None);
        }
        let hash = hash_bytes(&entry.data);
        match self.applied[slot] {
            None => {
                // A configuration is Raft's, not a command: the state machine skips it as it
                // skips a no-op.
                let command = match entry.kind {
                    EntryKind::Config => bytes::Bytes::new(),
                    EntryKind::Command => entry.data.clone(),
                };
                if entry.kind == EntryKind::Config
                    && entry.index > self.membership.0
                    && let Ok(membership) = Membership::decode(&entry.data)
                {
                    self.membership = (entry.index, membership);
                    self.configurations_changed += 1;
                }
                let request = match LogSlot::of(&command) {
                    LogSlot::Request(client, seq) => Some((client, seq)),
                    LogSlot::Other | LogSlot::Unknown => None,
                };
                self.applied[slot] = Some(Applied { node, term: entry.term, hash, request });
                if self.commands.len() <= slot {
                    self.commands.resize(slot + 1, None);
                }
                self.commands[slot] = Some(command);
            }
            Some(first) if first.term != entry.term || first.hash != hash => {
                self.violations.push(Violation::StateMachineSafety {
                    index: entry.index,
                    first: (first.node, first.term),
                    second: (node, entry.term),
                    at,
                });
            }
            Some(_) => {}
        }
    }

    /// The commands of the committed log from index 1, up to the first entry no node was seen
    /// applying (a node that restored a snapshot skips entries).
    pub fn committed_commands(&self) -> Vec<bytes::Bytes> {
        (1..=self.committed.len())
            .map_while(|index| self.commands.get(index).cloned().flatten())
            .collect()
    }

    /// The committed log from index 1, as far as sessions go (`resolved.rs`).
    pub fn committed_log(&self) -> Vec<LogSlot> {
        (1..=self.committed.len())
            .map(|index| match self.applied.get(index).copied().flatten() {
                None => LogSlot::Unknown,
                Some(Applied { request: Some((client, seq)), .. }) => LogSlot::Request(client, seq),
                Some(_) => LogSlot::Other,
            })
            .collect()
    }

    /// Checks that a write acknowledged at `index` for (client, seq) is in the committed log.
    pub fn check_acked(&mut self, client: u64, seq: u64, index: LogIndex) {
        let applied = self.applied.get(index.0 as usize).copied().flatten();
        let committed = index <= self.commit_index();
        let ok = committed && applied.and_then(|a| a.request) == Some((client, seq));
        if !ok {
            let found = match applied {
                Some(a) if committed => match a.request {
                    Some((c, s)) => format!("client {c} request {s} (term {})", a.term),
                    None => format!("a no-op of term {}", a.term),
                },
                _ => "nothing committed".into(),
            };
            self.violations.push(Violation::AckedWriteLost { client, seq, index, found });
        }
    }

    fn append(&mut self, id: NodeId, entries: &[Entry], at: Duration) {
        let Some(first) = entries.first() else { return };
        let view = self.nodes.entry(id).or_default();
        let keep = (first.index.0 as usize).min(view.chain.len());
        view.chain.truncate(keep.max(1));
        if view.chain.is_empty() {
            view.chain.push(0);
        }
        for entry in entries {
            if view.chain.len() as u64 != entry.index.0 {
                // The log has a hole (a restore we could not reconstruct); stop tracking it.
                break;
            }
            let previous = *view.chain.last().expect("chain[0] exists");
            let chain = mix(previous, entry.term.0, hash_bytes(&entry.data));
            view.chain.push(chain);
            view.last_term = entry.term;
            match self.chains.get(&(entry.index.0, entry.term.0)) {
                Some(seen) if *seen != chain => {
                    self.violations.push(Violation::LogMatching {
                        node: id,
                        index: entry.index,
                        term: entry.term,
                        at,
                    });
                }
                Some(_) => {}
                None => {
                    self.chains.insert((entry.index.0, entry.term.0), chain);
                }
            }
        }
    }

    fn check_election_safety(&mut self, id: NodeId, term: Term, at: Duration) {
        match self.leaders.get(&term) {
            Some(first) if *first != id => {
                self.violations.push(Violation::ElectionSafety {
                    term,
                    first: *first,
                    second: id,
                    at,
                });
            }
            Some(_) => {}
            None => {
                self.leaders.insert(term, id);
            }
        }
    }

    /// A node reports commit index `commit` in `term`: its prefix must agree with the committed
    /// log, and extends it.
    fn check_commit(&mut self, id: NodeId, commit: LogIndex, term: Term, at: Duration) {
        let view = &self.nodes[&id];
        let known = self.committed.len() as u64;
        let check_at = commit.0.min(known);
        if check_at > 0 {
            let mine = view.chain.get(check_at as usize).copied();
            if mine != Some(self.committed[check_at as usize - 1].0) {
                self.violations.push(Violation::CommittedChanged {
                    node: id,
                    index: LogIndex(check_at),
                    at,
                });
                return;
            }
        }
        let newest_term = self.committed.last().map(|(_, t)| *t);
        for index in known + 1..=commit.0 {
            let Some(chain) = view.chain.get(index as usize) else { break };
            self.committed.push((*chain, term));
        }
        if self.committed.len() as u64 > known && newest_term.is_none_or(|t| t < term) {
            self.leases.first_commit(term, at);
        }
        if self.committed.len() as u64 > known {
            self.check_committed_safe(at);
        }
    }

    /// The newest committed entry is electorally safe: every node lacking it that could
    /// campaign (a voter of its own configuration) is refused by enough voters of that
    /// configuration, each with a strictly more up-to-date log (§3.6.1), that it cannot win
    /// (§4.1: a node uses the configuration in its log). Nodes holding the entry refuse first:
    /// with one configuration, the node lacking it with the most up-to-date log is refused by
    /// holders alone. (An older committed entry is lacked only by nodes that also lack the
    /// newest.)
    fn check_committed_safe(&mut self, at: Duration) {
        let index = self.committed.len();
        let chain = self.committed[index - 1].0;
        for (id, view) in &self.nodes {
            if view.chain.get(index) == Some(&chain) || !view.membership.is_voter(*id) {
                continue;
            }
            let last = view.last();
            let refuses = |v: NodeId| self.nodes.get(&v).is_some_and(|w| w.last() > last);
            if !configs::blocked(&view.membership, refuses) {
                let members = view.membership.voters.iter().chain(&view.membership.outgoing);
                let outvoting = members.filter(|v| refuses(**v)).count();
                self.violations.push(Violation::CommittedNotSafe {
                    index: LogIndex(index as u64),
                    node: *id,
                    last,
                    outvoting,
                    at,
                });
                return;
            }
        }
    }

    /// A leader appending a configuration: its quorums must meet those of every
    /// configuration that may still decide — the one in effect at its commit index `commit`
    /// (as of its last `Ready`) and every one appended after it (`configs.rs`).
    fn check_quorums_overlap(
        &mut self,
        node: &Node,
        entries: &[Entry],
        commit: LogIndex,
        at: Duration,
    ) {
        let log = node.log();
        let mut deciding = vec![(commit, node.membership_at(commit))];
        let mut index = commit.next();
        let last = entries.last().map_or(commit, |e| e.index);
        while index <= last {
            let Some(entry) = log.entry(index) else { break };
            if entry.kind == EntryKind::Config
                && let Ok(config) = Membership::decode(&entry.data)
            {
                if let Some(other) =
                    deciding.iter().find(|(_, other)| !configs::quorums_overlap(&config, other))
                {
                    self.violations.push(Violation::QuorumsDisjoint {
                        leader: node.id(),
                        config: (index, config),
                        other: other.clone(),
                        at,
                    });
                    return;
                }
                deciding.push((index, config));
            }
            index = index.next();
        }
    }

    /// Leader Completeness: a leader of term T holds every entry committed in a term before T.
    fn check_leader_completeness(&mut self, id: NodeId, term: Term, at: Duration) {
        // Commit terms never decrease along the log, so the entries committed before `term`
        // form a prefix.
        let k = self.committed.partition_point(|(_, t)| *t < term);
        if k == 0 {
            return;
        }
        let view = &self.nodes[&id];
        let (chain, committed_in) = self.committed[k - 1];
        if view.chain.get(k).copied() != Some(chain) {
            self.violations.push(Violation::LeaderCompleteness {
                leader: id,
                term,
                index: LogIndex(k as u64),
                committed_in,
                at,
            });
        }
    }

    /// The chain through `index` as committed (a snapshot covers only committed entries).
    fn committed_chain_through(&self, index: LogIndex) -> Vec<u64> {
        let mut chain = vec![0];
        chain.extend(self.committed.iter().take(index.0 as usize).map(|(c, _)| *c));
        chain
    }
}

fn hash_bytes(data: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in data {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn mix(previous: u64, term: u64, data: u64) -> u64 {
    let mut z = previous ^ term.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ data.rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
