//! A checker for etcd's documented watch guarantees, against the committed history.
//!
//! etcd promises (API guarantees, "Watch APIs"): events are **ordered** by revision, never
//! **duplicated**, **atomic** (a revision's events in the watched range arrive together, unless
//! the client asked for fragments), **reliable** (no event is skipped between two delivered
//! ones) and **resumable** (a watch restarted at the last revision + 1, on any member, loses
//! nothing). A watch with `prev_kv` carries each key's previous value, and a progress
//! notification at revision R says every event up to R has been delivered.
//!
//! The input is the committed history (each revision's events, from the committed log) and,
//! per watcher, its streams: each started at a revision on some member, with every response
//! it received in order. Every stream must deliver exactly the committed events of its range
//! from its start, in order, as a prefix: a resumed watcher's streams then cover the history
//! with no gap and no repeat. A stream may stop anywhere (a timeout, a cut-off member, a
//! cancellation), but what it delivered must be that prefix. Why a stream was cancelled is
//! judged in [`cancels`]: a require-leader stream against what its member believed about its
//! leader, a compaction cancel against the compactions committed.

mod cancels;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use cancels::Leaders;

/// One event: a put (with the value) or a delete (`value: None`) of `key` at revision `rev`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The revision it happened at.
    pub rev: i64,
    /// The key.
    pub key: String,
    /// The value put; `None` for a delete.
    pub value: Option<String>,
    /// The key's value before, when the watch asked for it (`None`: absent or not asked).
    pub prev: Option<String>,
}

/// One committed revision's events, in the order applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// The revision.
    pub rev: i64,
    /// What it changed.
    pub events: Vec<WatchEvent>,
}

/// A response a stream received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Response {
    /// Events, and the header's revision.
    Events {
        /// The header's revision.
        header: i64,
        /// The events.
        events: Vec<WatchEvent>,
        /// More of the same revision follow (etcd's `fragment`).
        fragment: bool,
    },
    /// A progress notification (no events) at the header's revision.
    Progress {
        /// The header's revision.
        header: i64,
    },
    /// The watch was cancelled.
    Canceled {
        /// The compaction point, for a watch that fell below it (0: another reason).
        compact_revision: i64,
        /// etcd's reason.
        reason: String,
    },
}

/// One watch stream: where it started and what it received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    /// The watcher (streams of one watcher resume one another).
    pub watcher: u64,
    /// The member it was opened on.
    pub member: String,
    /// The first revision it was to deliver.
    pub start: i64,
    /// The watched keys: `[from, to)`; `to` empty for every key from `from` on.
    pub range: (String, String),
    /// Whether it asked for previous values.
    pub prev_kv: bool,
    /// When it was opened (simulated or real nanoseconds).
    pub time: i64,
    /// Whether it asked for a leader (clientv3's `WithRequireLeader`).
    #[serde(default)]
    pub require_leader: bool,
    /// What it received, in order.
    pub responses: Vec<Response>,
    /// When each response arrived, on the clock of `time` (empty: not recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub received: Vec<i64>,
}

/// A broken guarantee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchViolation {
    /// An event at or below one already delivered on the stream.
    Unordered {
        /// The stream (its index in the input).
        stream: usize,
        /// The revision delivered before.
        after: i64,
        /// The event delivered out of order.
        event: WatchEvent,
    },
    /// Committed events the stream skipped: it delivered `delivered` where `expected` was next.
    Gap {
        /// The stream.
        stream: usize,
        /// The committed event that should have come next.
        expected: WatchEvent,
        /// What came instead.
        delivered: WatchEvent,
    },
    /// An event no revision committed, or committed with another value or previous value.
    Phantom {
        /// The stream.
        stream: usize,
        /// The event.
        event: WatchEvent,
        /// The committed event at that place, if any.
        committed: Option<WatchEvent>,
    },
    /// A revision's events split across responses without fragments.
    Split {
        /// The stream.
        stream: usize,
        /// The revision.
        rev: i64,
    },
    /// A progress notification (or an events header) at `header` while the committed event
    /// `missing` at or below it had not been delivered.
    ProgressAhead {
        /// The stream.
        stream: usize,
        /// The revision claimed.
        header: i64,
        /// The first committed event not yet delivered.
        missing: WatchEvent,
    },
    /// A require-leader stream received a response at `at` although its member had had no
    /// leader since `since`, longer than the bound allows.
    LeaderlessNotCanceled {
        /// The stream.
        stream: usize,
        /// Its member.
        member: String,
        /// When the member's leaderless spell began (or the stream opened, if later).
        since: i64,
        /// When the response arrived.
        at: i64,
    },
    /// A stream cancelled with `no leader` at `at` while its member knew a leader throughout
    /// the bound before.
    CanceledWithLeader {
        /// The stream.
        stream: usize,
        /// Its member.
        member: String,
        /// When the cancel arrived.
        at: i64,
    },
    /// A stream cancelled as compacted at `compact_revision`, which no committed compaction
    /// reached (`compacted` false) or which is not above `next`, the first revision it owed.
    FalseCompaction {
        /// The stream.
        stream: usize,
        /// The compaction it named.
        compact_revision: i64,
        /// The first revision it still owed.
        next: i64,
        /// Whether a committed compaction was at that revision.
        compacted: bool,
    },
}

