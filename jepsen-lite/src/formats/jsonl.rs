//! JSON lines: one event per line, `{"process", "type", "f", "key"?, "value", "time"?}`, and
//! in schema version 2 (`history::SCHEMA_VERSION`) the optional `client`, `seq`, `txn` and
//! `watch` (`history::EventMeta`). Unknown fields are ignored when reading and never written;
//! lines starting with `#` are comments, and the writer's first line, `# raftbed-history v2`,
//! names the version. A file of either version reads the same way.

use serde::{Deserialize, Deserializer};
use serde_json::Value as Json;

use crate::history::{
    Event, EventMeta, EventType, History, HistoryError, MicroOp, Process, SCHEMA_VERSION,
    WatchEvent,
};
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
        let invalid =
            |e: serde_json::Error| HistoryError::new(line_no, format!("invalid JSON: {e}"));
        if !trimmed.starts_with('{') {
            // Not an object (a struct would also accept an array): say which.
            serde_json::from_str::<Json>(trimmed).map_err(invalid)?;
            return Err(HistoryError::new(line_no, "expected a JSON object"));
        }
        // The fields are read straight into their slots: no map of every line's keys.
        let fields: Fields = serde_json::from_str(trimmed).map_err(invalid)?;
        events.push(event(&fields, line_no)?);
    }
    Ok(History { events })
}

/// The fields an event line may have; any other is ignored. `Some(Json::Null)` is a field
/// given as `null`, `None` one not given.
#[derive(Deserialize)]
struct Fields {
    #[serde(default, deserialize_with = "given")]
    process: Option<Json>,
    #[serde(default, rename = "type", deserialize_with = "given")]
    kind: Option<Json>,
    #[serde(default, deserialize_with = "given")]
    f: Option<Json>,
    #[serde(default, deserialize_with = "given")]
    key: Option<Json>,
    #[serde(default, deserialize_with = "given")]
    value: Option<Json>,
    #[serde(default, deserialize_with = "given")]
    time: Option<Json>,
    #[serde(default, deserialize_with = "given")]
    client: Option<Json>,
    #[serde(default, deserialize_with = "given")]
    seq: Option<Json>,
    #[serde(default, deserialize_with = "given")]
    txn: Option<Json>,
    #[serde(default, deserialize_with = "given")]
    watch: Option<Json>,
}

fn given<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(deserializer).map(Some)
}

fn event(object: &Fields, line: usize) -> Result<Event, HistoryError> {
    let fail = |message: String| HistoryError::new(line, message);
    let process = match &object.process {
        Some(Json::Number(n)) => Process::Client(
            n.as_u64().ok_or_else(|| fail(format!("process {n} is not a non-negative integer")))?,
        ),
        Some(Json::String(s)) => Process::Named(s.trim_start_matches(':').to_string()),
        Some(other) => {
            return Err(fail(format!("process must be an integer or a string, got {other}")));
        }
        None => return Err(fail("missing field \"process\"".into())),
    };
    let kind = match &object.kind {
        Some(Json::String(s)) => EventType::parse(s.trim_start_matches(':'))
            .ok_or_else(|| fail(format!("type must be invoke, ok, fail or info, got {s:?}")))?,
        Some(other) => return Err(fail(format!("type must be a string, got {other}"))),
        None => return Err(fail("missing field \"type\"".into())),
    };
    let f = match &object.f {
        Some(Json::String(s)) if !s.is_empty() => s.trim_start_matches(':').to_string(),
        Some(other) => return Err(fail(format!("f must be a non-empty string, got {other}"))),
        None => return Err(fail("missing field \"f\"".into())),
    };
    let key = match &object.key {
        None | Some(Json::Null) => None,
        Some(json @ (Json::String(_) | Json::Number(_))) => {
            Some(Value::from_json(json).map_err(|e| fail(format!("key: {e}")))?)
        }
        Some(other) => {
            return Err(fail(format!("key must be a string or an integer, got {other}")));
        }
    };
    let value = match &object.value {
        None => Value::Null,
        Some(json) => Value::from_json(json).map_err(|e| fail(format!("value: {e}")))?,
    };
    let time = match &object.time {
        None | Some(Json::Null) => None,
        Some(Json::Number(n)) => {
            Some(n.as_i64().ok_or_else(|| fail(format!("time {n} is not an integer")))?)
        }
        Some(other) => return Err(fail(format!("time must be an integer, got {other}"))),
    };
    let meta = meta(object, line)?;
    Ok(Event { process, kind, f, key, value, time, line, meta })
}

