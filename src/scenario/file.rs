//! The scenario file format (TOML) and its validation. Every error names the file, the line and
//! the field; the README's scenario reference documents each key. `to_toml` writes a scenario
//! back (for shrinking).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{
    Action, ClientGroup, Event, Latency, Link, LockGroup, Mix, Scenario, Site, Target, Timing, show,
};
use crate::server::calls::Consistency;

/// A scenario that could not be loaded: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// The line (1-based; 0 when the file could not be read).
    pub line: usize,
    /// The field, as a path (`event[2].node`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScenario {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    duration: Spanned<String>,
    leader: Option<Spanned<String>>,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    timing: Option<Spanned<FileTiming>>,
    #[serde(rename = "site")]
    sites: Option<Vec<Spanned<FileSite>>>,
    #[serde(default, rename = "link")]
    links: Vec<Spanned<FileLink>>,
    #[serde(default, rename = "clients")]
    clients: Vec<Spanned<FileClients>>,
    #[serde(default, rename = "locks")]
    locks: Vec<Spanned<FileLocks>>,
    #[serde(default, rename = "event")]
    events: Vec<Spanned<FileEvent>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLocks {
    name: Spanned<String>,
    site: Spanned<String>,
    #[serde(default = "one")]
    count: Spanned<i64>,
    ttl: Option<Spanned<String>>,
    pause_chance: Option<Spanned<f64>>,
    talk_to: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileTiming {
    tick: Option<Spanned<String>>,
    election_timeout: Option<Spanned<String>>,
    heartbeat: Option<Spanned<String>>,
    lease: Option<bool>,
    drift_margin: Option<Spanned<String>>,
    request_timeout: Option<Spanned<String>>,
    failover_after: Option<Spanned<String>>,
    monitor_interval: Option<Spanned<String>>,
    monitor_site: Option<Spanned<String>>,
    default_latency: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSite {
    name: Spanned<String>,
    nodes: Spanned<Vec<String>>,
    latency: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLink {
    between: Spanned<Vec<String>>,
    latency: Option<Spanned<String>>,
    loss: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileClients {
    name: Spanned<String>,
    site: Spanned<String>,
    #[serde(default = "one")]
    count: Spanned<i64>,
    rate: Option<Spanned<f64>>,
    mix: Option<Spanned<BTreeMap<String, f64>>>,
    keys: Option<Spanned<i64>>,
    talk_to: Option<Spanned<Vec<String>>>,
    consistency: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

fn one() -> Spanned<i64> {
    Spanned::new(0..0, 1)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEvent {
    at: Spanned<String>,
    partition: Option<Spanned<Vec<Vec<String>>>>,
    one_way: Option<bool>,
    heal: Option<bool>,
    isolate_leader: Option<bool>,
    crash: Option<Spanned<String>>,
    restart: Option<Spanned<String>>,
    pause: Option<Spanned<String>>,
    resume: Option<Spanned<String>>,
    node: Option<Spanned<String>>,
    drift: Option<Spanned<f64>>,
    jump: Option<Spanned<String>>,
    loss: Option<Spanned<f64>>,
    latency: Option<Spanned<String>>,
    between: Option<Spanned<Vec<String>>>,
}

/// Reads and validates a scenario file.
///
/// # Errors
/// The file cannot be read, is not TOML, or does not describe a valid scenario.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: file.clone(),
        line: 0,
        field: "file".into(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&text, &file)
}

struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
}

impl Ctx<'_> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].matches('\n').count() + 1
    }

    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        field: &str,
        message: impl Into<String>,
    ) -> Result<T, ScenarioError> {
        Err(ScenarioError {
            file: self.file.to_string(),
            line: self.line(span),
            field: field.to_string(),
            message: message.into(),
        })
    }

    fn duration(
        &self,
        value: &Spanned<String>,
        field: &str,
        zero_ok: bool,
    ) -> Result<Duration, ScenarioError> {
        match parse_duration(value.get_ref()) {
            Ok(d) if d.is_zero() && !zero_ok => {
                self.err(value.span(), field, "must be more than zero")
            }
            Ok(d) => Ok(d),
            Err(e) => self.err(value.span(), field, e),
        }
    }

    fn latency(&self, value: &Spanned<String>, field: &str) -> Result<Latency, ScenarioError> {
        let text = value.get_ref();
        let (a, b) = text.split_once("..").unwrap_or((text, text));
        let parse = |t: &str| parse_duration(t.trim());
        match (parse(a), parse(b)) {
            (Ok(min), Ok(max)) if min <= max => Ok(Latency { min, max }),
            (Ok(_), Ok(_)) => {
                self.err(value.span(), field, format!("{text:?}: the range is reversed"))
            }
            (Err(e), _) | (_, Err(e)) => self.err(value.span(), field, e),
        }
    }
}

/// Parses `60s`, `250ms`, `1.5s`, `2m`, `1h`, `0s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(|| format!("{text:?} has no unit (ms, s, m, h)"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    if !(0.0..1e6).contains(&seconds) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses and validates scenario `text` (named `file` in errors).
///
/// # Errors
/// Not TOML, an unknown key, a missing one, a bad value, or an inconsistent scenario.
pub fn parse(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
    let cx = Ctx { text, file };
    let raw: FileScenario = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| cx.line(s));
        let field = e.message().split('`').nth(1).unwrap_or("(syntax)").to_string();
        ScenarioError { file: file.into(), line, field, message: e.message().trim().to_string() }
    })?;
    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty() {
        return cx.err(raw.name.span(), "name", "must not be empty");
    }
    let duration = cx.duration(&raw.duration, "duration", false)?;

    // Sites and nodes.
    let Some(file_sites) = raw.sites else {
        return cx.err(0..0, "site", "at least one [[site]] is needed");
    };
    let mut nodes: Vec<String> = Vec::new();
    let mut sites: Vec<Site> = Vec::new();
    for (i, site) in file_sites.iter().enumerate() {
        let site_ref = site.get_ref();
        let field = format!("site[{i}]");
        let site_name = site_ref.name.get_ref().clone();
        if !valid_name(&site_name) {
            return cx.err(
                site_ref.name.span(),
                &format!("{field}.name"),
                format!("{site_name:?}: use letters, digits and '-'"),
            );
        }
        if sites.iter().any(|s| s.name == site_name) {
            return cx.err(
                site_ref.name.span(),
                &format!("{field}.name"),
                format!("site {site_name:?} is defined twice"),
            );
        }
        let mut members = Vec::new();
        for node in site_ref.nodes.get_ref() {
            if !valid_name(node) || node == super::MONITOR_HOST || node.starts_with("clients-") {
                return cx.err(
                    site_ref.nodes.span(),
                    &format!("{field}.nodes"),
                    format!("{node:?} is not a usable node name"),
                );
            }
            if nodes.contains(node) {
                return cx.err(
                    site_ref.nodes.span(),
                    &format!("{field}.nodes"),
                    format!("node {node:?} is in two sites"),
                );
            }
            members.push(nodes.len());
            nodes.push(node.clone());
        }
        let latency = match &site_ref.latency {
            Some(l) => cx.latency(l, &format!("{field}.latency"))?,
            None => Latency { min: Duration::from_millis(1), max: Duration::from_millis(1) },
        };
        sites.push(Site { name: site_name, nodes: members, latency });
    }
    if nodes.is_empty() || nodes.len() > 9 {
        return cx.err(0..0, "site", format!("{} nodes: a scenario needs 1 to 9", nodes.len()));
    }
    if nodes.iter().any(|n| sites.iter().any(|s| &s.name == n)) {
        let clash = nodes.iter().find(|n| sites.iter().any(|s| &s.name == *n)).expect("found");
        return cx.err(0..0, "site", format!("{clash:?} names both a site and a node"));
    }
    let node_index = |name: &str| nodes.iter().position(|n| n == name);
    let site_index = |name: &str| sites.iter().position(|s| s.name == name);
    let unknown_node = |name: &str| format!("unknown node {name:?} (nodes: {})", nodes.join(", "));
    let unknown_site = |name: &str| {
        let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
        format!("unknown site {name:?} (sites: {})", names.join(", "))
    };

    let leader = match &raw.leader {
        Some(l) => match node_index(l.get_ref()) {
            Some(n) => n,
            None => return cx.err(l.span(), "leader", unknown_node(l.get_ref())),
        },
        None => 0,
    };

    // Timing.
    let timing_span = raw.timing.as_ref().map_or(0..0, |t| t.span());
    let ft = raw.timing.map(Spanned::into_inner).unwrap_or_default();
    let dur = |v: &Option<Spanned<String>>,
               field: &str,
               default: u64|
     -> Result<Duration, ScenarioError> {
        match v {
            Some(v) => cx.duration(v, &format!("timing.{field}"), false),
            None => Ok(Duration::from_millis(default)),
        }
    };
    let tick = dur(&ft.tick, "tick", 10)?;
    let election_timeout = dur(&ft.election_timeout, "election_timeout", 1000)?;
    let heartbeat = dur(&ft.heartbeat, "heartbeat", 100)?;
    let drift_margin = match &ft.drift_margin {
        Some(v) => cx.duration(v, "timing.drift_margin", true)?,
        None => election_timeout / 2,
    };
    let request_timeout = dur(&ft.request_timeout, "request_timeout", 1000)?;
    let failover_after = dur(&ft.failover_after, "failover_after", 3000)?;
    let monitor_interval = dur(&ft.monitor_interval, "monitor_interval", 1000)?;
    let default_latency = match &ft.default_latency {
        Some(l) => cx.latency(l, "timing.default_latency")?,
        None => Latency { min: Duration::from_millis(1), max: Duration::from_millis(1) },
    };
    if election_timeout < tick * 3 || heartbeat < tick || heartbeat >= election_timeout {
        return cx.err(timing_span, "timing", format!(
            "need tick <= heartbeat < election_timeout and election_timeout >= 3 ticks (tick {}, heartbeat {}, election_timeout {})",
            show(tick), show(heartbeat), show(election_timeout)
        ));
    }
    if drift_margin >= election_timeout {
        return cx.err(timing_span, "timing.drift_margin", "must be shorter than election_timeout");
    }
    let monitor_site = match &ft.monitor_site {
        Some(s) => match site_index(s.get_ref()) {
            Some(i) => i,
            None => return cx.err(s.span(), "timing.monitor_site", unknown_site(s.get_ref())),
        },
        // The biggest site without the first primary.
        None => (0..sites.len())
            .filter(|s| !sites[*s].nodes.contains(&leader))
            .max_by_key(|s| (sites[*s].nodes.len(), std::cmp::Reverse(*s)))
            .unwrap_or(0),
    };
    let timing = Timing {
        tick,
        election_timeout,
        heartbeat,
        lease: ft.lease.unwrap_or(true),
        drift_margin,
        request_timeout,
        failover_after,
        monitor_interval,
        monitor_site,
        default_latency,
    };

    // Links.
    let mut links: Vec<Link> = Vec::new();
    let pair =
        |between: &Spanned<Vec<String>>, field: &str| -> Result<(usize, usize), ScenarioError> {
            let names = between.get_ref();
            if names.len() != 2 {
                return cx.err(between.span(), field, "name exactly two sites");
            }
            let a = site_index(&names[0])
                .map_or_else(|| cx.err(between.span(), field, unknown_site(&names[0])), Ok)?;
            let b = site_index(&names[1])
                .map_or_else(|| cx.err(between.span(), field, unknown_site(&names[1])), Ok)?;
            if a == b {
                return cx.err(between.span(), field, "a link joins two different sites");
            }
            Ok((a, b))
        };
    let loss = |v: &Spanned<f64>, field: &str| -> Result<f64, ScenarioError> {
        let rate = *v.get_ref();
        if (0.0..=1.0).contains(&rate) {
            Ok(rate)
        } else {
            cx.err(v.span(), field, format!("{rate} is not a rate in 0..1"))
        }
    };
    for (i, link) in raw.links.iter().enumerate() {
        let l = link.get_ref();
        let field = format!("link[{i}]");
        let (a, b) = pair(&l.between, &format!("{field}.between"))?;
        if links.iter().any(|x| (x.a, x.b) == (a, b) || (x.a, x.b) == (b, a)) {
            return cx.err(
                l.between.span(),
                &format!("{field}.between"),
                "this pair of sites is linked twice",
            );
        }
        let latency = match &l.latency {
            Some(v) => cx.latency(v, &format!("{field}.latency"))?,
            None => default_latency,
        };
        let loss = match &l.loss {
            Some(v) => loss(v, &format!("{field}.loss"))?,
            None => 0.0,
        };
        links.push(Link { a, b, latency, loss });
    }

    let talk_to = |value: &Option<Spanned<Vec<String>>>,
                   site: usize,
                   field: &str|
     -> Result<Vec<usize>, ScenarioError> {
        let Some(t) = value else {
            // Every node, its own site's first.
            let mut list = sites[site].nodes.clone();
            list.extend((0..nodes.len()).filter(|n| !sites[site].nodes.contains(n)));
            return Ok(list);
        };
        let mut list = Vec::new();
        for name in t.get_ref() {
            let members = if let Some(s) = site_index(name) {
                sites[s].nodes.clone()
            } else if let Some(n) = node_index(name) {
                vec![n]
            } else {
                return cx.err(t.span(), field, unknown_node(name));
            };
            for n in members {
                if !list.contains(&n) {
                    list.push(n);
                }
            }
        }
        if list.is_empty() {
            return cx.err(t.span(), field, "names no node");
        }
        Ok(list)
    };

    // The name, site and size every group has.
    let group_head = |name: &Spanned<String>,
                      site: &Spanned<String>,
                      count: &Spanned<i64>,
                      group: std::ops::Range<usize>,
                      field: &str,
                      taken: &[&str],
                      max: i64|
     -> Result<(String, usize, i64), ScenarioError> {
        let text = name.get_ref().clone();
        if !valid_name(&text) || taken.contains(&text.as_str()) {
            return cx.err(
                name.span(),
                &format!("{field}.name"),
                format!("{text:?}: use a unique name of letters, digits and '-'"),
            );
        }
        let Some(site) = site_index(site.get_ref()) else {
            return cx.err(site.span(), &format!("{field}.site"), unknown_site(site.get_ref()));
        };
        let n = *count.get_ref();
        if !(1..=max).contains(&n) {
            let span = if count.span().is_empty() { group } else { count.span() };
            return cx.err(span, &format!("{field}.count"), format!("{n}: 1 to {max} per group"));
        }
        Ok((text, site, n))
    };

    // Clients.
    let mut clients: Vec<ClientGroup> = Vec::new();
    for (i, group) in raw.clients.iter().enumerate() {
        let g = group.get_ref();
        let field = format!("clients[{i}]");
        let taken: Vec<&str> = clients.iter().map(|c| c.name.as_str()).collect();
        let (name, site, count) =
            group_head(&g.name, &g.site, &g.count, group.span(), &field, &taken, 64)?;
        let rate = match &g.rate {
            Some(r) if *r.get_ref() > 0.0 && *r.get_ref() <= 1000.0 => *r.get_ref(),
            Some(r) => {
                return cx.err(
                    r.span(),
                    &format!("{field}.rate"),
                    format!(
                        "{}: operations per second per client, above 0 and at most 1000",
                        r.get_ref()
                    ),
                );
            }
            None => 10.0,
        };
        let mix = match &g.mix {
            None => Mix { put: 0.4, get: 0.4, cas: 0.2, delete: 0.0 },
            Some(m) => {
                let mut mix = Mix { put: 0.0, get: 0.0, cas: 0.0, delete: 0.0 };
                for (op, share) in m.get_ref() {
                    let slot = match op.as_str() {
                        "put" => &mut mix.put,
                        "get" => &mut mix.get,
                        "cas" => &mut mix.cas,
                        "delete" => &mut mix.delete,
                        _ => {
                            return cx.err(
                                m.span(),
                                &format!("{field}.mix"),
                                format!("unknown operation {op:?} (put, get, cas, delete)"),
                            );
                        }
                    };
                    if !(*share >= 0.0 && share.is_finite()) {
                        return cx.err(
                            m.span(),
                            &format!("{field}.mix.{op}"),
                            "a share must be zero or more",
                        );
                    }
                    *slot = *share;
                }
                let total = mix.put + mix.get + mix.cas + mix.delete;
                if total <= 0.0 {
                    return cx.err(m.span(), &format!("{field}.mix"), "the shares add up to zero");
                }
                Mix {
                    put: mix.put / total,
                    get: mix.get / total,
                    cas: mix.cas / total,
                    delete: mix.delete / total,
                }
            }
        };
        let keys = match &g.keys {
            Some(k) if (1..=1000).contains(k.get_ref()) => *k.get_ref() as u64,
            Some(k) => return cx.err(k.span(), &format!("{field}.keys"), "1 to 1000 keys"),
            None => 4,
        };
        let talk_to = talk_to(&g.talk_to, site, &format!("{field}.talk_to"))?;
        let consistency = match &g.consistency {
            Some(c) => match Consistency::parse(c.get_ref()) {
                Some(c) => c,
                None => {
                    return cx.err(
                        c.span(),
                        &format!("{field}.consistency"),
                        format!("{:?}: linearizable, lease or serializable", c.get_ref()),
                    );
                }
            },
            None => Consistency::Linearizable,
        };
        let timeout = match &g.timeout {
            Some(t) => cx.duration(t, &format!("{field}.timeout"), false)?,
            None => request_timeout + Duration::from_millis(500),
        };
        clients.push(ClientGroup {
            name,
            site,
            count: count as usize,
            rate,
            mix,
            keys,
            talk_to,
            consistency,
            timeout,
        });
    }
    if clients.is_empty() {
        return cx.err(0..0, "clients", "at least one [[clients]] group is needed");
    }
    let mut locks: Vec<LockGroup> = Vec::new();
    for (i, group) in raw.locks.iter().enumerate() {
        let g = group.get_ref();
        let field = format!("locks[{i}]");
        let taken: Vec<&str> = locks.iter().map(|c| c.name.as_str()).collect();
        let (name, site, count) =
            group_head(&g.name, &g.site, &g.count, group.span(), &field, &taken, 16)?;
        let ttl = match &g.ttl {
            Some(t) => {
                let d = cx.duration(t, &format!("{field}.ttl"), false)?;
                if d.subsec_nanos() != 0 || d > Duration::from_secs(600) {
                    return cx.err(
                        t.span(),
                        &format!("{field}.ttl"),
                        "a lease TTL is whole seconds, at most 600s",
                    );
                }
                d.as_secs() as i64
            }
            None => 3,
        };
        let pause_chance = match &g.pause_chance {
            Some(p) if (0.0..=1.0).contains(p.get_ref()) => *p.get_ref(),
            Some(p) => {
                return cx.err(p.span(), &format!("{field}.pause_chance"), "a chance in 0..1");
            }
            None => 0.5,
        };
        let talk_to = talk_to(&g.talk_to, site, &format!("{field}.talk_to"))?;
        locks.push(LockGroup { name, site, count: count as usize, ttl, pause_chance, talk_to });
    }

    // Events.
    let mut events: Vec<Event> = Vec::new();
    for (i, event) in raw.events.iter().enumerate() {
        let e = event.get_ref();
        let field = format!("event[{i}]");
        let line = cx.line(event.span());
        let at = cx.duration(&e.at, &format!("{field}.at"), true)?;
        if at >= duration {
            return cx.err(
                e.at.span(),
                &format!("{field}.at"),
                format!("{} is not before the end of the scenario ({})", show(at), show(duration)),
            );
        }
        let node = |v: &Spanned<String>, f: &str| -> Result<usize, ScenarioError> {
            node_index(v.get_ref()).map_or_else(
                || cx.err(v.span(), &format!("{field}.{f}"), unknown_node(v.get_ref())),
                Ok,
            )
        };
        let mut actions = Vec::new();
        if let Some(p) = &e.partition {
            let mut sides = Vec::new();
            let mut seen: BTreeSet<usize> = BTreeSet::new();
            if p.get_ref().len() < 2 {
                return cx.err(
                    p.span(),
                    &format!("{field}.partition"),
                    "a partition needs at least two sides",
                );
            }
            for side in p.get_ref() {
                let mut targets = Vec::new();
                for name in side {
                    let (target, members) = if let Some(s) = site_index(name) {
                        (Target::Site(s), sites[s].nodes.clone())
                    } else if let Some(n) = node_index(name) {
                        (Target::Node(n), vec![n])
                    } else {
                        return cx.err(
                            p.span(),
                            &format!("{field}.partition"),
                            format!("unknown site or node {name:?}"),
                        );
                    };
                    for m in members {
                        if !seen.insert(m) {
                            return cx.err(
                                p.span(),
                                &format!("{field}.partition"),
                                format!("the sides overlap: {} is on two sides", nodes[m]),
                            );
                        }
                    }
                    targets.push(target);
                }
                if targets.is_empty() {
                    return cx.err(p.span(), &format!("{field}.partition"), "a side is empty");
                }
                sides.push(targets);
            }
            actions.push(Action::Partition { sides, one_way: e.one_way.unwrap_or(false) });
        } else if e.one_way.is_some() {
            return cx.err(
                event.span(),
                &format!("{field}.one_way"),
                "one_way goes with partition",
            );
        }
        if e.heal == Some(true) {
            actions.push(Action::Heal);
        }
        if e.isolate_leader == Some(true) {
            actions.push(Action::IsolateLeader);
        }
        for (value, name, make) in [
            (&e.crash, "crash", Action::Crash as fn(usize) -> Action),
            (&e.restart, "restart", Action::Restart),
            (&e.pause, "pause", Action::Pause),
            (&e.resume, "resume", Action::Resume),
        ] {
            if let Some(v) = value {
                actions.push(make(node(v, name)?));
            }
        }
        if e.drift.is_some() || e.jump.is_some() {
            let Some(n) = &e.node else {
                return cx.err(
                    event.span(),
                    &format!("{field}.node"),
                    "a clock event names its node",
                );
            };
            let n = node(n, "node")?;
            if let Some(d) = &e.drift {
                let rate = *d.get_ref();
                if !(0.1..=10.0).contains(&rate) {
                    return cx.err(
                        d.span(),
                        &format!("{field}.drift"),
                        format!("{rate}: a clock rate from 0.1 to 10"),
                    );
                }
                actions.push(Action::Drift(n, rate));
            }
            if let Some(j) = &e.jump {
                let text = j.get_ref().trim_start_matches('+');
                if j.get_ref().starts_with('-') {
                    return cx.err(
                        j.span(),
                        &format!("{field}.jump"),
                        "a monotonic clock only jumps forward",
                    );
                }
                let delta = parse_duration(text)
                    .map_or_else(|m| cx.err(j.span(), &format!("{field}.jump"), m), Ok)?;
                actions.push(Action::Jump(n, delta));
            }
        } else if e.node.is_some() {
            return cx.err(event.span(), &format!("{field}.node"), "node goes with drift or jump");
        }
        if e.loss.is_some() || e.latency.is_some() {
            let Some(between) = &e.between else {
                return cx.err(
                    event.span(),
                    &format!("{field}.between"),
                    "loss and latency events name the two sites they apply between",
                );
            };
            let (a, b) = pair(between, &format!("{field}.between"))?;
            if let Some(l) = &e.loss {
                actions.push(Action::Loss(a, b, loss(l, &format!("{field}.loss"))?));
            }
            if let Some(l) = &e.latency {
                actions.push(Action::SetLatency(a, b, cx.latency(l, &format!("{field}.latency"))?));
            }
        } else if e.between.is_some() {
            return cx.err(
                event.span(),
                &format!("{field}.between"),
                "between goes with loss or latency",
            );
        }
        match actions.len() {
            0 => return cx.err(event.span(), &field, "an event needs one action: partition, heal, isolate_leader, crash, restart, pause, resume, drift, jump, loss or latency"),
            1 => events.push(Event { at, action: actions.pop().expect("one"), line }),
            _ => return cx.err(event.span(), &field, "one action per event: split it into several [[event]]s"),
        }
    }
    events.sort_by_key(|e| e.at);
    check_sequence(&cx, &events, &nodes)?;
    Ok(Scenario {
        name,
        description: raw.description.trim().to_string(),
        duration,
        nodes,
        leader,
        seed: raw.seed,
        timing,
        sites,
        links,
        clients,
        locks,
        events,
    })
}

