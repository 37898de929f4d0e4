//! The read-model file's bookkeeping tables and the small statements on them.

use std::path::Path;
use std::time::Duration;

use mammoth_core::{Position, ProjectionError, ProjectionState, RecordedEvent, Requested};
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteProjection, Tables, fail};

const CREATE: &str = "
CREATE TABLE IF NOT EXISTS mammoth_projections (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    checkpoint INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'stopped',
    failed_position INTEGER,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS mammoth_projection_control (
    name TEXT PRIMARY KEY NOT NULL,
    active_version INTEGER,
    paused INTEGER NOT NULL DEFAULT 0,
    resumes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS projection_dead_letters (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    position INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    parked_at INTEGER NOT NULL
);";

/// Opens the read-model file (creating it, its directory and the bookkeeping tables).
pub(super) fn open(path: &Path, name: &str) -> Result<Connection, ProjectionError> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|error| ProjectionError::ReadModel {
            projection: name.to_owned(),
            action: "creating the read-model directory",
            message: format!("{}: {error}", parent.display()),
        })?;
    }
    let opened = Connection::open(path).and_then(|conn| {
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // A commit lost to a power cut loses its checkpoint too: the batch is re-applied.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(CREATE)?;
        Ok(conn)
    });
    opened.map_err(fail(name, "opening the read-model file"))
}

pub(super) fn active_version(conn: &Connection, name: &str) -> rusqlite::Result<Option<u32>> {
    conn.prepare_cached("SELECT active_version FROM mammoth_projection_control WHERE name = ?1")?
        .query_row([name], |row| row.get::<_, Option<u32>>(0))
        .optional()
        .map(Option::flatten)
}

pub(super) fn checkpoint(
    conn: &Connection,
    name: &str,
    version: u32,
) -> rusqlite::Result<Option<Position>> {
    conn.prepare_cached(
        "SELECT checkpoint FROM mammoth_projections WHERE name = ?1 AND version = ?2",
    )?
    .query_row(params![name, version], |row| row.get::<_, i64>(0))
    .optional()
    .map(|found| found.map(|value| Position::try_from(value).unwrap_or(0)))
}

pub(super) fn save_checkpoint(
    conn: &Connection,
    name: &str,
    version: u32,
    through: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE mammoth_projections SET checkpoint = ?3, updated_at = ?4
         WHERE name = ?1 AND version = ?2",
    )?
    .execute(params![name, version, through, mammoth_core::now_micros()])
    .map(drop)
}

/// Creates `version`'s tables and row if missing.
pub(super) fn ensure_version<P: SqliteProjection>(
    conn: &Connection,
    name: &str,
    projection: &P,
    version: u32,
) -> rusqlite::Result<()> {
    if checkpoint(conn, name, version)?.is_some() {
        return Ok(());
    }
    let tx = conn.unchecked_transaction()?;
    projection.create(&tx, &Tables::new(version))?;
    tx.execute(
        "INSERT OR IGNORE INTO mammoth_projections (name, version, updated_at) VALUES (?1, ?2, ?3)",
        params![name, version, mammoth_core::now_micros()],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO mammoth_projection_control (name) VALUES (?1)",
        [name],
    )?;
    tx.commit()
}

/// The active version, making version 1 active when there is none.
pub(super) fn ensure_active<P: SqliteProjection>(
    conn: &Connection,
    name: &str,
    projection: &P,
) -> rusqlite::Result<u32> {
    if let Some(version) = active_version(conn, name)? {
        ensure_version(conn, name, projection, version)?;
        return Ok(version);
    }
    let version = next_version(conn, name)?;
    ensure_version(conn, name, projection, version)?;
    let tx = conn.unchecked_transaction()?;
    activate(&tx, name, projection.tables(), version)?;
    tx.commit()?;
    Ok(version)
}

/// One above every version of `name` so far (1 for the first).
pub(super) fn next_version(conn: &Connection, name: &str) -> rusqlite::Result<u32> {
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM mammoth_projections WHERE name = ?1",
        [name],
        |row| row.get(0),
    )
}

/// Points the views at `version` and records it as active (inside the caller's transaction).
pub(super) fn activate(
    conn: &Connection,
    name: &str,
    tables: &[&str],
    version: u32,
) -> rusqlite::Result<()> {
    let physical = Tables::new(version);
    for base in tables {
        conn.execute_batch(&format!(
            "DROP VIEW IF EXISTS \"{base}\"; CREATE VIEW \"{base}\" AS SELECT * FROM \"{}\";",
            physical.name(base)
        ))?;
    }
    conn.execute(
        "INSERT INTO mammoth_projection_control (name, active_version) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET active_version = excluded.active_version",
        params![name, version],
    )
    .map(drop)
}

/// Drops `version`'s tables and row.
pub(super) fn drop_version(
    conn: &Connection,
    name: &str,
    tables: &[&str],
    version: u32,
) -> rusqlite::Result<()> {
    let physical = Tables::new(version);
    let tx = conn.unchecked_transaction()?;
    for base in tables {
        tx.execute_batch(&format!(
            "DROP TABLE IF EXISTS \"{}\";",
            physical.name(base)
        ))?;
    }
    tx.execute(
        "DELETE FROM mammoth_projections WHERE name = ?1 AND version = ?2",
        params![name, version],
    )?;
    tx.commit()
}

pub(super) fn record_state(
    conn: &Connection,
    name: &str,
    version: u32,
    state: &ProjectionState,
) -> rusqlite::Result<()> {
    let (position, error, attempts) = match state {
        ProjectionState::Failed {
            position,
            error,
            attempts,
        } => (
            i64::try_from(*position).ok(),
            Some(error.as_str()),
            *attempts,
        ),
        _ => (None, None, 0),
    };
    conn.prepare_cached(
        "UPDATE mammoth_projections
         SET state = ?3, failed_position = ?4, error = ?5, attempts = ?6, updated_at = ?7
         WHERE name = ?1 AND version = ?2",
    )?
    .execute(params![
        name,
        version,
        state.label(),
        position,
        error,
        attempts,
        mammoth_core::now_micros()
    ])
    .map(drop)
}

pub(super) fn requested(conn: &Connection, name: &str) -> rusqlite::Result<Requested> {
    conn.prepare_cached("SELECT paused, resumes FROM mammoth_projection_control WHERE name = ?1")?
        .query_row([name], |row| {
            Ok(Requested {
                paused: row.get::<_, i64>(0)? != 0,
                resumes: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
            })
        })
        .optional()
        .map(Option::unwrap_or_default)
}

pub(super) fn park(
    conn: &Connection,
    name: &str,
    version: u32,
    event: &RecordedEvent,
    error: &str,
    attempts: u32,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO projection_dead_letters
         (name, version, position, event_id, stream_id, event_type, error, attempts, parked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            name,
            version,
            i64::try_from(event.position).unwrap_or(i64::MAX),
            event.id.to_string(),
            event.stream_id.as_str(),
            event.event_type,
            error,
            attempts,
            mammoth_core::now_micros()
        ],
    )
    .map(drop)
}
