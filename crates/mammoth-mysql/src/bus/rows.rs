//! What the bus modules share: the internal error of a transaction body ([`Fail`]), its
//! mapping onto [`BusError`] with transient flags, and decoding stored rows into messages.

use std::collections::BTreeMap;

use mammoth_core::bus::{BusError, Message, Topic};
use mysql_async::{Deserialized, Row, Serialized, Value};
use uuid::Uuid;

use crate::error::is_transient;

/// The backend name of every bus error.
pub(crate) const BACKEND: &str = "mysql";

/// Why a transaction body stopped: the database failed, or the bus refused something.
#[derive(Debug)]
pub(crate) enum Fail {
    /// A statement failed.
    Sql(mysql_async::Error),
    /// A decoded row or an argument was refused.
    Bus(BusError),
}

impl From<mysql_async::Error> for Fail {
    fn from(error: mysql_async::Error) -> Self {
        Self::Sql(error)
    }
}

impl From<BusError> for Fail {
    fn from(error: BusError) -> Self {
        Self::Bus(error)
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sql(error) => error.fmt(f),
            Self::Bus(error) => error.fmt(f),
        }
    }
}

impl Fail {
    /// True when InnoDB rolled the whole transaction back (ER_LOCK_DEADLOCK,
    /// ER_LOCK_WAIT_TIMEOUT), so running it again is safe and may succeed.
    pub(crate) fn rolled_back(&self) -> bool {
        matches!(self, Self::Sql(mysql_async::Error::Server(server)) if matches!(server.code, 1213 | 1205))
    }

    /// The [`BusError`] for `action`.
    pub(crate) fn into_bus(self, action: &'static str) -> BusError {
        match self {
            Self::Sql(error) => {
                let transient = is_transient(&error);
                BusError::backend(BACKEND, action, error, transient)
            }
            Self::Bus(error) => error,
        }
    }
}

/// A corrupt row: not written by mammoth.
pub(crate) fn corrupt(what: String) -> Fail {
    Fail::Bus(BusError::backend(
        BACKEND,
        "decoding a bus row",
        format!("{what}; the row was not written by mammoth, delete it"),
        false,
    ))
}

/// Headers as stored: a JSON object of strings.
pub(crate) fn headers_value(headers: &BTreeMap<String, String>) -> Value {
    Value::from(Serialized(headers))
}

/// Converts a stored (non-negative) integer to the unsigned numbers of the API.
pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Converts an unsigned number to a BIGINT, saturating.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The columns [`message_from_row`] reads, in order, from `bus_messages` (or the same columns
/// of `bus_dead_letters`).
pub(crate) const MESSAGE_COLUMNS: &str =
    "topic, message_id, msg_key, payload, headers, seq, published_at";

/// Takes column `at` of `row` as a `T`.
pub(crate) fn take<T: mysql_async::prelude::FromValue>(
    row: &mut Row,
    at: usize,
) -> Result<T, Fail> {
    match row.take_opt::<T, usize>(at) {
        Some(Ok(value)) => Ok(value),
        Some(Err(error)) => Err(corrupt(format!("column {at}: {error}"))),
        None => Err(corrupt(format!("column {at} is missing"))),
    }
}

/// Text stored as bytes (topic and group names).
pub(crate) fn text(bytes: Vec<u8>, what: &str) -> Result<String, Fail> {
    String::from_utf8(bytes).map_err(|_| corrupt(format!("a {what} is not UTF-8")))
}

/// A [`Message`] from the [`MESSAGE_COLUMNS`] starting at column `at`.
pub(crate) fn message_from_row(row: &mut Row, at: usize) -> Result<Message, Fail> {
    let topic = text(take(row, at)?, "topic")?;
    let id: Vec<u8> = take(row, at + 1)?;
    let headers: Deserialized<BTreeMap<String, String>> = take(row, at + 4)?;
    Ok(Message {
        // Only checked names are ever written, so a failure here means a hand-edited row.
        topic: Topic::new(topic).map_err(|error| corrupt(error.to_string()))?,
        id: Uuid::from_slice(&id).map_err(|error| corrupt(format!("a message id: {error}")))?,
        key: take(row, at + 2)?,
        payload: take(row, at + 3)?,
        headers: headers.0,
        sequence: to_u64(take(row, at + 5)?),
        published_at_micros: take(row, at + 6)?,
    })
}

/// `n` comma-separated placeholders.
pub(crate) fn placeholders(n: usize) -> String {
    crate::schema::Sql::placeholders(n)
}
