//! Numbers: integers that fit `i64` and floats with digits on both sides of the point.
//!
//! Forms the grammar leaves out (`0xFF`, `+1`, `007`, `1.`, `1e5`, `1_000`) are E010, and text
//! that merely starts with a digit (`100ms`, `0.0.0.0:8080`) is an unquoted string (E003).

use super::{PResult, Parser, at};
use crate::error::ErrorCode;
use crate::value::{Value, ValueKind};

impl Parser<'_> {
    /// An integer or a float; the cursor is at `-` or a digit.
    pub(super) fn number(&mut self) -> PResult<Value> {
        let span = self.cur.span();
        let start = self.cur.index();
        let number_error = |p: &Self, message: &str, help: String| {
            p.src.err_help(ErrorCode::Number, span, message, help)
        };
        let mut text = String::new();
        if self.cur.eat('-') {
            text.push('-');
        }
        if !self.cur.peek_is(|c| c.is_ascii_digit()) {
            return Err(self.src.err_help(
                ErrorCode::Expression,
                span,
                "expressions are not supported (`-` must be followed by digits)",
                "write a number such as `-1`, or quote text: `\"-x\"`",
            ));
        }
        if self.cur.peek() == Some('0') && self.cur.peek_at(1).is_some_and(|c| "xXoObB".contains(c))
        {
            return Err(number_error(
                self,
                "hexadecimal, octal and binary numbers are not supported",
                "write the number in decimal".into(),
            ));
        }
        let digits = self.digits();
        if digits.len() > 1 && digits.starts_with('0') {
            let trimmed = digits.trim_start_matches('0');
            let fixed = if trimmed.is_empty() { "0" } else { trimmed };
            return Err(number_error(
                self,
                "leading zeros are not allowed",
                format!("write `{text}{fixed}`, or quote it if it is an identifier"),
            ));
        }
        text.push_str(&digits);
        if self.cur.peek() == Some('_') && self.cur.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            return Err(number_error(
                self,
                "digit separators `_` are not supported",
                "write the digits without `_`".into(),
            ));
        }
        let mut is_float = false;
        if self.cur.peek() == Some('.') {
            if self.cur.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
                self.cur.bump();
                text.push('.');
                text.push_str(&self.digits());
                is_float = true;
            } else if !self
                .cur
                .peek_at(1)
                .is_some_and(|c| c.is_alphanumeric() || c == '.')
            {
                return Err(number_error(
                    self,
                    "a decimal point must be followed by digits",
                    format!("write `{text}.0`"),
                ));
            }
        }
        if self.cur.peek_is(|c| c == 'e' || c == 'E') {
            let sign = usize::from(self.cur.peek_at(1).is_some_and(|c| c == '+' || c == '-'));
            let has_digit = self
                .cur
                .peek_at(sign.saturating_add(1))
                .is_some_and(|c| c.is_ascii_digit());
            if is_float {
                text.push('e');
                self.cur.bump();
                if let Some(s) = self.cur.peek().filter(|c| *c == '+' || *c == '-') {
                    text.push(s);
                    self.cur.bump();
                }
                let exponent = self.digits();
                if exponent.is_empty() {
                    return Err(number_error(
                        self,
                        "an exponent needs digits",
                        "write a float such as `1.5e3`".into(),
                    ));
                }
                text.push_str(&exponent);
            } else if has_digit {
                return Err(number_error(
                    self,
                    "an exponent needs a fraction",
                    format!("write `{text}.0e…`"),
                ));
            }
        }
        // `100ms`, `1.5.3`, `0.0.0.0:8080`: text that starts with a digit.
        if self
            .cur
            .peek_is(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '@'))
        {
            return Err(self.bare_word_error(span, start));
        }
        if is_float {
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(at(ValueKind::Float(f), span)),
                _ => Err(number_error(
                    self,
                    "float out of range",
                    "floats must be finite 64-bit values".into(),
                )),
            }
        } else {
            text.parse::<i64>()
                .map(|i| at(ValueKind::Int(i), span))
                .map_err(|_| {
                    number_error(
                        self,
                        "integer out of range: integers must fit a signed 64-bit value",
                        "quote it if it is an identifier rather than a number".into(),
                    )
                })
        }
    }

    fn digits(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.cur.peek().filter(char::is_ascii_digit) {
            out.push(c);
            self.cur.bump();
        }
        out
    }
}