impl fmt::Display for WatchViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |e: &WatchEvent| match &e.value {
            Some(v) => format!("put {}={v} at {}", e.key, e.rev),
            None => format!("delete {} at {}", e.key, e.rev),
        };
        match self {
            WatchViolation::Unordered { stream, after, event } => {
                write!(
                    f,
                    "stream {stream}: {} after revision {after} (unordered or duplicated)",
                    show(event)
                )
            }
            WatchViolation::Gap { stream, expected, delivered } => write!(
                f,
                "stream {stream}: skipped {} (and any after it): delivered {} next",
                show(expected),
                show(delivered)
            ),
            WatchViolation::Phantom { stream, event, committed } => match committed {
                Some(c) if c.rev == event.rev && c.key == event.key => write!(
                    f,
                    "stream {stream}: {} with previous value {:?}; committed: {} with previous value {:?}",
                    show(event),
                    event.prev,
                    show(c),
                    c.prev
                ),
                _ => write!(f, "stream {stream}: {} was never committed", show(event)),
            },
            WatchViolation::Split { stream, rev } => {
                write!(f, "stream {stream}: revision {rev}'s events split across responses")
            }
            WatchViolation::ProgressAhead { stream, header, missing } => write!(
                f,
                "stream {stream}: claimed progress to revision {header} before delivering {}",
                show(missing)
            ),
            WatchViolation::LeaderlessNotCanceled { stream, member, since, at } => write!(
                f,
                "stream {stream}: require-leader watch on {member} still answered {} ms after its member lost its leader (at {} ms, no cancel)",
                (at - since) / 1_000_000,
                at / 1_000_000
            ),
            WatchViolation::CanceledWithLeader { stream, member, at } => write!(
                f,
                "stream {stream}: cancelled with \"no leader\" at {} ms while {member} had a leader",
                at / 1_000_000
            ),
            WatchViolation::FalseCompaction { stream, compact_revision, next, compacted } => {
                if *compacted {
                    write!(
                        f,
                        "stream {stream}: cancelled as compacted at {compact_revision}, but it only owed revisions from {next}"
                    )
                } else {
                    write!(
                        f,
                        "stream {stream}: cancelled as compacted at {compact_revision}, which no committed compaction reached"
                    )
                }
            }
        }
    }
}

/// What the check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchReport {
    /// Streams checked.
    pub streams: usize,
    /// Events delivered in all.
    pub events: usize,
    /// Streams resumed by their watcher after an earlier one (a watcher's second and later).
    pub resumed: usize,
    /// Streams cancelled because the member had no leader.
    pub no_leader_cancels: usize,
    /// Streams cancelled because their start was compacted.
    pub compacted_cancels: usize,
    /// Leaderless spells longer than the require-leader bound, over all members (0 when the
    /// members' leaders were not known).
    pub leaderless_spells: usize,
    /// The broken guarantees, the first per stream.
    pub violations: Vec<WatchViolation>,
}

