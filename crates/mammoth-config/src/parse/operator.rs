//! The four operators: `@env`, `@env.secure`, `@file`, `@file.secure`, resolved on the spot.
//!
//! Every other `@name` is E001. Messages name variables and files, never their contents.

use std::io::Read;
use std::path::{Path, PathBuf};

use zeroize::Zeroize;

use super::{PResult, Parser, at};
use crate::error::{Diagnostic, ErrorCode};
use crate::secret::Secret;
use crate::value::{Span, Value, ValueKind};

/// `@file` reads at most this many bytes.
pub(crate) const MAX_INCLUDED_FILE_BYTES: u64 = 64 * 1024;

const ALLOWED: &str = "allowed: @env, @env.secure, @file, @file.secure";
const CODE_RUNNING: [&str; 5] = ["go", "php", "query", "eval", "exec"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Env,
    EnvSecure,
    File,
    FileSecure,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Self::Env => "@env",
            Self::EnvSecure => "@env.secure",
            Self::File => "@file",
            Self::FileSecure => "@file.secure",
        }
    }

    fn secure(self) -> bool {
        matches!(self, Self::EnvSecure | Self::FileSecure)
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Parser<'_> {
    /// Reads `@name`, the cursor at `@`; returns the name and the operator if it is allowed.
    fn operator_name(&mut self) -> (String, Option<Op>) {
        self.cur.bump();
        let mut name = String::new();
        while let Some(c) = self.cur.peek() {
            let continues_name = c.is_ascii_alphanumeric()
                || c == '_'
                || (c == '.' && self.cur.peek_at(1).is_some_and(|n| n.is_ascii_alphabetic()));
            if !continues_name {
                break;
            }
            name.push(c);
            self.cur.bump();
        }
        let op = match name.as_str() {
            "env" => Some(Op::Env),
            "env.secure" => Some(Op::EnvSecure),
            "file" => Some(Op::File),
            "file.secure" => Some(Op::FileSecure),
            _ => None,
        };
        (name, op)
    }

    fn unsupported(&self, span: Span, name: &str) -> Box<Diagnostic> {
        let first = name.split('.').next().unwrap_or("");
        let help = if CODE_RUNNING.contains(&first) {
            "code-running operators are never supported; name a built-in backend, such as `backend: \"postgres\"`"
        } else {
            "the configuration only reads environment variables and files; write the value itself"
        };
        self.src.err_help(
            ErrorCode::UnsupportedOperator,
            span,
            format!("unsupported operator `@{name}`; {ALLOWED}"),
            help,
        )
    }

    /// An `@` where a key should be.
    pub(super) fn operator_as_key(&mut self, span: Span) -> Box<Diagnostic> {
        match self.operator_name() {
            (name, None) => self.unsupported(span, &name),
            (_, Some(op)) => self.src.err_help(
                ErrorCode::Syntax,
                span,
                format!("`{}` cannot be a key", op.name()),
                "operators stand where a value goes: `key: @env(\"NAME\")`",
            ),
        }
    }

    /// An operator in value position, resolved to its value; the cursor is at `@`.
    pub(super) fn operator(&mut self) -> PResult<Value> {
        let span = self.cur.span();
        let (name, op) = self.operator_name();
        let Some(op) = op else {
            return Err(self.unsupported(span, &name));
        };
        let open = self.cur.span();
        if !self.cur.eat('(') {
            return Err(self.src.err_help(
                ErrorCode::Syntax,
                open,
                format!("expected `(` after `{}`", op.name()),
                format!("write `{}(\"…\")`", op.name()),
            ));
        }
        self.cur.skip_ws();
        let arg_span = self.cur.span();
        let arg = self.operator_argument(op, open)?;
        self.cur.skip_ws();
        let mut default = None;
        if self.cur.peek() == Some(',') {
            self.cur.bump();
            self.cur.skip_ws();
            default = Some(self.operator_default(op, open)?);
            self.cur.skip_ws();
        }
        if !self.cur.eat(')') {
            if self.cur.at_eol() || self.cur.at_comment() {
                return Err(self.unterminated_paren(open));
            }
            return Err(self.unexpected("`)`"));
        }
        match op {
            Op::Env | Op::EnvSecure => {
                if !is_env_name(&arg) {
                    return Err(self.src.err_help(
                        ErrorCode::Syntax,
                        arg_span,
                        format!("`{arg}` is not an environment variable name"),
                        "names match [A-Za-z_][A-Za-z0-9_]*",
                    ));
                }
                self.resolve_env(op, span, &arg, default)
            }
            Op::File | Op::FileSecure => self.resolve_file(op, span, &arg),
        }
    }

    fn unterminated_paren(&self, open: Span) -> Box<Diagnostic> {
        self.src.err_help(
            ErrorCode::Lexical,
            open,
            "unterminated `(`: it is never closed",
            "close it with `)` on the same line",
        )
    }

    fn operator_argument(&mut self, op: Op, open: Span) -> PResult<String> {
        let span = self.cur.span();
        let is_env = matches!(op, Op::Env | Op::EnvSecure);
        match self.cur.peek() {
            Some('"') if is_env && self.cur.starts_with("\"\"\"") => Err(self.src.err_help(
                ErrorCode::Syntax,
                span,
                "the variable name is a one-line string",
                "write @env(\"NAME\")",
            )),
            Some('"') => {
                if is_env {
                    self.basic_string()
                } else {
                    self.any_string()
                }
            }
            Some('\'') if !is_env => self.any_string(),
            _ if self.cur.at_eol() || self.cur.at_comment() => Err(self.unterminated_paren(open)),
            found => {
                let what = if is_env {
                    "the variable name"
                } else {
                    "the path"
                };
                let fix = if is_env {
                    "(\"NAME\")"
                } else {
                    "(\"path/to/file\")"
                };
                let quoted = if found == Some('\'') {
                    " in double quotes"
                } else {
                    " as a string"
                };
                Err(self.src.err_help(
                    ErrorCode::Syntax,
                    span,
                    format!("expected {what}{quoted}"),
                    format!("write `{}{fix}`", op.name()),
                ))
            }
        }
    }

    fn operator_default(&mut self, op: Op, open: Span) -> PResult<Value> {
        let span = self.cur.span();
        match op {
            Op::EnvSecure | Op::FileSecure => {
                return Err(self.src.err_help(
                    ErrorCode::DefaultMismatch,
                    span,
                    format!(
                        "`{}` takes no default: a secret must come from outside the file",
                        op.name()
                    ),
                    format!(
                        "remove the default, or use `{}` if the value is not secret",
                        match op {
                            Op::EnvSecure => "@env",
                            _ => "@file",
                        }
                    ),
                ));
            }
            Op::File => {
                return Err(self.src.err_help(
                    ErrorCode::Syntax,
                    span,
                    "`@file` takes one argument, the path",
                    "remove the second argument",
                ));
            }
            Op::Env => {}
        }
        if self.cur.at_eol() || self.cur.at_comment() {
            return Err(self.unterminated_paren(open));
        }
        if matches!(self.cur.peek(), Some('[' | '{' | '@')) {
            return Err(self.src.err_help(
                ErrorCode::Syntax,
                span,
                "a default is a single value",
                "write a string, a number, `true`, `false` or `null`",
            ));
        }
        self.value(0)
    }

    fn resolve_env(
        &self,
        op: Op,
        span: Span,
        name: &str,
        default: Option<Value>,
    ) -> PResult<Value> {
        let Some(raw) = self.env.var(name) else {
            if let Some(default) = default {
                return Ok(at(default.kind().clone(), span));
            }
            let help = if op.secure() {
                format!("set `{name}`; `@env.secure` takes no default")
            } else {
                format!("set `{name}`, or give a default: @env(\"{name}\", \"…\")")
            };
            return Err(self.src.err_help(
                ErrorCode::Unresolved,
                span,
                format!("environment variable `{name}` is not set"),
                help,
            ));
        };
        let Ok(text) = raw.into_string() else {
            return Err(self.src.err(
                ErrorCode::Unresolved,
                span,
                format!("environment variable `{name}` is set but is not valid UTF-8"),
            ));
        };
        if op.secure() {
            return Ok(at(ValueKind::Secret(Secret::new(text)), span));
        }
        let default_kind = default.as_ref().map(Value::kind);
        let parsed = match default_kind {
            Some(ValueKind::Int(_)) => text.trim().parse::<i64>().ok().map(ValueKind::Int),
            Some(ValueKind::Float(_)) => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(ValueKind::Float),
            Some(ValueKind::Bool(_)) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Some(ValueKind::Bool(true)),
                "false" | "0" => Some(ValueKind::Bool(false)),
                _ => None,
            },
            _ => return Ok(at(ValueKind::String(text), span)),
        };
        parsed.map(|kind| at(kind, span)).ok_or_else(|| {
            let (kind, example) = match default_kind {
                Some(ValueKind::Int(_)) => ("an integer", "`8080`"),
                Some(ValueKind::Float(_)) => ("a float", "`2.5`"),
                _ => ("a boolean", "`true` or `false`"),
            };
            self.src.err_help(
                ErrorCode::DefaultMismatch,
                span,
                format!("environment variable `{name}` is not {kind}, as its default requires"),
                format!("set `{name}` to {kind} such as {example}, or make the default a string"),
            )
        })
    }

    fn resolve_file(&self, op: Op, span: Span, written: &str) -> PResult<Value> {
        let path = Path::new(written);
        let full: PathBuf = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        };
        let shown = if path.is_absolute() {
            format!("`{written}`")
        } else {
            format!("`{written}` (resolved to `{}`)", full.display())
        };
        let fail = |message: String, help: &str| {
            self.src
                .err_help(ErrorCode::Unresolved, span, message, help)
        };
        let mut bytes = read_limited(&full).map_err(|problem| match problem {
            ReadProblem::Io(e) => fail(
                format!("cannot read file {shown}: {e}"),
                "check the path; a relative path is resolved from the config file's directory",
            ),
            ReadProblem::NotAFile => {
                fail(format!("{shown} is not a regular file"), "point at a file")
            }
            ReadProblem::TooLarge => fail(
                format!(
                    "file {shown} is larger than {} KiB",
                    MAX_INCLUDED_FILE_BYTES / 1024
                ),
                "`@file` reads small text files such as keys and credentials",
            ),
        })?;
        if bytes.ends_with(b"\r\n") {
            bytes.truncate(bytes.len().saturating_sub(2));
        } else if bytes.ends_with(b"\n") {
            bytes.truncate(bytes.len().saturating_sub(1));
        }
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                e.into_bytes().zeroize();
                return Err(fail(
                    format!("file {shown} is not UTF-8 text"),
                    "save it as UTF-8",
                ));
            }
        };
        if op.secure() {
            Ok(at(ValueKind::Secret(Secret::new(text)), span))
        } else {
            Ok(at(ValueKind::String(text), span))
        }
    }
}

enum ReadProblem {
    Io(std::io::Error),
    NotAFile,
    TooLarge,
}

/// Reads a regular file of at most [`MAX_INCLUDED_FILE_BYTES`]; a FIFO or device is refused so
/// that loading never blocks.
fn read_limited(path: &Path) -> Result<Vec<u8>, ReadProblem> {
    let file = std::fs::File::open(path).map_err(ReadProblem::Io)?;
    let meta = file.metadata().map_err(ReadProblem::Io)?;
    if !meta.is_file() {
        return Err(ReadProblem::NotAFile);
    }
    if meta.len() > MAX_INCLUDED_FILE_BYTES {
        return Err(ReadProblem::TooLarge);
    }
    let mut bytes = Vec::new();
    let limit = MAX_INCLUDED_FILE_BYTES.saturating_add(1);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(ReadProblem::Io)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_INCLUDED_FILE_BYTES {
        bytes.zeroize();
        return Err(ReadProblem::TooLarge);
    }
    Ok(bytes)
}
