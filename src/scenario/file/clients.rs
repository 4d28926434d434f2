//! `[[clients]]` and `[[locks]]`: the groups of workload clients and of lock clients.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::names::Names;
use super::raw::{FileClients, FileLocks};
use super::sites::valid_name;
use super::{Ctx, ScenarioError};
use crate::scenario::{ClientGroup, LockGroup, Mix};
use crate::server::calls::Consistency;

/// Clients per group, client groups, and clients in all.
const MAX_CLIENTS_PER_GROUP: i64 = 64;
const MAX_CLIENT_GROUPS: usize = 16;
const MAX_CLIENTS: usize = 256;
/// Lock clients per group, and lock groups.
const MAX_LOCKS_PER_GROUP: i64 = 16;
const MAX_LOCK_GROUPS: usize = 8;
/// What a client group's rate is.
const RATE: &str = "operations per second per client, above 0 and at most 1000";
/// The largest share of an operation in a mix (shares are normalized).
const MAX_SHARE: f64 = 1e6;

/// The name, site and size every group has.
struct Head<'f> {
    name: &'f Spanned<String>,
    site: &'f Spanned<String>,
    count: &'f Spanned<i64>,
    span: Range<usize>,
}

fn head(
    cx: &Ctx<'_>,
    names: &Names<'_>,
    h: Head<'_>,
    field: &str,
    taken: &[&str],
    max: i64,
) -> Result<(String, usize, usize), ScenarioError> {
    let text = h.name.get_ref().clone();
    if !valid_name(&text) || taken.contains(&text.as_str()) {
        let message = format!("{text:?}: use a unique name of letters, digits and '-'");
        return cx.err(h.name.span(), &format!("{field}.name"), message);
    }
    let site = names.site_field(cx, h.site, &format!("{field}.site"))?;
    let n = *h.count.get_ref();
    if !(1..=max).contains(&n) {
        let span = if h.count.span().is_empty() { h.span } else { h.count.span() };
        return cx.err(span, &format!("{field}.count"), format!("{n}: 1 to {max} per group"));
    }
    Ok((text, site, n as usize))
}

/// The validated client groups (at least one).
pub(super) fn parse_clients(
    cx: &Ctx<'_>,
    names: &Names<'_>,
    groups: &[Spanned<FileClients>],
    request_timeout: Duration,
) -> Result<Vec<ClientGroup>, ScenarioError> {
    if groups.is_empty() {
        return cx.err(0..0, "clients", "at least one [[clients]] group is needed");
    }
    if groups.len() > MAX_CLIENT_GROUPS {
        let message = format!("{} groups: at most {MAX_CLIENT_GROUPS}", groups.len());
        return cx.err(groups[MAX_CLIENT_GROUPS].span(), "clients", message);
    }
    let mut clients: Vec<ClientGroup> = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let g = group.get_ref();
        let field = format!("clients[{i}]");
        let taken: Vec<&str> = clients.iter().map(|c| c.name.as_str()).collect();
        let h = Head { name: &g.name, site: &g.site, count: &g.count, span: group.span() };
        let (name, site, count) = head(cx, names, h, &field, &taken, MAX_CLIENTS_PER_GROUP)?;
        let rate = match &g.rate {
            Some(r) if *r.get_ref() > 0.0 => {
                cx.within(r, &format!("{field}.rate"), 0.0..=1000.0, RATE)?
            }
            Some(r) => {
                return cx.err(
                    r.span(),
                    &format!("{field}.rate"),
                    format!("{}: {RATE}", r.get_ref()),
                );
            }
            None => 10.0,
        };
        let mix = match &g.mix {
            None => Mix { put: 0.4, get: 0.4, cas: 0.2, delete: 0.0 },
            Some(m) => mix(cx, m, &field)?,
        };
        let keys = match &g.keys {
            Some(k) if (1..=1000).contains(k.get_ref()) => *k.get_ref() as u64,
            Some(k) => return cx.err(k.span(), &format!("{field}.keys"), "1 to 1000 keys"),
            None => 4,
        };
        let talk_to = names.talk_to(cx, &g.talk_to, site, &format!("{field}.talk_to"))?;
        let consistency = match &g.consistency {
            Some(c) => match Consistency::parse(c.get_ref()) {
                Some(c) => c,
                None => {
                    let message = format!("{:?}: linearizable, lease or serializable", c.get_ref());
                    return cx.err(c.span(), &format!("{field}.consistency"), message);
                }
            },
            None => Consistency::Linearizable,
        };
        let timeout = match &g.timeout {
            Some(t) => {
                cx.duration(t, &format!("{field}.timeout"), false, Duration::from_secs(60))?
            }
            None => request_timeout + Duration::from_millis(500),
        };
        clients.push(ClientGroup {
            name,
            site,
            count,
            rate,
            mix,
            keys,
            talk_to,
            consistency,
            timeout,
        });
    }
    let total: usize = clients.iter().map(|g| g.count).sum();
    if total > MAX_CLIENTS {
        let message = format!("{total} clients in all: at most {MAX_CLIENTS}");
        return cx.err(groups[0].span(), "clients", message);
    }
    Ok(clients)
}