impl WatchReport {
    /// The report as JSON: the counts and each violation as text.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "watch": if self.violations.is_empty() { "held" } else { "broken" },
            "streams": self.streams,
            "resumed": self.resumed,
            "events": self.events,
            "no_leader_cancels": self.no_leader_cancels,
            "compacted_cancels": self.compacted_cancels,
            "leaderless_spells": self.leaderless_spells,
            "violations": self.violations.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    }

    /// One line: what was checked and how streams ended.
    pub fn summary(&self) -> String {
        let spells = match self.leaderless_spells {
            0 => String::new(),
            n => format!(" ({n} leaderless spells past the bound on members)"),
        };
        format!(
            "{} streams ({} resumed on another member), {} events delivered, {} cancelled for no leader{spells}, {} for compaction",
            self.streams, self.resumed, self.events, self.no_leader_cancels, self.compacted_cancels
        )
    }
}

/// A watch check's whole input, as `raftbed sim --watches` writes it: JSON lines, each one of
/// `{"known": R}` (the committed history is known through revision R), `{"committed": {..}}`
/// (a [`Revision`]), `{"stream": {..}}` (a [`Stream`]), `{"compacted": R}` (a committed
/// compaction to R) or `{"leaders": {..}}` ([`Leaders`], at most one), in any order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchLog {
    /// The committed revisions, in revision order.
    pub committed: Vec<Revision>,
    /// The committed history is known through this revision.
    pub known: i64,
    /// The streams.
    pub streams: Vec<Stream>,
    /// The revisions the committed history was compacted to, in order.
    pub compactions: Vec<i64>,
    /// What each member believed about its leader (empty: require-leader not judged).
    pub leaders: Leaders,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
enum LogLine {
    Known(i64),
    Committed(Revision),
    Stream(Stream),
    Compacted(i64),
    Leaders(Leaders),
}

impl WatchLog {
    /// The log as JSON lines.
    pub fn to_jsonl(&self) -> String {
        let known = std::iter::once(LogLine::Known(self.known));
        let committed = self.committed.iter().cloned().map(LogLine::Committed);
        let compacted = self.compactions.iter().copied().map(LogLine::Compacted);
        let leaders = std::iter::once(LogLine::Leaders(self.leaders.clone()));
        let streams = self.streams.iter().cloned().map(LogLine::Stream);
        known
            .chain(committed)
            .chain(compacted)
            .chain(leaders)
            .chain(streams)
            .map(|line| serde_json::to_string(&line).expect("serialisable") + "\n")
            .collect()
    }

    /// Reads a log written by [`WatchLog::to_jsonl`].
    ///
    /// # Errors
    /// The first line that is not one of the three kinds, with its number; committed
    /// revisions out of order; no `known` line.
    pub fn from_jsonl(text: &str) -> Result<WatchLog, String> {
        let mut log = WatchLog::default();
        let mut known = None;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let parsed: LogLine =
                serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            match parsed {
                LogLine::Known(rev) => known = Some(rev),
                LogLine::Committed(revision) => {
                    if log.committed.last().is_some_and(|last| last.rev >= revision.rev) {
                        return Err(format!(
                            "line {}: revision {} out of order",
                            n + 1,
                            revision.rev
                        ));
                    }
                    log.committed.push(revision);
                }
                LogLine::Stream(stream) => log.streams.push(stream),
                LogLine::Compacted(rev) => log.compactions.push(rev),
                LogLine::Leaders(leaders) => log.leaders = leaders,
            }
        }
        log.known = known.ok_or("no {\"known\": R} line: how far the committed history goes")?;
        Ok(log)
    }

    /// Checks the streams against the committed history, and their cancels against the
    /// compactions and the members' leaders.
    pub fn check(&self) -> WatchReport {
        let mut report = check(&self.committed, self.known, &self.compactions, &self.streams);
        report.leaderless_spells = cancels::long_spells(&self.leaders);
        let judged: std::collections::BTreeSet<usize> =
            report.violations.iter().map(WatchViolation::stream).collect();
        for (index, stream) in self.streams.iter().enumerate() {
            if judged.contains(&index) {
                continue;
            }
            let owed = owed(stream);
            let violation = cancels::judge_leader(index, stream, &self.leaders)
                .or_else(|| cancels::judge_compaction(index, stream, owed, &self.compactions));
            report.violations.extend(violation);
        }
        report.violations.sort_by_key(WatchViolation::stream);
        report
    }
}

