//! Mapping SQLite failures onto [`StoreError`], flagging the ones a retry may cure.

use mammoth_core::StoreError;
use rusqlite::ErrorCode;

/// Wraps a rusqlite error as a [`StoreError::Backend`] for `action`.
pub(crate) fn sqlite(action: &'static str, error: rusqlite::Error) -> StoreError {
    let transient = matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    );
    StoreError::backend("sqlite", action, error, transient)
}

/// Shorthand: `.map_err(on("reading a stream"))`.
pub(crate) fn on(action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |error| sqlite(action, error)
}
