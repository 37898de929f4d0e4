//! The embedded bus's tables, in the event store's SQLite file, and the row helpers the other
//! bus modules share.

use std::collections::BTreeMap;

use mammoth_core::bus::{BusError, Message, Topic};
use rusqlite::{Connection, Row};
use uuid::Uuid;

/// Every table and index of the bus. `AUTOINCREMENT` keeps sequence numbers from being reused
/// after old messages are deleted, so group cursors only ever move forward.
pub(crate) const CREATE: &str = "
CREATE TABLE IF NOT EXISTS bus_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    message_id BLOB NOT NULL,
    msg_key TEXT,
    payload BLOB NOT NULL,
    headers TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    only_group INTEGER
);
CREATE INDEX IF NOT EXISTS bus_messages_by_topic ON bus_messages (topic, seq);
CREATE TABLE IF NOT EXISTS bus_dedup (
    topic TEXT NOT NULL,
    message_id BLOB NOT NULL,
    seq INTEGER NOT NULL,
    published_at INTEGER NOT NULL,
    PRIMARY KEY (topic, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bus_dedup_by_age ON bus_dedup (published_at);
CREATE TABLE IF NOT EXISTS bus_groups (
    group_id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    name TEXT NOT NULL,
    next_seq INTEGER NOT NULL,
    UNIQUE (topic, name)
);
CREATE TABLE IF NOT EXISTS bus_pending (
    group_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    msg_key TEXT,
    attempts INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    in_flight INTEGER NOT NULL,
    first_failed_at INTEGER,
    last_failed_at INTEGER,
    last_error TEXT,
    PRIMARY KEY (group_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bus_pending_due ON bus_pending (group_id, visible_at);
CREATE INDEX IF NOT EXISTS bus_pending_by_key ON bus_pending (group_id, msg_key, seq);
CREATE TABLE IF NOT EXISTS bus_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id INTEGER NOT NULL,
    topic TEXT NOT NULL,
    group_name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    message_id BLOB NOT NULL,
    msg_key TEXT,
    payload BLOB NOT NULL,
    headers TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    first_failed_at INTEGER NOT NULL,
    last_failed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bus_relays (
    name TEXT PRIMARY KEY NOT NULL,
    position INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
";

/// Maps a SQLite error to a [`BusError`], flagging busy and locked databases as transient.
pub(crate) fn failed(action: &'static str) -> impl Fn(rusqlite::Error) -> BusError {
    move |error| {
        let transient = matches!(
            error.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        BusError::backend("sqlite", action, error, transient)
    }
}

/// Headers as stored: a JSON object of strings.
pub(crate) fn headers_to_text(headers: &BTreeMap<String, String>) -> String {
    serde_json::to_string(headers).unwrap_or_else(|_| "{}".to_owned())
}

fn headers_from_text(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Converts between SQLite integers and the unsigned numbers of the API.
pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Converts an unsigned number to a SQLite integer, saturating.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The columns [`message_from_row`] reads, in order, from `bus_messages` (or the same columns
/// of `bus_dead_letters`).
pub(crate) const MESSAGE_COLUMNS: &str =
    "topic, message_id, msg_key, payload, headers, seq, published_at";

/// A [`Message`] from the [`MESSAGE_COLUMNS`] starting at column `at`.
pub(crate) fn message_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<Message> {
    let topic: String = row.get(at)?;
    let id: Vec<u8> = row.get(at + 1)?;
    let headers: String = row.get(at + 4)?;
    Ok(Message {
        // Only checked names are ever written, so a failure here means a hand-edited row.
        topic: Topic::new(topic).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Text, error.into())
        })?,
        id: Uuid::from_slice(&id).unwrap_or_default(),
        key: row.get(at + 2)?,
        payload: row.get(at + 3)?,
        headers: headers_from_text(&headers),
        sequence: to_u64(row.get(at + 5)?),
        published_at_micros: row.get(at + 6)?,
    })
}

/// Creates the bus tables if they are missing.
pub(crate) fn create(conn: &Connection) -> Result<(), BusError> {
    conn.execute_batch(CREATE)
        .map_err(failed("creating the bus tables"))
}
