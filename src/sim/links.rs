//! Desired link states, from active cuts (counted, so overlapping cuts compose) and paused
//! hosts, brought to turmoil's links as they change. A cut beats a hold: a message on a cut
//! link is lost, one to or from a paused host waits.

use std::collections::{BTreeMap, BTreeSet};

/// The state of one direction of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkState {
    Healthy,
    Held,
    Cut,
}

/// Desired link states, from active cuts (counted, so overlapping partitions compose) and
/// paused hosts, applied to turmoil as they change. A cut beats a hold.
#[derive(Debug, Default)]
pub(crate) struct Links {
    cuts: BTreeMap<(String, String), u32>,
    paused: BTreeSet<String>,
    current: BTreeMap<(String, String), (LinkState, LinkState)>,
}

impl Links {
    /// Adds directed cuts.
    pub(crate) fn cut(&mut self, pairs: &[(String, String)]) {
        for pair in pairs {
            *self.cuts.entry(pair.clone()).or_insert(0) += 1;
        }
    }

    /// Removes directed cuts added before.
    pub(crate) fn uncut(&mut self, pairs: &[(String, String)]) {
        for pair in pairs {
            if let Some(count) = self.cuts.get_mut(pair) {
                *count -= 1;
                if *count == 0 {
                    self.cuts.remove(pair);
                }
            }
        }
    }

    /// Whether any link is cut.
    pub(crate) fn has_cuts(&self) -> bool {
        !self.cuts.is_empty()
    }

    /// Removes every cut.
    pub(crate) fn clear_cuts(&mut self) {
        self.cuts.clear();
    }

    /// Marks a host paused or running.
    pub(crate) fn set_paused(&mut self, host: &str, paused: bool) {
        if paused {
            self.paused.insert(host.to_string());
        } else {
            self.paused.remove(host);
        }
    }

    /// Whether messages from `from` to `to` are cut.
    pub(crate) fn is_cut(&self, from: &str, to: &str) -> bool {
        self.cuts.contains_key(&(from.to_string(), to.to_string()))
    }

    fn desired(&self, from: &str, to: &str) -> LinkState {
        if self.cuts.contains_key(&(from.to_string(), to.to_string())) {
            LinkState::Cut
        } else if self.paused.contains(from) || self.paused.contains(to) {
            LinkState::Held
        } else {
            LinkState::Healthy
        }
    }

    /// Brings every link among `hosts` to its desired state.
    pub(crate) fn apply(&mut self, sim: &turmoil::Sim<'_>, hosts: &[String]) {
        for (i, a) in hosts.iter().enumerate() {
            for b in &hosts[i + 1..] {
                let want = (self.desired(a, b), self.desired(b, a));
                let key = (a.clone(), b.clone());
                let now = self
                    .current
                    .get(&key)
                    .copied()
                    .unwrap_or((LinkState::Healthy, LinkState::Healthy));
                if now == want {
                    continue;
                }
                match want {
                    (LinkState::Healthy, LinkState::Healthy) => sim.release(a.as_str(), b.as_str()),
                    (LinkState::Cut, LinkState::Cut) => sim.partition(a.as_str(), b.as_str()),
                    (ab, ba) => {
                        if ab == LinkState::Held || ba == LinkState::Held {
                            sim.hold(a.as_str(), b.as_str());
                        } else {
                            sim.release(a.as_str(), b.as_str());
                        }
                        if ab == LinkState::Cut {
                            sim.partition_oneway(a.as_str(), b.as_str());
                        }
                        if ba == LinkState::Cut {
                            sim.partition_oneway(b.as_str(), a.as_str());
                        }
                    }
                }
                self.current.insert(key, want);
            }
        }
    }
}
