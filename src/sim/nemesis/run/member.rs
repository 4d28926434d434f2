//! Membership faults: what an operator does to a cluster, asked of its leader through the
//! fault primitives (`Faults::change_membership`), which ask again while the leader cannot
//! take a change yet. A replacement asks for the removal and the addition back to back, as
//! an operator replacing a dead machine does: a correct leader takes the second only once
//! the first is committed (§4.2), a leader with two changes in flight risks two disjoint
//! quorums.

use super::{Nemesis, Undo};
use crate::faults::Faults;
use crate::raft::{MembershipChange, NodeId};
use crate::sim::nemesis::MemberFault;

/// Fewer voters than this are not shrunk: a cluster of three still survives a crash.
const MIN_VOTERS: usize = 3;

fn id(node: usize) -> NodeId {
    NodeId(node as u64 + 1)
}

impl Nemesis {
    /// Starts a membership fault; what to do when it ends.
    pub(super) fn start_member(&mut self, f: &mut impl Faults, fault: MemberFault) -> Undo {
        let Some(membership) = f.membership() else { return Undo::Nothing };
        match fault {
            MemberFault::Grow => {
                let Some(spare) = f.fresh_node() else {
                    f.note("grow: no spare node left");
                    return Undo::Nothing;
                };
                f.note(&format!("grow: add {} as a learner", f.nodes()[spare]));
                let _ = f.change_membership(MembershipChange::AddLearner(id(spare)));
                Undo::Promote(spare)
            }
            MemberFault::Shrink(leader) => {
                if membership.is_joint() || membership.voters.len() <= MIN_VOTERS {
                    return Undo::Nothing;
                }
                let Some(victim) = self.voter(f, &membership, leader) else { return Undo::Nothing };
                f.note(&format!("shrink: remove {}", f.nodes()[victim]));
                let _ = f.change_membership(MembershipChange::Remove(id(victim)));
                Undo::Nothing
            }
            MemberFault::Replace(leader) => {
                if membership.is_joint() {
                    return Undo::Nothing;
                }
                let Some(victim) = self.voter(f, &membership, leader) else { return Undo::Nothing };
                let Some(spare) = f.fresh_node() else {
                    f.note("replace: no spare node left");
                    return Undo::Nothing;
                };
                let crashed = Self::crash(f, victim, "to be replaced");
                let names = f.nodes();
                f.note(&format!("replace {} with {}", names[victim], names[spare]));
                let _ = f.change_membership(MembershipChange::Remove(id(victim)));
                let _ = f.change_membership(MembershipChange::AddVoter(id(spare)));
                if crashed { Undo::Restart(victim) } else { Undo::Nothing }
            }
        }
    }

    /// Promotes a learner added by a grow fault.
    pub(super) fn promote(f: &mut impl Faults, node: usize) {
        f.note(&format!("grow: promote {}", f.nodes()[node]));
        let _ = f.change_membership(MembershipChange::AddVoter(id(node)));
    }

    /// The leader (if `leader` and there is one), or a voter other than it, drawn.
    fn voter(
        &mut self,
        f: &mut impl Faults,
        membership: &crate::raft::Membership,
        leader: bool,
    ) -> Option<usize> {
        let current = f.leader();
        if leader {
            return current;
        }
        let others: Vec<usize> = membership
            .voters
            .iter()
            .map(|v| v.0 as usize - 1)
            .filter(|v| Some(*v) != current && *v < f.nodes().len())
            .collect();
        (!others.is_empty()).then(|| others[self.rng.below(others.len() as u64) as usize])
    }
}
