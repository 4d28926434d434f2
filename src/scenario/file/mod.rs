//! The scenario file format (TOML) and its validation. Every error names the file, the line and
//! the field; the README's scenario reference documents each key and its range. `to_toml`
//! (`writer.rs`) writes a scenario back (for shrinking).
//!
//! One file per section of the format: `sites.rs` (sites, nodes, the first leader),
//! `timing.rs`, `raft.rs`, `links.rs`, `clients.rs` (client and lock groups), `events.rs`,
//! `expect.rs`; `names.rs` is the one resolver of site and node names; `raw.rs` holds the file
//! as TOML spells it.
//!
//! To add a key: add it to its struct in `raw.rs` (as `Spanned<_>` so errors name its line),
//! validate it in its section's file with the `Ctx` helpers (which check ranges and name the
//! field), add it to the validated form in `scenario/mod.rs`, write it in `writer.rs` (the
//! round-trip test fails until you do), and document it and its range in the README.

mod clients;
mod events;
mod expect;
mod links;
mod names;
mod raft;
mod raw;
mod sim;
mod sites;
mod timing;
mod writer;

use std::io::Read as _;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

pub use writer::to_toml;

use super::{Latency, Scenario};

/// The largest scenario file read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The longest scenario.
pub(super) const MAX_DURATION: Duration = Duration::from_secs(3600);

/// The longest latency of a link or site.
const MAX_LATENCY: Duration = Duration::from_secs(10);

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

/// Reads and validates a scenario file: a regular file of at most 1 MiB.
///
/// # Errors
/// The file cannot be read, is not a regular file, is too large, is not TOML, or does not
/// describe a valid scenario.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let fail = |message: String| ScenarioError {
        file: file.clone(),
        line: 0,
        field: "file".into(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(fail("cannot read: not a regular file".into()));
    }
    let too_large = |size: u64| {
        fail(format!(
            "{size} bytes or more: a scenario file is at most {MAX_FILE_BYTES} bytes (1 MiB)"
        ))
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large(meta.len()));
    }
    // Read at most one byte past the limit: the file may grow while it is read.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    let text =
        String::from_utf8(bytes).map_err(|e| fail(format!("cannot read: not UTF-8 ({e})")))?;
    parse(&text, &file)
}

/// The text being parsed, for line numbers and errors.
pub(super) struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
}

impl Ctx<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].matches('\n').count() + 1
    }

    fn err<T>(
        &self,
        span: Range<usize>,
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

    /// A duration of at most `max` (and more than zero unless `zero_ok`).
    fn duration(
        &self,
        value: &toml::Spanned<String>,
        field: &str,
        zero_ok: bool,
        max: Duration,
    ) -> Result<Duration, ScenarioError> {
        match parse_duration(value.get_ref()) {
            Ok(d) if d.is_zero() && !zero_ok => {
                self.err(value.span(), field, "must be more than zero")
            }
            Ok(d) if d > max => self.err(
                value.span(),
                field,
                format!(
                    "{:?} is longer than the most allowed, {}",
                    value.get_ref(),
                    super::show(max)
                ),
            ),
            Ok(d) => Ok(d),
            Err(e) => self.err(value.span(), field, e),
        }
    }

    /// A latency, fixed or a range, of at most 10 s.
    fn latency(
        &self,
        value: &toml::Spanned<String>,
        field: &str,
    ) -> Result<Latency, ScenarioError> {
        let text = value.get_ref();
        let (a, b) = text.split_once("..").unwrap_or((text, text));
        let parse = |t: &str| parse_duration(t.trim());
        match (parse(a), parse(b)) {
            (Ok(_), Ok(max)) if max > MAX_LATENCY => self.err(
                value.span(),
                field,
                format!("{text:?}: a latency is at most {}", super::show(MAX_LATENCY)),
            ),
            (Ok(min), Ok(max)) if min <= max => Ok(Latency { min, max }),
            (Ok(_), Ok(_)) => {
                self.err(value.span(), field, format!("{text:?}: the range is reversed"))
            }
            (Err(e), _) | (_, Err(e)) => self.err(value.span(), field, e),
        }
    }

    /// A number in `range`, or an error saying what it is and its range.
    fn within(
        &self,
        value: &toml::Spanned<f64>,
        field: &str,
        range: std::ops::RangeInclusive<f64>,
        what: &str,
    ) -> Result<f64, ScenarioError> {
        let v = *value.get_ref();
        if v.is_finite() && range.contains(&v) {
            Ok(v)
        } else {
            self.err(value.span(), field, format!("{v}: {what}"))
        }
    }
}

/// Parses `60s`, `250ms`, `1.5s`, `2m`, `1h`, `0s`, `12.345678ms`: exactly, to the
/// nanosecond (digits past it are dropped).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(|| format!("{text:?} has no unit (ms, s, m, h)"))?;
    let (number, unit) = text.split_at(split);
    let unit_nanos: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |t: &str| !t.is_empty() && t.len() <= 12 && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(fraction.is_empty() || fraction.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!("{text:?} is not a duration"));
    }
    let mut nanos = whole.parse::<u128>().expect("digits") * unit_nanos;
    let mut scale = unit_nanos;
    for digit in fraction.bytes().take(15) {
        scale /= 10;
        nanos += u128::from(digit - b'0') * scale;
    }
    if nanos >= 1_000_000 * 1_000_000_000 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Parses and validates scenario `text` (named `file` in errors).
