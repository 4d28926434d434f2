//! The run's trace: one line per event, stamped with simulated time. Its hash is the proof of
//! determinism: the same seed must give the same hash, byte for byte.

use std::fmt::Write as _;
use std::time::Duration;

/// Trace lines and their running hash.
#[derive(Debug, Default)]
pub struct Trace {
    hash: u64,
    count: u64,
    lines: Option<Vec<String>>,
}

impl Trace {
    /// A trace that keeps its lines only if `keep` (the hash is always kept).
    pub fn new(keep: bool) -> Trace {
        Trace { hash: 0xcbf2_9ce4_8422_2325, count: 0, lines: keep.then(Vec::new) }
    }

    /// Records one event at simulated time `at`.
    pub fn record(&mut self, at: Duration, event: std::fmt::Arguments<'_>) {
        let mut line = String::with_capacity(64);
        let _ = write!(line, "{:>10.6} {event}", at.as_secs_f64());
        for byte in line.bytes().chain(std::iter::once(b'\n')) {
            self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.count += 1;
        if let Some(lines) = &mut self.lines {
            lines.push(line);
        }
    }

    /// The hash of every line so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// How many events were recorded.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The kept lines.
    pub fn lines(&self) -> &[String] {
        self.lines.as_deref().unwrap_or(&[])
    }
}
