//! The scenario file format (TOML) and its validation. Every error names the file, the line and
//! the field; the README's scenario reference documents each key and its range. `to_toml`
//! (`writer.rs`) writes a scenario back (for shrinking).
//!
//! One file per section of the format: `sites.rs` (sites, nodes, the first leader),
//! `timing.rs`, `links.rs`, `clients.rs` (client and lock groups), `events.rs`, `expect.rs`;
//! `names.rs` is
//! the one resolver of site and node names; `raw.rs` holds the file as TOML spells it.
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
mod raw;
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
    let (nodes, sites) = sites::parse(&cx, raw.sites.as_deref())?;
    let names = names::Names { nodes: &nodes, sites: &sites };
    let leader = match &raw.leader {
        Some(l) => names.node_field(&cx, l, "leader")?,
        None => 0,
    };
    let timing = timing::parse(&cx, &names, raw.timing.as_ref(), leader)?;
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
        links,
        clients,
        locks,
        events,
        expect,
        nodes,
        sites,
    })
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
    use super::field_at;

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
