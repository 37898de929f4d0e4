//! The serde error of the typed layer: a code, a message, the position and the key path.

use std::fmt;

use serde::de::{Expected, Unexpected};

use crate::document::Document;
use crate::error::{ConfigError, ErrorCode};
use crate::suggest;
use crate::value::Span;

/// An error raised while filling typed structs from the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError {
    code: ErrorCode,
    message: String,
    help: Option<String>,
    span: Option<Span>,
    key: Option<String>,
}

impl DeError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            help: None,
            span: None,
            key: None,
        }
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Places the error at the innermost value that raised it; outer values leave it alone.
    pub(crate) fn at(mut self, span: Span, key: &str) -> Self {
        if self.span.is_none() {
            self.span = Some(span);
            self.key = Some(key.to_owned());
        }
        self
    }

    /// Converts to a [`ConfigError`] placed in `doc`, naming the key path.
    pub(crate) fn into_config_error(self, doc: &Document) -> ConfigError {
        let message = match (&self.key, self.code) {
            (Some(key), ErrorCode::UnknownKey) if !key.is_empty() => format!("unknown key `{key}`"),
            (Some(key), _) if !key.is_empty() => format!("`{key}`: {}", self.message),
            _ => self.message,
        };
        let mut diagnostic = doc.diagnostic(self.code, self.span, message);
        diagnostic.set_help(self.help);
        ConfigError::new(diagnostic)
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl serde::de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::new(ErrorCode::InvalidValue, msg.to_string())
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::new(
            ErrorCode::WrongType,
            format!("expected {exp}, found {}", describe(&unexp)),
        )
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::new(
            ErrorCode::InvalidValue,
            format!("invalid value {}: expected {exp}", describe(&unexp)),
        )
    }

    fn invalid_length(len: usize, exp: &dyn Expected) -> Self {
        Self::new(
            ErrorCode::InvalidValue,
            format!("{len} items, expected {exp}"),
        )
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::new(
            ErrorCode::InvalidValue,
            format!("unknown value `{variant}`"),
        )
        .with_help(suggest::hint(variant, expected))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self::new(ErrorCode::UnknownKey, format!("unknown key `{field}`"))
            .with_help(suggest::hint(field, expected))
    }

    fn missing_field(field: &'static str) -> Self {
        Self::new(ErrorCode::InvalidValue, format!("missing key `{field}`"))
            .with_help(format!("add `{field}: …`"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::new(
            ErrorCode::Redefinition,
            format!("`{field}` is defined twice"),
        )
    }
}

fn describe(unexp: &Unexpected<'_>) -> String {
    match unexp {
        Unexpected::Map => "a table".to_owned(),
        Unexpected::Seq => "an array".to_owned(),
        Unexpected::Unit => "null".to_owned(),
        Unexpected::Float(f) => format!("the float `{f}`"),
        Unexpected::Signed(i) => format!("the integer `{i}`"),
        Unexpected::Unsigned(u) => format!("the integer `{u}`"),
        Unexpected::Bool(b) => format!("`{b}`"),
        Unexpected::Str(s) => format!("the string \"{}\"", s.escape_debug()),
        other => other.to_string(),
    }
}
