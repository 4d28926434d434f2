//! Jepsen's log lines: `INFO  jepsen.util - <process> <type> <f> <value>`, tokens separated by
//! tabs or spaces; the value is EDN (`nil`, `3`, `[1 2]`, `:timed-out`). Other lines of a Jepsen
//! log are skipped; a `jepsen.util` line that does not parse is an error.

use crate::edn::{self, Edn};
use crate::history::{Event, EventType, History, HistoryError, Process};
use crate::value::Value;

const MARKER: &str = "jepsen.util - ";

pub(super) fn read(text: &str) -> Result<History, HistoryError> {
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let Some(at) = line.find(MARKER) else { continue };
        events.push(event(&line[at + MARKER.len()..], line_no)?);
    }
    Ok(History { events })
}

fn event(rest: &str, line: usize) -> Result<Event, HistoryError> {
    let fail = |message: String| HistoryError::new(line, message);
    let mut tokens = rest.split_whitespace();
    let (Some(process), Some(kind), Some(f)) = (tokens.next(), tokens.next(), tokens.next()) else {
        return Err(fail(format!("expected '<process> <type> <f> <value>', got {rest:?}")));
    };
    let process = match process.strip_prefix(':') {
        Some(name) => Process::Named(name.to_string()),
        None => {
            Process::Client(process.parse().map_err(|_| fail(format!("bad process {process:?}")))?)
        }
    };
    let kind = kind
        .strip_prefix(':')
        .and_then(EventType::parse)
        .ok_or_else(|| fail(format!("bad type {kind:?}")))?;
    let f = f
        .strip_prefix(':')
        .filter(|f| !f.is_empty())
        .ok_or_else(|| fail(format!("bad f {f:?}")))?;
    let value_text: Vec<&str> = tokens.collect();
    let value_text = value_text.join(" ");
    let value = if value_text.is_empty() {
        Value::Null
    } else {
        let forms =
            edn::parse_all(&value_text).map_err(|e| fail(format!("bad value: {}", e.message)))?;
        match forms.as_slice() {
            [(_, form)] => {
                convert(form).ok_or_else(|| fail(format!("unsupported value {value_text:?}")))?
            }
            _ => return Err(fail(format!("expected one value, got {value_text:?}"))),
        }
    };
    let meta = Default::default();
    Ok(Event { process, kind, f: f.to_string(), key: None, value, time: None, line, meta })
}

fn convert(form: &Edn) -> Option<Value> {
    Some(match form {
        Edn::Nil => Value::Null,
        Edn::Bool(b) => Value::Bool(*b),
        Edn::Int(i) => Value::Int(*i),
        Edn::Str(s) => Value::Str(s.clone()),
        Edn::Keyword(k) => Value::Keyword(k.clone()),
        Edn::Vector(items) | Edn::List(items) => {
            Value::List(items.iter().map(convert).collect::<Option<_>>()?)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shapes_that_occur() {
        let text = "INFO  jepsen.util - 2\t:invoke\t:cas\t[2 4]\nsome other line\nINFO  jepsen.util - 2\t:ok\t:cas\t[2 4]\nINFO  jepsen.util - 1\t:info\t:write\t:timed-out\n";
        let history = read(text).unwrap();
        assert_eq!(history.events.len(), 3);
        assert_eq!(history.events[0].value, Value::List(vec![Value::Int(2), Value::Int(4)]));
        assert_eq!(history.events[1].line, 3);
        assert_eq!(history.events[2].value, Value::Keyword("timed-out".into()));
    }

    #[test]
    fn a_broken_event_line_names_its_line() {
        let err = read("INFO  jepsen.util - 2\t:invoke\n").unwrap_err();
        assert_eq!(err.line, 1);
        let err = read("x\nINFO  jepsen.util - two :invoke :read nil\n").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
