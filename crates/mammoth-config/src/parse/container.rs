//! Values: the dispatch on the first character, arrays `[ … ]` and objects `{ … }`.
//!
//! Inside brackets, items are separated by a comma or by line breaks, comments may stand
//! anywhere, and one trailing comma is allowed.

use super::{MAX_DEPTH, PResult, Parser, at, describe, tree};
use crate::error::{Diagnostic, ErrorCode};
use crate::value::{Span, Table, TableOrigin, Value, ValueKind};

/// What closes the container being read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bracket {
    Array,
    Object,
}

impl Bracket {
    fn close(self) -> char {
        match self {
            Self::Array => ']',
            Self::Object => '}',
        }
    }

    fn open(self) -> char {
        match self {
            Self::Array => '[',
            Self::Object => '{',
        }
    }
}

impl Parser<'_> {
    /// A value at nesting `level` (the root table is level 0).
    pub(super) fn value(&mut self, level: usize) -> PResult<Value> {
        let span = self.cur.span();
        let expected_value = |p: &Self| {
            p.src.err_help(
                ErrorCode::Syntax,
                span,
                "expected a value",
                "write a value such as `\"text\"`, `1`, `2.5`, `true`, `null`, `[ … ]` or `{ … }`",
            )
        };
        let next_is_digit = self.cur.peek_at(1).is_some_and(|c| c.is_ascii_digit());
        match self.cur.peek() {
            None => Err(expected_value(self)),
            Some('"' | '\'') => self.string_value(),
            Some('[') => self.array(level, span),
            Some('{') => self.object(level, span),
            Some('@') => self.operator(),
            Some('$') => Err(self.variable_error(span)),
            Some('-' | '0'..='9') => self.number(),
            Some('+') if next_is_digit => Err(self.src.err_help(
                ErrorCode::Number,
                span,
                "a number cannot start with `+`",
                "remove the `+`",
            )),
            Some('.') if next_is_digit => Err(self.src.err_help(
                ErrorCode::Number,
                span,
                "a float needs a digit before the point",
                "write `0.5` instead of `.5`",
            )),
            Some('<' | '>') => Err(self.block_error(span, "name")),
            Some('/') if self.cur.starts_with("/*") => Err(self.block_comment()),
            _ if self.cur.at_eol() || self.cur.at_comment() => Err(expected_value(self)),
            Some(c) if c.is_alphabetic() || c == '_' || c == '/' => self.bare_word(),
            Some(c @ ('?' | '=' | '*' | '!' | '&' | '|' | '(' | '%' | '+' | '.' | '~' | '^')) => {
                Err(self.src.err_help(
                    ErrorCode::Expression,
                    span,
                    format!("expressions are not supported (found `{c}`)"),
                    "write the final value; to vary it per environment use @env(\"NAME\", default)",
                ))
            }
            Some(c) => Err(self.src.err_help(
                ErrorCode::Syntax,
                span,
                format!("expected a value, found {}", describe(c)),
                "write a value such as `\"text\"`, `1`, `true`, `[ … ]` or `{ … }`",
            )),
        }
    }

    fn check_depth(&self, level: usize, span: Span) -> PResult<()> {
        if level > MAX_DEPTH {
            return Err(self.src.err_help(
                ErrorCode::Limit,
                span,
                format!("nesting deeper than {MAX_DEPTH} levels"),
                "flatten the structure; configuration never needs this depth",
            ));
        }
        Ok(())
    }

    fn array(&mut self, level: usize, open: Span) -> PResult<Value> {
        self.check_depth(level, open)?;
        self.cur.bump();
        let mut items = Vec::new();
        self.items(Bracket::Array, open, |p| {
            items.push(p.value(level.saturating_add(1))?);
            Ok(())
        })?;
        Ok(at(ValueKind::Array(items), open))
    }

    fn object(&mut self, level: usize, open: Span) -> PResult<Value> {
        self.check_depth(level, open)?;
        self.cur.bump();
        let mut table = Table::new(TableOrigin::Inline);
        self.items(Bracket::Object, open, |p| {
            let keys = p.key_path()?;
            p.cur.skip_ws();
            if !(p.cur.eat(':') || p.cur.eat('=')) {
                let name = super::dotted(&keys);
                return Err(p.src.err_help(
                    ErrorCode::Syntax,
                    p.cur.span(),
                    format!("expected `:` or `=` after `{name}`"),
                    format!("write `{name}: value`"),
                ));
            }
            p.cur.skip_ws();
            let value = p.value(level.saturating_add(keys.len()))?;
            tree::insert_in(&mut table, level, &keys, value, &p.src)
        })?;
        Ok(at(ValueKind::Table(table), open))
    }

    /// Reads items with `item` until the closing bracket (consumed).
    fn items(
        &mut self,
        bracket: Bracket,
        open: Span,
        mut item: impl FnMut(&mut Self) -> PResult<()>,
    ) -> PResult<()> {
        let close = bracket.close();
        let mut after_break = self.skip_wsn()?;
        if self.cur.eat(close) {
            return Ok(());
        }
        loop {
            if self.cur.peek().is_none() || (after_break && self.looks_like_statement(bracket)) {
                return Err(self.unterminated(bracket, open));
            }
            if self.cur.peek() == Some(',') {
                return Err(self.src.err_help(
                    ErrorCode::Syntax,
                    self.cur.span(),
                    "expected an item before `,`",
                    "remove the extra `,`",
                ));
            }
            item(self)?;
            let spaced = self.cur.skip_ws();
            if self.cur.eat(',') {
                after_break = self.skip_wsn()?;
                if self.cur.eat(close) {
                    return Ok(());
                }
                continue;
            }
            if self.cur.eat(close) {
                return Ok(());
            }
            let at_break = self.cur.at_eol() && self.cur.peek().is_some();
            if at_break || (self.cur.at_comment() && spaced) {
                after_break = self.skip_wsn()?;
                if self.cur.eat(close) {
                    return Ok(());
                }
                if self.cur.peek() == Some(',') {
                    self.cur.bump();
                    self.skip_wsn()?;
                    if self.cur.eat(close) {
                        return Ok(());
                    }
                    return Err(self.src.err_help(
                        ErrorCode::Syntax,
                        self.cur.span(),
                        format!("a `,` at the start of a line may only be followed by `{close}`"),
                        "put the `,` right after the item it follows",
                    ));
                }
                continue;
            }
            if self.cur.peek().is_none() {
                return Err(self.unterminated(bracket, open));
            }
            let expected = format!("`,` or `{close}` after the item");
            return Err(self.unexpected(&expected));
        }
    }

    fn unterminated(&self, bracket: Bracket, open: Span) -> Box<Diagnostic> {
        let (o, c) = (bracket.open(), bracket.close());
        self.src.err_help(
            ErrorCode::Lexical,
            open,
            format!("unterminated `{o}`: it is never closed"),
            format!("close it with `{c}`"),
        )
    }

    /// Skips spaces, line breaks and comments inside brackets; true if it crossed a line break.
    fn skip_wsn(&mut self) -> PResult<bool> {
        let mut crossed = false;
        loop {
            self.cur.skip_ws();
            if self.cur.starts_with("/*") {
                return Err(self.block_comment());
            }
            if self.cur.at_comment() {
                self.cur.skip_comment();
            } else if self.cur.eat_eol() {
                crossed = true;
            } else {
                return Ok(crossed);
            }
        }
    }

    /// After a line break inside brackets: does the line read as a new `key: value` entry or a
    /// `[section]` header? Then the bracket above was most likely never closed.
    fn looks_like_statement(&self, bracket: Bracket) -> bool {
        let peek = |i: usize| self.cur.peek_at(i);
        let skip_key = |mut i: usize| {
            while peek(i).is_some_and(|c| super::lexeme::is_key_char(c) || c == '.') {
                i = i.saturating_add(1);
            }
            i
        };
        let skip_ws = |mut i: usize| {
            while peek(i).is_some_and(|c| c == ' ' || c == '\t') {
                i = i.saturating_add(1);
            }
            i
        };
        let key_start = |i: usize| peek(i).is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if peek(0) == Some('[') {
            let mut i = skip_ws(1);
            if !key_start(i) {
                return false;
            }
            i = skip_ws(skip_key(i));
            if peek(i) != Some(']') {
                return false;
            }
            i = skip_ws(i.saturating_add(1));
            return matches!(peek(i), None | Some('\n' | '\r' | '#' | '/'));
        }
        if bracket == Bracket::Array && key_start(0) {
            let i = skip_ws(skip_key(0));
            return matches!(peek(i), Some(':' | '='));
        }
        false
    }
}
