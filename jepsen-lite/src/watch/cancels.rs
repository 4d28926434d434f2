//! Judging why streams ended: a require-leader stream must be cancelled once its member has
//! gone without a leader for a while, and only then; a stream cancelled for a compaction must
//! really have fallen below one.
//!
//! etcd (`monitorLeader`, clientv3's `WithRequireLeader`) checks once per election timeout
//! and cancels every require-leader stream after three checks in a row without a leader, so
//! a watcher on a cut-off member does not see a silently frozen world. The harness knows what
//! each member itself believed about its leader over time ([`Leaders`]); from that:
//!
//! - **leaderless, not cancelled**: a require-leader stream received something at `t` although
//!   its member had had no leader from `since` (or from the stream's opening, if later) through
//!   `t`, and `t - since` exceeds the bound plus the delivery slack. Anything received then was
//!   sent after the cancel was due.
//! - **cancelled with a leader**: a stream was cancelled with `etcdserver: no leader` at `t`
//!   although its member knew a leader throughout the bound and the slack before `t`: none of
//!   the checks that led to the cancel can have seen no leader.
//!
//! Both need the time of every response (`Stream::received`) and a known timeline; where
//! either is missing nothing is judged. Only responses are judged, not silence: a stream that
//! just stays quiet may have had its cancel lost on a cut link.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Response, Stream, WatchViolation};

/// What each member believed about its leader, over time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaders {
    /// A member without a leader this long (nanoseconds) must have cancelled its
    /// require-leader streams (etcd: three checks, one election timeout apart); 0: not judged.
    pub bound: i64,
    /// Allowance for delivery and scheduling (nanoseconds), on either side of the bound.
    pub slack: i64,
    /// Per member (as streams name it): `(time, whether it knew a leader from then on)`, in
    /// time order. Before a member's first entry nothing is known.
    pub timelines: BTreeMap<String, Vec<(i64, bool)>>,
}

impl Leaders {
    /// Whether the member knew a leader at `t` (`None`: not known).
    fn state_at(timeline: &[(i64, bool)], t: i64) -> Option<bool> {
        let after = timeline.partition_point(|(at, _)| *at <= t);
        after.checked_sub(1).map(|i| timeline[i].1)
    }

    /// When the member's leaderless spell that includes `t` began (`None`: it had a leader
    /// at `t`, or it is not known). A spell that starts the timeline counts from there.
    fn leaderless_since(timeline: &[(i64, bool)], t: i64) -> Option<i64> {
        let after = timeline.partition_point(|(at, _)| *at <= t);
        let last = after.checked_sub(1)?;
        if timeline[last].1 {
            return None;
        }
        let first = timeline[..=last].iter().rposition(|(_, has)| *has).map_or(0, |i| i + 1);
        Some(timeline[first].0)
    }

    /// Whether the member knew a leader all through `[from, to]`.
    fn led_throughout(timeline: &[(i64, bool)], from: i64, to: i64) -> bool {
        Leaders::state_at(timeline, from) == Some(true)
            && timeline.iter().all(|(at, has)| *has || *at <= from || *at > to)
    }
}

/// Whether a cancel says the member had no leader.
pub(super) fn is_no_leader(reason: &str) -> bool {
    reason.contains("no leader")
}

/// The first require-leader violation on stream `index`.
pub(super) fn judge_leader(
    index: usize,
    stream: &Stream,
    leaders: &Leaders,
) -> Option<WatchViolation> {
    let timeline = leaders.timelines.get(&stream.member)?;
    if leaders.bound <= 0 || stream.received.len() != stream.responses.len() {
        return None;
    }
    let late = leaders.bound + leaders.slack;
    for (response, &at) in stream.responses.iter().zip(&stream.received) {
        match response {
            Response::Canceled { reason, .. } if is_no_leader(reason) => {
                return Leaders::led_throughout(timeline, at - late, at).then(|| {
                    WatchViolation::CanceledWithLeader {
                        stream: index,
                        member: stream.member.clone(),
                        at,
                    }
                });
            }
            _ if stream.require_leader => {
                let Some(since) = Leaders::leaderless_since(timeline, at) else { continue };
                let since = since.max(stream.time);
                if at - since > late {
                    return Some(WatchViolation::LeaderlessNotCanceled {
                        stream: index,
                        member: stream.member.clone(),
                        since,
                        at,
                    });
                }
            }
            _ => {}
        }
    }
    None
}

/// A compaction cancel that no compaction explains: `compactions` are the revisions the
/// committed history was compacted to, and `next` the first revision the stream still owed.
pub(super) fn judge_compaction(
    index: usize,
    stream: &Stream,
    next: i64,
    compactions: &[i64],
) -> Option<WatchViolation> {
    let compact_revision = stream.responses.iter().find_map(|r| match r {
        Response::Canceled { compact_revision, .. } if *compact_revision > 0 => {
            Some(*compact_revision)
        }
        _ => None,
    })?;
    let compacted = compactions.contains(&compact_revision);
    (!compacted || next >= compact_revision).then_some(WatchViolation::FalseCompaction {
        stream: index,
        compact_revision,
        next,
        compacted,
    })
}

