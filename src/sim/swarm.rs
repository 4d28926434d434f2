//! Swarm testing (Groce et al., ISSTA 2012; FoundationDB's buggify; TigerBeetle's VOPR): each
//! seed draws its own world — which fault kinds are on and how dense they are, how often the
//! targeted nemeses run, the cluster's size, how many clients, lock clients and watchers, how
//! much history is kept, whether reads may use leases, how many entries one append carries —
//! on top of the timing, latency and Raft options every seed already draws (`SimParams`). A
//! run with every fault kind at once spreads its schedule thin over all of them; a seed with
//! only crashes and loss, densely, reaches shapes the mixture rarely does.
//!
//! The draw comes from a stream of its own, keyed by the seed alone: the same seed draws the
//! same world with or without a `--bug`, and a value given on the command line (`--nodes 3`)
//! is kept while the rest is drawn.

use std::time::Duration;

use super::nemesis::{Density, FaultKind};
use crate::rng::SplitMix64;

/// What the command line fixed; the rest is drawn.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pins {
    /// `--nodes`.
    pub nodes: Option<usize>,
    /// `--clients`.
    pub clients: Option<usize>,
    /// `--watchers`.
    pub watchers: Option<usize>,
    /// `--append-clients`.
    pub append_clients: Option<usize>,
    /// `--faults`.
    pub faults: Option<Vec<FaultKind>>,
    /// `--auto-compaction-retention`.
    pub history_kept: Option<i64>,
}

impl Pins {
    /// The command-line flags that fix these values again.
    pub fn flags(&self) -> String {
        let mut flags = String::new();
        if let Some(nodes) = self.nodes {
            flags += &format!(" --nodes {nodes}");
        }
        if let Some(clients) = self.clients {
            flags += &format!(" --clients {clients}");
        }
        if let Some(watchers) = self.watchers {
            flags += &format!(" --watchers {watchers}");
        }
        if let Some(appenders) = self.append_clients {
            flags += &format!(" --append-clients {appenders}");
        }
        if let Some(faults) = &self.faults {
            let names: Vec<&str> = faults.iter().map(|f| f.name()).collect();
            let names = if names.is_empty() { "none".to_string() } else { names.join(",") };
            flags += &format!(" --faults {names}");
        }
        if let Some(kept) = self.history_kept {
            flags += &format!(" --auto-compaction-retention {kept}");
        }
        flags
    }
}

/// One seed's drawn world.
#[derive(Clone, Debug, PartialEq)]
pub struct Swarm {
    /// Raft nodes: 3, 5 or 7.
    pub nodes: usize,
    /// Workload clients: 2 to 16.
    pub clients: usize,
    /// Lock clients writing to the fenced resource: 0 to 3.
    pub lock_clients: usize,
    /// Watchers: 0 to 3, none on one seed in six.
    pub watchers: usize,
    /// Fault kinds on: each with chance 3/4, at least one. Swarm testing wants each kind
    /// left out of some seeds, but most bugs need two kinds at once (a crash during a
    /// partition), which even chances give only one seed in four.
    pub faults: Vec<FaultKind>,
    /// How close together and how long the fault episodes are, and how many partition
    /// episodes run the Figure 8 sequence.
    pub density: Density,
    /// Revisions auto-compaction keeps (0: never compacts).
    pub history_kept: i64,
    /// Leader-lease reads on (nine seeds in ten: only then can a lease outlive a leadership).
    pub lease_reads: bool,
    /// At most this many entries per AppendEntries: small batches let a new leader's
    /// acknowledgements land on an old term's tail before its own first entry (§3.6.2).
    pub max_entries_per_message: usize,
    /// List-append transaction clients beside the single-key ones: none on three seeds in
    /// five, else 2 or 3, so that isolation is judged under every fault mix too.
    pub append_clients: usize,
}

/// Salt for the swarm's stream, apart from the one every other draw of the seed uses.
const STREAM: u64 = 0x5357_4152_4d21_0001;

