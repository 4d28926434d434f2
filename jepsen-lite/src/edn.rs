//! A small EDN reader (the subset Jepsen and Knossos histories use, and a little more), with the
//! line of every top-level form for error messages. Nesting is bounded, so hostile input cannot
//! overflow the stack.

/// An EDN form.
#[derive(Clone, Debug, PartialEq)]
pub enum Edn {
    /// `nil`
    Nil,
    /// `true` / `false`
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A keyword, without its colon.
    Keyword(String),
    /// A symbol.
    Symbol(String),
    /// A character such as `\a`.
    Char(char),
    /// `[...]`
    Vector(Vec<Edn>),
    /// `(...)`
    List(Vec<Edn>),
    /// `{...}`, in written order.
    Map(Vec<(Edn, Edn)>),
    /// `#{...}`
    Set(Vec<Edn>),
    /// `#tag form`, such as `#inst "..."`.
    Tagged(String, Box<Edn>),
}

impl Edn {
    /// The value under keyword `key` in a map.
    pub fn get(&self, key: &str) -> Option<&Edn> {
        match self {
            Edn::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Edn::Keyword(name) if name == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A syntax error, with the 1-based line where it was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct EdnError {
    /// The line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

const MAX_DEPTH: usize = 64;

/// Reads every top-level form in `text`, each with the line it starts on.
///
/// # Errors
/// The first syntax error.
pub fn parse_all(text: &str) -> Result<Vec<(usize, Edn)>, EdnError> {
    let mut parser = Parser { bytes: text.as_bytes(), text, pos: 0, line: 1 };
    let mut forms = Vec::new();
    loop {
        parser.skip_ignored(0)?;
        if parser.pos >= parser.bytes.len() {
            return Ok(forms);
        }
        let line = parser.line;
        let form = parser.form(0)?;
        forms.push((line, form));
    }
}

/// Reads a history-shaped text: if it is one vector or list, its elements; otherwise every
/// top-level form. Each comes with the line it starts on.
///
/// # Errors
/// The first syntax error.
pub fn parse_items(text: &str) -> Result<Vec<(usize, Edn)>, EdnError> {
    let mut parser = Parser { bytes: text.as_bytes(), text, pos: 0, line: 1 };
    parser.skip_ignored(0)?;
    let close = match parser.peek() {
        Some(b'[') => b']',
        Some(b'(') => b')',
        _ => return parse_all(text),
    };
    parser.bump();
    let mut items = Vec::new();
    loop {
        parser.skip_ignored(1)?;
        match parser.peek() {
            None => return parser.error(format!("missing '{}'", close as char)),
            Some(b) if b == close => {
                parser.bump();
                break;
            }
            Some(_) => {
                let line = parser.line;
                items.push((line, parser.form(1)?));
            }
        }
    }
    parser.skip_ignored(0)?;
    if parser.pos < parser.bytes.len() {
        return parser.error("unexpected form after the history's closing bracket");
    }
    Ok(items)
}

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
    line: usize,
}

impl Parser<'_> {
    fn error<T>(&self, message: impl Into<String>) -> Result<T, EdnError> {
        Err(EdnError { line: self.line, message: message.into() })
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        if byte == b'\n' {
            self.line += 1;
        }
        Some(byte)
    }

    /// Skips whitespace, commas, comments and `#_` discards.
    fn skip_ignored(&mut self, depth: usize) -> Result<(), EdnError> {
        while let Some(byte) = self.peek() {
            match byte {
                b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                    self.bump();
                }
                b';' => {
                    while self.peek().is_some_and(|b| b != b'\n') {
                        self.bump();
                    }
                }
                b'#' if self.bytes.get(self.pos + 1) == Some(&b'_') => {
                    self.pos += 2;
                    self.skip_ignored(depth)?;
                    self.form(depth + 1)?;
                }
                _ => break,
            }
        }
        Ok(())
    }

    fn form(&mut self, depth: usize) -> Result<Edn, EdnError> {
        if depth > MAX_DEPTH {
            return self.error(format!("nesting deeper than {MAX_DEPTH}"));
        }
        self.skip_ignored(depth)?;
        let Some(byte) = self.peek() else {
            return self.error("unexpected end of input");
        };
        match byte {
            b'[' => self.sequence(b']', depth).map(Edn::Vector),
            b'(' => self.sequence(b')', depth).map(Edn::List),
            b'{' => self.map(depth),
            b'#' => self.dispatch(depth),
            b'"' => self.string().map(Edn::Str),
            b':' => {
                self.bump();
                let name = self.token();
                if name.is_empty() {
                    return self.error("empty keyword");
                }
                Ok(Edn::Keyword(name.to_string()))
            }
            b'\\' => {
                self.bump();
                let token = self.token().to_string();
                let ch = match token.as_str() {
                    "newline" => '\n',
                    "space" => ' ',
                    "tab" => '\t',
                    _ => {
                        let mut chars = token.chars();
                        match (chars.next(), chars.next()) {
                            (Some(c), None) => c,
                            _ => return self.error(format!("bad character literal \\{token}")),
                        }
                    }
                };
                Ok(Edn::Char(ch))
            }
            b']' | b')' | b'}' => self.error(format!("unmatched '{}'", byte as char)),
            _ => self.atom(),
        }
    }

    fn sequence(&mut self, close: u8, depth: usize) -> Result<Vec<Edn>, EdnError> {
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_ignored(depth)?;
            match self.peek() {
                None => return self.error(format!("missing '{}'", close as char)),
                Some(b) if b == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(_) => items.push(self.form(depth + 1)?),
            }
        }
    }

