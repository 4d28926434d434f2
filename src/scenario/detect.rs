//! The split-brain detector: effects, not causes. It reports, each with the ops involved:
//! - overlapping leadership: two nodes acting as leader at one instant (for Raft, a node still
//!   holding a valid lease once a newer-term leader exists; for naive failover, two primaries);
//! - acknowledged writes the cluster later lost;
//! - stale reads: a read that returned a value some acknowledged write had already replaced
//!   before the read began (the overwritten write finished before the overwriting one started,
//!   so no linearization could order them otherwise);
//! - writes the fenced resource accepted with a token that was not the newest holder's.
//!
//! Beside them: the fencing refusals, how many nodes led at once, and how long writes were
//! unavailable.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use jepsen_lite::{History, Op, Outcome, Value};

use super::roles::RoleSpan;
use crate::sim::fencing::FencingLog;

/// One finding.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// When (simulated time).
    pub at: Duration,
    /// What happened.
    pub text: String,
    /// The ops involved (ids in `History::ops`).
    pub ops: Vec<usize>,
}

/// Everything the detector found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Findings {
    /// Two nodes acting as leader at once.
    pub overlapping_leadership: Vec<Finding>,
    /// Acknowledged writes lost.
    pub lost_writes: Vec<Finding>,
    /// Reads of overwritten values.
    pub stale_reads: Vec<Finding>,
    /// Writes the fenced resource accepted from a holder whose lock had already passed to
    /// another holder with a token that was not higher.
    pub stale_tokens: Vec<Finding>,
    /// Writes refused for a stale fencing token or epoch.
    pub fenced_rejections: u64,
    /// The most nodes that believed they led at one instant.
    pub max_leaders_at_once: usize,
    /// Seconds (in whole-second windows) in which clients tried to write and none succeeded.
    pub unavailable_s: f64,
    /// Other invariant violations (Raft's checks), which should never appear.
    pub violations: Vec<String>,
}

impl Findings {
    /// Whether the brain split in a way clients could see or the data kept.
    pub fn split_brain(&self) -> bool {
        !self.overlapping_leadership.is_empty()
            || !self.lost_writes.is_empty()
            || !self.stale_reads.is_empty()
            || !self.stale_tokens.is_empty()
    }
}

/// What the detector looks at.
pub struct Evidence<'a> {
    /// The clients' history.
    pub history: &'a History,
    /// The `ok` events (indexes into `history.events`) of acknowledged writes that were lost.
    pub lost_events: &'a [usize],
    /// Each node's roles.
    pub roles: &'a [RoleSpan],
    /// Raft lease overlaps, as the invariant reported them.
    pub lease_overlaps: Vec<String>,
    /// Other invariant violations.
    pub violations: Vec<String>,
    /// Fencing refusals counted by the system.
    pub fenced_rejections: u64,
    /// The lock clients' grants and the fenced resource's writes.
    pub fencing: &'a FencingLog,
    /// The end of the scenario.
    pub end: Duration,
}

fn time(history: &History, event: usize) -> Duration {
    Duration::from_nanos(history.events[event].time.unwrap_or(0).max(0) as u64)
}

/// Runs the detector.
pub fn detect(evidence: &Evidence<'_>) -> Findings {
    let history = evidence.history;
    let ops = history.ops().unwrap_or_default();
    let mut findings = Findings {
        fenced_rejections: evidence.fenced_rejections,
        violations: evidence.violations.clone(),
        ..Findings::default()
    };
    // Overlapping leadership.
    for text in &evidence.lease_overlaps {
        findings.overlapping_leadership.push(Finding {
            at: Duration::ZERO,
            text: text.clone(),
            ops: Vec::new(),
        });
    }
    let leading = |r: &RoleSpan| r.role == "leader" || r.role == "primary";
    let mut changes: Vec<(Duration, i32, usize)> = Vec::new();
    for span in evidence.roles.iter().filter(|r| leading(r) && r.to > r.from) {
        changes.push((span.from, 1, span.node));
        changes.push((span.to, -1, span.node));
    }
    changes.sort_by_key(|(at, delta, _)| (*at, *delta));
    let mut now_leading: BTreeMap<usize, Duration> = BTreeMap::new();
    let mut overlap_since: Option<Duration> = None;
    for (at, delta, node) in changes {
        if delta > 0 {
            now_leading.insert(node, at);
        } else {
            now_leading.remove(&node);
        }
        findings.max_leaders_at_once = findings.max_leaders_at_once.max(now_leading.len());
        let primaries = evidence.roles.iter().any(|r| r.role == "primary");
        if primaries && now_leading.len() >= 2 && overlap_since.is_none() {
            overlap_since = Some(at);
        }
        if now_leading.len() < 2
            && let Some(since) = overlap_since.take()
        {
            findings.overlapping_leadership.push(Finding {
                at: since,
                text: format!(
                    "two primaries took writes at once for {:.1}s (from t={:.1}s)",
                    (at - since).as_secs_f64(),
                    since.as_secs_f64()
                ),
                ops: ops_between(history, &ops, since, at),
            });
        }
    }
    // Lost writes.
    for event in evidence.lost_events {
        if let Some(op) = ops.iter().find(|o| o.complete == Some(*event)) {
            findings.lost_writes.push(Finding {
                at: time(history, *event),
                text: format!(
                    "{} {} {} by process {} was acknowledged at t={:.3}s and then lost",
                    op.f,
                    show(op.key.as_ref()),
                    op.input,
                    op.process,
                    time(history, *event).as_secs_f64()
                ),
                ops: vec![op.id],
            });
        }
    }
    findings.stale_reads = stale_reads(history, &ops);
    findings.stale_tokens = stale_tokens(evidence.fencing);
    findings.unavailable_s = unavailable(history, &ops, evidence.end);
    findings
}