impl WatchViolation {
    /// The stream it is about.
    pub fn stream(&self) -> usize {
        match self {
            WatchViolation::Unordered { stream, .. }
            | WatchViolation::Gap { stream, .. }
            | WatchViolation::Phantom { stream, .. }
            | WatchViolation::Split { stream, .. }
            | WatchViolation::ProgressAhead { stream, .. }
            | WatchViolation::LeaderlessNotCanceled { stream, .. }
            | WatchViolation::CanceledWithLeader { stream, .. }
            | WatchViolation::FalseCompaction { stream, .. } => *stream,
        }
    }
}

/// The first revision `stream` still owed when it ended: its start, or the one after the
/// last it delivered whole.
fn owed(stream: &Stream) -> i64 {
    let mut owed = stream.start;
    for response in &stream.responses {
        if let Response::Events { events, fragment, .. } = response
            && let Some(last) = events.last()
        {
            owed = owed.max(if *fragment { last.rev } else { last.rev + 1 });
        }
    }
    owed
}

fn in_range(key: &str, range: &(String, String)) -> bool {
    key >= range.0.as_str() && (range.1.is_empty() || key < range.1.as_str())
}

/// Checks `streams` against the `committed` revisions (in revision order), which are known
/// through revision `known`: what a stream delivered beyond it is not judged. `compactions`
/// are the revisions the history was compacted to: an event at or below one may come
/// without its previous value, as etcd reads it at the revision before, which is gone; and
/// a delete at or below one may be missing, as etcd drops the tombstone at the compaction
/// revision itself.
pub fn check(
    committed: &[Revision],
    known: i64,
    compactions: &[i64],
    streams: &[Stream],
) -> WatchReport {
    let mut report = WatchReport { streams: streams.len(), ..WatchReport::default() };
    let compacted_to = compactions.iter().copied().max().unwrap_or(0);
    let mut watchers = BTreeMap::new();
    for (index, stream) in streams.iter().enumerate() {
        if *watchers.entry(stream.watcher).and_modify(|n| *n += 1).or_insert(1) > 1 {
            report.resumed += 1;
        }
        for response in &stream.responses {
            match response {
                Response::Events { events, .. } => report.events += events.len(),
                Response::Canceled { compact_revision, .. } if *compact_revision > 0 => {
                    report.compacted_cancels += 1;
                }
                Response::Canceled { reason, .. } if cancels::is_no_leader(reason) => {
                    report.no_leader_cancels += 1;
                }
                _ => {}
            }
        }
        if let Some(violation) = check_stream(index, stream, committed, known, compacted_to) {
            report.violations.push(violation);
        }
    }
    report
}

