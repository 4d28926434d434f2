//! etcd's auto-compaction (`--auto-compaction-mode`, `--auto-compaction-retention`): the
//! leader proposes `Compact` on a schedule, through the log like a client's, so every member
//! drops the same revisions.
//!
//! - `periodic` (etcd 3.4's `Periodic`): the revision is sampled every tenth of the retention;
//!   once a whole retention has been sampled, the leader compacts to the sample from one
//!   retention ago, and again at most every retention (at most every hour).
//! - `revision` (etcd's `Revision`): every check (etcd: 5 minutes), the leader compacts to
//!   the current revision less the retention.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Api;
use crate::proto::etcdserverpb::CompactionRequest;
use crate::proto::raftbed::{Command, command::Op};
use crate::transport::net::Net;

/// etcd's fixed interval between the revision compactor's checks.
pub const REVISION_CHECK: Duration = Duration::from_secs(300);

/// How history is compacted without a client asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep about this long of history.
    Periodic(Duration),
    /// Keep the last `keep` revisions, checked every `every`.
    Revision {
        /// Revisions kept below the current one.
        keep: i64,
        /// Time between checks.
        every: Duration,
    },
}

impl AutoCompaction {
    /// etcd's flags: `mode` is `periodic` or `revision`; a `retention` of 0 turns compaction
    /// off. A periodic retention is a duration (`30m`, `1h`) or a whole number of hours; a
    /// revision retention is a number of revisions.
    ///
    /// # Errors
    /// A message naming the flag and the value.
    pub fn parse(mode: &str, retention: &str) -> Result<Option<AutoCompaction>, String> {
        let retention = retention.trim();
        match mode {
            "periodic" => {
                let period = match retention.parse::<u64>() {
                    Ok(hours) => Duration::from_secs(hours.saturating_mul(3600)),
                    Err(_) => crate::cli::sim::parse_duration(retention).map_err(|e| {
                        format!(
                            "--auto-compaction-retention {retention:?}: {e} (or a number of hours)"
                        )
                    })?,
                };
                if period.is_zero() {
                    return Ok(None);
                }
                if period < Duration::from_millis(10) {
                    return Err(format!(
                        "--auto-compaction-retention {retention:?}: at least 10ms in periodic mode"
                    ));
                }
                Ok(Some(AutoCompaction::Periodic(period)))
            }
            "revision" => match retention.parse::<i64>() {
                Ok(0) => Ok(None),
                Ok(keep) if keep > 0 => {
                    Ok(Some(AutoCompaction::Revision { keep, every: REVISION_CHECK }))
                }
                _ => Err(format!(
                    "--auto-compaction-retention {retention:?}: a number of revisions (0: off) in revision mode"
                )),
            },
            other => Err(format!("--auto-compaction-mode {other:?}: periodic or revision")),
        }
    }
}

/// What the leader compacts to, given the revision samples.
#[derive(Debug)]
struct Schedule {
    mode: AutoCompaction,
    samples: VecDeque<i64>,
    last_compaction: Option<Instant>,
    compacted: i64,
}

impl Schedule {
    fn new(mode: AutoCompaction) -> Schedule {
        Schedule { mode, samples: VecDeque::new(), last_compaction: None, compacted: 0 }
    }

    /// The time between two looks at the revision.
    fn every(&self) -> Duration {
        match self.mode {
            AutoCompaction::Periodic(period) => period / 10,
            AutoCompaction::Revision { every, .. } => every,
        }
    }

    /// Records the revision `current` seen at `now`; answers the revision to compact to, if
    /// one is due.
    fn due(&mut self, current: i64, now: Instant) -> Option<i64> {
        let target = match self.mode {
            AutoCompaction::Periodic(period) => {
                self.samples.push_back(current);
                // The first sample is one retention old when eleven were taken.
                if self.samples.len() > 11 {
                    self.samples.pop_front();
                }
                let since = self.last_compaction.map(|at| now.duration_since(at));
                if self.samples.len() < 11
                    || since.is_some_and(|d| d < period.min(Duration::from_secs(3600)))
                {
                    return None;
                }
                self.samples[0]
            }
            AutoCompaction::Revision { keep, .. } => current - keep,
        };
        (target > self.compacted).then_some(target)
    }

