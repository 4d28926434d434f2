//! The Figure 8 sequence (§3.6.2) as a targeted nemesis. Random faults rarely make it: a
//! leader must replicate entries of its term to a minority only, lose its leadership to a
//! node that never saw them and appends entries of a newer term no one else holds, and then
//! a node of the old minority must win and replicate the old-term tail to a majority while
//! the newer leader, whose last term is higher, can still come back and win. Correct Raft
//! commits the old tail only through an entry of the new leader's own term (§3.6.2); a leader
//! that counts replicas of an old-term entry commits what the returning node overwrites.

use std::time::Duration;

use super::{Nemesis, Timed, Undo, both_ways, shuffle};
use crate::faults::{Cut, Faults};
use crate::raft::Role;
use crate::sim::checks::Event;

/// A Figure 8 episode in progress.
pub(super) struct Figure8 {
    /// The old leader and the nodes cut off with it.
    minority: Vec<usize>,
    phase: Phase,
}

enum Phase {
    /// The minority is cut off; waiting for the rest to elect a leader.
    RestElects(Cut),
    /// The rest's leader is cut off at once, before it replicates, and the split is healed;
    /// waiting for a node of the old minority to win.
    OldTail(Cut),
    /// An old-minority node won; the cut-off leader comes back on a timer.
    Done,
}

impl Nemesis {
    /// Cuts the leader and `(n - 1) / 2 - 1` others off from the rest, while clients still
    /// write to the leader: its new entries reach a minority only.
    pub(super) fn start_figure8(&mut self, f: &mut impl Faults) -> Undo {
        let Some(leader) = f.leader().filter(|_| self.figure8.is_none()) else {
            return Undo::Nothing;
        };
        let n = f.nodes().len();
        let mut others: Vec<usize> = (0..n).filter(|x| *x != leader).collect();
        shuffle(&mut others, &mut self.rng);
        let size = ((n - 1) / 2).max(1);
        let mut minority = vec![leader];
        minority.extend(others.drain(..size - 1));
        let cut = Self::cut_of(f, &both_ways(&minority, &others));
        let names = f.nodes();
        let side: Vec<&str> = minority.iter().map(|x| names[*x].as_str()).collect();
        f.note(&format!("start figure 8: cut off {{{}}} with the leader", side.join(",")));
        let _ = f.cut(&cut);
        self.figure8 = Some(Figure8 { minority, phase: Phase::RestElects(cut) });
        Undo::EndFigure8
    }

    /// Moves the episode on when a node wins an election.
    pub(super) fn react_figure8(&mut self, f: &mut impl Faults, events: &[Event]) {
        let ms = Duration::from_millis;
        for event in events {
            let Event::Role { node, role: Role::Leader, .. } = event else { continue };
            let node = node.0 as usize - 1;
            let Some(episode) = self.figure8.as_mut() else { return };
            let old_side = episode.minority.contains(&node);
            match &episode.phase {
                Phase::RestElects(split) if !old_side => {
                    let split = split.clone();
                    f.note(&format!("cut off {} (figure 8: the new leader)", f.nodes()[node]));
                    let (alone, _) = f.isolate(node);
                    f.note("heal the figure 8 split");
                    let _ = f.heal(&split);
                    episode.phase = Phase::OldTail(alone);
                }
                Phase::OldTail(alone) if old_side => {
                    // The cut-off leader comes back while the old tail is being replicated;
                    // half the time the winner is also crashed, so the returning leader can
                    // win and overwrite what was wrongly committed.
                    let alone = alone.clone();
                    episode.phase = Phase::Done;
                    let now = f.now();
                    let back = self.rng.duration(ms(100), ms(400));
                    self.timed.push((now + back, Timed::Heal(alone)));
                    if self.rng.chance(0.5) {
                        let at = now + self.rng.duration(ms(20), ms(100));
                        let down = self.rng.duration(ms(100), ms(600));
                        self.timed.push((at, Timed::Crash(node, down)));
                    }
                }
                _ => {}
            }
        }
    }

    /// At the episode's end: heals what it still holds cut.
    pub(super) fn end_figure8(&mut self, f: &mut impl Faults) {
        let Some(episode) = self.figure8.take() else { return };
        f.note("end figure 8");
        match episode.phase {
            Phase::RestElects(cut) | Phase::OldTail(cut) => {
                let _ = f.heal(&cut);
            }
            Phase::Done => {}
        }
    }
}
