//! The read-model database's bookkeeping tables and the small statements on them (the
//! versions' DDL is in `versions.rs`). Statements that lock rows take the control row first
//! and the checkpoint row second, whoever runs them, so batches, switches and resets never
//! deadlock on each other.

use mammoth_core::{Position, ProjectionError, ProjectionState, RecordedEvent, Requested};
use mysql_async::prelude::Queryable;

use super::{MAX_PROJECTION_NAME_BYTES, ReadModelDatabase, fail};

const CREATE: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS mammoth_projections (
        name VARCHAR(190) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
        version INT UNSIGNED NOT NULL,
        checkpoint BIGINT NOT NULL DEFAULT 0,
        state VARCHAR(16) NOT NULL DEFAULT 'stopped',
        failed_position BIGINT NULL,
        error TEXT NULL,
        attempts INT UNSIGNED NOT NULL DEFAULT 0,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (name, version)
    ) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS mammoth_projection_control (
        name VARCHAR(190) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
        active_version INT UNSIGNED NULL,
        paused TINYINT NOT NULL DEFAULT 0,
        resumes BIGINT NOT NULL DEFAULT 0
    ) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS projection_dead_letters (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(190) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
        version INT UNSIGNED NOT NULL,
        position BIGINT NOT NULL,
        event_id VARCHAR(64) NOT NULL,
        stream_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        error TEXT NOT NULL,
        attempts INT UNSIGNED NOT NULL,
        parked_at BIGINT NOT NULL,
        KEY by_name (name, id)
    ) ENGINE=InnoDB",
];

/// The longest base table name: room for `_shadow`, `_v4294967295` and the switch's `_vnew`.
const MAX_BASE_BYTES: usize = 64 - 12;

/// Checks `name` and `tables`, then creates the database and the bookkeeping tables if
/// missing.
pub(super) async fn prepare(
    db: &ReadModelDatabase,
    name: &str,
    tables: &[&str],
) -> Result<(), ProjectionError> {
    let invalid = |message: String| ProjectionError::ReadModel {
        projection: name.to_owned(),
        action: "checking the projection",
        message,
    };
    if name.len() > MAX_PROJECTION_NAME_BYTES {
        return Err(invalid(format!(
            "the name is {} bytes; the MySQL read models store names of at most {MAX_PROJECTION_NAME_BYTES} bytes, so use a shorter name",
            name.len()
        )));
    }
    if let Some(base) = tables.iter().find(|base| {
        base.is_empty()
            || base.len() > MAX_BASE_BYTES
            || !base.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }) {
        return Err(invalid(format!(
            "table name {base:?} is not valid; use 1 to {MAX_BASE_BYTES} ASCII letters, digits or `_`"
        )));
    }
    let mut conn = db
        .pool()
        .get_conn()
        .await
        .map_err(fail(name, "connecting to the read-model database"))?;
    let created = async {
        conn.query_drop(format!(
            "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4",
            db.database()
        ))
        .await?;
        conn.query_drop(format!("USE `{}`", db.database())).await?;
        for statement in CREATE {
            conn.query_drop(statement).await?;
        }
        Ok::<(), mysql_async::Error>(())
    };
    created
        .await
        .map_err(fail(name, "creating the bookkeeping tables"))
}

pub(super) async fn active_version(
    conn: &mut impl Queryable,
    name: &str,
) -> mysql_async::Result<Option<u32>> {
    let found: Option<Option<u32>> = conn
        .exec_first(
            "SELECT active_version FROM mammoth_projection_control WHERE name = ?",
            (name,),
        )
        .await?;
    Ok(found.flatten())
}

/// The active version, read with a shared lock on the control row (first in lock order).
pub(super) async fn lock_active_version(
    conn: &mut impl Queryable,
    name: &str,
) -> mysql_async::Result<Option<u32>> {
    let found: Option<Option<u32>> = conn
        .exec_first(
            "SELECT active_version FROM mammoth_projection_control WHERE name = ? LOCK IN SHARE MODE",
            (name,),
        )
        .await?;
    Ok(found.flatten())
}

