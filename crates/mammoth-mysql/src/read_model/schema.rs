//! The read-model database's bookkeeping tables and the small statements on them.
//!
//! MySQL commits DDL on its own, so creating and dropping a version's tables cannot share a
//! transaction with its bookkeeping row. The row is the truth instead: a version without a row
//! has no tables worth keeping (leftovers of an interrupted attempt are dropped before its
//! tables are created), and the steps that run DDL hold a named lock per projection
//! (`GET_LOCK`), so two processes opening a projection at once never drop each other's tables.

use mammoth_core::{Position, ProjectionError, ProjectionState, RecordedEvent, Requested};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::{MAX_PROJECTION_NAME_BYTES, MysqlProjection, ReadModelDatabase, Tables, fail};

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
        .pool
        .get_conn()
        .await
        .map_err(fail(name, "connecting to the read-model database"))?;
    let created = async {
        conn.query_drop(format!(
            "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4",
            db.database
        ))
        .await?;
        conn.query_drop(format!("USE `{}`", db.database)).await?;
        for statement in CREATE {
            conn.query_drop(statement).await?;
        }
        Ok::<(), mysql_async::Error>(())
    };
    created
        .await
        .map_err(fail(name, "creating the bookkeeping tables"))
}

/// The named lock of `name` in the selected database (MySQL caps lock names at 64 bytes).
const LOCK_NAME: &str = "CONCAT('mammoth_rm_', SHA1(CONCAT(DATABASE(), '.', ?)))";

/// Takes the DDL lock of `name`, waiting up to 60 s for another process to finish.
pub(super) async fn lock(conn: &mut Conn, name: &str) -> mysql_async::Result<()> {
    let got: Option<Option<i64>> = conn
        .exec_first(format!("SELECT GET_LOCK({LOCK_NAME}, 60)"), (name,))
        .await?;
    if got.flatten() == Some(1) {
        Ok(())
    } else {
        Err(mysql_async::Error::Other(
            format!(
                "another process held the read-model lock of {name:?} for 60 s; retry when its rebuild or switch is done"
            )
            .into(),
        ))
    }
}

