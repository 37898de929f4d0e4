//! [`Document`]: one parsed `mammoth.tsk`, its text and its tree of resolved values.
//!
//! This is the untyped layer: it checks the size and encoding limits, runs the parser, and
//! answers `get("cqrs.command_handlers")`. The typed layer (`Config`) reads it through serde.

use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::error::{ConfigError, Diagnostic, ErrorCode};
use crate::parse::{self, MAX_FILE_BYTES};
use crate::value::{Span, Table, TableOrigin, Value};

/// A parsed configuration file with every operator resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    path: PathBuf,
    source: String,
    root: Table,
}

impl Document {
    /// Parses `text`, reporting errors against `path`; relative `@file` paths resolve against
    /// `path`'s directory (the current directory when it has none).
    ///
    /// # Errors
    /// Any syntax error (E001–E010, E013, E014) or unresolvable operator (E011, E012).
    pub fn parse(text: &str, path: &Path, env: &dyn Env) -> Result<Self, ConfigError> {
        Self::parse_in(text, path, &base_dir_of(path), env)
    }

    /// Like [`Document::parse`] for raw bytes: the size limit and UTF-8 are checked first.
    ///
    /// # Errors
    /// As [`Document::parse`], and E014 for a file over 1 MiB or not UTF-8.
    pub fn parse_bytes(bytes: &[u8], path: &Path, env: &dyn Env) -> Result<Self, ConfigError> {
        Self::parse_bytes_in(bytes, path, &base_dir_of(path), env)
    }

    pub(crate) fn parse_bytes_in(
        bytes: &[u8],
        path: &Path,
        base_dir: &Path,
        env: &dyn Env,
    ) -> Result<Self, ConfigError> {
        check_size(bytes.len(), path)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::parse_in(text, path, base_dir, env),
            Err(e) => {
                let valid = bytes.get(..e.valid_up_to()).unwrap_or_default();
                let prefix = String::from_utf8_lossy(valid);
                let prefix = prefix.strip_prefix('\u{feff}').unwrap_or(&prefix);
                let span = end_span(prefix);
                let diagnostic =
                    Diagnostic::new(ErrorCode::Limit, "the file is not valid UTF-8 text")
                        .at(path, prefix, span)
                        .with_help("save the file as UTF-8");
                Err(ConfigError::new(diagnostic))
            }
        }
    }

    pub(crate) fn parse_in(
        text: &str,
        path: &Path,
        base_dir: &Path,
        env: &dyn Env,
    ) -> Result<Self, ConfigError> {
        check_size(text.len(), path)?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let root =
            parse::parse_table(text, path, base_dir, env).map_err(|d| ConfigError::new(*d))?;
        Ok(Self {
            path: path.to_path_buf(),
            source: text.to_owned(),
            root,
        })
    }

    /// A document with no file and no keys.
    pub(crate) fn empty() -> Self {
        Self {
            path: PathBuf::new(),
            source: String::new(),
            root: Table::new(TableOrigin::Root),
        }
    }

    /// The path errors are reported against.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text (without a BOM).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The root table.
    pub fn root(&self) -> &Table {
        &self.root
    }

    /// The value at a dotted path of bare keys, such as `"message_bus.retry.max_attempts"`.
    pub fn get(&self, dotted: &str) -> Option<&Value> {
        self.root.lookup(dotted.split('.'))
    }

    /// The position of the key at `keys`, or of the nearest ancestor that is written in the
    /// file; `None` when not even the first key is.
    pub fn key_span<S: AsRef<str>>(&self, keys: &[S]) -> Option<Span> {
        (1..=keys.len())
            .rev()
            .find_map(|n| self.root.lookup_entry(keys.get(..n)?))
            .map(|entry| entry.key_span())
    }

    /// A diagnostic placed at `span` of this file.
    pub fn diagnostic(&self, code: ErrorCode, span: Option<Span>, message: String) -> Diagnostic {
        let diagnostic = Diagnostic::new(code, message);
        match span {
            Some(span) => diagnostic.at(&self.path, &self.source, span),
            None => diagnostic.in_file(&self.path),
        }
    }
}

fn check_size(len: usize, path: &Path) -> Result<(), ConfigError> {
    if len > MAX_FILE_BYTES {
        let diagnostic = Diagnostic::new(
            ErrorCode::Limit,
            format!("the file is {len} bytes; the limit is 1 MiB ({MAX_FILE_BYTES} bytes)"),
        )
        .in_file(path)
        .with_help("a configuration file this large is almost certainly not one");
        return Err(ConfigError::new(diagnostic));
    }
    Ok(())
}

/// The directory relative `@file` paths resolve against.
pub(crate) fn base_dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The position just after `text`.
fn end_span(text: &str) -> Span {
    let line = text.matches('\n').count().saturating_add(1);
    let last = text.rsplit('\n').next().unwrap_or("");
    let col = last.chars().count().saturating_add(1);
    Span::new(
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}