/// Locks the control row for a change of version (a switch, a reset).
pub(super) async fn lock_control(
    conn: &mut impl Queryable,
    name: &str,
) -> mysql_async::Result<Option<u32>> {
    let found: Option<Option<u32>> = conn
        .exec_first(
            "SELECT active_version FROM mammoth_projection_control WHERE name = ? FOR UPDATE",
            (name,),
        )
        .await?;
    Ok(found.flatten())
}

fn to_position(value: i64) -> Position {
    Position::try_from(value).unwrap_or(0)
}

pub(super) async fn checkpoint(
    conn: &mut impl Queryable,
    name: &str,
    version: u32,
) -> mysql_async::Result<Option<Position>> {
    let found: Option<i64> = conn
        .exec_first(
            "SELECT checkpoint FROM mammoth_projections WHERE name = ? AND version = ?",
            (name, version),
        )
        .await?;
    Ok(found.map(to_position))
}

/// The checkpoint, read with an exclusive lock on its row (after the control row).
pub(super) async fn lock_checkpoint(
    conn: &mut impl Queryable,
    name: &str,
    version: u32,
) -> mysql_async::Result<Option<Position>> {
    let found: Option<i64> = conn
        .exec_first(
            "SELECT checkpoint FROM mammoth_projections WHERE name = ? AND version = ? FOR UPDATE",
            (name, version),
        )
        .await?;
    Ok(found.map(to_position))
}

pub(super) async fn save_checkpoint(
    conn: &mut impl Queryable,
    name: &str,
    version: u32,
    through: i64,
) -> mysql_async::Result<()> {
    conn.exec_drop(
        "UPDATE mammoth_projections SET checkpoint = ?, updated_at = ? WHERE name = ? AND version = ?",
        (through, mammoth_core::now_micros(), name, version),
    )
    .await
}

/// Records `version` as the active one (its own statement: the caller orders it).
pub(super) async fn set_active(
    conn: &mut impl Queryable,
    name: &str,
    version: u32,
) -> mysql_async::Result<()> {
    conn.exec_drop(
        "INSERT INTO mammoth_projection_control (name, active_version) VALUES (?, ?)
         ON DUPLICATE KEY UPDATE active_version = VALUES(active_version)",
        (name, version),
    )
    .await
}
pub(super) async fn record_state(
    conn: &mut impl Queryable,
    name: &str,
    version: u32,
    state: &ProjectionState,
) -> mysql_async::Result<()> {
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
    conn.exec_drop(
        "UPDATE mammoth_projections
         SET state = ?, failed_position = ?, error = ?, attempts = ?, updated_at = ?
         WHERE name = ? AND version = ?",
        (
            state.label(),
            position,
            error,
            attempts,
            mammoth_core::now_micros(),
            name,
            version,
        ),
    )
    .await
}

pub(super) async fn requested(
    conn: &mut impl Queryable,
    name: &str,
) -> mysql_async::Result<Requested> {
    let found: Option<(i64, i64)> = conn
        .exec_first(
            "SELECT paused, resumes FROM mammoth_projection_control WHERE name = ?",
            (name,),
        )
        .await?;
    Ok(
        found.map_or_else(Requested::default, |(paused, resumes)| Requested {
            paused: paused != 0,
            resumes: u64::try_from(resumes).unwrap_or(0),
        }),
    )
}

pub(super) async fn park(
    conn: &mut impl Queryable,
    name: &str,
    version: u32,
    event: &RecordedEvent,
    error: &str,
    attempts: u32,
) -> mysql_async::Result<()> {
    conn.exec_drop(
        "INSERT INTO projection_dead_letters
         (name, version, position, event_id, stream_id, event_type, error, attempts, parked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            name,
            version,
            i64::try_from(event.position).unwrap_or(i64::MAX),
            event.id.to_string(),
            event.stream_id.as_str(),
            event.event_type.as_str(),
            error,
            attempts,
            mammoth_core::now_micros(),
        ),
    )
    .await
}
