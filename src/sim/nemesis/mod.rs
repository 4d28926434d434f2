//! The nemesis: a schedule of faults derived from the seed (here), run against the fault
//! primitives by `run.rs`.
//!
//! Fault kinds: partitions of any shape (halves, majority/minority, the current leader alone, a
//! bridge node that sees both sides, one-way), crash and restart, pause and resume, clock drift
//! (one node, or a slow leader against fast followers and then cut off from them), and lossy
//! links (turmoil makes a link flap: over TCP, loss means a broken stream).

mod run;

use std::fmt;
use std::time::Duration;

pub use run::Nemesis;

use crate::rng::SplitMix64;

/// A kind of fault the nemesis may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// Network partitions.
    Partition,
    /// Crash a node (losing unsynced writes) and restart it later.
    Crash,
    /// Pause a node (it runs nothing, its clock stops, messages to it queue).
    Pause,
    /// Clock drift: one node within ±10%, or a leader slowed by about 20% against followers
    /// sped up by 20-30% (within the 1.6x the lease's drift margin covers).
    Clock,
    /// Lossy (flapping) links.
    Loss,
    /// Membership changes: a spare added as a learner and promoted, a voter (or the leader)
    /// removed, a voter (or the leader) crashed and replaced by a spare.
    Member,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Partition,
        FaultKind::Crash,
        FaultKind::Pause,
        FaultKind::Clock,
        FaultKind::Loss,
        FaultKind::Member,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::Crash => "crash",
            FaultKind::Pause => "pause",
            FaultKind::Clock => "clock",
            FaultKind::Loss => "loss",
            FaultKind::Member => "member",
        }
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The shape of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Two random halves.
    Halves,
    /// A random minority cut off from the majority.
    MajorityMinority,
    /// Whoever leads when the fault starts, alone.
    IsolateLeader,
    /// Two sides that cannot talk, and one node talking to both.
    Bridge,
    /// One side cannot send to the other; replies still flow.
    OneWay,
}

/// What a scheduled fault does. Nodes are indexes into the node list.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Cut the nodes into sides.
    Partition(Shape),
    /// Crash a node (`None`: the leader at that moment) and restart it at the end.
    Crash(Option<usize>),
    /// Pause a node (`None`: the leader) and resume it at the end.
    Pause(Option<usize>),
    /// Run a node's clock at `rate` until the end.
    Drift(usize, f64),
    /// Slow the leader's clock to the first rate and speed up every other to the second, then
    /// cut the leader off from the other nodes for a while (the lease-safety case).
    SkewedIsolation(f64, f64),
    /// Make the links between these node pairs flap at `rate` until the end.
    Loss(Vec<(usize, usize)>, f64),
    /// Until the end, react to elections: a node that grants a vote is crashed at once (with
    /// probability `after_vote`) and restarted 10-100 ms later; a node that wins (with
    /// probability `after_win`) is cut off from every other node at once for 0.5-2 s, or
    /// crashed 0-60 ms after winning and restarted 100-600 ms later. Each episode opens by
    /// cutting off the current leader while clients still write to it. A new leader that leaves an uncommitted
    /// entry behind and returns later is the pattern of Figure 8 (§3.6.2).
    ElectionChaos {
        /// Chance of crashing a voter right after it votes.
        after_vote: f64,
        /// Chance of crashing a new leader right after it wins.
        after_win: f64,
    },
    /// The Figure 8 sequence (§3.6.2), driven by the elections it causes: the leader and
    /// `(n - 1) / 2 - 1` others are cut off from the rest; the rest's new leader is cut off the
    /// moment it wins, before it replicates, and the split healed; when a node of the old
    /// minority wins and replicates the old-term tail, the cut-off leader comes back 100-400 ms
    /// later, and half the time the winner is crashed first. Undone at the end.
    Figure8,
    /// A membership change (`run/member.rs`).
    Member(MemberFault),
    /// The bridge election (`run/bridge.rs`): the followers split into two sides that cannot
    /// hear each other, the leader between them crashed and restarted; the moment it votes it
    /// is crashed again and restarted at once with the winner's messages to it cut, so both
    /// sides need its vote in one term. Undone at the end.
    BridgeElection,
}

/// A membership fault. Victims and spares are chosen when it starts, from the configuration
/// the cluster has applied then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberFault {
    /// Add a spare as a learner; promote it when the fault ends.
    Grow,
    /// Remove a voter (the leader, if `true`), when more than three remain.
    Shrink(bool),
    /// Crash a voter (the leader, if `true`), remove it and add a spare as a voter at once,
    /// as an operator replaces a dead machine; the removed node restarts when the fault ends
    /// (and must not disrupt the cluster, §4.2.3).
    Replace(bool),
}

