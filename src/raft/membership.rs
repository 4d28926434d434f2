//! Cluster membership (dissertation chapter 4): who votes, who only learns, and the
//! configurations the log holds.
//!
//! A configuration is a log entry, written whole (not as a delta), and takes effect on every
//! server as soon as it is in that server's log, committed or not (§4.1): a server always
//! uses the latest configuration in its log. When a truncation removes a configuration entry,
//! the server falls back to the latest one still in its log, or to the one its snapshot
//! recorded, or to the bootstrap configuration it started with.
//!
//! Two kinds of change are made. A single-server change (§4.2) adds or removes one voter: any
//! majority of the old voters and any majority of the new ones overlap, so the change needs
//! no intermediate step, provided one is in flight at a time and the leader has committed an
//! entry of its own term first (the rule Ongaro's raft-dev post of July 2015 added). An
//! arbitrary change goes through joint consensus (§4.3): the configuration C_old,new needs a
//! majority of both the old and the new voters for elections and commitment; once it is
//! committed the leader appends C_new. Learners receive the log and count in no majority.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::Bytes;

use super::quorum::{self, VoteResult};
use super::types::{LogIndex, NodeId};

/// One configuration: the voters, the outgoing voters while joint (§4.3), and the learners.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// The voters (C_new while joint).
    pub voters: BTreeSet<NodeId>,
    /// The old voters while the configuration is joint (C_old of C_old,new); empty otherwise.
    pub outgoing: BTreeSet<NodeId>,
    /// Members that receive the log but never vote or count towards a majority.
    pub learners: BTreeSet<NodeId>,
    /// What the server keeps of each member with the configuration (raftbed's etcd API: its
    /// name and URLs), opaque to the core. A configuration names its servers and how to
    /// reach them (§4.1), so a node that restarts or joins learns its peers' addresses from
    /// its log. Empty for a configuration made without them (the bootstrap one, the
    /// simulator's changes).
    pub attrs: BTreeMap<NodeId, String>,
}

/// A change a leader is asked to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add a learner (§4.2.1: a new server catches up before it votes).
    AddLearner(NodeId),
    /// Add a voter, or promote a learner that has caught up: a single-server change (§4.2).
    AddVoter(NodeId),
    /// Remove a voter or a learner: a single-server change; the leader may remove itself
    /// (§4.2.2).
    Remove(NodeId),
    /// Change only what the server keeps of a member (`Membership::attrs`): etcd's
    /// MemberUpdate and a member publishing its name.
    Update(NodeId),
    /// Move to these voters and learners through joint consensus (§4.3).
    Joint {
        /// The new voters.
        voters: BTreeSet<NodeId>,
        /// The new learners.
        learners: BTreeSet<NodeId>,
    },
}

impl fmt::Display for MembershipChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipChange::AddLearner(id) => write!(f, "add learner {id}"),
            MembershipChange::AddVoter(id) => write!(f, "add voter {id}"),
            MembershipChange::Remove(id) => write!(f, "remove {id}"),
            MembershipChange::Update(id) => write!(f, "update {id}"),
            MembershipChange::Joint { voters, learners } => {
                write!(f, "joint to voters {}", list(voters))?;
                if !learners.is_empty() {
                    write!(f, " learners {}", list(learners))?;
                }
                Ok(())
            }
        }
    }
}

fn list(ids: &BTreeSet<NodeId>) -> String {
    let names: Vec<String> = ids.iter().map(ToString::to_string).collect();
    format!("({})", names.join(" "))
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "voters={}", list(&self.voters))?;
        if self.is_joint() {
            write!(f, "&&{}", list(&self.outgoing))?;
        }
        if !self.learners.is_empty() {
            write!(f, " learners={}", list(&self.learners))?;
        }
        Ok(())
    }
}

impl Membership {
    /// A configuration of `voters` alone.
    pub fn of_voters(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership { voters: voters.into_iter().collect(), ..Membership::default() }
    }