    fn compacted(&mut self, revision: i64, now: Instant) {
        self.compacted = revision;
        self.last_compaction = Some(now);
    }
}

/// Compacts on `mode`'s schedule while this node leads, for as long as it runs.
pub async fn run<N: Net + Send + Sync>(api: Arc<Api<N>>, mode: AutoCompaction) {
    let mut schedule = Schedule::new(mode);
    loop {
        tokio::time::sleep(schedule.every()).await;
        let now = Instant::now();
        let current = *api.revision.borrow();
        let Some(target) = schedule.due(current, now) else { continue };
        if *api.leader.borrow() != Some(api.id) {
            continue;
        }
        let op = Op::Compact(CompactionRequest { revision: target, physical: false });
        let command = Command { client_id: 0, seq: 0, op: Some(op) };
        // A refusal (compacted that far already) is as good as done.
        if api.propose(command).await.is_ok() {
            schedule.compacted(target, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_as_etcd_reads_them() {
        let hour = Duration::from_secs(3600);
        assert_eq!(
            AutoCompaction::parse("periodic", "1"),
            Ok(Some(AutoCompaction::Periodic(hour)))
        );
        let half = AutoCompaction::Periodic(hour / 2);
        assert_eq!(AutoCompaction::parse("periodic", "30m"), Ok(Some(half)));
        assert_eq!(AutoCompaction::parse("periodic", "0"), Ok(None));
        assert_eq!(AutoCompaction::parse("revision", "0"), Ok(None));
        let keep = AutoCompaction::Revision { keep: 1000, every: REVISION_CHECK };
        assert_eq!(AutoCompaction::parse("revision", "1000"), Ok(Some(keep)));
        for (mode, retention) in
            [("revision", "1h"), ("revision", "-3"), ("periodic", "soon"), ("daily", "1")]
        {
            let error = AutoCompaction::parse(mode, retention).expect_err("refused");
            assert!(
                error.contains(retention) || error.contains(mode),
                "{mode} {retention}: {error}"
            );
        }
    }

    #[test]
    fn periodic_compacts_to_the_revision_one_retention_ago() {
        let period = Duration::from_secs(100);
        let mut schedule = Schedule::new(AutoCompaction::Periodic(period));
        let start = Instant::now();
        let at = |i: u32| start + period / 10 * i;
        for i in 0..10 {
            assert_eq!(schedule.due(i64::from(i) * 5, at(i)), None, "sample {i}: too early");
        }
        assert_eq!(schedule.due(50, at(10)), None, "revision 0: nothing to compact");
        let mut schedule = Schedule::new(AutoCompaction::Periodic(period));
        for i in 0..10 {
            schedule.due(10 + i64::from(i) * 5, at(i));
        }
        assert_eq!(schedule.due(60, at(10)), Some(10), "the sample from one retention ago");
        schedule.compacted(10, at(10));
        assert_eq!(schedule.due(65, at(11)), None, "at most once a retention");
        for i in 12..20 {
            assert_eq!(schedule.due(60 + i64::from(i), at(i)), None);
        }
        assert_eq!(schedule.due(80, at(20)), Some(60), "the sample taken at the last compaction");
    }

    #[test]
    fn revision_mode_keeps_the_last_revisions() {
        let mode = AutoCompaction::Revision { keep: 10, every: Duration::from_secs(1) };
        let mut schedule = Schedule::new(mode);
        let now = Instant::now();
        assert_eq!(schedule.due(5, now), None);
        assert_eq!(schedule.due(25, now), Some(15));
        schedule.compacted(15, now);
        assert_eq!(schedule.due(25, now), None, "nothing new to drop");
        assert_eq!(schedule.due(26, now), Some(16));
    }
}
