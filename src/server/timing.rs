//! A node's timing as people write it (durations), lowered to the core's ticks in one place.
//! The simulator, scenario files, `raftbed node` and the in-process cluster all build one, so
//! a timeout means the same number of ticks everywhere, and the ranges below are checked once.

use std::fmt;
use std::time::Duration;

/// The shortest and longest tick.
pub const TICK_RANGE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(100));

/// The longest minimum election timeout.
pub const MAX_ELECTION_TIMEOUT: Duration = Duration::from_secs(60);

/// How long Raft's timers are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// One tick of the core, on the node's clock.
    pub tick: Duration,
    /// The minimum election timeout (§3.4); the maximum is twice it.
    pub election_timeout: Duration,
    /// How often a leader sends heartbeats.
    pub heartbeat: Duration,
    /// A leader lease (§6.4.1) is the minimum election timeout less this margin, which covers
    /// clock drift between the leader and its followers.
    pub drift_margin: Duration,
}

/// A timing that cannot work: the field and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TimingError {
    /// `tick`, `election_timeout`, `heartbeat` or `drift_margin`.
    pub field: &'static str,
    /// What is wrong, with the values.
    pub message: String,
}

impl Timing {
    /// A timing in whole ticks, with a drift margin of half the election timeout (a follower's
    /// clock may then run up to 1.6 times as fast as the leader's).
    pub fn from_ticks(tick: Duration, election_ticks: u32, heartbeat_ticks: u32) -> Timing {
        let election_timeout = tick * election_ticks;
        Timing {
            tick,
            election_timeout,
            heartbeat: tick * heartbeat_ticks,
            drift_margin: election_timeout / 2,
        }
    }

    /// Real nodes on loopback: 10 ms ticks, elections after 300-600 ms, heartbeats every 50 ms.
    pub fn loopback() -> Timing {
        Timing::from_ticks(Duration::from_millis(10), 30, 5)
    }

    /// Checks the stated ranges: a tick of 1 ms to 100 ms; an election timeout of at least two
    /// ticks and at most 60 s; a heartbeat of at least a tick and shorter than the election
    /// timeout; a drift margin shorter than the election timeout.
    ///
    /// # Errors
    /// Names the first field out of range.
    pub fn check(&self) -> Result<(), TimingError> {
        let fail = |field, message: String| Err(TimingError { field, message });
        let (least, most) = TICK_RANGE;
        if self.tick < least || self.tick > most {
            return fail("tick", format!("{:?}: a tick is 1ms to 100ms", self.tick));
        }
        if self.election_timeout > MAX_ELECTION_TIMEOUT {
            return fail(
                "election_timeout",
                format!("{:?}: at most {MAX_ELECTION_TIMEOUT:?}", self.election_timeout),
            );
        }
        if self.election_ticks() < 2 {
            return fail(
                "election_timeout",
                format!("{:?}: at least two ticks of {:?}", self.election_timeout, self.tick),
            );
        }
        if self.heartbeat < self.tick || self.heartbeat_ticks() >= self.election_ticks() {
            return fail(
                "heartbeat",
                format!(
                    "{:?}: at least one tick ({:?}) and shorter than the election timeout ({:?})",
                    self.heartbeat, self.tick, self.election_timeout
                ),
            );
        }
        if self.drift_margin >= self.election_timeout {
            return fail(
                "drift_margin",
                format!(
                    "{:?}: must be shorter than the election timeout ({:?})",
                    self.drift_margin, self.election_timeout
                ),
            );
        }
        Ok(())
    }

    /// `d` in whole ticks, rounded down.
    pub fn ticks(&self, d: Duration) -> u32 {
        let ticks = d.as_nanos() / self.tick.as_nanos().max(1);
        ticks.min(u128::from(u32::MAX)) as u32
    }

    /// The minimum election timeout in ticks.
    pub fn election_ticks(&self) -> u32 {
        self.ticks(self.election_timeout)
    }

