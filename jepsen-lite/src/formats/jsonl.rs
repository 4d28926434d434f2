//! JSON lines: one event per line, `{"process", "type", "f", "key"?, "value", "time"?}`.
//! Unknown fields are ignored when reading and never written; lines starting with `#` are
//! comments.

use serde_json::{Map, Value as Json};

use crate::history::{Event, EventType, History, HistoryError, Process};
use crate::value::Value;

pub(super) fn read(text: &str) -> Result<History, HistoryError> {
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = line.trim();
        // Blank lines and `#` comments are allowed, so a history can explain itself.
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let json: Json = serde_json::from_str(trimmed)
            .map_err(|e| HistoryError::new(line_no, format!("invalid JSON: {e}")))?;
        let Json::Object(object) = json else {
            return Err(HistoryError::new(line_no, "expected a JSON object"));
        };
        events.push(event(&object, line_no)?);
    }
    Ok(History { events })
}

fn event(object: &Map<String, Json>, line: usize) -> Result<Event, HistoryError> {
    let fail = |message: String| HistoryError::new(line, message);
    let process = match object.get("process") {
        Some(Json::Number(n)) => Process::Client(
            n.as_u64().ok_or_else(|| fail(format!("process {n} is not a non-negative integer")))?,
        ),
        Some(Json::String(s)) => Process::Named(s.trim_start_matches(':').to_string()),
        Some(other) => {
            return Err(fail(format!("process must be an integer or a string, got {other}")));
        }
        None => return Err(fail("missing field \"process\"".into())),
    };
    let kind = match object.get("type") {
        Some(Json::String(s)) => EventType::parse(s.trim_start_matches(':'))
            .ok_or_else(|| fail(format!("type must be invoke, ok, fail or info, got {s:?}")))?,
        Some(other) => return Err(fail(format!("type must be a string, got {other}"))),
        None => return Err(fail("missing field \"type\"".into())),
    };
    let f = match object.get("f") {
        Some(Json::String(s)) if !s.is_empty() => s.trim_start_matches(':').to_string(),
        Some(other) => return Err(fail(format!("f must be a non-empty string, got {other}"))),
        None => return Err(fail("missing field \"f\"".into())),
    };
    let key = match object.get("key") {
        None | Some(Json::Null) => None,
        Some(json @ (Json::String(_) | Json::Number(_))) => {
            Some(Value::from_json(json).map_err(|e| fail(format!("key: {e}")))?)
        }
        Some(other) => {
            return Err(fail(format!("key must be a string or an integer, got {other}")));
        }
    };
    let value = match object.get("value") {
        None => Value::Null,
        Some(json) => Value::from_json(json).map_err(|e| fail(format!("value: {e}")))?,
    };
    let time = match object.get("time") {
        None | Some(Json::Null) => None,
        Some(Json::Number(n)) => {
            Some(n.as_i64().ok_or_else(|| fail(format!("time {n} is not an integer")))?)
        }
        Some(other) => return Err(fail(format!("time must be an integer, got {other}"))),
    };
    Ok(Event { process, kind, f, key, value, time, line })
}

/// Writes the canonical JSON lines form: exactly `process`, `type`, `f`, `key` (when present),
/// `value` and `time` (when present), in that order.
pub fn write_jsonl(history: &History) -> String {
    let mut out = String::new();
    for event in &history.events {
        let process = match &event.process {
            crate::history::Process::Client(id) => Json::from(*id),
            crate::history::Process::Named(name) => Json::String(name.clone()),
        };
        out.push_str(&format!(
            "{{\"process\":{process},\"type\":\"{}\",\"f\":{}",
            event.kind.name(),
            Json::String(event.f.clone())
        ));
        if let Some(key) = &event.key {
            out.push_str(&format!(",\"key\":{}", key.to_json()));
        }
        out.push_str(&format!(",\"value\":{}", event.value.to_json()));
        if let Some(time) = event.time {
            out.push_str(&format!(",\"time\":{time}"));
        }
        out.push_str("}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let text = concat!(
            "{\"process\":1,\"type\":\"invoke\",\"f\":\"cas\",\"key\":\"k\",\"value\":[1,2],\"time\":5}\n",
            "{\"process\":1,\"type\":\"fail\",\"f\":\"cas\",\"key\":\"k\",\"value\":[1,2],\"time\":9}\n",
            "{\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"partition\",\"value\":\"n1 | n2 n3\"}\n",
        );
        let history = read(text).unwrap();
        assert_eq!(write_jsonl(&history), text);
    }

    #[test]
    fn errors_name_line_and_field() {
        let err = read("\n{\"process\":1,\"type\":\"invoke\",\"f\":\"read\"\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("invalid JSON"));
        let err =
            read("{\"process\":1,\"type\":\"done\",\"f\":\"read\",\"value\":null}").unwrap_err();
        assert!(err.message.contains("type must be"));
        let err = read("{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":1.5}").unwrap_err();
        assert!(err.message.contains("not a 64-bit integer"));
    }
}
