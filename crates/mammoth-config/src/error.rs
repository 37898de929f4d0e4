//! Errors of the configuration reader and the typed layer.
//!
//! Every problem becomes a [`Diagnostic`]: an [`ErrorCode`], a message naming the problem, an
//! optional position in the file with the source line, and an optional hint naming the fix. It
//! prints as
//!
//! ```text
//! config/app.tsk:12:6: error[E001]: unsupported operator `@go`; allowed: @env, @env.secure, @file, @file.secure
//!    |
//! 12 | dsn: @go("db")
//!    |      ^
//!    = help: code-running operators are never supported; name a built-in backend
//! ```
//!
//! Messages never contain the value of an environment variable or of a file: only names.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::value::Span;

/// The stable code of a configuration error; `E001`–`E012` are the format's own (see the
/// format spec), `E013` and up belong to this reader and the typed layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// E001: an operator other than `@env`, `@env.secure`, `@file`, `@file.secure`.
    UnsupportedOperator,
    /// E002: a `$variable`.
    Variable,
    /// E003: an unquoted word (`redis`, `TRUE`, a URL, `100ms`).
    BareWord,
    /// E004: a TuskLang block (`name {`, `name >`, `<`).
    Block,
    /// E005: an expression (`? :`, `+`, `8000-9000`, `==`).
    Expression,
    /// E006: `${` inside a string.
    Interpolation,
    /// E007: a string that is entirely an operator call, such as `"@env('X')"`.
    QuotedOperator,
    /// E008: a key, section or table defined twice.
    Redefinition,
    /// E009: an unterminated string or bracket, a bad escape, a newline in a string, `/* */`.
    Lexical,
    /// E010: a number written in a form the format does not accept, or out of range.
    Number,
    /// E011: an environment variable that is unset or a file that cannot be read.
    Unresolved,
    /// E012: a default given to a `.secure` operator, or env text not of the default's type.
    DefaultMismatch,
    /// E013: any other syntax error (a missing `:`, a stray character, ...).
    Syntax,
    /// E014: a limit of the format: file over 1 MiB, nesting over 32, text not UTF-8.
    Limit,
    /// E015: the configuration file itself cannot be found or read.
    ConfigFile,
    /// E016: a key the typed configuration does not know.
    UnknownKey,
    /// E017: a value of the wrong type for its key (including a secret in a plain field).
    WrongType,
    /// E018: a value of the right type that is not acceptable (bad duration, backend, DSN, range).
    InvalidValue,
}

impl ErrorCode {
    /// The code as printed, such as `"E001"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnsupportedOperator => "E001",
            Self::Variable => "E002",
            Self::BareWord => "E003",
            Self::Block => "E004",
            Self::Expression => "E005",
            Self::Interpolation => "E006",
            Self::QuotedOperator => "E007",
            Self::Redefinition => "E008",
            Self::Lexical => "E009",
            Self::Number => "E010",
            Self::Unresolved => "E011",
            Self::DefaultMismatch => "E012",
            Self::Syntax => "E013",
            Self::Limit => "E014",
            Self::ConfigFile => "E015",
            Self::UnknownKey => "E016",
            Self::WrongType => "E017",
            Self::InvalidValue => "E018",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reported problem: code, message, where, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    code: ErrorCode,
    message: String,
    path: PathBuf,
    span: Option<Span>,
    source_line: Option<String>,
    help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic without position; add one with [`Diagnostic::at`].
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            path: PathBuf::new(),
            span: None,
            source_line: None,
            help: None,
        }
    }

    /// Places the diagnostic at `span` of the file `path` whose text is `source`; the line at
    /// `span.line` is kept to be printed under the message.
    pub fn at(mut self, path: &Path, source: &str, span: Span) -> Self {
        self.path = path.to_path_buf();
        self.source_line = line_of(source, span.line).map(str::to_owned);
        self.span = Some(span);
        self
    }

    /// Names the file without a position (for problems with the file as a whole).
    pub fn in_file(mut self, path: &Path) -> Self {
        self.path = path.to_path_buf();
        self
    }

    /// Adds a hint naming the fix.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Replaces the hint (or removes it with `None`).
    pub fn set_help(&mut self, help: Option<String>) {
        self.help = help;
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message, without position or hint.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The hint, if any.
    pub fn help(&self) -> Option<&str> {
        self.help.as_deref()
    }

    /// The position in the file, if the problem has one.
    pub fn span(&self) -> Option<Span> {
        self.span
    }

    /// The file the problem is in (empty when there is none).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Line `line` (1-based) of `source`, without its line ending.
fn line_of(source: &str, line: u32) -> Option<&str> {
    let index = usize::try_from(line).ok()?.checked_sub(1)?;
    let text = source.split('\n').nth(index)?;
    Some(text.strip_suffix('\r').unwrap_or(text))
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display().to_string();
        let path = if path.is_empty() {
            "<config>".to_owned()
        } else {
            path
        };
        match self.span {
            Some(span) => write!(f, "{path}:{}:{}: ", span.line, span.col)?,
            None => write!(f, "{path}: ")?,
        }
        write!(f, "error[{}]: {}", self.code, self.message)?;
        let gutter = self.span.map_or(0, |s| s.line.to_string().len());
        if let (Some(span), Some(line)) = (self.span, &self.source_line) {
            let pad = " ".repeat(gutter);
            // Tabs are copied so the caret lines up under the same column in a terminal.
            let before = usize::try_from(span.col.saturating_sub(1)).unwrap_or(0);
            let lead: String = line
                .chars()
                .take(before)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let missing = before.saturating_sub(lead.chars().count());
            write!(
                f,
                "\n{pad} |\n{} | {line}\n{pad} | {lead}{}^",
                span.line,
                " ".repeat(missing)
            )?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n{} = help: {help}", " ".repeat(gutter))?;
        }
        Ok(())
    }
}

/// An error of the configuration reader or of the typed layer.
///
/// All variants carry a [`Diagnostic`]; the variant tells the layer the problem comes from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be found or read (E015).
    #[error("{0}")]
    File(Box<Diagnostic>),
    /// The text is not valid `.tsk` (E001–E010, E013, E014).
    #[error("{0}")]
    Syntax(Box<Diagnostic>),
    /// An `@env` or `@file` operator could not be resolved (E011, E012).
    #[error("{0}")]
    Resolve(Box<Diagnostic>),
    /// The text is valid but does not fit the typed configuration (E016–E018).
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
}

impl ConfigError {
    /// Wraps a diagnostic in the variant of its code's layer.
    pub fn new(diagnostic: Diagnostic) -> Self {
        let boxed = Box::new(diagnostic);
        match boxed.code {
            ErrorCode::ConfigFile => Self::File(boxed),
            ErrorCode::Unresolved | ErrorCode::DefaultMismatch => Self::Resolve(boxed),
            ErrorCode::UnknownKey | ErrorCode::WrongType | ErrorCode::InvalidValue => {
                Self::Invalid(boxed)
            }
            _ => Self::Syntax(boxed),
        }
    }

    /// The diagnostic with code, message, position and hint.
    pub fn diagnostic(&self) -> &Diagnostic {
        match self {
            Self::File(d) | Self::Syntax(d) | Self::Resolve(d) | Self::Invalid(d) => d,
        }
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.diagnostic().code()
    }

    /// The position in the file, if the problem has one.
    pub fn span(&self) -> Option<Span> {
        self.diagnostic().span()
    }
}

impl From<Diagnostic> for ConfigError {
    fn from(diagnostic: Diagnostic) -> Self {
        Self::new(diagnostic)
    }
}
