//! The `.tsk` parser: text in, a [`Table`] of resolved [`Value`]s out.
//!
//! It follows the grammar of the format spec line by line (`cursor` walks the characters,
//! `lexeme` reads strings, numbers and words, `container` arrays and objects, `operator` the
//! four allowed `@` operators, `tree` places values and rejects redefinitions). Operators are
//! resolved as they are read, so the first problem in file order is the one reported.

mod container;
mod cursor;
mod lexeme;
mod number;
mod operator;
mod tree;

use std::path::Path;

use crate::env::Env;
use crate::error::{Diagnostic, ErrorCode};
use crate::value::{Span, Table, TableOrigin, Value};
use cursor::Cursor;

pub(crate) use lexeme::{is_bare_key, quote};
pub(crate) use operator::MAX_INCLUDED_FILE_BYTES;

/// Files above this size are refused (E014).
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Tables and arrays may nest this deep, the root not counted (E014 beyond).
pub const MAX_DEPTH: usize = 32;

type PResult<T> = Result<T, Box<Diagnostic>>;

/// Where errors point: the file's display path and its text.
#[derive(Clone, Copy)]
pub(crate) struct Src<'a> {
    pub(crate) path: &'a Path,
    pub(crate) text: &'a str,
}

impl Src<'_> {
    pub(crate) fn err(
        &self,
        code: ErrorCode,
        span: Span,
        message: impl Into<String>,
    ) -> Box<Diagnostic> {
        Box::new(Diagnostic::new(code, message).at(self.path, self.text, span))
    }

    pub(crate) fn err_help(
        &self,
        code: ErrorCode,
        span: Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Box<Diagnostic> {
        Box::new(
            Diagnostic::new(code, message)
                .at(self.path, self.text, span)
                .with_help(help),
        )
    }
}

/// One segment of a key path, with its position.
#[derive(Debug, Clone)]
pub(crate) struct KeySeg {
    pub(crate) name: String,
    pub(crate) span: Span,
}

fn dotted(keys: &[KeySeg]) -> String {
    let names: Vec<String> = keys.iter().map(|k| quote_key(&k.name)).collect();
    names.join(".")
}

/// A key as it would be written: bare when it can be, quoted otherwise.
pub(crate) fn quote_key(key: &str) -> String {
    if is_bare_key(key) {
        key.to_owned()
    } else {
        quote(key)
    }
}

/// Parses `text` (already UTF-8, BOM removed) into its root table, resolving operators with
/// `env` and relative `@file` paths against `base_dir`.
pub(crate) fn parse_table(
    text: &str,
    path: &Path,
    base_dir: &Path,
    env: &dyn Env,
) -> Result<Table, Box<Diagnostic>> {
    let mut parser = Parser {
        cur: Cursor::new(text),
        src: Src { path, text },
        base_dir,
        env,
        root: Table::new(TableOrigin::Root),
        section: Vec::new(),
    };
    parser.file()?;
    Ok(parser.root)
}

struct Parser<'a> {
    cur: Cursor,
    src: Src<'a>,
    base_dir: &'a Path,
    env: &'a dyn Env,
    root: Table,
    section: Vec<KeySeg>,
}