impl Swarm {
    /// The world `seed` draws.
    pub fn draw(seed: u64) -> Swarm {
        let mut rng = SplitMix64::new(seed ^ STREAM);
        let nodes = [3, 3, 5, 5, 5, 7][rng.below(6) as usize];
        let clients = rng.range_inclusive(2, 16) as usize;
        let lock_clients = rng.below(4) as usize;
        let watchers = [0, 1, 2, 2, 3, 3][rng.below(6) as usize];
        let mut faults: Vec<FaultKind> =
            FaultKind::ALL.iter().copied().filter(|_| rng.chance(0.75)).collect();
        if faults.is_empty() {
            faults.push(FaultKind::ALL[rng.below(FaultKind::ALL.len() as u64) as usize]);
        }
        let mut density = Density {
            gap_max: rng.duration(Duration::from_millis(800), Duration::from_secs(5)),
            length_max: rng.duration(Duration::from_secs(1), Duration::from_secs(8)),
            figure8: [0.2, 0.4, 0.6][rng.below(3) as usize],
            bridge: 0.0,
            skew: 0.5,
            skewed_cut: 0.0,
        };
        let history_kept = [0, 30, 100, 500][rng.below(4) as usize];
        // Drawn last, so the draws above stay what they were before these existed.
        density.bridge = [0.2, 0.4, 0.6][rng.below(3) as usize];
        density.skew = [0.5, 0.75, 1.0][rng.below(3) as usize];
        density.skewed_cut = [0.1, 0.2, 0.3][rng.below(3) as usize];
        let lease_reads = rng.chance(0.9);
        let max_entries_per_message = [1, 1, 1, 2, 4, 16, 64][rng.below(7) as usize];
        let append_clients = [0, 0, 0, 2, 3][rng.below(5) as usize];
        Swarm {
            nodes,
            clients,
            lock_clients,
            watchers,
            faults,
            density,
            history_kept,
            lease_reads,
            max_entries_per_message,
            append_clients,
        }
    }

    /// Sets the run's parameters this world draws itself (the rest come from the seed's
    /// parameter stream, as in the fixed world).
    pub fn shape(&self, params: &mut super::SimParams) {
        params.lease_reads = self.lease_reads;
        params.max_entries_per_message = self.max_entries_per_message;
    }
}

/// The report's line for a swarm run's `options` (drawn and pinned values resolved).
pub fn describe(options: &super::SimOptions) -> String {
    format!(
        "swarm: {} lock clients, {} watchers, fault episodes 0.5-{:.1}s long, 0.5-{:.1}s apart; targeted: the Figure 8 sequence {:.0}%, the bridge election {:.0}% (of partition and crash episodes), skewed isolation {:.0}% of clock and {:.0}% of partition episodes; history {} (--no-swarm: the fixed world)",
        options.lock_clients,
        options.watchers,
        options.density.length_max.as_secs_f64(),
        options.density.gap_max.as_secs_f64(),
        options.density.figure8 * 100.0,
        options.density.bridge * 100.0,
        options.density.skew * 100.0,
        options.density.skewed_cut * 100.0,
        match options.history_kept {
            0 => "never compacted".to_string(),
            n => format!("compacted to the last {n} revisions"),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_one_world_and_seeds_draw_many() {
        assert_eq!(Swarm::draw(7), Swarm::draw(7));
        let worlds: Vec<Swarm> = (0..200).map(Swarm::draw).collect();
        for nodes in [3, 5, 7] {
            assert!(worlds.iter().any(|w| w.nodes == nodes), "some seed draws {nodes} nodes");
        }
        for kind in FaultKind::ALL {
            assert!(worlds.iter().any(|w| !w.faults.contains(&kind)), "some seed lacks {kind:?}");
            assert!(
                worlds.iter().any(|w| w.faults.len() <= 2 && w.faults.contains(&kind)),
                "some seed has {kind:?} with at most one other kind"
            );
        }
        assert!(worlds.iter().all(|w| !w.faults.is_empty() && (2..=16).contains(&w.clients)));
        assert!(worlds.iter().any(|w| w.watchers == 0) && worlds.iter().any(|w| w.watchers == 3));
        assert!(worlds.iter().any(|w| !w.lease_reads) && worlds.iter().any(|w| w.lease_reads));
        for batch in [1, 64] {
            assert!(worlds.iter().any(|w| w.max_entries_per_message == batch), "{batch}");
        }
        assert!(worlds.iter().all(|w| w.density.bridge > 0.0 && w.density.figure8 > 0.0));
        let appending = worlds.iter().filter(|w| w.append_clients > 0).count();
        assert!((40..=120).contains(&appending), "{appending} of 200 seeds draw append clients");
    }

    #[test]
    fn pins_print_as_the_flags_that_set_them() {
        let pins = Pins {
            nodes: Some(3),
            faults: Some(vec![FaultKind::Crash, FaultKind::Loss]),
            ..Pins::default()
        };
        assert_eq!(pins.flags(), " --nodes 3 --faults crash,loss");
        assert_eq!(Pins::default().flags(), "");
    }
}
