//! Integration tests of `mammoth-config`, one module per concern, in one test binary.

mod dsn;
mod examples;
mod grammar;
mod load;
mod operators;
mod properties;
mod syntax_errors;
mod typed;

use std::path::Path;

use mammoth_config::{Config, ConfigError, Document, EmptyEnv, Env};

/// The display path every test file is reported under.
pub(crate) const PATH: &str = "test.tsk";

/// Parses `text` with no environment variables.
pub(crate) fn doc(text: &str) -> Result<Document, ConfigError> {
    Document::parse(text, Path::new(PATH), &EmptyEnv)
}

/// Parses and types `text` with no environment variables.
pub(crate) fn config(text: &str) -> Result<Config, ConfigError> {
    Config::from_str_with_env(text, Path::new(PATH), &EmptyEnv)
}

/// Parses and types `text` with the given variables.
pub(crate) fn config_env(text: &str, env: &dyn Env) -> Result<Config, ConfigError> {
    Config::from_str_with_env(text, Path::new(PATH), env)
}

/// The error `text` must produce (through the typed layer, so every code is reachable).
pub(crate) fn error(text: &str) -> ConfigError {
    match config(text) {
        Ok(config) => panic!("expected an error for {text:?}, got {config:?}"),
        Err(e) => e,
    }
}

/// Asserts code, `line:col`, the printed header and that the caret stands under `col`.
pub(crate) fn assert_error_at(err: &ConfigError, code: &str, line: u32, col: u32) {
    let shown = err.to_string();
    assert_eq!(err.code().as_str(), code, "wrong code in:\n{shown}");
    let span = err
        .span()
        .unwrap_or_else(|| panic!("no position in:\n{shown}"));
    assert_eq!(
        (span.line, span.col),
        (line, col),
        "wrong position in:\n{shown}"
    );
    let header = format!("{PATH}:{line}:{col}: error[{code}]: ");
    assert!(
        shown.starts_with(&header),
        "header {header:?} missing in:\n{shown}"
    );
    assert_eq!(caret_col(&shown), Some(col), "caret misplaced in:\n{shown}");
}

/// The column the caret points at, counted in characters of the printed source line.
pub(crate) fn caret_col(shown: &str) -> Option<u32> {
    let lines: Vec<&str> = shown.lines().collect();
    let caret_line = lines.iter().find(|l| l.trim_end().ends_with('^'))?;
    let source_at = caret_line.find(" | ")? + 3;
    let caret_at = caret_line.rfind('^')?;
    let before = caret_line.get(source_at..caret_at)?;
    u32::try_from(before.chars().count() + 1).ok()
}

/// 1-based column of the first `needle` in `line`, in characters.
pub(crate) fn col_of(line: &str, needle: &str) -> u32 {
    let byte = line
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {line:?}"));
    u32::try_from(line[..byte].chars().count() + 1).unwrap_or(0)
}
