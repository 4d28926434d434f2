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

/// `spares`: nodes that start as no member, to be added by `add` or `replace` events. They
/// are the last nodes in site order (node ids follow that order, and the voters come first),
/// and the first leader is not one of them. Returns how many.
pub(super) fn spares(
    cx: &Ctx<'_>,
    names: &super::names::Names<'_>,
    raft: Option<&Spanned<FileRaft>>,
    leader: usize,
) -> Result<usize, ScenarioError> {
    let Some(list) = raft.and_then(|r| r.get_ref().spares.as_ref()) else { return Ok(0) };
    let mut spares = Vec::new();
    for name in list.get_ref() {
        match names.node(name) {
            Some(n) if !spares.contains(&n) => spares.push(n),
            Some(_) => {
                return cx.err(list.span(), "raft.spares", format!("{name} is listed twice"));
            }
            None => return cx.err(list.span(), "raft.spares", names.unknown_node(name)),
        }
    }
    let total = names.nodes.len();
    let voters = total - spares.len();
    if voters == 0 {
        return cx.err(
            list.span(),
            "raft.spares",
            "every node is a spare: the cluster needs a voter",
        );
    }
    if spares.iter().any(|n| *n < voters) {
        let last: Vec<&str> = names.nodes[voters..].iter().map(String::as_str).collect();
        let message = format!(
            "spares are the last nodes in site order (here {}): list them after the voters",
            last.join(", ")
        );
        return cx.err(list.span(), "raft.spares", message);
    }
    if leader >= voters {
        let message = format!("the first leader {} cannot be a spare", names.nodes[leader]);
        return cx.err(list.span(), "raft.spares", message);
    }
    Ok(spares.len())
}

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
        spares: 0,
    };
    if lease && !options.check_quorum {
        let message =
            "leader leases (timing.lease) need check-quorum (§6.4.1): set one or the other";
        return cx.err(raft.span(), "raft.check_quorum", message);
    }
    Ok(options)
}
