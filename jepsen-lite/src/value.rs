//! Values that appear in histories: what was written, read, compared. Deliberately small: the
//! checker compares them, the formats read and write them.

use std::fmt;

/// A value in a history.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    /// Absent: a read of a key never written, or no value at all (a read's invocation).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// An EDN keyword such as `:timed-out`, kept as written (without the colon).
    Keyword(String),
    /// A sequence, for example a compare-and-set's `[from, to]`.
    List(Vec<Value>),
}

impl Value {
    /// Whether this is `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The two elements of a pair.
    pub fn as_pair(&self) -> Option<(&Value, &Value)> {
        match self {
            Value::List(items) if items.len() == 2 => Some((&items[0], &items[1])),
            _ => None,
        }
    }

    /// A short name for the kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Str(_) => "string",
            Value::Keyword(_) => "keyword",
            Value::List(_) => "list",
        }
    }

    /// The JSON form: null, true/false, a number, a string, or an array. A keyword becomes a
    /// string starting with ':'.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Keyword(k) => serde_json::Value::String(format!(":{k}")),
            Value::List(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
        }
    }

    /// Reads the JSON form. Numbers must be integers.
    ///
    /// # Errors
    /// For fractional numbers and objects, naming what was found.
    pub fn from_json(json: &serde_json::Value) -> Result<Value, String> {
        Ok(match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                Value::Int(n.as_i64().ok_or_else(|| format!("number {n} is not a 64-bit integer"))?)
            }
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(items) => {
                Value::List(items.iter().map(Value::from_json).collect::<Result<_, _>>()?)
            }
            serde_json::Value::Object(_) => return Err("an object is not a history value".into()),
        })
    }
}

/// Values print as EDN, which is also how the counterexamples show them.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Keyword(k) => write!(f, ":{k}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}
