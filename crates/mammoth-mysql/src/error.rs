//! Mapping MySQL/MariaDB failures onto [`StoreError`], flagging the ones a retry may cure.

use mammoth_core::StoreError;

/// The backend name every error of this driver carries.
pub(crate) const BACKEND: &str = "mysql";

/// ER_DUP_ENTRY: a unique index refused a row.
pub(crate) const DUPLICATE_ENTRY: u16 = 1062;

/// True for failures where the same call may succeed later: lost connections, deadlocks,
/// lock wait timeouts, too many connections, a server going away.
pub(crate) fn is_transient(error: &mysql_async::Error) -> bool {
    match error {
        mysql_async::Error::Io(_) => true,
        mysql_async::Error::Server(server) => {
            matches!(server.code, 1205 | 1213 | 1040 | 1053 | 2006 | 2013 | 1927)
        }
        mysql_async::Error::Driver(_) => true,
        _ => false,
    }
}

/// Wraps a mysql_async error as a [`StoreError::Backend`] for `action`.
pub(crate) fn my(action: &'static str, error: mysql_async::Error) -> StoreError {
    let transient = is_transient(&error);
    StoreError::backend(BACKEND, action, error, transient)
}

/// Shorthand: `.map_err(on("reading a stream"))`.
pub(crate) fn on(action: &'static str) -> impl Fn(mysql_async::Error) -> StoreError {
    move |error| my(action, error)
}

/// True when `error` is a unique-index violation: another writer took the same stream
/// version or event id first.
pub(crate) fn is_unique_violation(error: &mysql_async::Error) -> bool {
    matches!(error, mysql_async::Error::Server(server) if server.code == DUPLICATE_ENTRY)
}

/// True when the connection broke, so the outcome of the last statement is unknown.
pub(crate) fn is_lost(error: &mysql_async::Error) -> bool {
    match error {
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => true,
        mysql_async::Error::Server(server) => matches!(server.code, 2006 | 2013 | 1053),
        _ => false,
    }
}
