//! The on-disk layout and the connection settings.
//!
//! The log is append-only: `events` is keyed by the global position (SQLite's rowid), so a
//! commit writes to the right edge of one B-tree and the unique `event_id` index (UUID v7 ids
//! arrive nearly in order). The per-stream index `stream_index` is derived data: the writer
//! fills it behind the log in large batches and re-derives it from the log's tail on open
//! (see `writer.rs`). That is what keeps a commit from dirtying one index page per active
//! stream, the WAL volume that otherwise caps group commit far below the disk's limit.
//!
//! The schema is versioned in `mammoth_meta`; [`migrate`] creates it on first open and refuses
//! a file written by a newer mammoth.

use rusqlite::{Connection, OptionalExtension, params};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 1;

/// The DDL of schema version 1.
pub const CREATE: &str = "
CREATE TABLE IF NOT EXISTS mammoth_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS streams (
    stream_key INTEGER PRIMARY KEY,
    stream_id  TEXT NOT NULL UNIQUE,
    category   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS streams_by_category ON streams(category);
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    stream_key     INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB NOT NULL,
    event_type     TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    data           TEXT NOT NULL,
    metadata       TEXT NOT NULL,
    recorded_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_id ON events(event_id);
CREATE TABLE IF NOT EXISTS stream_index (
    stream_key INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (stream_key, version)
) WITHOUT ROWID;
";

/// The statement the writer inserts each event with; the raw baseline of `mammoth bench`
/// uses the same one.
pub const INSERT_EVENT: &str = "INSERT INTO events
    (position, stream_key, version, event_id, event_type, schema_version, data, metadata, recorded_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// The statement that registers a new stream.
pub const INSERT_STREAM: &str =
    "INSERT INTO streams (stream_key, stream_id, category) VALUES (?1, ?2, ?3)";

/// The meta key holding the last position whose stream index entry is written.
pub(crate) const INDEXED_THROUGH: &str = "indexed_through";

/// How durable a commit is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// Every commit is fsynced before it is acknowledged: nothing acknowledged is lost, even
    /// on power failure. The default.
    #[default]
    Full,
    /// Commits reach the OS before they are acknowledged but are fsynced only at WAL
    /// checkpoints: a process crash loses nothing, a power failure may lose the last commits.
    /// Several times faster for small sequential appends.
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// Applies mammoth's settings to a connection: WAL, the durability level, and a busy timeout.
pub fn configure(
    conn: &Connection,
    synchronous: Synchronous,
    cache_kib: i64,
) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", synchronous.pragma())?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// Creates the schema on a fresh file, or checks the version of an existing one.
///
/// # Errors
/// A rusqlite error, or `Err(Some(version))` wrapped by the caller when the file was written
/// by a newer schema version than this build knows.
pub fn create(conn: &Connection) -> rusqlite::Result<Result<(), i64>> {
    conn.execute_batch(CREATE)?;
    let found: Option<i64> = conn
        .query_row(
            "SELECT value FROM mammoth_meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    match found {
        Some(version) if version > SCHEMA_VERSION => return Ok(Err(version)),
        Some(_) => {}
        None => {
            conn.execute(
                "INSERT INTO mammoth_meta (key, value) VALUES ('schema_version', ?1), (?2, 0)",
                params![SCHEMA_VERSION, INDEXED_THROUGH],
            )?;
        }
    }
    Ok(Ok(()))
}

/// Makes sure the schema exists; see [`create`].
pub(crate) fn migrate(conn: &Connection) -> Result<(), mammoth_core::StoreError> {
    match create(conn).map_err(crate::error::on("creating the schema"))? {
        Ok(()) => Ok(()),
        Err(version) => Err(mammoth_core::StoreError::backend(
            "sqlite",
            "opening the database",
            format!(
                "the file has schema version {version}, but this mammoth knows only up to {SCHEMA_VERSION}; upgrade mammoth"
            ),
            false,
        )),
    }
}