/// One scheduled fault.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// When it starts.
    pub start: Duration,
    /// When it is undone.
    pub end: Duration,
    /// What it does.
    pub action: Action,
}

/// How close together and how long fault episodes are.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Density {
    /// Episodes start 0.5 s to this far apart.
    pub gap_max: Duration,
    /// Each lasts 0.5 s to this long.
    pub length_max: Duration,
    /// The share of partition and crash episodes that run the Figure 8 sequence (0 in the
    /// fixed world, whose schedules predate it). The targeted nemeses cut and crash both, so
    /// either kind lets them in.
    pub figure8: f64,
    /// The share of crash and partition episodes that run the bridge election (0 in the
    /// fixed world).
    pub bridge: f64,
    /// The share of clock episodes that skew the leader's clock against the others' and cut
    /// it off (the rest drift one node's clock within ±10%, which the lease's margin covers).
    pub skew: f64,
    /// The share of partition episodes that are skewed isolations too: a lease outliving its
    /// leadership needs a slow leader's clock cut off from fast followers, and seeds without
    /// clock faults would never try it (0 in the fixed world).
    pub skewed_cut: f64,
}

impl Default for Density {
    /// The fixed world's: 0.5-3 s apart, 0.5-6 s long.
    fn default() -> Density {
        Density {
            gap_max: Duration::from_secs(3),
            length_max: Duration::from_secs(6),
            figure8: 0.0,
            bridge: 0.0,
            skew: 0.5,
            skewed_cut: 0.0,
        }
    }
}

/// Builds a fault schedule: episodes of random kinds from `kinds`, starting after a warm-up,
/// as far apart and as long as `density` says, all over by `until`. Half the crash episodes
/// are storms: several nodes crashed in quick succession and restarted within 20-300 ms, which
/// is what catches state lost in the middle of an election; and some partition episodes are
/// leader flapping, the current leader cut off briefly several times in a row.
pub fn schedule(
    rng: &mut SplitMix64,
    kinds: &[FaultKind],
    nodes: usize,
    until: Duration,
    density: Density,
) -> Vec<Fault> {
    let mut faults = Vec::new();
    if kinds.is_empty() || nodes < 2 {
        return faults;
    }
    let mut at = Duration::from_secs(2);
    loop {
        at += rng.duration(Duration::from_millis(500), density.gap_max);
        let length = rng.duration(Duration::from_millis(500), density.length_max);
        if at + length >= until {
            return faults;
        }
        let kind = kinds[rng.below(kinds.len() as u64) as usize];
        let node = rng.below(nodes as u64) as usize;
        if kind == FaultKind::Partition && rng.chance(0.3) {
            // Leader flapping: whoever leads is cut off, briefly, again and again, so leaders
            // keep leaving uncommitted tails behind and coming back (the Figure 8 pattern).
            let mut t = at;
            for _ in 0..rng.range_inclusive(3, 8) {
                let cut = rng.duration(Duration::from_millis(150), Duration::from_millis(800));
                faults.push(Fault {
                    start: t,
                    end: t + cut,
                    action: Action::Partition(Shape::IsolateLeader),
                });
                t += cut + rng.duration(Duration::from_millis(50), Duration::from_millis(600));
            }
            continue;
        }
        if kind == FaultKind::Partition
            && density.skewed_cut > 0.0
            && rng.chance(density.skewed_cut)
        {
            let action = Action::SkewedIsolation(rng.float(0.78, 0.82), rng.float(1.2, 1.3));
            faults.push(Fault { start: at, end: at + length, action });
            continue;
        }
        // The targeted nemeses cut and crash both: a partition episode tries the Figure 8
        // sequence first, a crash episode the bridge election first, and each the other next.
        let targeted = match kind {
            FaultKind::Partition => {
                [(Action::Figure8, density.figure8), (Action::BridgeElection, density.bridge)]
            }
            FaultKind::Crash => {
                [(Action::BridgeElection, density.bridge), (Action::Figure8, density.figure8)]
            }
            _ => [(Action::Figure8, 0.0), (Action::BridgeElection, 0.0)],
        };
        if let Some((action, _)) =
            targeted.into_iter().find(|(_, share)| *share > 0.0 && rng.chance(*share))
        {
            // Long enough for the elections the episode causes, twice over.
            let length =
                length.max(Duration::from_secs(if action == Action::Figure8 { 3 } else { 2 }));
            if at + length < until {
                faults.push(Fault { start: at, end: at + length, action });
            }
            continue;
        }
        if kind == FaultKind::Crash && rng.chance(0.5) {
            let action = Action::ElectionChaos {
                after_vote: rng.float(0.2, 0.8),
                after_win: rng.float(0.2, 0.8),
            };
            faults.push(Fault { start: at, end: at + length, action });
            continue;
        }
        if kind == FaultKind::Crash && rng.chance(0.5) {
            let mut t = at;
            for _ in 0..rng.range_inclusive(3, 8) {
                let down = rng.duration(Duration::from_millis(20), Duration::from_millis(300));
                let victim =
                    if rng.chance(0.3) { None } else { Some(rng.below(nodes as u64) as usize) };
                faults.push(Fault { start: t, end: t + down, action: Action::Crash(victim) });
                t += rng.duration(Duration::from_millis(100), Duration::from_millis(500));
            }
            continue;
        }
        let leader_or = |rng: &mut SplitMix64| if rng.chance(0.5) { None } else { Some(node) };
        let action = match kind {
            FaultKind::Partition => {
                let shapes = [
                    Shape::Halves,
                    Shape::MajorityMinority,
                    Shape::IsolateLeader,
                    Shape::Bridge,
                    Shape::OneWay,
                ];
                Action::Partition(shapes[rng.below(5) as usize])
            }
            FaultKind::Crash => Action::Crash(leader_or(rng)),
            FaultKind::Pause => Action::Pause(leader_or(rng)),
            // Drawn as `chance(0.5)` was before `skew` existed: the fixed world keeps its draws.
            FaultKind::Clock if rng.chance(1.0 - density.skew) => {
                Action::Drift(node, rng.float(0.9, 1.1))
            }
            FaultKind::Clock => Action::SkewedIsolation(rng.float(0.78, 0.82), rng.float(1.2, 1.3)),
            // Replacing a node is what operators do most, and where they err most.
            FaultKind::Member => Action::Member(match rng.below(4) {
                0 => MemberFault::Grow,
                1 => MemberFault::Shrink(rng.chance(0.3)),
                _ => MemberFault::Replace(rng.chance(0.3)),
            }),
            FaultKind::Loss => {
                let mut pairs = Vec::new();
                for a in 0..nodes {
                    for b in a + 1..nodes {
                        if rng.chance(0.4) {
                            pairs.push((a, b));
                        }
                    }
                }
                Action::Loss(pairs, rng.float(0.01, 0.1))
            }
        };
        faults.push(Fault { start: at, end: at + length, action });
    }
}