/// The first broken guarantee on one stream.
fn check_stream(
    index: usize,
    stream: &Stream,
    committed: &[Revision],
    known: i64,
    compacted_to: i64,
) -> Option<WatchViolation> {
    let expected: Vec<&WatchEvent> = committed
        .iter()
        .filter(|r| r.rev >= stream.start)
        .flat_map(|r| r.events.iter())
        .filter(|e| in_range(&e.key, &stream.range))
        .collect();
    let committed_as = |e: &WatchEvent| {
        committed
            .iter()
            .find(|r| r.rev == e.rev)
            .and_then(|r| r.events.iter().find(|c| c.key == e.key))
    };
    let (mut next, mut last_rev) = (0usize, i64::MIN);
    let mut open_fragment = false;
    for response in &stream.responses {
        match response {
            Response::Events { header, events, fragment } => {
                for (i, event) in events.iter().enumerate() {
                    if event.rev > known {
                        return None;
                    }
                    // Within a response (or a fragment's continuation) a revision may go on;
                    // a new response may not go back to it.
                    let repeats = event.rev == last_rev && i == 0 && !open_fragment;
                    if event.rev < last_rev || repeats {
                        return Some(WatchViolation::Unordered {
                            stream: index,
                            after: last_rev,
                            event: event.clone(),
                        });
                    }
                    // A delete at or below a compaction may be gone: etcd's compaction to R
                    // drops tombstones at R too, so a watch that catches up from R misses them.
                    while let Some(w) = expected.get(next)
                        && w.value.is_none()
                        && w.rev <= compacted_to
                        && (w.rev, &w.key) != (event.rev, &event.key)
                    {
                        next += 1;
                    }
                    let want = expected.get(next).copied();
                    let mut want_event = want.cloned();
                    if let Some(w) = want_event.as_mut()
                        && (!stream.prev_kv || (event.prev.is_none() && w.rev <= compacted_to))
                    {
                        w.prev = None;
                    }
                    match want_event {
                        Some(w) if w == *event => {}
                        Some(w) if w.rev < event.rev => {
                            return Some(WatchViolation::Gap {
                                stream: index,
                                expected: w,
                                delivered: event.clone(),
                            });
                        }
                        _ => {
                            let committed = committed_as(event).cloned();
                            return Some(WatchViolation::Phantom {
                                stream: index,
                                event: event.clone(),
                                committed,
                            });
                        }
                    }
                    next += 1;
                    last_rev = event.rev;
                }
                // A revision begun in this response must end in it, unless fragmented.
                if !fragment
                    && let Some(w) = expected.get(next)
                    && w.rev == last_rev
                {
                    return Some(WatchViolation::Split { stream: index, rev: last_rev });
                }
                open_fragment = *fragment;
                // A fragment's header names the revision still being sent.
                if !fragment && let Some(violation) = ahead(index, *header, expected.get(next)) {
                    return Some(violation);
                }
            }
            Response::Progress { header } if *header <= known => {
                if let Some(violation) = ahead(index, *header, expected.get(next)) {
                    return Some(violation);
                }
            }
            Response::Progress { .. } | Response::Canceled { .. } => break,
        }
    }
    None
}