    fn map(&mut self, depth: usize) -> Result<Edn, EdnError> {
        let items = self.sequence(b'}', depth)?;
        if items.len() % 2 != 0 {
            return self.error("a map needs an even number of forms");
        }
        let mut entries = Vec::with_capacity(items.len() / 2);
        let mut iter = items.into_iter();
        while let (Some(k), Some(v)) = (iter.next(), iter.next()) {
            entries.push((k, v));
        }
        Ok(Edn::Map(entries))
    }

    fn dispatch(&mut self, depth: usize) -> Result<Edn, EdnError> {
        self.bump();
        match self.peek() {
            Some(b'{') => self.sequence(b'}', depth).map(Edn::Set),
            Some(_) => {
                let tag = self.token().to_string();
                if tag.is_empty() {
                    return self.error("bad '#' dispatch");
                }
                let form = self.form(depth + 1)?;
                Ok(Edn::Tagged(tag, Box::new(form)))
            }
            None => self.error("unexpected end of input after '#'"),
        }
    }

    fn string(&mut self) -> Result<String, EdnError> {
        self.bump();
        let mut out = String::new();
        loop {
            let start = self.pos;
            while self.peek().is_some_and(|b| b != b'"' && b != b'\\') {
                self.bump();
            }
            out.push_str(self.slice(start, self.pos)?);
            match self.bump() {
                None => return self.error("unterminated string"),
                Some(b'"') => return Ok(out),
                Some(_) => {
                    let escaped = match self.bump() {
                        Some(b'n') => '\n',
                        Some(b't') => '\t',
                        Some(b'r') => '\r',
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'u') => {
                            let start = self.pos;
                            for _ in 0..4 {
                                self.bump();
                            }
                            let hex = self.slice(start, self.pos)?;
                            let code = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
                            match code {
                                Some(c) => c,
                                None => return self.error(format!("bad escape \\u{hex}")),
                            }
                        }
                        _ => return self.error("bad escape in string"),
                    };
                    out.push(escaped);
                }
            }
        }
    }

    /// The text from `start` to `end`, which must fall on character boundaries.
    fn slice(&self, start: usize, end: usize) -> Result<&str, EdnError> {
        let end = end.min(self.text.len());
        self.text.get(start..end).map_or_else(|| self.error("invalid UTF-8 boundary"), Ok)
    }

    /// A run of non-delimiter bytes.
    fn token(&mut self) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(|b| {
            !matches!(
                b,
                b' ' | b'\t'
                    | b'\n'
                    | b'\r'
                    | b','
                    | b'['
                    | b']'
                    | b'('
                    | b')'
                    | b'{'
                    | b'}'
                    | b'"'
                    | b';'
            )
        }) {
            self.bump();
        }
        self.text.get(start..self.pos).unwrap_or("")
    }

    fn atom(&mut self) -> Result<Edn, EdnError> {
        let token = self.token().to_string();
        if token.is_empty() {
            let found =
                self.peek().map_or("end of input".to_string(), |b| format!("byte {b:#04x}"));
            return self.error(format!("unexpected {found}"));
        }
        Ok(match token.as_str() {
            "nil" => Edn::Nil,
            "true" => Edn::Bool(true),
            "false" => Edn::Bool(false),
            _ => {
                let first = token.as_bytes()[0];
                let numeric = first.is_ascii_digit()
                    || ((first == b'-' || first == b'+')
                        && token.as_bytes().get(1).is_some_and(u8::is_ascii_digit));
                if numeric {
                    let digits = token.trim_end_matches('N');
                    if let Ok(i) = digits.parse::<i64>() {
                        Edn::Int(i)
                    } else if let Ok(f) = token.trim_end_matches('M').parse::<f64>() {
                        Edn::Float(f)
                    } else {
                        return self.error(format!("bad number {token}"));
                    }
                } else {
                    Edn::Symbol(token)
                }
            }
        })
    }
}

/// Writes a value as EDN (strings escaped, keywords with their colon).
pub fn write_value(out: &mut String, value: &crate::Value) {
    use std::fmt::Write as _;
    match value {
        crate::Value::Str(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    '\r' => out.push_str("\\r"),
                    c if c.is_control() => write!(out, "\\u{:04x}", c as u32).expect("string"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        crate::Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        other => write!(out, "{other}").expect("string"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_jepsen_op_map() {
        let forms = parse_all("{:process 3, :type :invoke, :f :cas, :value [1 2]}\n").unwrap();
        let (line, map) = &forms[0];
        assert_eq!(*line, 1);
        assert_eq!(map.get("f"), Some(&Edn::Keyword("cas".into())));
        assert_eq!(map.get("value"), Some(&Edn::Vector(vec![Edn::Int(1), Edn::Int(2)])));
    }

    #[test]
    fn tracks_lines_skips_comments_and_discards() {
        let text = "; a comment\n[1 #_ 2 3]\n\n{:a \"x\\ny\"} #inst \"2020\"";
        let forms = parse_all(text).unwrap();
        assert_eq!(forms[0], (2, Edn::Vector(vec![Edn::Int(1), Edn::Int(3)])));
        assert_eq!(forms[1].0, 4);
        assert_eq!(forms[1].1.get("a"), Some(&Edn::Str("x\ny".into())));
        assert!(matches!(forms[2].1, Edn::Tagged(ref t, _) if t == "inst"));
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse_all("[1 2]\n{:a 1\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("missing '}'"));
        assert!(parse_all("{:a}").unwrap_err().message.contains("even"));
        assert!(parse_all(&"[".repeat(500)).unwrap_err().message.contains("nesting"));
    }
}