    /// The heartbeat interval in ticks.
    pub fn heartbeat_ticks(&self) -> u32 {
        self.ticks(self.heartbeat)
    }

    /// The drift margin in ticks: none when zero, else at least one and less than the
    /// election timeout, so that a lease always has some length.
    pub fn drift_margin_ticks(&self) -> u32 {
        if self.drift_margin.is_zero() {
            return 0;
        }
        let election = self.election_ticks().max(2);
        self.ticks(self.drift_margin).clamp(1, election - 1)
    }

    /// etcd's minimum lease TTL: one and a half of the longest election timeout (twice the
    /// minimum), in whole seconds, at least one.
    pub fn min_lease_ttl(&self) -> i64 {
        let longest = self.tick * (2 * self.election_ticks());
        (longest.as_secs_f64() * 1.5).ceil().max(1.0) as i64
    }

    /// Sets the core's timers. Call it after `with_lease_reads`, which sets a margin of its
    /// own.
    pub fn lower(&self, raft: &mut crate::raft::Config) {
        raft.election_timeout_ticks_min = self.election_ticks();
        raft.election_timeout_ticks_max = 2 * self.election_ticks();
        raft.heartbeat_interval_ticks = self.heartbeat_ticks();
        raft.lease_drift_margin_ticks = self.drift_margin_ticks();
    }
}

impl fmt::Display for Timing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tick {:?}, election {}-{} ticks, heartbeat {} ticks, drift margin {} ticks",
            self.tick,
            self.election_ticks(),
            2 * self.election_ticks(),
            self.heartbeat_ticks(),
            self.drift_margin_ticks()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn lowers_durations_to_ticks_once() {
        let t = Timing {
            tick: ms(10),
            election_timeout: ms(305),
            heartbeat: ms(55),
            drift_margin: ms(152),
        };
        assert_eq!((t.election_ticks(), t.heartbeat_ticks(), t.drift_margin_ticks()), (30, 5, 15));
        let mut raft =
            crate::raft::Config::new(crate::raft::NodeId(1), vec![crate::raft::NodeId(1)]);
        t.lower(&mut raft);
        assert_eq!((raft.election_timeout_ticks_min, raft.election_timeout_ticks_max), (30, 60));
        assert_eq!((raft.heartbeat_interval_ticks, raft.lease_drift_margin_ticks), (5, 15));
        assert_eq!(t.min_lease_ttl(), 1, "1.5 x 600 ms, rounded up");
        let slow = Timing::from_ticks(ms(10), 100, 10);
        assert_eq!(slow.min_lease_ttl(), 3, "1.5 x 2 s");
        assert_eq!(slow.drift_margin_ticks(), 50);
    }

    #[test]
    fn a_margin_always_leaves_a_lease() {
        let mut t = Timing::from_ticks(ms(10), 10, 2);
        t.drift_margin = ms(1);
        assert_eq!(t.drift_margin_ticks(), 1, "a sub-tick margin is one tick");
        t.drift_margin = Duration::ZERO;
        assert_eq!(t.drift_margin_ticks(), 0);
    }

    #[test]
    fn the_ranges_are_checked_with_the_field() {
        let good = Timing::loopback();
        assert_eq!(good.check(), Ok(()));
        let field = |t: Timing| t.check().unwrap_err().field;
        assert_eq!(field(Timing { tick: Duration::from_nanos(1), ..good }), "tick");
        assert_eq!(field(Timing { tick: ms(101), ..good }), "tick");
        assert_eq!(
            field(Timing { election_timeout: Duration::from_secs(61), ..good }),
            "election_timeout"
        );
        assert_eq!(
            field(Timing { election_timeout: ms(15), heartbeat: ms(10), ..good }),
            "election_timeout"
        );
        assert_eq!(field(Timing { heartbeat: ms(300), ..good }), "heartbeat");
        assert_eq!(field(Timing { heartbeat: ms(5), ..good }), "heartbeat");
        assert_eq!(field(Timing { drift_margin: ms(300), ..good }), "drift_margin");
    }
}