fn ahead(stream: usize, header: i64, missing: Option<&&WatchEvent>) -> Option<WatchViolation> {
    let missing = missing.filter(|m| m.rev <= header)?;
    Some(WatchViolation::ProgressAhead { stream, header, missing: (*missing).clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(rev: i64, key: &str, value: &str, prev: Option<&str>) -> WatchEvent {
        WatchEvent { rev, key: key.into(), value: Some(value.into()), prev: prev.map(Into::into) }
    }

    fn committed() -> Vec<Revision> {
        vec![
            Revision { rev: 2, events: vec![put(2, "k1", "a", None)] },
            Revision {
                rev: 3,
                events: vec![put(3, "k1", "b", Some("a")), put(3, "k2", "c", None)],
            },
            Revision { rev: 4, events: vec![put(4, "x", "out of range", None)] },
            Revision {
                rev: 5,
                events: vec![WatchEvent {
                    rev: 5,
                    key: "k2".into(),
                    value: None,
                    prev: Some("c".into()),
                }],
            },
        ]
    }

    fn stream(start: i64, responses: Vec<Response>) -> Stream {
        Stream {
            watcher: 1,
            member: "n1".into(),
            start,
            range: ("k".into(), "l".into()),
            prev_kv: true,
            time: 0,
            require_leader: false,
            responses,
            received: Vec::new(),
        }
    }

    fn events(header: i64, events: Vec<WatchEvent>) -> Response {
        Response::Events { header, events, fragment: false }
    }

    #[test]
    fn a_watch_resumed_at_its_next_revision_is_clean() {
        let c = committed();
        let first =
            stream(2, vec![events(2, c[0].events.clone()), Response::Progress { header: 2 }]);
        let second =
            stream(3, vec![events(5, [c[1].events.clone(), c[3].events.clone()].concat())]);
        let report = check(&c, 5, &[], &[first, second]);
        assert_eq!(report.violations, vec![]);
        assert_eq!((report.streams, report.events, report.resumed), (2, 4, 1));
    }

    #[test]
    fn a_resume_that_skips_history_is_a_gap() {
        let c = committed();
        let resumed = stream(3, vec![events(5, c[3].events.clone())]);
        let report = check(&c, 5, &[], &[resumed]);
        assert!(
            matches!(&report.violations[..], [WatchViolation::Gap { expected, .. }] if expected.rev == 3),
            "{:?}",
            report.violations
        );
    }

    #[test]
    fn duplicates_splits_wrong_prev_values_and_early_progress_are_caught() {
        let c = committed();
        let twice = stream(2, vec![events(2, c[0].events.clone()), events(2, c[0].events.clone())]);
        let split = stream(
            3,
            vec![events(3, vec![c[1].events[0].clone()]), events(3, vec![c[1].events[1].clone()])],
        );
        let wrong_prev = stream(
            3,
            vec![events(3, vec![put(3, "k1", "b", Some("zzz")), c[1].events[1].clone()])],
        );
        let early = stream(2, vec![Response::Progress { header: 3 }]);
        let report = check(&c, 5, &[], &[twice, split, wrong_prev, early]);
        let kinds: Vec<&str> = report
            .violations
            .iter()
            .map(|v| match v {
                WatchViolation::Unordered { .. } => "unordered",
                WatchViolation::Split { .. } => "split",
                WatchViolation::Phantom { .. } => "phantom",
                WatchViolation::ProgressAhead { .. } => "ahead",
                WatchViolation::Gap { .. } => "gap",
                _ => "cancel",
            })
            .collect();
        assert_eq!(kinds, ["unordered", "split", "phantom", "ahead"], "{:?}", report.violations);
        for violation in &report.violations {
            assert!(!violation.to_string().is_empty());
        }
    }

    #[test]
    fn a_previous_value_below_a_compaction_may_be_missing() {
        let c = committed();
        let no_prev = put(3, "k1", "b", None);
        let s = stream(3, vec![events(3, vec![no_prev, c[1].events[1].clone()])]);
        assert_eq!(check(&c, 5, &[3], std::slice::from_ref(&s)).violations, vec![]);
        let report = check(&c, 5, &[2], &[s]);
        assert!(
            matches!(&report.violations[..], [WatchViolation::Phantom { .. }]),
            "{:?}",
            report.violations
        );
    }

    #[test]
    fn a_delete_at_a_compaction_may_be_missing_but_nothing_else() {
        let mut c = committed();
        c.push(Revision { rev: 6, events: vec![put(6, "k2", "d", None)] });
        let after_delete = stream(5, vec![events(6, c[4].events.clone())]);
        assert_eq!(check(&c, 6, &[5], std::slice::from_ref(&after_delete)).violations, vec![]);
        let report = check(&c, 6, &[4], &[after_delete]);
        assert!(matches!(&report.violations[..], [WatchViolation::Gap { .. }]), "{report:?}");
    }

    #[test]
    fn a_log_round_trips_and_bad_lines_are_named() {
        let c = committed();
        let log = WatchLog {
            committed: c.clone(),
            known: 5,
            streams: vec![stream(2, vec![events(2, c[0].events.clone())])],
            compactions: vec![2],
            leaders: Leaders {
                bound: 3,
                slack: 1,
                timelines: BTreeMap::from([("n1".to_string(), vec![(0, true)])]),
            },
        };
        let text = log.to_jsonl();
        assert_eq!(WatchLog::from_jsonl(&text), Ok(log.clone()));
        assert_eq!(log.check().violations, vec![]);
        let error =
            WatchLog::from_jsonl(&format!("{text}{{\"stream\": 3}}\n")).expect_err("refused");
        assert!(error.starts_with(&format!("line {}:", text.lines().count() + 1)), "{error}");
        let unknown = WatchLog::from_jsonl("{\"committed\": {\"rev\": 1, \"events\": []}}")
            .expect_err("no known line");
        assert!(unknown.contains("known"), "{unknown}");
    }

    #[test]
    fn fragments_may_split_a_revision_and_a_stream_may_stop_anywhere() {
        let c = committed();
        let fragmented = Stream {
            responses: vec![
                Response::Events {
                    header: 3,
                    events: vec![c[1].events[0].clone()],
                    fragment: true,
                },
                events(3, vec![c[1].events[1].clone()]),
                Response::Canceled { compact_revision: 0, reason: "etcdserver: no leader".into() },
            ],
            ..stream(3, vec![])
        };
        let report = check(&c, 5, &[], &[fragmented]);
        assert_eq!(report.violations, vec![]);
        assert_eq!(report.no_leader_cancels, 1);
    }
}
