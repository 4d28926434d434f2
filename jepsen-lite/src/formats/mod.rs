//! Reading and writing histories.
//!
//! | format | shape | read | write |
//! |---|---|---|---|
//! | `jsonl` | one JSON object per line: `process`, `type`, `f`, `key`?, `value`, `time`? | yes | yes |
//! | `edn` | Jepsen/Knossos: a vector (or list) of op maps, or a sequence of maps | yes | yes |
//! | `jepsen-log` | `INFO  jepsen.util - <process> <type> <f> <value>` lines | yes | no |
//! | `porcupine-kv` | one EDN map per line; a missing key reads as `""` | yes | no |
//!
//! Every error names the line. No reader panics, whatever the bytes.

mod edn_history;
mod jepsen_log;
mod jsonl;

use std::fmt;

pub use edn_history::write_edn;
pub use jsonl::write_jsonl;

use crate::history::{History, HistoryError};
use crate::model::ModelKind;

/// A history file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON lines, raftbed's canonical form.
    Jsonl,
    /// EDN, as Jepsen and Knossos write it.
    Edn,
    /// Jepsen's log lines.
    JepsenLog,
    /// Porcupine's key-value test histories.
    PorcupineKv,
}

impl Format {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Edn => "edn",
            Format::JepsenLog => "jepsen-log",
            Format::PorcupineKv => "porcupine-kv",
        }
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "jsonl" => Format::Jsonl,
            "edn" => Format::Edn,
            "jepsen-log" => Format::JepsenLog,
            "porcupine-kv" => Format::PorcupineKv,
            _ => return None,
        })
    }

    /// The model a history in this format is usually checked against.
    pub fn default_model(self, history: &History) -> ModelKind {
        match self {
            Format::JepsenLog => ModelKind::CasRegister,
            Format::PorcupineKv => ModelKind::KvEmptyDefault,
            Format::Jsonl | Format::Edn => ModelKind::infer(history),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Guesses the format from the text:
/// - a first line (after `# ` comments) starting with `{` that is valid JSON: `jsonl`;
/// - any line with `jepsen.util - `: `jepsen-log`;
/// - one `{:...}` map per line, string keys, only `get`/`put`/`append` and no `nil` read
///   results: `porcupine-kv` (the one EDN shape where absent keys read as `""`);
/// - anything else: `edn`.
pub fn detect(text: &str) -> Format {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("# "));
    let Some(first) = lines.next() else { return Format::Jsonl };
    if first.starts_with('{') && serde_json::from_str::<serde_json::Value>(first).is_ok() {
        return Format::Jsonl;
    }
    if text.lines().take(1000).any(|l| l.contains("jepsen.util - ")) {
        return Format::JepsenLog;
    }
    if edn_history::looks_like_porcupine_kv(text) {
        return Format::PorcupineKv;
    }
    Format::Edn
}

/// Reads a history in `format`.
///
/// # Errors
/// The first malformed line.
pub fn read(text: &str, format: Format) -> Result<History, HistoryError> {
    match format {
        Format::Jsonl => jsonl::read(text),
        Format::Edn | Format::PorcupineKv => edn_history::read(text),
        Format::JepsenLog => jepsen_log::read(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_format() {
        assert_eq!(
            detect("{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n"),
            Format::Jsonl
        );
        assert_eq!(detect("INFO  jepsen.util - 4\t:invoke\t:read\tnil\n"), Format::JepsenLog);
        assert_eq!(
            detect(
                "{:process 1, :type :invoke, :f :get, :key \"1\", :value nil}\n{:process 1, :type :ok, :f :get, :key \"1\", :value \"\"}\n"
            ),
            Format::PorcupineKv
        );
        assert_eq!(detect("[{:process 1, :type :invoke, :f :read, :value nil}]"), Format::Edn);
        assert_eq!(detect("{:process 1, :type :ok, :f :get, :key \"1\", :value nil}"), Format::Edn);
    }
}