/// Releases the DDL lock of `name`.
pub(super) async fn unlock(conn: &mut Conn, name: &str) -> mysql_async::Result<()> {
    conn.exec_drop(format!("DO RELEASE_LOCK({LOCK_NAME})"), (name,))
        .await
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

/// Runs `work` holding the DDL lock of `name`, releasing it whatever happens.
macro_rules! locked {
    ($conn:expr, $name:expr, $work:expr) => {{
        lock($conn, $name).await?;
        let result = $work.await;
        let released = unlock($conn, $name).await;
        let value = result?;
        released?;
        value
    }};
}

/// Creates `version`'s tables and row (the lock held): leftovers first dropped.
async fn create_version<P: MysqlProjection>(
    conn: &mut Conn,
    name: &str,
    projection: &mut P,
    version: u32,
) -> mysql_async::Result<()> {
    let tables = Tables::new(version);
    for base in projection.tables() {
        conn.query_drop(format!("DROP TABLE IF EXISTS `{}`", tables.name(base)))
            .await?;
    }
    projection.create(conn, &tables).await?;
    let now = mammoth_core::now_micros();
    conn.exec_drop(
        "INSERT IGNORE INTO mammoth_projections (name, version, updated_at) VALUES (?, ?, ?)",
        (name, version, now),
    )
    .await?;
    conn.exec_drop(
        "INSERT IGNORE INTO mammoth_projection_control (name) VALUES (?)",
        (name,),
    )
    .await
}

/// Creates `version`'s tables and row if missing.
pub(super) async fn ensure_version<P: MysqlProjection>(
    conn: &mut Conn,
    name: &str,
    projection: &mut P,
    version: u32,
) -> mysql_async::Result<()> {
    if checkpoint(conn, name, version).await?.is_some() {
        return Ok(());
    }
    locked!(conn, name, async {
        if checkpoint(conn, name, version).await?.is_none() {
            create_version(conn, name, projection, version).await?;
        }
        Ok::<_, mysql_async::Error>(())
    });
    Ok(())
}

/// The active version, making version 1 active when there is none. With `check_views`, the
/// views are re-created when one is missing (a crash between a switch's two steps).
pub(super) async fn ensure_active<P: MysqlProjection>(
    conn: &mut Conn,
    name: &str,
    projection: &mut P,
    check_views: bool,
) -> mysql_async::Result<u32> {
    if let Some(version) = active_version(conn, name).await? {
        ensure_version(conn, name, projection, version).await?;
        if check_views && missing_views(conn, projection.tables()).await? {
            locked!(conn, name, point_views(conn, projection.tables(), version));
        }
        return Ok(version);
    }
    let version = locked!(conn, name, async {
        if let Some(version) = active_version(conn, name).await? {
            return Ok::<_, mysql_async::Error>(version);
        }
        let version = next_version(conn, name).await?;
        create_version(conn, name, projection, version).await?;
        set_active(conn, name, version).await?;
        point_views(conn, projection.tables(), version).await?;
        Ok(version)
    });
    ensure_version(conn, name, projection, version).await?;
    Ok(version)
}

/// Creates the version one above every version of `name` so far, and returns it.
pub(super) async fn create_next_version<P: MysqlProjection>(
    conn: &mut Conn,
    name: &str,
    projection: &mut P,
) -> mysql_async::Result<u32> {
    Ok(locked!(conn, name, async {
        let version = next_version(conn, name).await?;
        create_version(conn, name, projection, version).await?;
        Ok::<_, mysql_async::Error>(version)
    }))
}

/// One above every version of `name` so far (1 for the first).
async fn next_version(conn: &mut Conn, name: &str) -> mysql_async::Result<u32> {
    let next: Option<u32> = conn
        .exec_first(
            "SELECT CAST(COALESCE(MAX(version), 0) + 1 AS UNSIGNED) FROM mammoth_projections WHERE name = ?",
            (name,),
        )
        .await?;
    Ok(next.unwrap_or(1))
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

async fn missing_views(conn: &mut Conn, tables: &[&str]) -> mysql_async::Result<bool> {
    let present: Vec<String> = conn
        .query(
            "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()",
        )
        .await?;
    Ok(tables
        .iter()
        .any(|base| !present.iter().any(|view| view == base)))
}

/// Points every view at `version` in one `RENAME TABLE`: readers see either all the old
/// tables or all the new ones.
pub(super) async fn point_views(
    conn: &mut Conn,
    tables: &[&str],
    version: u32,
) -> mysql_async::Result<()> {
    if tables.is_empty() {
        return Ok(());
    }
    let physical = Tables::new(version);
    let present: Vec<String> = conn
        .query(
            "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()",
        )
        .await?;
    let mut renames = Vec::new();
    for base in tables {
        conn.query_drop(format!(
            "CREATE OR REPLACE VIEW `{base}_vnew` AS SELECT * FROM `{}`",
            physical.name(base)
        ))
        .await?;
        conn.query_drop(format!("DROP VIEW IF EXISTS `{base}_vold`"))
            .await?;
        if present.iter().any(|view| view == base) {
            renames.push(format!("`{base}` TO `{base}_vold`"));
        }
        renames.push(format!("`{base}_vnew` TO `{base}`"));
    }
    conn.query_drop(format!("RENAME TABLE {}", renames.join(", ")))
        .await?;
    for base in tables {
        conn.query_drop(format!("DROP VIEW IF EXISTS `{base}_vold`"))
            .await?;
    }
    Ok(())
}

/// Drops `version`'s row and then its tables (a crash between leaves tables without a row,
/// which the next creation of that version drops first).
pub(super) async fn drop_version(
    conn: &mut Conn,
    name: &str,
    tables: &[&str],
    version: u32,
) -> mysql_async::Result<()> {
    locked!(conn, name, async {
        conn.exec_drop(
            "DELETE FROM mammoth_projections WHERE name = ? AND version = ?",
            (name, version),
        )
        .await?;
        let physical = Tables::new(version);
        for base in tables {
            conn.query_drop(format!("DROP TABLE IF EXISTS `{}`", physical.name(base)))
                .await?;
        }
        Ok::<_, mysql_async::Error>(())
    });
    Ok(())
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