fn show(key: Option<&Value>) -> String {
    key.map_or("-".into(), |k| k.to_string())
}

/// Ids of the writes acknowledged in [from, to).
fn ops_between(history: &History, ops: &[Op], from: Duration, to: Duration) -> Vec<usize> {
    ops.iter()
        .filter(|o| o.outcome == Outcome::Ok && o.f != "get")
        .filter(|o| o.complete.is_some_and(|c| (from..to).contains(&time(history, c))))
        .map(|o| o.id)
        .take(50)
        .collect()
}

/// The value a write leaves behind, if it is a write that succeeded.
fn written(op: &Op) -> Option<Value> {
    if op.outcome == Outcome::Fail {
        return None;
    }
    match op.f.as_str() {
        "put" => Some(op.input.clone()),
        "delete" => Some(Value::Null),
        "cas" => match &op.input {
            Value::List(pair) if pair.len() == 2 => Some(pair[1].clone()),
            _ => None,
        },
        _ => None,
    }
}

/// A write as stale-read detection sees it: (value left, invoked, completed, ok, op id).
type WriteSpan = (Value, Duration, Duration, bool, usize);

fn stale_reads(history: &History, ops: &[Op]) -> Vec<Finding> {
    let far = Duration::MAX;
    let window = |o: &Op| (time(history, o.invoke), o.complete.map_or(far, |c| time(history, c)));
    // Per key: writes as (value, invoked, completed, ok, id).
    let mut writes: BTreeMap<String, Vec<WriteSpan>> = BTreeMap::new();
    for op in ops {
        if let Some(value) = written(op) {
            let (invoked, completed) = window(op);
            let ok = op.outcome == Outcome::Ok;
            writes
                .entry(show(op.key.as_ref()))
                .or_default()
                .push((value, invoked, completed, ok, op.id));
        }
    }
    let mut found = Vec::new();
    for read in ops.iter().filter(|o| o.f == "get" && o.outcome == Outcome::Ok) {
        let Some(value) = read.output.clone() else { continue };
        let key = show(read.key.as_ref());
        let (read_start, _) = window(read);
        let empty = Vec::new();
        let key_writes = writes.get(&key).unwrap_or(&empty);
        // The writes that could have produced the value (for absent: the initial state too).
        let sources: Vec<(Duration, usize)> = key_writes
            .iter()
            .filter(|w| w.0 == value)
            .map(|w| (w.2, w.4))
            .chain((value == Value::Null).then_some((Duration::ZERO, usize::MAX)))
            .collect();
        if sources.is_empty() {
            continue; // a value nobody wrote: the checker's business
        }
        // Stale if every source was overwritten, before the read began, by an acknowledged
        // write of another value that began after the source finished.
        let mut overwriter = None;
        let stale = sources.iter().all(|(source_done, _)| {
            key_writes.iter().any(|w| {
                let hit = w.3 && w.0 != value && w.1 > *source_done && w.2 < read_start;
                if hit {
                    overwriter = Some(w.4);
                }
                hit
            })
        });
        if stale {
            let mut involved = vec![read.id];
            involved.extend(sources.iter().map(|s| s.1).filter(|id| *id != usize::MAX));
            involved.extend(overwriter);
            found.push(Finding {
                at: read_start,
                text: format!(
                    "get {key} by process {} at t={:.3}s returned {value}, already overwritten by op {}",
                    read.process,
                    read_start.as_secs_f64(),
                    overwriter.map_or("?".into(), |o| o.to_string())
                ),
                ops: involved,
            });
        }
    }
    found
}

/// A write accepted with token `t` after another client was granted the lock (after this
/// holder's grant) with a token not above `t`: the resource could not tell them apart.
fn stale_tokens(log: &FencingLog) -> Vec<Finding> {
    let mut found = Vec::new();
    for write in log.writes.iter().filter(|w| w.accepted) {
        let Some(own) = log.grants.iter().rev().find(|g| {
            g.client == write.client && g.token == write.token && g.completed <= write.at
        }) else {
            continue;
        };
        if let Some(newer) = log.grants.iter().find(|g| {
            g.client != write.client
                && g.invoked > own.completed
                && g.completed < write.at
                && g.token <= write.token
        }) {
            found.push(Finding {
                at: write.at,
                text: format!(
                    "the resource accepted lock client {}'s token {} at t={:.3}s, after client {} was granted the lock with token {}",
                    write.client,
                    write.token,
                    write.at.as_secs_f64(),
                    newer.client,
                    newer.token
                ),
                ops: Vec::new(),
            });
        }
    }
    found
}

fn unavailable(history: &History, ops: &[Op], end: Duration) -> f64 {
    let seconds = end.as_secs() as usize + 1;
    let mut tried = vec![false; seconds];
    let mut done = vec![false; seconds];
    for op in ops.iter().filter(|o| o.f != "get") {
        let start = time(history, op.invoke).as_secs() as usize;
        let finish = op.complete.map_or(end, |c| time(history, c));
        let last = (finish.as_secs() as usize).min(seconds - 1);
        for slot in tried.iter_mut().take(last + 1).skip(start.min(seconds - 1)) {
            *slot = true;
        }
        if op.outcome == Outcome::Ok && finish < end {
            done[last] = true;
        }
    }
    tried.iter().zip(&done).filter(|(t, d)| **t && !**d).count() as f64
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.text)?;
        if !self.ops.is_empty() {
            let ids: Vec<String> = self.ops.iter().take(8).map(|o| o.to_string()).collect();
            write!(
                f,
                " [ops {}{}]",
                ids.join(", "),
                if self.ops.len() > 8 { ", ..." } else { "" }
            )?;
        }
        Ok(())
    }
}