/// Restarts follow crashes, resumes follow pauses.
fn check_sequence(cx: &Ctx<'_>, events: &[Event], nodes: &[String]) -> Result<(), ScenarioError> {
    let mut crashed = BTreeSet::new();
    let mut paused = BTreeSet::new();
    for event in events {
        let fail = |what: String| ScenarioError {
            file: cx.file.into(),
            line: event.line,
            field: "event".into(),
            message: what,
        };
        match &event.action {
            Action::Crash(n) if !crashed.insert(*n) => {
                return Err(fail(format!("{} is crashed twice without a restart", nodes[*n])));
            }
            Action::Restart(n) if !crashed.remove(n) => {
                return Err(fail(format!("{} is restarted but was not crashed", nodes[*n])));
            }
            Action::Pause(n) if !paused.insert(*n) => {
                return Err(fail(format!("{} is paused twice without a resume", nodes[*n])));
            }
            Action::Resume(n) if !paused.remove(n) => {
                return Err(fail(format!("{} is resumed but was not paused", nodes[*n])));
            }
            _ => {}
        }
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Writes `scenario` as a scenario file.
pub fn to_toml(s: &Scenario) -> String {
    let q = |t: &str| format!("{t:?}");
    let list = |names: Vec<&str>| {
        format!("[{}]", names.iter().map(|n| q(n)).collect::<Vec<_>>().join(", "))
    };
    let mut out = String::new();
    let _ = writeln!(out, "name = {}", q(&s.name));
    if !s.description.is_empty() {
        let _ = writeln!(out, "description = {}", q(&s.description));
    }
    let _ = writeln!(out, "duration = {}", q(&show(s.duration)));
    let _ = writeln!(out, "leader = {}", q(&s.nodes[s.leader]));
    let _ = writeln!(out, "seed = {}", s.seed);
    let t = &s.timing;
    let _ = writeln!(out, "\n[timing]");
    for (key, value) in [
        ("tick", t.tick),
        ("election_timeout", t.election_timeout),
        ("heartbeat", t.heartbeat),
        ("drift_margin", t.drift_margin),
        ("request_timeout", t.request_timeout),
        ("failover_after", t.failover_after),
        ("monitor_interval", t.monitor_interval),
    ] {
        let _ = writeln!(out, "{key} = {}", q(&show(value)));
    }
    let _ = writeln!(out, "lease = {}", t.lease);
    let _ = writeln!(out, "monitor_site = {}", q(&s.sites[t.monitor_site].name));
    let _ = writeln!(out, "default_latency = {}", q(&t.default_latency.to_string()));
    for site in &s.sites {
        let _ = writeln!(out, "\n[[site]]\nname = {}", q(&site.name));
        let _ = writeln!(
            out,
            "nodes = {}",
            list(site.nodes.iter().map(|n| s.nodes[*n].as_str()).collect())
        );
        let _ = writeln!(out, "latency = {}", q(&site.latency.to_string()));
    }
    for link in &s.links {
        let _ = writeln!(
            out,
            "\n[[link]]\nbetween = {}",
            list(vec![&s.sites[link.a].name, &s.sites[link.b].name])
        );
        let _ = writeln!(out, "latency = {}\nloss = {}", q(&link.latency.to_string()), link.loss);
    }
    for g in &s.clients {
        let _ = writeln!(
            out,
            "\n[[clients]]\nname = {}\nsite = {}\ncount = {}\nrate = {:?}\nkeys = {}",
            q(&g.name),
            q(&s.sites[g.site].name),
            g.count,
            g.rate,
            g.keys
        );
        let _ = writeln!(
            out,
            "mix = {{ put = {:?}, get = {:?}, cas = {:?}, delete = {:?} }}",
            g.mix.put, g.mix.get, g.mix.cas, g.mix.delete
        );
        let _ = writeln!(
            out,
            "talk_to = {}",
            list(g.talk_to.iter().map(|n| s.nodes[*n].as_str()).collect())
        );
        let _ = writeln!(
            out,
            "consistency = {}\ntimeout = {}",
            q(g.consistency.name()),
            q(&show(g.timeout))
        );
    }
    for g in &s.locks {
        let _ = writeln!(
            out,
            "\n[[locks]]\nname = {}\nsite = {}\ncount = {}\nttl = {}\npause_chance = {:?}",
            q(&g.name),
            q(&s.sites[g.site].name),
            g.count,
            q(&format!("{}s", g.ttl)),
            g.pause_chance
        );
        let _ = writeln!(
            out,
            "talk_to = {}",
            list(g.talk_to.iter().map(|n| s.nodes[*n].as_str()).collect())
        );
    }
    for e in &s.events {
        let _ = writeln!(out, "\n[[event]]\nat = {}", q(&show(e.at)));
        let node = |n: &usize| q(&s.nodes[*n]);
        let _ = match &e.action {
            Action::Partition { sides, one_way } => {
                let sides: Vec<String> = sides
                    .iter()
                    .map(|side| {
                        list(
                            side.iter()
                                .map(|t| match t {
                                    Target::Site(i) => s.sites[*i].name.as_str(),
                                    Target::Node(n) => s.nodes[*n].as_str(),
                                })
                                .collect(),
                        )
                    })
                    .collect();
                let one_way = if *one_way { "\none_way = true" } else { "" };
                writeln!(out, "partition = [{}]{one_way}", sides.join(", "))
            }
            Action::Heal => writeln!(out, "heal = true"),
            Action::IsolateLeader => writeln!(out, "isolate_leader = true"),
            Action::Crash(n) => writeln!(out, "crash = {}", node(n)),
            Action::Restart(n) => writeln!(out, "restart = {}", node(n)),
            Action::Pause(n) => writeln!(out, "pause = {}", node(n)),
            Action::Resume(n) => writeln!(out, "resume = {}", node(n)),
            Action::Drift(n, rate) => writeln!(out, "node = {}\ndrift = {rate:?}", node(n)),
            Action::Jump(n, d) => {
                writeln!(out, "node = {}\njump = {}", node(n), q(&format!("+{}", show(*d))))
            }
            Action::Loss(a, b, rate) => writeln!(
                out,
                "between = {}\nloss = {rate:?}",
                list(vec![&s.sites[*a].name, &s.sites[*b].name])
            ),
            Action::SetLatency(a, b, l) => writeln!(
                out,
                "between = {}\nlatency = {}",
                list(vec![&s.sites[*a].name, &s.sites[*b].name]),
                q(&l.to_string())
            ),
        };
    }
    out
}
