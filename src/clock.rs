//! A node's local monotonic clock. The driver measures Raft ticks, leases and deadlines on it,
//! so a node whose clock drifts ticks faster or slower than its peers, exactly as a real server
//! would.
//!
//! Real nodes read tokio's monotonic clock. In simulation each node's clock is
//! `local = base_local + (sim_now - base_sim) * rate`, and the simulator can, at any instant,
//! change `rate` (drift, for example ±10%) or pause the node. A pause stops the process, not
//! its clock: like `CLOCK_MONOTONIC` under SIGSTOP or a long GC pause, the clock keeps running,
//! and the node finds on waking that time has passed (its lease may have lapsed). A monotonic
//! clock never jumps, so none is simulated; wall-clock steps do not reach raftbed's timers.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Notify;

/// Local time since the node started, and sleeping on it.
pub trait Clock: 'static {
    /// Local time now.
    fn now(&self) -> Duration;
    /// Sleeps until the local clock reads `deadline` (or a little after; callers re-check).
    fn sleep_until(&self, deadline: Duration) -> impl std::future::Future<Output = ()>;
    /// Returns once the node may run (a paused node waits here).
    fn wait_running(&self) -> impl std::future::Future<Output = ()> {
        std::future::ready(())
    }
}

/// tokio's monotonic clock (virtual inside turmoil, real elsewhere), plus what `raftbed
/// nemesis clock` and a scenario replayed on real processes do to it: a forward jump (as after
/// a VM is suspended) and a rate (drift): `local = base_local + (now - base) * rate`.
#[derive(Clone, Debug)]
pub struct RealClock {
    state: std::sync::Arc<std::sync::Mutex<RealClockState>>,
}

#[derive(Debug)]
struct RealClockState {
    base: tokio::time::Instant,
    base_local: Duration,
    rate: f64,
}

impl RealClock {
    /// A clock reading zero now.
    pub fn new() -> RealClock {
        let state = RealClockState {
            base: tokio::time::Instant::now(),
            base_local: Duration::ZERO,
            rate: 1.0,
        };
        RealClock { state: std::sync::Arc::new(std::sync::Mutex::new(state)) }
    }