/// Splits `nodes` into the sides of `shape`: a list of directed cuts (from, to).
pub fn cuts(
    shape: Shape,
    nodes: usize,
    leader: Option<usize>,
    rng: &mut SplitMix64,
) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..nodes).collect();
    shuffle(&mut order, rng);
    match shape {
        Shape::Halves | Shape::MajorityMinority => {
            let minority = if shape == Shape::Halves {
                nodes / 2
            } else {
                1 + rng.below(((nodes - 1) / 2) as u64) as usize
            };
            let (a, b) = order.split_at(minority.max(1));
            both_ways(a, b)
        }
        Shape::IsolateLeader => {
            let alone = leader.unwrap_or(order[0]);
            let rest: Vec<usize> = (0..nodes).filter(|n| *n != alone).collect();
            both_ways(&[alone], &rest)
        }
        Shape::Bridge if nodes >= 3 => {
            // order[0] is the bridge: cut from no one.
            let (a, b) = order[1..].split_at((nodes - 1) / 2);
            both_ways(a, b)
        }
        Shape::Bridge => both_ways(&order[..1], &order[1..]),
        Shape::OneWay => {
            let (a, b) = order.split_at(nodes / 2);
            a.iter().flat_map(|x| b.iter().map(move |y| (*x, *y))).collect()
        }
    }
}

/// `items` in an order drawn from `rng` (Fisher-Yates).
fn shuffle(items: &mut [usize], rng: &mut SplitMix64) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