/// A mix's shares: each finite, zero to a million, not all zero; normalized.
fn mix(
    cx: &Ctx<'_>,
    m: &Spanned<std::collections::BTreeMap<String, f64>>,
    field: &str,
) -> Result<Mix, ScenarioError> {
    let mut mix = Mix { put: 0.0, get: 0.0, cas: 0.0, delete: 0.0 };
    for (op, share) in m.get_ref() {
        let slot = match op.as_str() {
            "put" => &mut mix.put,
            "get" => &mut mix.get,
            "cas" => &mut mix.cas,
            "delete" => &mut mix.delete,
            _ => {
                let message = format!("unknown operation {op:?} (put, get, cas, delete)");
                return cx.err(m.span(), &format!("{field}.mix"), message);
            }
        };
        if !(share.is_finite() && (0.0..=MAX_SHARE).contains(share)) {
            let message = format!("{share}: a share is a number from 0 to {MAX_SHARE:e}");
            return cx.err(m.span(), &format!("{field}.mix.{op}"), message);
        }
        *slot = *share;
    }
    let total = mix.put + mix.get + mix.cas + mix.delete;
    if total <= 0.0 {
        return cx.err(m.span(), &format!("{field}.mix"), "the shares add up to zero");
    }
    Ok(Mix {
        put: mix.put / total,
        get: mix.get / total,
        cas: mix.cas / total,
        delete: mix.delete / total,
    })
}

/// The validated lock groups.
pub(super) fn parse_locks(
    cx: &Ctx<'_>,
    names: &Names<'_>,
    groups: &[Spanned<FileLocks>],
) -> Result<Vec<LockGroup>, ScenarioError> {
    if groups.len() > MAX_LOCK_GROUPS {
        let message = format!("{} groups: at most {MAX_LOCK_GROUPS}", groups.len());
        return cx.err(groups[MAX_LOCK_GROUPS].span(), "locks", message);
    }
    let mut locks: Vec<LockGroup> = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let g = group.get_ref();
        let field = format!("locks[{i}]");
        let taken: Vec<&str> = locks.iter().map(|c| c.name.as_str()).collect();
        let h = Head { name: &g.name, site: &g.site, count: &g.count, span: group.span() };
        let (name, site, count) = head(cx, names, h, &field, &taken, MAX_LOCKS_PER_GROUP)?;
        let ttl = match &g.ttl {
            Some(t) => {
                let d = cx.duration(t, &format!("{field}.ttl"), false, Duration::from_secs(600))?;
                if d.subsec_nanos() != 0 {
                    let message = "a lease TTL is whole seconds, at most 600s";
                    return cx.err(t.span(), &format!("{field}.ttl"), message);
                }
                d.as_secs() as i64
            }
            None => 3,
        };
        let pause_chance = match &g.pause_chance {
            Some(p) => {
                cx.within(p, &format!("{field}.pause_chance"), 0.0..=1.0, "a chance in 0..1")?
            }
            None => 0.5,
        };
        let talk_to = names.talk_to(cx, &g.talk_to, site, &format!("{field}.talk_to"))?;
        locks.push(LockGroup { name, site, count, ttl, pause_chance, talk_to });
    }
    Ok(locks)
}