    fn with<T>(&self, f: impl FnOnce(&mut RealClockState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Reads the clock at `at` and starts counting from there.
    fn rebase(state: &mut RealClockState, at: tokio::time::Instant) {
        let elapsed = at.saturating_duration_since(state.base).as_secs_f64() * state.rate;
        state.base_local += Duration::from_secs_f64(elapsed);
        state.base = at;
    }

    /// Jumps the clock forward by `delta` (a monotonic clock never goes back).
    pub fn jump(&self, delta: Duration) {
        self.with(|s| {
            RealClock::rebase(s, tokio::time::Instant::now());
            s.base_local += delta;
        });
    }

    /// Runs the clock at `rate` from now (1.0 is true).
    ///
    /// # Panics
    /// If `rate` is not positive and finite (the admin port checks it first).
    pub fn set_rate(&self, rate: f64) {
        assert!(rate.is_finite() && rate > 0.0, "clock rate must be positive, got {rate}");
        self.with(|s| {
            RealClock::rebase(s, tokio::time::Instant::now());
            s.rate = rate;
        });
    }
}

impl Default for RealClock {
    fn default() -> RealClock {
        RealClock::new()
    }
}

impl Clock for RealClock {
    fn now(&self) -> Duration {
        self.with(|s| {
            let elapsed = s.base.elapsed().as_secs_f64() * s.rate;
            s.base_local + Duration::from_secs_f64(elapsed)
        })
    }

    /// A rate changed during the sleep makes it end early or late; callers re-check.
    async fn sleep_until(&self, deadline: Duration) {
        let at = self.with(|s| {
            let local = deadline.saturating_sub(s.base_local).as_secs_f64() / s.rate;
            s.base + Duration::from_secs_f64(local)
        });
        tokio::time::sleep_until(at).await;
    }
}

#[derive(Debug)]
struct SimClockState {
    base_sim: Duration,
    base_local: Duration,
    rate: f64,
    paused: bool,
}

/// A simulated node's clock, shared between the node (which reads it) and the simulator (which
/// skews it). It survives the node's crashes: a restarted process keeps its machine's clock.
#[derive(Clone, Debug)]
pub struct SimClock {
    state: Rc<RefCell<SimClockState>>,
    resumed: Rc<Notify>,
}

impl SimClock {
    /// A clock reading `offset` at simulated time `sim_now`, running at `rate` (1.0 is true).
    pub fn new(sim_now: Duration, offset: Duration, rate: f64) -> SimClock {
        let state = SimClockState { base_sim: sim_now, base_local: offset, rate, paused: false };
        SimClock { state: Rc::new(RefCell::new(state)), resumed: Rc::new(Notify::new()) }
    }

    /// The local reading at simulated time `sim_now`.
    pub fn local_at(&self, sim_now: Duration) -> Duration {
        let state = self.state.borrow();
        let elapsed = sim_now.saturating_sub(state.base_sim).as_secs_f64() * state.rate;
        state.base_local + Duration::from_secs_f64(elapsed)
    }

    fn rebase(&self, sim_now: Duration) {
        let local = self.local_at(sim_now);
        let mut state = self.state.borrow_mut();
        state.base_local = local;
        state.base_sim = sim_now;
    }

    /// Runs at `rate` from `sim_now` on.
    pub fn set_rate(&self, sim_now: Duration, rate: f64) {
        assert!(rate > 0.0, "clock rate must be positive, got {rate}");
        self.rebase(sim_now);
        self.state.borrow_mut().rate = rate;
    }

    /// Jumps forward by `delta` at `sim_now` (a monotonic clock never goes back).
    pub fn jump(&self, sim_now: Duration, delta: Duration) {
        self.rebase(sim_now);
        self.state.borrow_mut().base_local += delta;
    }

    /// The current rate.
    pub fn rate(&self) -> f64 {
        self.state.borrow().rate
    }

    /// Stops the node (its clock runs on).
    pub fn pause(&self) {
        self.state.borrow_mut().paused = true;
    }

    /// Lets the node run again.
    pub fn resume(&self) {
        self.state.borrow_mut().paused = false;
        self.resumed.notify_waiters();
    }

    /// Whether the node is paused.
    pub fn is_paused(&self) -> bool {
        self.state.borrow().paused
    }

    /// Waits until the node is not paused.
    pub async fn wait_resumed(&self) {
        while self.is_paused() {
            let notified = self.resumed.notified();
            if !self.is_paused() {
                break;
            }
            notified.await;
        }
    }

    fn sim_now() -> Duration {
        turmoil::sim_elapsed().expect("SimClock is read inside a simulated host")
    }
}

impl Clock for SimClock {
    fn now(&self) -> Duration {
        self.local_at(SimClock::sim_now())
    }

    async fn sleep_until(&self, deadline: Duration) {
        self.wait_resumed().await;
        let now = self.now();
        if deadline <= now {
            return;
        }
        let real = (deadline - now).as_secs_f64() / self.rate();
        tokio::time::sleep(Duration::from_secs_f64(real).max(Duration::from_micros(1))).await;
    }

    async fn wait_running(&self) {
        self.wait_resumed().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    /// Within a millisecond (the real clock computes in floating point).
    fn near(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_millis(1)
    }

    #[tokio::test(start_paused = true)]
    async fn a_real_clock_drifts_jumps_and_sleeps_on_its_own_time() {
        let clock = RealClock::new();
        tokio::time::advance(S(2)).await;
        assert!(near(clock.now(), S(2)), "{:?}", clock.now());
        clock.set_rate(2.0);
        tokio::time::advance(S(1)).await;
        assert!(near(clock.now(), S(4)), "2 s true, then 1 s at 2x: {:?}", clock.now());
        clock.jump(S(10));
        assert!(near(clock.now(), S(14)), "{:?}", clock.now());
        let before = tokio::time::Instant::now();
        clock.sleep_until(S(18)).await;
        let slept = before.elapsed();
        assert!(near(slept, S(2)), "4 s of local time at 2x take 2 s: {slept:?}");
        clock.set_rate(1.0);
        tokio::time::advance(S(1)).await;
        assert!(near(clock.now(), S(19)), "{:?}", clock.now());
    }

    #[test]
    fn drift_changes_the_rate_from_now_on() {
        let clock = SimClock::new(S(0), S(5), 1.0);
        assert_eq!(clock.local_at(S(10)), S(15));
        clock.set_rate(S(10), 1.5);
        assert_eq!(clock.local_at(S(12)), S(18));
        clock.set_rate(S(12), 0.5);
        assert_eq!(clock.local_at(S(16)), S(20));
    }

    #[test]
    fn a_paused_node_finds_its_clock_has_run_on() {
        let clock = SimClock::new(S(0), S(0), 1.0);
        clock.pause();
        assert!(clock.is_paused());
        assert_eq!(clock.local_at(S(30)), S(30), "a pause stops the process, not the clock");
        clock.resume();
        assert!(!clock.is_paused());
    }
}
