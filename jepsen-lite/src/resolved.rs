//! Resolved indeterminate operations: what the system's own log says became of the writes whose
//! clients never heard back.
//!
//! A history alone cannot tell whether an `info` write took effect; the system under test often
//! can. A *resolved* file is JSON lines, one write per line, named by the session and request
//! number its invocation carries (`client` and `seq`, history schema version 2):
//!
//! ```text
//! # raftbed-resolved v1
//! {"client":3,"seq":41,"committed":true}
//! {"client":3,"seq":42,"committed":false}
//! ```
//!
//! `committed: true` says the write took effect exactly once, at some time after its invocation
//! (it is in the committed log); `false` says it never did and never will. A write that is not
//! listed is unknown. How the checker uses it (`CheckOptions::resolved`):
//!
//! - an indeterminate write listed as committed whose effect does not depend on a condition (a
//!   put, a delete, an append) becomes mandatory: it must be linearized somewhere in
//!   [invocation, end of history), as if it returned after every other event;
//! - a conditional one (a cas) stays indeterminate: being committed says it ran, not that its
//!   condition held, and a cas whose condition failed had no effect;
//! - one listed as not committed is dropped, as a failed operation is;
//! - a completed write the file contradicts (`ok` but not committed, `fail` but committed) is
//!   counted and reported; the history's own outcome is what is checked.

use std::collections::HashMap;

use serde_json::Value as Json;

use crate::history::HistoryError;

/// The version of the resolved-file format.
pub const RESOLVED_VERSION: u32 = 1;

/// The fates of writes, by (client, seq).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    fates: HashMap<(u64, u64), bool>,
}

impl Resolved {
    /// An empty file: nothing resolved.
    pub fn new() -> Resolved {
        Resolved::default()
    }

    /// Records that write (client, seq) was, or was not, committed.
    pub fn insert(&mut self, client: u64, seq: u64, committed: bool) {
        self.fates.insert((client, seq), committed);
    }

    /// Whether write (client, seq) was committed, if known.
    pub fn fate(&self, session: (u64, u64)) -> Option<bool> {
        self.fates.get(&session).copied()
    }

    /// Writes listed.
    pub fn len(&self) -> usize {
        self.fates.len()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.fates.is_empty()
    }

    /// Reads a resolved file. Lines starting with `#` and blank lines are skipped.
    ///
    /// # Errors
    /// A line that is not an object with integer `client` and `seq` and boolean `committed`,
    /// or a write listed twice with different fates; the error names the line.
    pub fn parse(text: &str) -> Result<Resolved, HistoryError> {
        let mut resolved = Resolved::new();
        let mut lines: HashMap<(u64, u64), usize> = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let raw = raw.trim();
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            let fail = |message: String| HistoryError::new(line, message);
            let json: Json =
                serde_json::from_str(raw).map_err(|e| fail(format!("not JSON: {e}")))?;
            let number = |field: &str| {
                json.get(field)
                    .and_then(Json::as_u64)
                    .ok_or_else(|| fail(format!("{field} must be a non-negative integer in {raw}")))
            };
            let (client, seq) = (number("client")?, number("seq")?);
            let committed = json
                .get("committed")
                .and_then(Json::as_bool)
                .ok_or_else(|| fail(format!("committed must be true or false in {raw}")))?;
            if let Some(earlier) = resolved.fate((client, seq))
                && earlier != committed
            {
                return Err(fail(format!(
                    "client {client} seq {seq} is listed as {} on line {}",
                    if earlier { "committed" } else { "not committed" },
                    lines[&(client, seq)]
                )));
            }
            lines.insert((client, seq), line);
            resolved.insert(client, seq, committed);
        }
        Ok(resolved)
    }

    /// The file form, sorted by (client, seq), with a version line.
    pub fn to_jsonl(&self) -> String {
        let mut sorted: Vec<_> = self.fates.iter().collect();
        sorted.sort();
        let mut out = format!("# raftbed-resolved v{RESOLVED_VERSION}\n");
        for ((client, seq), committed) in sorted {
            out.push_str(&format!(
                "{{\"client\":{client},\"seq\":{seq},\"committed\":{committed}}}\n"
            ));
        }
        out
    }
}

/// What resolving did to a history's operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResolvedCounts {
    /// Indeterminate writes made mandatory (committed, unconditional).
    pub mandatory: usize,
    /// Indeterminate writes dropped (not committed).
    pub dropped: usize,
    /// Indeterminate writes known committed but left indeterminate (conditional).
    pub conditional: usize,
    /// Completed writes whose outcome the file contradicts.
    pub contradicted: usize,
}

impl ResolvedCounts {
    /// Whether resolving changed or noticed anything.
    pub fn any(&self) -> bool {
        *self != ResolvedCounts::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_bad_lines() {
        let mut resolved = Resolved::new();
        resolved.insert(3, 42, false);
        resolved.insert(3, 41, true);
        let text = resolved.to_jsonl();
        assert_eq!(
            text,
            "# raftbed-resolved v1\n{\"client\":3,\"seq\":41,\"committed\":true}\n\
             {\"client\":3,\"seq\":42,\"committed\":false}\n"
        );
        assert_eq!(Resolved::parse(&text).unwrap(), resolved);
        let bad = Resolved::parse("{\"client\":1,\"seq\":-1,\"committed\":true}").unwrap_err();
        assert_eq!(bad.line, 1);
        assert!(bad.message.contains("seq must be a non-negative integer"), "{}", bad.message);
        let twice = "{\"client\":1,\"seq\":1,\"committed\":true}\n\n\
                     {\"client\":1,\"seq\":1,\"committed\":false}";
        let twice = Resolved::parse(twice).unwrap_err();
        assert_eq!(twice.line, 3);
        assert!(twice.message.contains("listed as committed on line 1"), "{}", twice.message);
        assert!(Resolved::parse("{\"client\":1,\"seq\":1}").is_err());
        assert!(Resolved::parse("[1,2]").is_err());
    }
}
