//! `[raft]`: Raft's options beyond its timers — pre-vote, check-quorum, the batch size and the
//! snapshot interval, with today's replay defaults.

use toml::Spanned;

use super::raw::FileRaft;
use super::{Ctx, ScenarioError};
use crate::scenario::RaftOptions;

/// The most entries one AppendEntries may carry.
const MAX_ENTRIES_PER_MESSAGE: i64 = 1024;
/// The snapshot interval's range, in entries.
const SNAPSHOT_EVERY: std::ops::RangeInclusive<i64> = 10..=1_000_000;

/// The validated `[raft]` table, with defaults; `lease` says whether `[timing]` asked for
/// leader leases, which need check-quorum.
pub(super) fn parse(
    cx: &Ctx<'_>,
    raft: Option<&Spanned<FileRaft>>,
    lease: bool,
) -> Result<RaftOptions, ScenarioError> {
    let defaults = RaftOptions::default();
    let Some(raft) = raft else {
        return Ok(defaults);
    };
    let r = raft.get_ref();
    let count = |value: &Option<Spanned<i64>>, field: &str, range, default: u64| match value {
        None => Ok(default),
        Some(v) if std::ops::RangeInclusive::contains(&range, v.get_ref()) => {
            Ok(*v.get_ref() as u64)
        }
        Some(v) => {
            let (lo, hi): (&i64, &i64) = (range.start(), range.end());
            cx.err(v.span(), &format!("raft.{field}"), format!("{}: {lo} to {hi}", v.get_ref()))
        }
    };
    let options = RaftOptions {
        pre_vote: r.pre_vote.unwrap_or(defaults.pre_vote),
        check_quorum: r.check_quorum.unwrap_or(defaults.check_quorum),
        max_entries_per_message: count(
            &r.max_entries_per_message,
            "max_entries_per_message",
            1..=MAX_ENTRIES_PER_MESSAGE,
            defaults.max_entries_per_message as u64,
        )? as usize,
        snapshot_every: count(
            &r.snapshot_every,
            "snapshot_every",
            SNAPSHOT_EVERY,
            defaults.snapshot_every,
        )?,
    };
    if lease && !options.check_quorum {
        let message =
            "leader leases (timing.lease) need check-quorum (§6.4.1): set one or the other";
        return cx.err(raft.span(), "raft.check_quorum", message);
    }
    Ok(options)
}
