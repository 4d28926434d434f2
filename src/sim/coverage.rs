//! What a run exercised: how often it reached each situation that matters, and how close it
//! came to a violation without one (its safety margins). A check that never met its situation
//! proved nothing; `--require` and a scenario's `[expect]` turn "never reached" into an
//! undecided verdict.
//!
//! The nodes' situations come from the driver's one event source (`server::events`); the rest
//! from the parts of the world that see them: the disk after a crash, the nemesis's clock
//! faults, the lock clients and the fenced resource.

use std::collections::BTreeMap;
use std::fmt;

use crate::server::events::NodeEvent;

/// Situations the world sees, beyond the nodes' own events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorldEvent {
    /// A node restarted with fewer log entries than it had reported stored: the crash took
    /// writes that were never synced.
    UnsyncedLost,
    /// A node's clock was skewed or jumped while it held a valid lease.
    ClockFaultUnderLease,
    /// A lock holder paused past its lease while holding the lock.
    LockHolderPaused,
    /// The fenced resource refused a write carrying a stale token.
    FencedRejection,
}

impl WorldEvent {
    /// Every world event.
    pub const ALL: [WorldEvent; 4] = [
        WorldEvent::UnsyncedLost,
        WorldEvent::ClockFaultUnderLease,
        WorldEvent::LockHolderPaused,
        WorldEvent::FencedRejection,
    ];

    /// The name in reports, `--require` and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            WorldEvent::UnsyncedLost => "unsynced-lost",
            WorldEvent::ClockFaultUnderLease => "clock-fault-under-lease",
            WorldEvent::LockHolderPaused => "lock-holder-paused",
            WorldEvent::FencedRejection => "fenced-rejection",
        }
    }
}

/// Every situation's name, in report order.
pub fn names() -> Vec<&'static str> {
    let nodes = NodeEvent::ALL.iter().map(|e| e.name());
    nodes.chain(WorldEvent::ALL.iter().map(|e| e.name())).collect()
}

/// Parses a comma-separated list of situation names, saying which is unknown.
///
/// # Errors
/// A name that is not a situation, with the list of those that are.
pub fn parse_names(text: &str) -> Result<Vec<String>, String> {
    let known = names();
    text.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            if known.contains(&name) {
                Ok(name.to_string())
            } else {
                Err(format!("unknown situation {name:?}: one of {}", known.join(", ")))
            }
        })
        .collect()
}

/// How often a run reached each situation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    counts: BTreeMap<&'static str, u64>,
}

impl Coverage {
    /// A node passed through `event`.
    pub fn node(&mut self, event: NodeEvent) {
        self.add(event.name(), 1);
    }

    /// The world saw `event`, `times` times.
    pub fn world(&mut self, event: WorldEvent, times: u64) {
        self.add(event.name(), times);
    }

    /// A naive system's node became primary, `times` times: its `leader-elected`.
    pub fn naive_promotions(&mut self, times: u64) {
        self.add(NodeEvent::BecameLeader.name(), times);
    }

    fn add(&mut self, name: &'static str, times: u64) {
        if times > 0 {
            *self.counts.entry(name).or_default() += times;
        }
    }

    /// How often the run reached `name`.
    pub fn count(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }

    /// Of `required`, the situations never reached.
    pub fn missing<'r>(&self, required: &'r [String]) -> Vec<&'r str> {
        required.iter().filter(|name| self.count(name) == 0).map(String::as_str).collect()
    }

    /// Every situation reached, with its count, in report order.
    pub fn reached(&self) -> Vec<(&'static str, u64)> {
        names().into_iter().map(|n| (n, self.count(n))).filter(|(_, c)| *c > 0).collect()
    }

    /// As a JSON object of every situation's count.
    pub fn to_json(&self) -> serde_json::Value {
        let counts: serde_json::Map<String, serde_json::Value> =
            names().into_iter().map(|n| (n.to_string(), self.count(n).into())).collect();
        counts.into()
    }

    /// Reads what `to_json` wrote (unknown names are kept out).
    pub fn from_json(value: &serde_json::Value) -> Coverage {
        let mut coverage = Coverage::default();
        for name in names() {
            coverage.add(name, value.get(name).and_then(serde_json::Value::as_u64).unwrap_or(0));
        }
        coverage
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reached: Vec<String> =
            self.reached().iter().map(|(name, count)| format!("{name} {count}")).collect();
        if reached.is_empty() {
            return write!(f, "nothing");
        }
        write!(f, "{}", reached.join(", "))
    }
}

/// How close a run came to a violation, in simulated true time and tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Margins {
    /// The smallest slack, in microseconds, between the moment a term's last lease lapsed and
    /// the first commit of a later term (negative: the lease still ran). None: no lease was
    /// followed by a newer leader.
    pub lease_slack_us: Option<i64>,
    /// The smallest gap between a token the fenced resource refused and the highest token it
    /// had seen then. None: nothing was refused.
    pub fence_gap: Option<i64>,
}

impl Margins {
    /// As a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "lease_slack_us": self.lease_slack_us, "fence_gap": self.fence_gap })
    }

    /// Reads what `to_json` wrote.
    pub fn from_json(value: &serde_json::Value) -> Margins {
        Margins {
            lease_slack_us: value.get("lease_slack_us").and_then(serde_json::Value::as_i64),
            fence_gap: value.get("fence_gap").and_then(serde_json::Value::as_i64),
        }
    }
}

impl fmt::Display for Margins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lease = self
            .lease_slack_us
            .map_or("no lease outlived by a newer leader".into(), |us| format!("{} ms", ms(us)));
        let fence =
            self.fence_gap.map_or("no write refused".into(), |gap| format!("{gap} token(s)"));
        write!(f, "lease slack {lease}, closest refused token {fence}")
    }
}

/// Microseconds as milliseconds with one decimal.
pub fn ms(us: i64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_survive_json_and_unknown_names_are_refused_with_the_known_ones() {
        let mut coverage = Coverage::default();
        coverage.node(NodeEvent::LeaseRead);
        coverage.node(NodeEvent::LeaseRead);
        coverage.world(WorldEvent::FencedRejection, 3);
        coverage.world(WorldEvent::UnsyncedLost, 0);
        assert_eq!(coverage.reached(), vec![("lease-read", 2), ("fenced-rejection", 3)]);
        assert_eq!(Coverage::from_json(&coverage.to_json()), coverage);
        let required = parse_names("lease-read, unsynced-lost").unwrap();
        assert_eq!(coverage.missing(&required), vec!["unsynced-lost"]);
        let error = parse_names("lease-read,split-brian").unwrap_err();
        assert!(error.contains("\"split-brian\"") && error.contains("suffix-truncated"), "{error}");
    }
}