/// The optional fields of schema version 2.
fn meta(object: &Fields, line: usize) -> Result<EventMeta, HistoryError> {
    let fail = |message: String| HistoryError::new(line, message);
    let number = |json: &Option<Json>, field: &str| -> Result<Option<u64>, HistoryError> {
        match json {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| fail(format!("{field} {n} is not a non-negative integer"))),
            Some(other) => Err(fail(format!("{field} must be an integer, got {other}"))),
        }
    };
    let value = |json: &Json, field: &str| {
        Value::from_json(json).map_err(|e| fail(format!("{field}: {e}")))
    };
    let txn = match &object.txn {
        None | Some(Json::Null) => None,
        Some(Json::Array(items)) => Some(
            items
                .iter()
                .map(|item| match item.as_array().map(Vec::as_slice) {
                    Some([Json::String(f), key, v]) => Ok(MicroOp {
                        f: f.trim_start_matches(':').to_string(),
                        key: value(key, "txn key")?,
                        value: value(v, "txn value")?,
                    }),
                    _ => Err(fail(format!("txn: {item} is not [f, key, value]"))),
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(other) => {
            return Err(fail(format!("txn must be a list of [f, key, value], got {other}")));
        }
    };
    let watch = match &object.watch {
        None | Some(Json::Null) => None,
        Some(Json::Array(items)) => Some(
            items
                .iter()
                .map(|item| {
                    let field = |name: &str| item.get(name).unwrap_or(&Json::Null);
                    let revision = field("revision")
                        .as_i64()
                        .ok_or_else(|| fail(format!("watch: {item} has no integer revision")))?;
                    let kind = match field("type").as_str() {
                        Some(k @ ("put" | "delete")) => k.to_string(),
                        _ => {
                            return Err(fail(format!("watch: {item}: type must be put or delete")));
                        }
                    };
                    Ok(WatchEvent {
                        revision,
                        kind,
                        key: value(field("key"), "watch key")?,
                        value: value(field("value"), "watch value")?,
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(other) => return Err(fail(format!("watch must be a list of events, got {other}"))),
    };
    let (client, seq) = (number(&object.client, "client")?, number(&object.seq, "seq")?);
    Ok(EventMeta { client, seq, txn, watch })
}

/// Writes the canonical JSON lines form: a `# raftbed-history v2` line, then per event exactly
/// `process`, `type`, `f`, `key` (when present), `value`, `time`, `client`, `seq`, `txn` and
/// `watch` (each when present), in that order.
pub fn write_jsonl(history: &History) -> String {
    let mut out = format!("# raftbed-history v{SCHEMA_VERSION}\n");
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
        write_meta(&mut out, &event.meta);
        out.push_str("}\n");
    }
    out
}

fn write_meta(out: &mut String, meta: &EventMeta) {
    for (field, number) in [("client", meta.client), ("seq", meta.seq)] {
        if let Some(n) = number {
            out.push_str(&format!(",\"{field}\":{n}"));
        }
    }
    if let Some(txn) = &meta.txn {
        let items: Vec<Json> = txn
            .iter()
            .map(|m| {
                Json::Array(vec![Json::String(m.f.clone()), m.key.to_json(), m.value.to_json()])
            })
            .collect();
        out.push_str(&format!(",\"txn\":{}", Json::Array(items)));
    }
    if let Some(watch) = &meta.watch {
        let items: Vec<Json> = watch
            .iter()
            .map(|w| {
                serde_json::json!({
                    "revision": w.revision, "type": w.kind, "key": w.key.to_json(), "value": w.value.to_json(),
                })
            })
            .collect();
        out.push_str(&format!(",\"watch\":{}", Json::Array(items)));
    }
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
        assert_eq!(write_jsonl(&history), format!("# raftbed-history v2\n{text}"));
    }

    #[test]
    fn version_2_fields_round_trip_and_version_1_files_still_read() {
        let text = concat!(
            "# raftbed-history v2\n",
            "{\"process\":1,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"k\",\"value\":\"a\",\"client\":7,\"seq\":3}\n",
            "{\"process\":2,\"type\":\"invoke\",\"f\":\"txn\",\"value\":null,\"txn\":[[\"append\",\"x\",1],[\"r\",\"y\",null]]}\n",
            "{\"process\":2,\"type\":\"ok\",\"f\":\"txn\",\"value\":null,\"txn\":[[\"append\",\"x\",1],[\"r\",\"y\",[1,2]]]}\n",
            "{\"process\":3,\"type\":\"ok\",\"f\":\"watch\",\"key\":\"k\",\"value\":null,\"watch\":[{\"key\":\"k\",\"revision\":5,\"type\":\"put\",\"value\":\"a\"}]}\n",
        );
        let history = read(text).unwrap();
        assert_eq!(history.events[0].meta.client.zip(history.events[0].meta.seq), Some((7, 3)));
        assert_eq!(history.events[2].meta.txn.as_ref().map(Vec::len), Some(2));
        assert_eq!(history.events[3].meta.watch.as_ref().unwrap()[0].revision, 5);
        assert_eq!(write_jsonl(&history), text);
        let v1 = "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n";
        assert_eq!(read(v1).unwrap().events[0].meta, EventMeta::default());
        let err = read("{\"process\":1,\"type\":\"invoke\",\"f\":\"put\",\"value\":1,\"seq\":-1}")
            .unwrap_err();
        assert!(err.message.contains("seq -1"), "{err}");
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
        // A line must be an object: an array is not read as its fields in order.
        assert_eq!(
            read("[1, \"invoke\", \"read\"]").unwrap_err().message,
            "expected a JSON object"
        );
        assert!(read("garbage").unwrap_err().message.starts_with("invalid JSON"));
        let twice = "{\"process\":1,\"type\":\"invoke\",\"type\":\"ok\",\"f\":\"read\"}";
        assert!(read(twice).unwrap_err().message.contains("duplicate field `type`"));
        let null = read("{\"process\":null,\"type\":\"invoke\",\"f\":\"read\"}").unwrap_err();
        assert!(null.message.contains("process must be an integer or a string, got null"));
    }
}