    /// Whether this is C_old,new (§4.3).
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether `id` votes (in either half of a joint configuration).
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing.contains(&id)
    }

    /// Whether `id` is a voter or a learner.
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.contains(&id)
    }

    /// Every member, voters of both halves and learners, once each, in id order.
    pub fn members(&self) -> Vec<NodeId> {
        let mut all: Vec<NodeId> =
            self.voters.iter().chain(&self.outgoing).chain(&self.learners).copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Every member, without allocating: a voter of both halves of a joint configuration
    /// comes twice.
    pub fn each_member(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(&self.outgoing).chain(&self.learners).copied()
    }

    /// Whether this configuration is the only voter `id`, alone: it commits and reads on its
    /// own.
    pub fn is_single_voter(&self, id: NodeId) -> bool {
        !self.is_joint() && self.voters.len() == 1 && self.voters.contains(&id)
    }

    /// The largest index a majority of the voters holds, by `matched`; while joint, of both
    /// halves (§4.3).
    pub fn committed_index(&self, matched: impl Fn(NodeId) -> LogIndex) -> LogIndex {
        // On the stack: this runs on every acknowledgement a leader receives.
        let of = |voters: &BTreeSet<NodeId>| {
            let mut stack = [LogIndex(0); 16];
            if voters.len() <= stack.len() {
                for (slot, voter) in stack.iter_mut().zip(voters) {
                    *slot = matched(*voter);
                }
                return quorum::committed_index(&stack[..voters.len()]);
            }
            let indexes: Vec<LogIndex> = voters.iter().map(|v| matched(*v)).collect();
            quorum::committed_index(&indexes)
        };
        let new = of(&self.voters);
        if self.is_joint() { new.min(of(&self.outgoing)) } else { new }
    }

    /// The election's outcome so far; while joint, it is won only when both halves grant
    /// (§4.3).
    pub fn vote_result(&self, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        let voters: Vec<NodeId> = self.voters.iter().copied().collect();
        let new = quorum::vote_result(&voters, votes);
        if !self.is_joint() {
            return new;
        }
        let outgoing: Vec<NodeId> = self.outgoing.iter().copied().collect();
        match (new, quorum::vote_result(&outgoing, votes)) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }

    /// Whether the members `heard` include a majority of the voters (of both halves while
    /// joint): check-quorum and ReadIndex rounds.
    pub fn has_quorum(&self, heard: impl Fn(NodeId) -> bool) -> bool {
        let majority = |voters: &BTreeSet<NodeId>| {
            voters.iter().filter(|v| heard(**v)).count() > voters.len() / 2
        };
        majority(&self.voters) && (!self.is_joint() || majority(&self.outgoing))
    }

    /// The configuration `change` leads to from this one, or why it cannot be made.
    ///
    /// # Errors
    /// A change of a joint configuration (it must be left first), a member added twice, a
    /// non-member removed, no voter left, or a learner that would also vote.
    pub fn apply(&self, change: &MembershipChange) -> Result<Membership, String> {
        if self.is_joint() {
            return Err(format!("{self} is joint: it must be left before another change"));
        }
        let mut next = self.clone();
        match change {
            MembershipChange::AddLearner(id) => {
                if self.contains(*id) {
                    return Err(format!("{id} is already a member of {self}"));
                }
                next.learners.insert(*id);
            }
            MembershipChange::AddVoter(id) => {
                if self.voters.contains(id) {
                    return Err(format!("{id} is already a voter of {self}"));
                }
                next.learners.remove(id);
                next.voters.insert(*id);
            }
            MembershipChange::Remove(id) => {
                if !self.contains(*id) {
                    return Err(format!("{id} is not a member of {self}"));
                }
                next.voters.remove(id);
                next.learners.remove(id);
            }
            MembershipChange::Update(id) => {
                if !self.contains(*id) {
                    return Err(format!("{id} is not a member of {self}"));
                }
            }
            MembershipChange::Joint { voters, learners } => {
                if let Some(both) = voters.intersection(learners).next() {
                    return Err(format!("{both} cannot be both voter and learner"));
                }
                if let Some(demoted) = self.voters.intersection(learners).next() {
                    return Err(format!("{demoted} cannot go from voter to learner"));
                }
                next = Membership {
                    voters: voters.clone(),
                    outgoing: self.voters.clone(),
                    learners: learners.clone(),
                    attrs: self.attrs.clone(),
                };
            }
        }
        next.keep_members_attrs();
        if next.voters.is_empty() {
            return Err(format!("{change} would leave no voter"));
        }
        if next.voters.contains(&NodeId(0)) || next.learners.contains(&NodeId(0)) {
            return Err("node id 0 is never a member".into());
        }
        Ok(next)
    }

    /// C_new, once C_old,new is committed (§4.3).
    pub fn leave_joint(&self) -> Membership {
        let mut next = Membership { outgoing: BTreeSet::new(), ..self.clone() };
        next.keep_members_attrs();
        next
    }

    /// Drops the attributes of servers that are no longer members.
    pub fn keep_members_attrs(&mut self) {
        if self.attrs.keys().any(|id| !self.contains(*id)) {
            let attrs = std::mem::take(&mut self.attrs);
            self.attrs = attrs.into_iter().filter(|(id, _)| self.contains(*id)).collect();
        }
    }

    /// The entry data that carries this configuration: `voters=1,2,3;outgoing=;learners=4`,
    /// then `;attrs=4:HEX,...` when members have attributes (hex, so that they may hold any
    /// character).
    pub fn encode(&self) -> Bytes {
        let ids = |set: &BTreeSet<NodeId>| {
            set.iter().map(|id| id.0.to_string()).collect::<Vec<_>>().join(",")
        };
        let text = format!(
            "voters={};outgoing={};learners={}",
            ids(&self.voters),
            ids(&self.outgoing),
            ids(&self.learners)
        );
        if self.attrs.is_empty() {
            return Bytes::from(text);
        }
        let attrs: Vec<String> =
            self.attrs.iter().map(|(id, attrs)| format!("{}:{}", id.0, hex(attrs))).collect();
        Bytes::from(format!("{text};attrs={}", attrs.join(",")))
    }

    /// The configuration `encode` wrote.
    ///
    /// # Errors
    /// Data that is not an encoded configuration, naming what is wrong.
    pub fn decode(data: &[u8]) -> Result<Membership, String> {
        let text = std::str::from_utf8(data).map_err(|_| "configuration is not UTF-8")?;
        let mut parts = text.split(';');
        let mut field = |name: &str| -> Result<BTreeSet<NodeId>, String> {
            let part = parts.next().ok_or(format!("configuration {text:?} lacks {name}"))?;
            let list = part
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .ok_or(format!("configuration {text:?}: expected {name}= in {part:?}"))?;
            list.split(',')
                .filter(|id| !id.is_empty())
                .map(|id| match id.parse::<u64>() {
                    Ok(n) if n > 0 => Ok(NodeId(n)),
                    _ => Err(format!("configuration {text:?}: bad node id {id:?}")),
                })
                .collect()
        };
        let mut membership = Membership {
            voters: field("voters")?,
            outgoing: field("outgoing")?,
            learners: field("learners")?,
            attrs: BTreeMap::new(),
        };
        if let Some(part) = parts.next() {
            let list = part
                .strip_prefix("attrs=")
                .ok_or(format!("configuration {text:?}: expected attrs= in {part:?}"))?;
            for item in list.split(',').filter(|item| !item.is_empty()) {
                let bad = || format!("configuration {text:?}: bad member attributes {item:?}");
                let (id, value) = item.split_once(':').ok_or_else(bad)?;
                let id = id.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(bad)?;
                membership.attrs.insert(NodeId(id), unhex(value).ok_or_else(bad)?);
            }
        }
        if parts.next().is_some() {
            return Err(format!("configuration {text:?} has more than four fields"));
        }
        if membership.voters.is_empty() {
            return Err(format!("configuration {text:?} has no voter"));
        }
        if let Some(stray) = membership.attrs.keys().find(|id| !membership.contains(**id)) {
            return Err(format!("configuration {text:?} has attributes of non-member {stray}"));
        }
        Ok(membership)
    }
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<String> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The configurations a node knows: the one as of its snapshot (or its bootstrap one), and
/// those in the log after it, by index. The latest is in effect (§4.1).
#[derive(Clone, Debug, Default)]
pub(super) struct Configurations {
    /// As of the snapshot's index (the bootstrap configuration before any).
    base: Membership,
    /// Configuration entries in the log after the snapshot.
    in_log: BTreeMap<LogIndex, Membership>,
}

impl Configurations {
    /// Starting from `base`, the snapshot's configuration or the bootstrap one.
    pub(super) fn new(base: Membership) -> Configurations {
        Configurations { base, in_log: BTreeMap::new() }
    }

    /// The configuration in effect: the latest in the log.
    pub(super) fn current(&self) -> &Membership {
        self.in_log.last_key_value().map_or(&self.base, |(_, m)| m)
    }

    /// The index of the latest configuration entry (0 when it comes from the snapshot or the
    /// bootstrap).
    pub(super) fn latest_index(&self) -> LogIndex {
        self.in_log.last_key_value().map_or(LogIndex(0), |(i, _)| *i)
    }

    /// The configuration in effect as of `index`.
    pub(super) fn at(&self, index: LogIndex) -> &Membership {
        self.in_log.range(..=index).next_back().map_or(&self.base, |(_, m)| m)
    }

    /// Forgets the configuration entries after `index` (a truncation removed them): the
    /// node reverts to the latest one still in its log (§4.1).
    pub(super) fn truncate_after(&mut self, index: LogIndex) {
        self.in_log.split_off(&index.next());
    }

    /// Forgets the configuration entries in `from..=to` (about to be recorded again from the
    /// log).
    pub(super) fn forget(&mut self, from: LogIndex, to: LogIndex) {
        if from <= to && self.in_log.range(from..=to).next().is_some() {
            self.in_log.retain(|index, _| !(from..=to).contains(index));
        }
    }

    /// Records the configuration entry at `index`.
    pub(super) fn record(&mut self, index: LogIndex, membership: Membership) {
        self.in_log.insert(index, membership);
    }

    /// The log was compacted through `index`: the configuration as of it becomes the base.
    pub(super) fn compact(&mut self, index: LogIndex) {
        self.base = self.at(index).clone();
        self.in_log = self.in_log.split_off(&index.next());
    }

    /// The log was replaced by a snapshot whose configuration is `base`.
    pub(super) fn restore(&mut self, base: Membership) {
        *self = Configurations::new(base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[u64]) -> BTreeSet<NodeId> {
        list.iter().map(|n| NodeId(*n)).collect()
    }

    #[test]
    fn a_joint_configuration_needs_both_majorities() {
        let joint =
            Membership { voters: ids(&[4, 5, 6]), outgoing: ids(&[1, 2, 3]), ..Default::default() };
        let matched = |id: NodeId| LogIndex(if id.0 <= 3 { 9 } else { 4 });
        assert_eq!(joint.committed_index(matched), LogIndex(4));
        let heard = |id: NodeId| [1, 2, 4].contains(&id.0);
        assert!(!joint.has_quorum(heard));
        let heard = |id: NodeId| [1, 2, 4, 5].contains(&id.0);
        assert!(joint.has_quorum(heard));
        let votes: BTreeMap<NodeId, bool> =
            [(1, true), (2, true), (4, true), (5, false), (6, false)]
                .map(|(id, granted)| (NodeId(id), granted))
                .into();
        assert_eq!(joint.vote_result(&votes), VoteResult::Lost);
    }

    #[test]
    fn changes_apply_as_the_dissertation_allows() {
        let three = Membership::of_voters(ids(&[1, 2, 3]));
        let learner = three.apply(&MembershipChange::AddLearner(NodeId(4))).unwrap();
        assert_eq!(learner.to_string(), "voters=(n1 n2 n3) learners=(n4)");
        let promoted = learner.apply(&MembershipChange::AddVoter(NodeId(4))).unwrap();
        assert_eq!(promoted.to_string(), "voters=(n1 n2 n3 n4)");
        let joint = three
            .apply(&MembershipChange::Joint { voters: ids(&[4, 5, 6]), learners: ids(&[]) })
            .unwrap();
        assert_eq!(joint.to_string(), "voters=(n4 n5 n6)&&(n1 n2 n3)");
        assert!(joint.apply(&MembershipChange::Remove(NodeId(1))).unwrap_err().contains("joint"));
        assert_eq!(joint.leave_joint().to_string(), "voters=(n4 n5 n6)");
        let alone = Membership::of_voters(ids(&[1]));
        assert!(
            alone.apply(&MembershipChange::Remove(NodeId(1))).unwrap_err().contains("no voter")
        );
        assert!(three.apply(&MembershipChange::Remove(NodeId(7))).is_err());
    }

    #[test]
    fn the_encoding_round_trips_and_refuses_garbage() {
        let joint = Membership {
            voters: ids(&[4]),
            outgoing: ids(&[1, 2]),
            learners: ids(&[9]),
            ..Default::default()
        };
        assert_eq!(&joint.encode()[..], b"voters=4;outgoing=1,2;learners=9");
        assert_eq!(Membership::decode(&joint.encode()), Ok(joint.clone()));
        let mut named = joint;
        named.attrs.insert(NodeId(9), "a;b=c,d:é".into());
        assert_eq!(Membership::decode(&named.encode()), Ok(named));
        for bad in [
            "",
            "voters=;outgoing=;learners=",
            "voters=1;outgoing=x;learners=",
            "voters=1",
            "voters=1;outgoing=;learners=;attrs=1:6",
            "voters=1;outgoing=;learners=;attrs=2:61",
            "voters=1;outgoing=;learners=;attrs=1:61;x",
        ] {
            assert!(Membership::decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn attributes_follow_their_members_through_changes() {
        let mut three = Membership::of_voters(ids(&[1, 2, 3]));
        three.attrs = (1..=3).map(|n| (NodeId(n), format!("n{n}"))).collect();
        let removed = three.apply(&MembershipChange::Remove(NodeId(2))).unwrap();
        assert_eq!(removed.attrs.keys().map(|id| id.0).collect::<Vec<_>>(), [1, 3]);
        let joint = three
            .apply(&MembershipChange::Joint { voters: ids(&[1, 4]), learners: ids(&[]) })
            .unwrap();
        assert_eq!(joint.attrs.len(), 3, "the outgoing voters keep theirs while joint");
        assert_eq!(joint.leave_joint().attrs.keys().map(|id| id.0).collect::<Vec<_>>(), [1]);
        assert_eq!(three.apply(&MembershipChange::Update(NodeId(3))).unwrap(), three);
        assert!(three.apply(&MembershipChange::Update(NodeId(5))).is_err());
    }

    #[test]
    fn a_truncated_configuration_reverts_to_the_latest_left() {
        let mut configs = Configurations::new(Membership::of_voters(ids(&[1, 2, 3])));
        configs.record(LogIndex(5), Membership::of_voters(ids(&[1, 2, 3, 4])));
        configs.record(LogIndex(8), Membership::of_voters(ids(&[2, 3, 4])));
        configs.truncate_after(LogIndex(7));
        assert_eq!(configs.current(), &Membership::of_voters(ids(&[1, 2, 3, 4])));
        configs.compact(LogIndex(6));
        configs.truncate_after(LogIndex(6));
        assert_eq!(configs.current(), &Membership::of_voters(ids(&[1, 2, 3, 4])));
        assert_eq!(configs.latest_index(), LogIndex(0));
    }
}