impl Parser<'_> {
    fn file(&mut self) -> PResult<()> {
        loop {
            self.cur.skip_ws();
            if self.cur.peek().is_none() {
                return Ok(());
            }
            if !self.cur.at_eol() && !self.cur.at_comment() {
                self.statement()?;
            }
            if self.cur.at_comment() {
                self.cur.skip_comment();
            }
            if !self.cur.eat_eol() && self.cur.peek().is_some() {
                return Err(self.unexpected("the end of the line"));
            }
        }
    }

    fn statement(&mut self) -> PResult<()> {
        let span = self.cur.span();
        match self.cur.peek() {
            Some('[') => {
                self.section_header()?;
                self.end_of_statement(false)
            }
            Some('/') if self.cur.starts_with("/*") => Err(self.block_comment()),
            Some('<' | '>') => Err(self.block_error(span, "name")),
            Some(c @ ('}' | ']' | ')')) => Err(self.src.err_help(
                ErrorCode::Syntax,
                span,
                format!("unexpected `{c}`: no bracket is open here"),
                "remove it, or check the line that opened the bracket",
            )),
            _ => {
                self.entry()?;
                self.end_of_statement(true)
            }
        }
    }

    /// After a statement: spaces, an optional `;` (entries only), a comment, the line end.
    fn end_of_statement(&mut self, allow_semicolon: bool) -> PResult<()> {
        let mut spaced = self.cur.skip_ws();
        if allow_semicolon && self.cur.eat(';') {
            spaced = true;
            self.cur.skip_ws();
        }
        if self.cur.at_eol() || (self.cur.at_comment() && spaced) {
            return Ok(());
        }
        Err(self.unexpected("the end of the line"))
    }

    fn section_header(&mut self) -> PResult<()> {
        let open = self.cur.span();
        self.cur.bump();
        if self.cur.peek() == Some('[') {
            return Err(self.src.err_help(
                ErrorCode::Syntax,
                open,
                "arrays of tables (`[[name]]`) are not supported",
                "write `name: [{ … }, { … }]`",
            ));
        }
        self.cur.skip_ws();
        if self.cur.peek() == Some(']') {
            return Err(self.src.err_help(
                ErrorCode::Syntax,
                open,
                "empty section name",
                "write `[name]`",
            ));
        }
        if self.cur.at_eol() || self.cur.at_comment() {
            return Err(self.unterminated_header(open));
        }
        let keys = self.key_path()?;
        self.cur.skip_ws();
        if !self.cur.eat(']') {
            if self.cur.at_eol() || self.cur.at_comment() {
                return Err(self.unterminated_header(open));
            }
            return Err(self.unexpected("`]` to close the section header"));
        }
        tree::define_header(&mut self.root, &keys, &self.src)?;
        self.section = keys;
        Ok(())
    }

    fn unterminated_header(&self, open: Span) -> Box<Diagnostic> {
        self.src.err_help(
            ErrorCode::Lexical,
            open,
            "unterminated section header: this `[` is never closed",
            "close it with `]` on the same line",
        )
    }

    fn entry(&mut self) -> PResult<()> {
        let keys = self.key_path()?;
        let spaced = self.cur.skip_ws();
        let at = self.cur.span();
        match self.cur.peek() {
            Some(':' | '=') => {
                self.cur.bump();
            }
            Some('{' | '>') => return Err(self.block_error(at, &dotted(&keys))),
            Some('.') if spaced => return Err(self.spaced_dot(at)),
            found => {
                let name = dotted(&keys);
                let found = match found {
                    Some(c) if !self.cur.at_eol() && !self.cur.at_comment() => {
                        format!(", found {}", describe(c))
                    }
                    _ => String::new(),
                };
                return Err(self.src.err_help(
                    ErrorCode::Syntax,
                    at,
                    format!("expected `:` or `=` after `{name}`{found}"),
                    format!("write `{name}: value`"),
                ));
            }
        }
        self.cur.skip_ws();
        let level = self.section.len().saturating_add(keys.len());
        let value = self.value(level)?;
        tree::insert(&mut self.root, &self.section, &keys, value, &self.src)
    }

    /// `key { "." key }`, no spaces around the dots.
    fn key_path(&mut self) -> PResult<Vec<KeySeg>> {
        let mut keys = vec![self.key()?];
        loop {
            if self.cur.peek() == Some('.') {
                self.cur.bump();
                if self.cur.peek_is(|c| c == ' ' || c == '\t') {
                    return Err(self.spaced_dot(self.cur.span()));
                }
                keys.push(self.key()?);
            } else {
                return Ok(keys);
            }
        }
    }

    fn spaced_dot(&self, at: Span) -> Box<Diagnostic> {
        self.src.err_help(
            ErrorCode::Syntax,
            at,
            "no spaces around `.` in a key path",
            "write `a.b`",
        )
    }

    fn key(&mut self) -> PResult<KeySeg> {
        let span = self.cur.span();
        let bad = |p: &Self, message: String, help: &str| {
            Err(p.src.err_help(ErrorCode::Syntax, span, message, help))
        };
        match self.cur.peek() {
            Some('"') if self.cur.starts_with("\"\"\"") => bad(
                self,
                "a key cannot be a multi-line string".into(),
                "write `\"key\"`",
            ),
            Some('"') => Ok(KeySeg {
                name: self.basic_string()?,
                span,
            }),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let mut name = String::new();
                while let Some(c) = self.cur.peek().filter(|&c| lexeme::is_key_char(c)) {
                    name.push(c);
                    self.cur.bump();
                }
                Ok(KeySeg { name, span })
            }
            Some('$') => Err(self.variable_error(span)),
            Some('@') => Err(self.operator_as_key(span)),
            Some('<' | '>') => Err(self.block_error(span, "name")),
            Some('\'') => bad(
                self,
                "a key is bare or in double quotes".into(),
                "write `\"key\"` instead of `'key'`",
            ),
            Some(c) if c.is_alphanumeric() => {
                let run = self.cur.run_from(self.cur.index());
                let word: String = run
                    .chars()
                    .take_while(|c| lexeme::is_key_char(*c))
                    .collect();
                let word = if word.is_empty() { run } else { word };
                bad(
                    self,
                    "a bare key starts with an ASCII letter or `_`".into(),
                    &format!("quote it: `{}`", quote(&word)),
                )
            }
            Some('/') if self.cur.starts_with("/*") => Err(self.block_comment()),
            Some(c) if !self.cur.at_eol() => bad(
                self,
                format!("expected a key, found {}", describe(c)),
                "write `key: value`",
            ),
            _ => bad(self, "expected a key".into(), "write `key: value`"),
        }
    }

    fn variable_error(&self, span: Span) -> Box<Diagnostic> {
        self.src.err_help(
            ErrorCode::Variable,
            span,
            "variables are not supported",
            "write the value itself, or read the environment with @env(\"NAME\")",
        )
    }

    fn block_error(&self, span: Span, name: &str) -> Box<Diagnostic> {
        self.src.err_help(
            ErrorCode::Block,
            span,
            format!("TuskLang blocks are not supported; use `[{name}]` or `{name}: {{ … }}`"),
            format!("start a section with `[{name}]`, or write an inline object `{name}: {{ a: 1, b: 2 }}`"),
        )
    }

    fn block_comment(&self) -> Box<Diagnostic> {
        self.src.err_help(
            ErrorCode::Lexical,
            self.cur.span(),
            "`/* */` comments are not supported",
            "start each comment line with `#` or `//`",
        )
    }

    /// Reports whatever stands where `expected` should be, with the most specific code.
    fn unexpected(&self, expected: &str) -> Box<Diagnostic> {
        let span = self.cur.span();
        let Some(c) = self.cur.peek() else {
            return self
                .src
                .err(ErrorCode::Syntax, span, format!("expected {expected}"));
        };
        match c {
            '/' if self.cur.starts_with("/*") => self.block_comment(),
            '#' | '/' if self.cur.at_comment() => self.src.err_help(
                ErrorCode::Syntax,
                span,
                "a comment needs a space before it",
                "put a space before `#` or `//`",
            ),
            '+' | '-' | '*' | '/' | '%' | '?' | '=' | '<' | '>' | '!' | '&' | '|' | '.' | '~'
            | '^' => self.src.err_help(
                ErrorCode::Expression,
                span,
                format!("expressions are not supported (found `{c}` after the value)"),
                "write the final value; to vary it per environment use @env(\"NAME\", default)",
            ),
            ',' if expected == "the end of the line" => self.src.err_help(
                ErrorCode::Syntax,
                span,
                "one entry per line: `,` separates items only inside `[ … ]` and `{ … }`",
                "put the next entry on its own line",
            ),
            '\r' => self.src.err_help(
                ErrorCode::Syntax,
                span,
                "a carriage return must be followed by a line feed",
                "save the file with LF or CRLF line endings",
            ),
            _ => self.src.err_help(
                ErrorCode::Syntax,
                span,
                format!("expected {expected}, found {}", describe(c)),
                "put each entry on its own line, and quote text: `\"like this\"`",
            ),
        }
    }
}

/// A character as a message shows it.
pub(crate) fn describe(c: char) -> String {
    if c.is_control() || c.is_whitespace() {
        format!("U+{:04X}", u32::from(c))
    } else {
        format!("`{c}`")
    }
}

/// Builds a value at `span`.
pub(crate) fn at(kind: crate::value::ValueKind, span: Span) -> Value {
    Value::new(kind, span)
}
