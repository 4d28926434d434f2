//! The bridge election, a targeted nemesis for votes that do not survive a crash. A vote is
//! the promise that makes election safety hold (§3.4: at most one vote per term; Figure 3.1:
//! `votedFor` is persistent state, durable before the answer leaves); a node that forgets it
//! can elect two leaders in one term, but only if two candidates of that term each need it,
//! and random faults rarely line that up.
//!
//! The episode: the other nodes are split into two sides that cannot hear each other, and the
//! leader, the bridge, is crashed and restarted, so it leads no more but still reaches
//! everyone. Each side plus the bridge is a quorum, and neither side hears the other's
//! candidate, so both campaign for the bridge's vote. Every time the bridge votes, it is
//! crashed and restarted before the next step (a process killed and brought back at once:
//! what is in flight to it still arrives), and the candidate's messages to it are cut, so it
//! learns of no leader: a bridge that forgot its vote grants it again to the other side's
//! candidate of the same term, and both sides win it. A correct bridge refuses, and the other
//! side waits for a later term. Candidates the bridge refuses for their logs (§3.6.1) or
//! whose requests arrive in the same step as the first come back a term later, and the two
//! sides' terms meet again at the bridge, so the episode repeats the trick at every vote.

use std::time::Duration;

use super::{Nemesis, Timed, Undo, both_ways, shuffle};
use crate::faults::{Cut, Faults};
use crate::raft::Role;
use crate::sim::checks::Event;

/// How often the bridge is crashed again when it wins the election itself.
const RETRIES: u32 = 3;

/// A bridge election in progress.
pub(super) struct Bridge {
    /// The bridge.
    node: usize,
    /// The two sides' cut, undone at the end.
    sides: Cut,
    /// The cut from the last candidate the bridge voted for to the bridge.
    voted: Option<Cut>,
    /// Crashes left for a bridge that won.
    retries: u32,
}

impl Nemesis {
    /// Splits the followers into two sides around the leader, then crashes the leader and
    /// restarts it 20-80 ms later.
    pub(super) fn start_bridge(&mut self, f: &mut impl Faults) -> Undo {
        let Some(bridge) = f.leader().filter(|_| self.bridge.is_none()) else {
            return Undo::Nothing;
        };
        let n = f.nodes().len();
        let mut others: Vec<usize> = (0..n).filter(|x| *x != bridge).collect();
        if others.len() < 2 {
            return Undo::Nothing;
        }
        shuffle(&mut others, &mut self.rng);
        let (a, b) = others.split_at(others.len() / 2);
        let sides = Self::cut_of(f, &both_ways(a, b));
        let names = f.nodes();
        let side = |s: &[usize]| s.iter().map(|x| names[*x].as_str()).collect::<Vec<_>>().join(",");
        let text = format!(
            "start bridge election: {{{}}} | {{{}}} across {}",
            side(a),
            side(b),
            names[bridge]
        );
        f.note(&text);
        let _ = f.cut(&sides);
        self.bridge = Some(Bridge { node: bridge, sides, voted: None, retries: RETRIES });
        self.crash_bridge(f, bridge, Duration::from_millis(20), Duration::from_millis(80));
        Undo::EndBridge
    }

    /// Crashes the bridge and restarts it after a time drawn from `lo..hi`.
    fn crash_bridge(&mut self, f: &mut impl Faults, bridge: usize, lo: Duration, hi: Duration) {
        if Self::crash(f, bridge, "the bridge") {
            let back = f.now() + self.rng.duration(lo, hi);
            self.timed.push((back, Timed::Restart(bridge)));
        }
    }

    /// The bridge voted: crash it, bring it back at once with no leader, and keep the
    /// candidate's messages from it (the last candidate's only). A bridge that won is
    /// crashed again, a few times.
    pub(super) fn react_bridge(&mut self, f: &mut impl Faults, events: &[Event]) {
        let ms = Duration::from_millis;
        for event in events {
            let Some(episode) = self.bridge.as_mut() else { return };
            let bridge = episode.node;
            match *event {
                Event::Vote { node, candidate, .. } if node.0 as usize - 1 == bridge => {
                    let candidate = candidate.0 as usize - 1;
                    let cut = Self::cut_of(f, &[(candidate, bridge)]);
                    let names = f.nodes();
                    let text = format!(
                        "{} voted for {}: crash it, and cut {} off from it",
                        names[bridge], names[candidate], names[candidate]
                    );
                    f.note(&text);
                    if let Some(earlier) = episode.voted.replace(cut.clone()) {
                        let _ = f.heal(&earlier);
                    }
                    let _ = f.cut(&cut);
                    self.crash_bridge(f, bridge, Duration::ZERO, Duration::ZERO);
                }
                Event::Role { node, role: Role::Leader, .. }
                    if node.0 as usize - 1 == bridge && episode.retries > 0 =>
                {
                    episode.retries -= 1;
                    self.crash_bridge(f, bridge, ms(20), ms(80));
                }
                _ => {}
            }
        }
    }

    /// At the episode's end: heals the sides and the candidate's cut.
    pub(super) fn end_bridge(&mut self, f: &mut impl Faults) {
        let Some(episode) = self.bridge.take() else { return };
        f.note("end bridge election");
        let _ = f.heal(&episode.sides);
        if let Some(cut) = episode.voted {
            let _ = f.heal(&cut);
        }
    }
}