/// How many leaderless spells, over all members, lasted past the bound (or were still going
/// at the end): the chances the require-leader check had.
pub fn long_spells(leaders: &Leaders) -> usize {
    let mut spells = 0;
    for timeline in leaders.timelines.values() {
        for (i, (at, has)) in timeline.iter().enumerate() {
            let began = !has && (i == 0 || timeline[i - 1].1);
            let ended = timeline[i + 1..].iter().find(|(_, h)| *h).map(|(t, _)| *t);
            if began && ended.is_none_or(|end| end - at > leaders.bound) {
                spells += 1;
            }
        }
    }
    spells
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn leaders(timeline: Vec<(i64, bool)>) -> Leaders {
        Leaders {
            bound: 300 * MS,
            slack: 100 * MS,
            timelines: BTreeMap::from([("n1".to_string(), timeline)]),
        }
    }

    fn stream(require_leader: bool, received: Vec<(i64, Response)>) -> Stream {
        Stream {
            watcher: 1,
            member: "n1".into(),
            start: 1,
            range: ("k".into(), "l".into()),
            prev_kv: false,
            time: 0,
            require_leader,
            received: received.iter().map(|(at, _)| *at).collect(),
            responses: received.into_iter().map(|(_, r)| r).collect(),
        }
    }

    fn no_leader() -> Response {
        Response::Canceled { compact_revision: 0, reason: "etcdserver: no leader".into() }
    }

    #[test]
    fn a_stream_still_answering_long_after_its_member_lost_the_leader_is_caught() {
        let lost_at_1s = leaders(vec![(0, true), (1000 * MS, false)]);
        let progress = || Response::Progress { header: 1 };
        let timely = stream(true, vec![(1300 * MS, progress()), (1350 * MS, no_leader())]);
        assert_eq!(judge_leader(0, &timely, &lost_at_1s), None);
        let frozen = stream(true, vec![(1300 * MS, progress()), (1500 * MS, progress())]);
        let violation = judge_leader(3, &frozen, &lost_at_1s);
        assert_eq!(
            violation,
            Some(WatchViolation::LeaderlessNotCanceled {
                stream: 3,
                member: "n1".into(),
                since: 1000 * MS,
                at: 1500 * MS
            })
        );
        assert!(violation.expect("some").to_string().contains("500 ms"));
        // Without require-leader, a frozen world is what the client asked for.
        let plain = stream(false, vec![(1500 * MS, progress())]);
        assert_eq!(judge_leader(0, &plain, &lost_at_1s), None);
    }

    #[test]
    fn a_spell_counts_from_the_stream_opening_and_a_regained_leader_resets_it() {
        let flapping = leaders(vec![(0, false), (200 * MS, true), (900 * MS, false)]);
        let progress = Response::Progress { header: 1 };
        let mut late_opener = stream(true, vec![(1400 * MS, progress.clone())]);
        late_opener.time = 1100 * MS;
        assert_eq!(judge_leader(0, &late_opener, &flapping), None);
        let early = stream(true, vec![(1400 * MS, progress)]);
        assert!(matches!(
            judge_leader(0, &early, &flapping),
            Some(WatchViolation::LeaderlessNotCanceled { since, .. }) if since == 900 * MS
        ));
    }

    #[test]
    fn a_no_leader_cancel_needs_a_leaderless_moment_within_the_bound() {
        let steady = leaders(vec![(0, true)]);
        let canceled = stream(true, vec![(2000 * MS, no_leader())]);
        assert!(matches!(
            judge_leader(0, &canceled, &steady),
            Some(WatchViolation::CanceledWithLeader { at, .. }) if at == 2000 * MS
        ));
        let blip = leaders(vec![(0, true), (1700 * MS, false), (1750 * MS, true)]);
        assert_eq!(judge_leader(0, &canceled, &blip), None);
        // Unknown times and untimed streams are not judged.
        let unknown = leaders(vec![(1800 * MS, true)]);
        assert_eq!(judge_leader(0, &canceled, &unknown), None);
        let mut untimed = canceled.clone();
        untimed.received.clear();
        assert_eq!(judge_leader(0, &untimed, &steady), None);
    }

    #[test]
    fn a_compaction_cancel_must_name_a_compaction_above_what_the_stream_owed() {
        let canceled = |c| Response::Canceled { compact_revision: c, reason: String::new() };
        let s = stream(false, vec![(0, canceled(40))]);
        assert_eq!(judge_compaction(0, &s, 12, &[40]), None);
        assert!(matches!(
            judge_compaction(0, &s, 12, &[30]),
            Some(WatchViolation::FalseCompaction { compacted: false, .. })
        ));
        assert!(matches!(
            judge_compaction(0, &s, 41, &[40]),
            Some(WatchViolation::FalseCompaction { compacted: true, next: 41, .. })
        ));
    }

    #[test]
    fn long_spells_are_counted_per_member() {
        let l = leaders(vec![(0, false), (100 * MS, true), (200 * MS, false), (900 * MS, true)]);
        assert_eq!(long_spells(&l), 1);
    }
}
