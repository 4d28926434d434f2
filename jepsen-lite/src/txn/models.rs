//! Consistency models and the anomalies each prohibits (Adya's isolation levels as Elle names
//! them, with the session and real-time strengthenings). The data anomalies a list-append read
//! can show (a transaction contradicting itself, reads disagreeing on an order, an element
//! twice or from nowhere) no model allows.

use std::collections::BTreeSet;
use std::fmt;

/// A consistency model a history can be checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Model {
    /// Adya PL-1: no G0.
    ReadUncommitted,
    /// Adya PL-2: no G0, G1a, G1b, G1c.
    ReadCommitted,
    /// Snapshot isolation (Adya's PL-SI, checked as its G-single part): no G1, no G-single.
    SnapshotIsolation,
    /// Adya PL-2.99: no G1, no G2-item (G-single included).
    RepeatableRead,
    /// Snapshot isolation plus process order (no `-process` variant of its cycles).
    StrongSessionSnapshotIsolation,
    /// Snapshot isolation plus real-time order.
    StrongSnapshotIsolation,
    /// Adya PL-3 (for list-append, whose items are its only predicates: no G2-item).
    Serializable,
    /// Serializable plus process order.
    StrongSessionSerializable,
    /// Serializable plus real-time order.
    StrictSerializable,
}

impl Model {
    /// Every model, weakest first (snapshot isolation and repeatable read are incomparable;
    /// snapshot isolation is listed first).
    pub const ALL: [Model; 9] = [
        Model::ReadUncommitted,
        Model::ReadCommitted,
        Model::SnapshotIsolation,
        Model::RepeatableRead,
        Model::StrongSessionSnapshotIsolation,
        Model::StrongSnapshotIsolation,
        Model::Serializable,
        Model::StrongSessionSerializable,
        Model::StrictSerializable,
    ];

    /// Elle's name.
    pub fn name(self) -> &'static str {
        match self {
            Model::ReadUncommitted => "read-uncommitted",
            Model::ReadCommitted => "read-committed",
            Model::SnapshotIsolation => "snapshot-isolation",
            Model::RepeatableRead => "repeatable-read",
            Model::StrongSessionSnapshotIsolation => "strong-session-snapshot-isolation",
            Model::StrongSnapshotIsolation => "strong-snapshot-isolation",
            Model::Serializable => "serializable",
            Model::StrongSessionSerializable => "strong-session-serializable",
            Model::StrictSerializable => "strict-serializable",
        }
    }

    /// The model called `name`.
    pub fn parse(name: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The anomalies this model prohibits.
    pub fn prohibits(self) -> Vec<&'static str> {
        let data = ["internal", "incompatible-order", "duplicate-elements", "garbage-read"];
        let g1 = ["G1a", "G1b", "G1c"];
        let mut names: Vec<&'static str> = data.to_vec();
        names.push("G0");
        let with = |names: &mut Vec<&'static str>, more: &[&'static str]| names.extend(more);
        match self {
            Model::ReadUncommitted => {}
            Model::ReadCommitted => with(&mut names, &g1),
            Model::SnapshotIsolation => {
                with(&mut names, &g1);
                with(&mut names, &["G-single"]);
            }
            Model::RepeatableRead | Model::Serializable => {
                with(&mut names, &g1);
                with(&mut names, &["G-single", "G2-item"]);
            }
            Model::StrongSessionSnapshotIsolation | Model::StrongSnapshotIsolation => {
                with(&mut names, &g1);
                with(&mut names, &["G-single"]);
                let suffix = strengthening(self);
                for base in ["G0", "G1c", "G-single"] {
                    names.extend(variant(base, suffix));
                }
            }
            Model::StrongSessionSerializable | Model::StrictSerializable => {
                with(&mut names, &g1);
                with(&mut names, &["G-single", "G2-item"]);
                let suffix = strengthening(self);
                for base in ["G0", "G1c", "G-single", "G2-item"] {
                    names.extend(variant(base, suffix));
                }
            }
        }
        names
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The variant suffixes a strengthened model adds: real time implies process order (a process's
/// transactions follow one another in real time too).
fn strengthening(model: Model) -> &'static [&'static str] {
    match model {
        Model::StrongSnapshotIsolation | Model::StrictSerializable => &["process", "realtime"],
        _ => &["process"],
    }
}

fn variant(base: &'static str, suffixes: &[&'static str]) -> Vec<&'static str> {
    const NAMES: [&str; 8] = [
        "G0-process",
        "G0-realtime",
        "G1c-process",
        "G1c-realtime",
        "G-single-process",
        "G-single-realtime",
        "G2-item-process",
        "G2-item-realtime",
    ];
    suffixes
        .iter()
        .filter_map(|s| NAMES.into_iter().find(|n| n.strip_prefix(base) == Some(&format!("-{s}"))))
        .collect()
}

/// Every anomaly name any of `models` prohibits.
pub(super) fn prohibited(models: &[Model]) -> BTreeSet<&'static str> {
    models.iter().flat_map(|m| m.prohibits()).collect()
}

/// The models of `models` that `found` violates, weakest first.
pub(super) fn violated(models: &[Model], found: &BTreeSet<&str>) -> Vec<Model> {
    let mut violated: Vec<Model> = models
        .iter()
        .copied()
        .filter(|m| m.prohibits().iter().any(|name| found.contains(name)))
        .collect();
    violated.sort();
    violated.dedup();
    violated
}
