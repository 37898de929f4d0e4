//! Strings and bare words (numbers are in `number`).

use super::{PResult, Parser, at};
use crate::error::{Diagnostic, ErrorCode};
use crate::value::{Span, Value, ValueKind};

/// A character allowed in a bare key after the first.
pub(crate) fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Whether `key` can be written without quotes.
pub(crate) fn is_bare_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(is_key_char)
}

/// `text` as a basic string literal that reads back as `text`.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len().saturating_add(2));
    out.push('"');
    let mut chars = text.chars().peekable();
    if looks_like_operator(text) {
        // Written as an escape so the text does not read as a quoted operator (E007).
        let lead: String = text.chars().take_while(|c| c.is_whitespace()).collect();
        for c in lead.chars() {
            chars.next();
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
        chars.next();
        out.push_str("\\u{40}");
    }
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether a string's whole text is an operator call, such as `@env('X')` (E007).
fn looks_like_operator(text: &str) -> bool {
    let t = text.trim();
    let Some(rest) = t.strip_prefix('@') else {
        return false;
    };
    let name_len = rest.find('(').unwrap_or(0);
    let name = rest.get(..name_len).unwrap_or("");
    !name.is_empty()
        && name
            .split('.')
            .all(|part| is_bare_key(part) && !part.contains('-'))
        && t.ends_with(')')
}

impl Parser<'_> {
    /// A string in value position: any of the three forms, never an operator in quotes.
    pub(super) fn string_value(&mut self) -> PResult<Value> {
        let span = self.cur.span();
        let start = self.cur.index();
        let quotes = if self.cur.starts_with("\"\"\"") { 3 } else { 1 };
        let text = self.any_string()?;
        // Judged on the source, so an escape such as `\u{40}env(…)` can still say the text.
        let raw = self.cur.slice(
            start.saturating_add(quotes),
            self.cur.index().saturating_sub(quotes),
        );
        if looks_like_operator(&raw) {
            let unquoted = raw.trim().replace('\'', "\"");
            return Err(self.src.err_help(
                ErrorCode::QuotedOperator,
                span,
                "an operator in quotes is only text; remove the quotes",
                format!("write {unquoted} without quotes around it"),
            ));
        }
        Ok(at(ValueKind::String(text), span))
    }

    /// `"…"`, `'…'` or `"""…"""`; the cursor is at the opening quote.
    pub(super) fn any_string(&mut self) -> PResult<String> {
        if self.cur.starts_with("\"\"\"") {
            self.multiline_string()
        } else if self.cur.peek() == Some('\'') {
            self.literal_string()
        } else {
            self.basic_string()
        }
    }

    fn unterminated_string(&self, open: Span, help: &str) -> Box<Diagnostic> {
        self.src
            .err_help(ErrorCode::Lexical, open, "unterminated string", help)
    }

    pub(super) fn basic_string(&mut self) -> PResult<String> {
        let open = self.cur.span();
        self.cur.bump();
        let mut out = String::new();
        loop {
            match self.cur.peek() {
                None | Some('\n' | '\r') => {
                    return Err(self.unterminated_string(
                        open,
                        "close it with `\"` on the same line; use `\"\"\"` for text over several lines",
                    ));
                }
                Some('"') => {
                    self.cur.bump();
                    return Ok(out);
                }
                Some('\\') => out.push(self.escape()?),
                Some('$') if self.cur.peek_at(1) == Some('{') => {
                    return Err(self.interpolation());
                }
                Some(c) => {
                    out.push(c);
                    self.cur.bump();
                }
            }
        }
    }

    fn literal_string(&mut self) -> PResult<String> {
        let open = self.cur.span();
        self.cur.bump();
        let mut out = String::new();
        loop {
            match self.cur.peek() {
                None | Some('\n' | '\r') => {
                    return Err(self.unterminated_string(
                        open,
                        "close it with `'` on the same line; use `\"\"\"` for text over several lines",
                    ));
                }
                Some('\'') => {
                    self.cur.bump();
                    return Ok(out);
                }
                Some(c) => {
                    out.push(c);
                    self.cur.bump();
                }
            }
        }
    }

    fn multiline_string(&mut self) -> PResult<String> {
        let open = self.cur.span();
        self.cur.bump_n(3);
        // A line break right after the opening quotes is not part of the text.
        self.cur.eat_eol();
        let mut out = String::new();
        loop {
            if self.cur.starts_with("\"\"\"") {
                // Up to two quotes right before the closing three belong to the text.
                let mut quotes = 0usize;
                while self.cur.peek_at(quotes) == Some('"') {
                    quotes = quotes.saturating_add(1);
                }
                if quotes > 5 {
                    let help = "escape quotes inside the text as `\\\"`";
                    return Err(self.src.err_help(
                        ErrorCode::Lexical,
                        self.cur.span(),
                        "too many quotes closing a `\"\"\"` string",
                        help,
                    ));
                }
                for _ in 3..quotes {
                    out.push('"');
                }
                self.cur.bump_n(quotes);
                return Ok(out);
            }
            match self.cur.peek() {
                None => {
                    return Err(self.unterminated_string(open, "close it with `\"\"\"`"));
                }
                Some('\\') => out.push(self.escape()?),
                Some('$') if self.cur.peek_at(1) == Some('{') => {
                    return Err(self.interpolation());
                }
                Some('\r') if self.cur.peek_at(1) == Some('\n') => {
                    out.push('\n');
                    self.cur.bump_n(2);
                }
                Some(c) => {
                    out.push(c);
                    self.cur.bump();
                }
            }
        }
    }

    fn interpolation(&self) -> Box<Diagnostic> {
        self.src.err_help(
            ErrorCode::Interpolation,
            self.cur.span(),
            "no interpolation; write `\\${` for a literal `${`",
            "strings are never expanded; use @env(\"NAME\") as the whole value to read a variable",
        )
    }

    /// One escape sequence; the cursor is at the backslash.
    fn escape(&mut self) -> PResult<char> {
        let span = self.cur.span();
        self.cur.bump();
        let bad = |p: &Self, what: String| {
            p.src.err_help(
                ErrorCode::Lexical,
                span,
                what,
                "allowed escapes: \\\" \\\\ \\n \\t \\r \\0 \\$ \\u{…}; write `\\\\` for a backslash",
            )
        };
        let c = match self.cur.peek() {
            Some('"') => '"',
            Some('\\') => '\\',
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some('0') => '\0',
            Some('$') => '$',
            Some('u') => {
                self.cur.bump();
                return self.unicode_escape(span);
            }
            Some(c) if !self.cur.at_eol() => {
                return Err(bad(
                    self,
                    format!("unknown escape `\\{}`", c.escape_debug()),
                ));
            }
            _ => {
                return Err(bad(
                    self,
                    "a `\\` at the end of a line is not an escape".into(),
                ));
            }
        };
        self.cur.bump();
        Ok(c)
    }

    fn unicode_escape(&mut self, span: Span) -> PResult<char> {
        let bad = |p: &Self| {
            p.src.err_help(
                ErrorCode::Lexical,
                span,
                "bad unicode escape",
                "write `\\u{…}` with 1 to 6 hex digits of a Unicode scalar value, such as `\\u{e9}`",
            )
        };
        if !self.cur.eat('{') {
            return Err(bad(self));
        }
        let mut hex = String::new();
        while let Some(c) = self.cur.peek().filter(char::is_ascii_hexdigit) {
            hex.push(c);
            self.cur.bump();
        }
        if hex.is_empty() || hex.len() > 6 || !self.cur.eat('}') {
            return Err(bad(self));
        }
        u32::from_str_radix(&hex, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| bad(self))
    }

    /// `true`, `false`, `null`, or an unquoted-string error.
    pub(super) fn bare_word(&mut self) -> PResult<Value> {
        let span = self.cur.span();
        let start = self.cur.index();
        let mut word = String::new();
        while let Some(c) = self
            .cur
            .peek()
            .filter(|&c| c.is_ascii_alphanumeric() || c == '_')
        {
            word.push(c);
            self.cur.bump();
        }
        let clean_end = !self.cur.peek_is(|c| {
            c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/' | '@' | '$' | '\'' | '"')
        });
        if clean_end {
            match word.as_str() {
                "true" => return Ok(at(ValueKind::Bool(true), span)),
                "false" => return Ok(at(ValueKind::Bool(false), span)),
                "null" => return Ok(at(ValueKind::Null, span)),
                _ => {}
            }
            let lower = word.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "true" | "false" | "yes" | "no" | "on" | "off"
            ) {
                let fix = if matches!(lower.as_str(), "true" | "yes" | "on") {
                    "true"
                } else {
                    "false"
                };
                return Err(self.src.err_help(
                    ErrorCode::BareWord,
                    span,
                    format!("unquoted string `{word}`; booleans are `true`/`false`"),
                    format!("write `{fix}`, or `\"{word}\"` if you mean the text"),
                ));
            }
        }
        Err(self.bare_word_error(span, start))
    }

    pub(super) fn bare_word_error(&self, span: Span, start: usize) -> Box<Diagnostic> {
        let run = self.cur.run_from(start);
        let quoted = quote(&run);
        self.src.err_help(
            ErrorCode::BareWord,
            span,
            format!("unquoted string; write `{quoted}`"),
            "text values are always quoted; `true`, `false` and `null` are the only bare words",
        )
    }
}