/// The directed cuts between every node of `a` and every node of `b`, both ways.
fn both_ways(a: &[usize], b: &[usize]) -> Vec<(usize, usize)> {
    let mut cuts = Vec::new();
    for &x in a {
        for &y in b {
            cuts.push((x, y));
            cuts.push((y, x));
        }
    }
    cuts
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node =
            |n: &Option<usize>| n.map_or("the leader".to_string(), |n| format!("n{}", n + 1));
        match self {
            Action::Partition(shape) => write!(f, "partition ({shape:?})"),
            Action::Crash(n) => write!(f, "crash {}", node(n)),
            Action::Pause(n) => write!(f, "pause {}", node(n)),
            Action::Drift(n, rate) => write!(f, "clock drift n{} x{rate:.3}", n + 1),
            Action::SkewedIsolation(slow, fast) => {
                write!(f, "skewed isolation leader x{slow:.3} others x{fast:.3}")
            }
            Action::Loss(pairs, rate) => {
                write!(f, "lossy links ({} pairs, flap rate {rate:.3})", pairs.len())
            }
            Action::ElectionChaos { after_vote, after_win } => {
                write!(
                    f,
                    "election chaos (crash voters {after_vote:.2}, new leaders {after_win:.2})"
                )
            }
            Action::Figure8 => write!(f, "the Figure 8 sequence"),
            Action::Member(fault) => write!(f, "membership: {fault:?}"),
            Action::BridgeElection => write!(f, "the bridge election"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_cut_what_they_say() {
        let mut rng = SplitMix64::new(3);
        let halves = cuts(Shape::Halves, 5, None, &mut rng);
        assert_eq!(halves.len(), 2 * 2 * 3, "2 | 3, both directions");
        let isolated = cuts(Shape::IsolateLeader, 5, Some(4), &mut rng);
        assert!(isolated.iter().all(|(a, b)| *a == 4 || *b == 4));
        assert_eq!(isolated.len(), 8);
        let one_way = cuts(Shape::OneWay, 5, None, &mut rng);
        assert_eq!(one_way.len(), 6, "2 -> 3 only");
        let bridge = cuts(Shape::Bridge, 5, None, &mut rng);
        assert_eq!(bridge.len(), 2 * 2 * 2, "2 | 2, the bridge cut from no one");
    }

    #[test]
    fn the_figure_8_share_draws_the_sequence_and_zero_never_does() {
        let draw = |figure8: f64| {
            let density = Density { figure8, ..Density::default() };
            let kinds = [FaultKind::Partition];
            schedule(&mut SplitMix64::new(4), &kinds, 5, Duration::from_secs(60), density)
        };
        // Leader flapping is drawn first; every other partition episode is the sequence.
        let all = draw(1.0);
        let figure8: Vec<&Fault> = all.iter().filter(|f| f.action == Action::Figure8).collect();
        assert!(!figure8.is_empty(), "{all:?}");
        let flapping = Action::Partition(Shape::IsolateLeader);
        assert!(all.iter().all(|f| f.action == Action::Figure8 || f.action == flapping));
        assert!(figure8.iter().all(|f| f.end - f.start >= Duration::from_secs(3)), "{all:?}");
        let none = draw(0.0);
        assert!(none.iter().all(|f| f.action != Action::Figure8), "{none:?}");
    }

    #[test]
    fn crash_episodes_try_the_bridge_first_and_partitions_figure_8_first() {
        let draw = |kind: FaultKind, density: Density| {
            schedule(&mut SplitMix64::new(6), &[kind], 5, Duration::from_secs(60), density)
        };
        let both = Density { figure8: 1.0, bridge: 1.0, ..Density::default() };
        let crashes = draw(FaultKind::Crash, both);
        assert!(crashes.iter().all(|f| f.action == Action::BridgeElection), "{crashes:?}");
        assert!(crashes.iter().all(|f| f.end - f.start >= Duration::from_secs(2)));
        let partitions = draw(FaultKind::Partition, both);
        assert!(partitions.iter().any(|f| f.action == Action::Figure8), "{partitions:?}");
        assert!(partitions.iter().all(|f| f.action != Action::BridgeElection));
        let skewed = Density { skewed_cut: 1.0, ..Density::default() };
        let cuts = draw(FaultKind::Partition, skewed);
        assert!(cuts.iter().any(|f| matches!(f.action, Action::SkewedIsolation(..))), "{cuts:?}");
        // The fixed world's density runs no targeted episode.
        for kind in FaultKind::ALL {
            let fixed = draw(kind, Density::default());
            let targeted = |f: &Fault| matches!(f.action, Action::Figure8 | Action::BridgeElection);
            assert!(!fixed.iter().any(targeted), "{kind:?}: {fixed:?}");
        }
    }

    #[test]
    fn schedules_are_a_function_of_the_seed() {
        let a = schedule(
            &mut SplitMix64::new(9),
            &FaultKind::ALL,
            5,
            Duration::from_secs(60),
            Density::default(),
        );
        let b = schedule(
            &mut SplitMix64::new(9),
            &FaultKind::ALL,
            5,
            Duration::from_secs(60),
            Density::default(),
        );
        assert_eq!(a, b);
        assert!(a.len() > 5);
        assert!(a.iter().all(|f| f.end < Duration::from_secs(60)));
    }
}