///
/// # Errors
/// Not TOML, an unknown key, a missing one, a bad value, or an inconsistent scenario.
pub fn parse(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
    let cx = Ctx { text, file };
    let raw: raw::FileScenario = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        ScenarioError {
            file: file.into(),
            line: cx.line(span.clone()),
            field: field_at(text, span.start, e.message()),
            message: e.message().trim().to_string(),
        }
    })?;
    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty() {
        return cx.err(raw.name.span(), "name", "must not be empty");
    }
    let duration = cx.duration(&raw.duration, "duration", false, MAX_DURATION)?;
    if let Some(sim) = &raw.sim {
        return parse_drawn(&cx, &raw, sim, name, duration);
    }
    let (nodes, sites) = sites::parse(&cx, raw.sites.as_deref())?;
    let names = names::Names { nodes: &nodes, sites: &sites };
    let leader = match &raw.leader {
        Some(l) => names.node_field(&cx, l, "leader")?,
        None => 0,
    };
    let timing = timing::parse(&cx, &names, raw.timing.as_ref(), leader)?;
    let mut raft = raft::parse(&cx, raw.raft.as_ref(), timing.lease)?;
    raft.spares = raft::spares(&cx, &names, raw.raft.as_ref(), leader)?;
    let links = links::parse(&cx, &names, &raw.links, timing.default_latency)?;
    let clients = clients::parse_clients(&cx, &names, &raw.clients, timing.request_timeout)?;
    let locks = clients::parse_locks(&cx, &names, &raw.locks)?;
    let events = events::parse(&cx, &names, &raw.events, duration)?;
    let expect = expect::parse(&cx, raw.expect.as_ref())?;
    Ok(Scenario {
        name,
        description: raw.description.trim().to_string(),
        duration,
        leader,
        seed: raw.seed,
        timing,
        raft,
        links,
        clients,
        locks,
        events,
        expect,
        nodes,
        sites,
        sim: None,
    })
}

/// A scenario with `[sim]`: a world `raftbed sim` drew, and a timeline by node name.
fn parse_drawn(
    cx: &Ctx<'_>,
    raw: &raw::FileScenario,
    sim: &toml::Spanned<raw::FileSim>,
    name: String,
    duration: Duration,
) -> Result<Scenario, ScenarioError> {
    let world = sim::parse(cx, raw, sim)?;
    let expect = expect::parse(cx, raw.expect.as_ref())?;
    if !(expect.naive_failover.is_empty() && expect.naive_failover_fenced.is_empty()) {
        let message = "a scenario with [sim] runs against raft only: expect only `raft`";
        return cx.err(sim.span(), "expect", message);
    }
    let description = raw.description.trim().to_string();
    let mut s = Scenario::drawn(name, description, duration, raw.seed, world, Vec::new(), expect);
    let names = names::Names { nodes: &s.nodes, sites: &s.sites };
    s.events = events::parse(cx, &names, &raw.events, duration)?;
    Ok(s)
}

/// The field a deserializer error at byte `at` is about, as a path (`clients[1].count`):
/// the table the line is in, and the key the line sets (or the one the message names).
fn field_at(text: &str, at: usize, message: &str) -> String {
    let at = at.min(text.len());
    let mut table = String::new();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut key = None;
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    for line in text[..line_start].lines().chain(text[line_start..].lines().take(1)) {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            let name = name.trim().to_string();
            let index = counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{index}]");
            *index += 1;
            key = None;
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            table = name.trim().to_string();
            key = None;
        } else if let Some((k, _)) = line.split_once('=') {
            key = Some(k.trim().trim_matches('"').to_string());
        }
    }
    // A key on the error's own line; "missing field `x`" and "unknown field `x`" name theirs.
    let on_line = text[line_start..].lines().next().unwrap_or("");
    let key = match message.split('`').nth(1) {
        Some(named) if message.contains("field `") => Some(named.to_string()),
        _ if on_line.contains('=') => key,
        _ => None,
    };
    match (table.is_empty(), key) {
        (true, Some(key)) => key,
        (false, Some(key)) => format!("{table}.{key}"),
        (false, None) => table,
        (true, None) => "(file)".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{field_at, parse_duration};
    use crate::scenario::show;

    #[test]
    fn durations_are_written_and_read_to_the_nanosecond() {
        for nanos in [
            0,
            5_560_000_000,
            7_035_000_000,
            1_500_000_000,
            60_000_000_000,
            12_345_678,
            1,
            999_999_999,
        ] {
            let d = Duration::from_nanos(nanos);
            assert_eq!(parse_duration(&show(d)), Ok(d), "{}", show(d));
        }
        assert_eq!(show(Duration::from_millis(1500)), "1500ms");
        assert_eq!(show(Duration::from_secs(2)), "2s");
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.1ms"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["1.2.3s", ".5s", "s", "5", "1e3ms", "-1s", "1000000000000s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_deserializer_error_names_its_field() {
        let text = "name = \"t\"\n[[clients]]\nname = \"a\"\n[[clients]]\ncount = \"x\"\n";
        let at = text.find("\"x\"").unwrap();
        assert_eq!(field_at(text, at, "invalid type"), "clients[1].count");
        let header = text.rfind("[[clients]]").unwrap();
        assert_eq!(field_at(text, header, "missing field `name`"), "clients[1].name");
        assert_eq!(field_at(text, 0, "invalid type"), "name");
    }
}
