//! A projection's versions: creating, activating, re-pointing the views at, and dropping
//! them. MySQL commits DDL on its own, so none of this shares a transaction with the
//! bookkeeping rows; instead the row is the truth (a version without a row has no tables worth
//! keeping: leftovers of an interrupted attempt are dropped before its tables are created, and
//! dropping a version deletes the row first), and every step that runs DDL holds a named lock
//! per projection (`GET_LOCK`), so two processes opening a projection at once never drop each
//! other's tables.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::schema::{active_version, checkpoint, set_active};
use super::{MysqlProjection, Tables};

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
/// views are re-pointed when one is missing or reads another version (a crash between a
/// switch's two steps).
pub(super) async fn ensure_active<P: MysqlProjection>(
    conn: &mut Conn,
    name: &str,
    projection: &mut P,
    check_views: bool,
) -> mysql_async::Result<u32> {
    if let Some(version) = active_version(conn, name).await? {
        ensure_version(conn, name, projection, version).await?;
        if check_views && stale_views(conn, projection.tables(), version).await? {
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

/// True when a view of `tables` is missing or reads another version's table (its stored
/// definition names the physical table, quoted).
async fn stale_views(conn: &mut Conn, tables: &[&str], version: u32) -> mysql_async::Result<bool> {
    let present: Vec<(String, String)> = conn
        .query(
            "SELECT CAST(TABLE_NAME AS CHAR), CAST(VIEW_DEFINITION AS CHAR)
             FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()",
        )
        .await?;
    let physical = Tables::new(version);
    Ok(tables.iter().any(|base| {
        let reads = format!("`{}`", physical.name(base));
        !present
            .iter()
            .any(|(view, definition)| view == base && definition.contains(&reads))
    }))
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
