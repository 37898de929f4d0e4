//! Mapping PostgreSQL and pool failures onto [`StoreError`], flagging the ones a retry may cure.

use mammoth_core::StoreError;
use tokio_postgres::error::SqlState;

/// The backend name every error of this driver carries.
pub(crate) const BACKEND: &str = "postgres";

/// True for failures where the same call may succeed later: a lost or refused connection,
/// a serialization failure or deadlock, too many connections, a server shutting down.
pub(crate) fn is_transient(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        None => true,
        Some(code) => {
            let class = &code.code()[..2];
            *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::LOCK_NOT_AVAILABLE
                || *code == SqlState::QUERY_CANCELED
                || matches!(class, "08" | "53" | "57")
        }
    }
}

/// Wraps a tokio-postgres error as a [`StoreError::Backend`] for `action`.
pub(crate) fn pg(action: &'static str, error: tokio_postgres::Error) -> StoreError {
    let transient = is_transient(&error);
    let message = match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    };
    StoreError::backend(BACKEND, action, message, transient)
}

/// Shorthand: `.map_err(on("reading a stream"))`.
pub(crate) fn on(action: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |error| pg(action, error)
}

/// Wraps a pool failure (no connection could be had) as a transient backend error.
pub(crate) fn pool(error: deadpool_postgres::PoolError) -> StoreError {
    let transient = !matches!(error, deadpool_postgres::PoolError::Closed);
    if matches!(error, deadpool_postgres::PoolError::Closed) {
        return StoreError::Closed;
    }
    StoreError::backend(
        BACKEND,
        "getting a connection from the pool",
        error,
        transient,
    )
}

/// True when `error` is a unique-index violation: another writer (in another process) took
/// the same stream version or event id first.
pub(crate) fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}
