//! `[timing]`: Raft's timers (checked by the server's own `Timing`) and the naive systems'
//! failover timing.

use std::time::Duration;

use toml::Spanned;

use super::names::Names;
use super::raw::FileTiming;
use super::{Ctx, ScenarioError};
use crate::scenario::{Latency, Timing};

/// The most a request may wait for an outcome.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest failover threshold.
const MAX_FAILOVER_AFTER: Duration = Duration::from_secs(600);
/// The longest monitor interval.
const MAX_MONITOR_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest monitor interval (and at least a tick): a monitor pinging faster than its
/// network answers learns nothing.
const MIN_MONITOR_INTERVAL: Duration = Duration::from_millis(5);

/// The validated `[timing]` table, with defaults.
pub(super) fn parse(
    cx: &Ctx<'_>,
    names: &Names<'_>,
    timing: Option<&Spanned<FileTiming>>,
    leader: usize,
) -> Result<Timing, ScenarioError> {
    let span = timing.map_or(0..0, |t| t.span());
    let empty = FileTiming::default();
    let ft = timing.map_or(&empty, |t| t.get_ref());
    let dur = |v: &Option<Spanned<String>>, field: &str, default: u64, max: Duration| match v {
        Some(v) => cx.duration(v, &format!("timing.{field}"), false, max),
        None => Ok(Duration::from_millis(default)),
    };
    // Raft's timers are checked by `Timing::check`, with their own ranges.
    let long = Duration::MAX;
    let tick = dur(&ft.tick, "tick", 10, long)?;
    let election_timeout = dur(&ft.election_timeout, "election_timeout", 1000, long)?;
    let heartbeat = dur(&ft.heartbeat, "heartbeat", 100, long)?;
    let drift_margin = match &ft.drift_margin {
        Some(v) => cx.duration(v, "timing.drift_margin", true, long)?,
        None => election_timeout / 2,
    };
    let raft = crate::server::timing::Timing { tick, election_timeout, heartbeat, drift_margin };
    if let Err(e) = raft.check() {
        let value = match e.field {
            "tick" => &ft.tick,
            "election_timeout" => &ft.election_timeout,
            "heartbeat" => &ft.heartbeat,
            _ => &ft.drift_margin,
        };
        let at = value.as_ref().map_or(span.clone(), |v| v.span());
        return cx.err(at, &format!("timing.{}", e.field), e.message);
    }
    let request_timeout = dur(&ft.request_timeout, "request_timeout", 1000, MAX_REQUEST_TIMEOUT)?;
    let failover_after = dur(&ft.failover_after, "failover_after", 3000, MAX_FAILOVER_AFTER)?;
    let monitor_interval =
        dur(&ft.monitor_interval, "monitor_interval", 1000, MAX_MONITOR_INTERVAL)?;
    let least = tick.max(MIN_MONITOR_INTERVAL);
    if monitor_interval < least {
        let at = ft.monitor_interval.as_ref().map_or(span, |v| v.span());
        let message = format!(
            "{}: at least {} (5ms, and no less than a tick)",
            crate::scenario::show(monitor_interval),
            crate::scenario::show(least)
        );
        return cx.err(at, "timing.monitor_interval", message);
    }
    let default_latency = match &ft.default_latency {
        Some(l) => cx.latency(l, "timing.default_latency")?,
        None => Latency::fixed(Duration::from_millis(1)),
    };
    let sites = names.sites;
    let monitor_site = match &ft.monitor_site {
        Some(s) => names.site_field(cx, s, "timing.monitor_site")?,
        // The biggest site without the first primary.
        None => (0..sites.len())
            .filter(|s| !sites[*s].nodes.contains(&leader))
            .max_by_key(|s| (sites[*s].nodes.len(), std::cmp::Reverse(*s)))
            .unwrap_or(0),
    };
    Ok(Timing {
        raft,
        lease: ft.lease.unwrap_or(true),
        request_timeout,
        failover_after,
        monitor_interval,
        monitor_site,
        default_latency,
    })
}
