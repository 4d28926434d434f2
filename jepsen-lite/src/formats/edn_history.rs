//! EDN histories (Jepsen, Knossos, Porcupine's kv tests): op maps with `:process`, `:type`,
//! `:f`, `:key`?, `:value`, `:time`?; either wrapped in one vector or list, or one after another.

use crate::edn::{self, Edn};
use crate::history::{Event, EventType, History, HistoryError, Process};
use crate::value::Value;

pub(super) fn read(text: &str) -> Result<History, HistoryError> {
    let items = edn::parse_items(text).map_err(|e| HistoryError::new(e.line, e.message))?;
    let mut events = Vec::with_capacity(items.len());
    for (line, form) in &items {
        events.push(event(form, *line)?);
    }
    Ok(History { events })
}

fn event(form: &Edn, line: usize) -> Result<Event, HistoryError> {
    let fail = |message: String| HistoryError::new(line, message);
    if !matches!(form, Edn::Map(_)) {
        return Err(fail("expected an op map {:process ..., :type ..., :f ...}".into()));
    }
    let process = match form.get("process") {
        Some(Edn::Int(i)) if *i >= 0 => Process::Client(*i as u64),
        Some(Edn::Keyword(k) | Edn::Symbol(k) | Edn::Str(k)) => Process::Named(k.clone()),
        Some(other) => {
            return Err(fail(format!(":process must be an integer or a keyword, got {other:?}")));
        }
        None => return Err(fail("missing :process".into())),
    };
    let kind = match form.get("type") {
        Some(Edn::Keyword(k)) => EventType::parse(k)
            .ok_or_else(|| fail(format!(":type must be :invoke, :ok, :fail or :info, got :{k}")))?,
        Some(other) => return Err(fail(format!(":type must be a keyword, got {other:?}"))),
        None => return Err(fail("missing :type".into())),
    };
    let f = match form.get("f") {
        Some(Edn::Keyword(k) | Edn::Str(k) | Edn::Symbol(k)) => k.clone(),
        Some(other) => return Err(fail(format!(":f must be a keyword, got {other:?}"))),
        None => return Err(fail("missing :f".into())),
    };
    let lenient = matches!(process, Process::Named(_));
    let key = match form.get("key") {
        None | Some(Edn::Nil) => None,
        Some(k @ (Edn::Int(_) | Edn::Str(_) | Edn::Keyword(_))) => {
            Some(value(k, false).map_err(|e| fail(format!(":key: {e}")))?)
        }
        Some(other) => {
            return Err(fail(format!(":key must be a string, integer or keyword, got {other:?}")));
        }
    };
    let value = match form.get("value") {
        None => Value::Null,
        Some(v) => value(v, lenient).map_err(|e| fail(format!(":value: {e}")))?,
    };
    let time = match form.get("time") {
        None | Some(Edn::Nil) => None,
        Some(Edn::Int(t)) => Some(*t),
        Some(other) => return Err(fail(format!(":time must be an integer, got {other:?}"))),
    };
    Ok(Event { process, kind, f, key, value, time, line, meta: Default::default() })
}

/// Converts an EDN form to a history value. Nemesis values (`lenient`) may be anything and are
/// kept as text when they do not fit.
fn value(form: &Edn, lenient: bool) -> Result<Value, String> {
    Ok(match form {
        Edn::Nil => Value::Null,
        Edn::Bool(b) => Value::Bool(*b),
        Edn::Int(i) => Value::Int(*i),
        Edn::Str(s) => Value::Str(s.clone()),
        Edn::Keyword(k) => Value::Keyword(k.clone()),
        Edn::Vector(items) | Edn::List(items) => {
            Value::List(items.iter().map(|i| value(i, lenient)).collect::<Result<_, _>>()?)
        }
        other if lenient => Value::Str(format!("{other:?}")),
        other => return Err(format!("unsupported value {other:?}")),
    })
}

/// See `formats::detect`.
pub(super) fn looks_like_porcupine_kv(text: &str) -> bool {
    let mut seen = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()).take(2000) {
        let Ok(forms) = edn::parse_all(line) else { return false };
        let [(_, form)] = forms.as_slice() else { return false };
        let keyed = matches!(form.get("key"), Some(Edn::Str(_)));
        let f_ok = matches!(form.get("f"), Some(Edn::Keyword(f)) if f == "get" || f == "put" || f == "append");
        let nil_read = matches!(form.get("type"), Some(Edn::Keyword(t)) if t == "ok")
            && matches!(form.get("value"), Some(Edn::Nil));
        if !keyed || !f_ok || nil_read {
            return false;
        }
        seen += 1;
    }
    seen > 0
}

/// Writes a history as an EDN vector of op maps, one per line: what Knossos and Elle read.
pub fn write_edn(history: &History) -> String {
    let mut out = String::from("[");
    for (i, event) in history.events.iter().enumerate() {
        if i > 0 {
            out.push_str("\n ");
        }
        out.push_str("{:process ");
        match &event.process {
            Process::Client(id) => out.push_str(&id.to_string()),
            Process::Named(name) => {
                out.push(':');
                out.push_str(name);
            }
        }
        out.push_str(", :type :");
        out.push_str(event.kind.name());
        out.push_str(", :f :");
        out.push_str(&event.f);
        if let Some(key) = &event.key {
            out.push_str(", :key ");
            edn::write_value(&mut out, key);
        }
        out.push_str(", :value ");
        edn::write_value(&mut out, &event.value);
        if let Some(time) = event.time {
            out.push_str(", :time ");
            out.push_str(&time.to_string());
        }
        out.push('}');
    }
    out.push_str("]\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_writer() {
        let text = "[{:process 0, :type :invoke, :f :cas, :key \"a\\\"b\", :value [1 2], :time 10}\n {:process :nemesis, :type :info, :f :start, :value nil}\n {:process 0, :type :fail, :f :cas, :key \"a\\\"b\", :value [1 2], :time 20}]\n";
        let history = read(text).unwrap();
        assert_eq!(history.events.len(), 3);
        assert_eq!(write_edn(&history), text);
        assert_eq!(history.events[2].line, 3);
    }

    #[test]
    fn reads_a_sequence_of_maps_with_lines() {
        let history = read("{:process 1, :type :invoke, :f :read, :value nil}\n\n{:process 1, :type :ok, :f :read, :value 3}\n").unwrap();
        assert_eq!(history.events[1].line, 3);
        assert_eq!(history.events[1].value, Value::Int(3));
    }

    #[test]
    fn wrong_types_name_the_line() {
        let err = read("{:process 1, :type :invoke, :f :read, :value nil}\n{:process 1, :type :ok, :f :read, :value 1.5}").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains(":value"));
    }
}
