//! [`SqliteSnapshotStore`]: aggregate snapshots in a `snapshots` table of the store's SQLite
//! file, on a connection of its own (the event store's writer thread never waits for it
//! except for SQLite's brief write lock when a snapshot is saved).
//!
//! Snapshots are a cache: the table can be dropped or emptied at any time and the only cost is
//! a longer load (the repository replays the stream and takes a new snapshot). A missing table
//! reads as "no snapshot" and is created again by the next save. Saves run at
//! `synchronous=NORMAL`: a snapshot lost to a power cut costs time, never correctness.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mammoth_core::{Snapshot, SnapshotStore, StoreError, StreamId, Version};
use rusqlite::{Connection, OptionalExtension, params};

const CREATE: &str = "CREATE TABLE IF NOT EXISTS snapshots (
    stream_id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    state TEXT NOT NULL,
    taken_at INTEGER NOT NULL
)";

/// Keeps the latest snapshot per stream in the SQLite file at `path`. Cheap to clone.
#[derive(Clone)]
pub struct SqliteSnapshotStore {
    path: Arc<PathBuf>,
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteSnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSnapshotStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn failed(action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |error| {
        let transient = matches!(
            error.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        StoreError::backend("sqlite", action, error, transient)
    }
}

fn is_missing_table(error: &rusqlite::Error) -> bool {
    error.to_string().contains("no such table")
}

impl SqliteSnapshotStore {
    /// Opens the snapshot table in the SQLite file at `path` (the event store's file),
    /// creating the file and the table if needed.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the file cannot be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open(&path).map_err(failed("opening the snapshot store"))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(failed("configuring the snapshot store"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(failed("configuring the snapshot store"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(failed("configuring the snapshot store"))?;
        // Checkpoints are the event store's business (its writer decides when the WAL is
        // copied back); this connection only appends a few frames now and then.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(failed("configuring the snapshot store"))?;
        conn.execute(CREATE, [])
            .map_err(failed("creating the snapshots table"))?;
        Ok(Self {
            path: Arc::new(path),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the connection on a blocking thread.
    async fn with_conn<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic inside rusqlite leaves the connection usable; take the guard anyway.
            let conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&conn)
        })
        .await
        .map_err(|error| StoreError::backend("sqlite", "using the snapshot store", error, false))?
    }
}

fn load(conn: &Connection, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT version, schema_version, state, taken_at FROM snapshots WHERE stream_id = ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_row([stream.as_str()], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                    ))
                })
                .optional()
        });
    let row = match row {
        Ok(row) => row,
        Err(error) if is_missing_table(&error) => return Ok(None),
        Err(error) => return Err(failed("loading a snapshot")(error)),
    };
    Ok(
        row.map(|(version, schema_version, state, taken_at)| Snapshot {
            stream_id: stream.clone(),
            version: Version::try_from(version).unwrap_or(0),
            schema_version: u32::try_from(schema_version).unwrap_or(0),
            state,
            taken_at_micros: taken_at,
        }),
    )
}

fn save(conn: &Connection, snapshot: &Snapshot) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(
        "INSERT INTO snapshots (stream_id, version, schema_version, state, taken_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (stream_id) DO UPDATE SET
             version = excluded.version,
             schema_version = excluded.schema_version,
             state = excluded.state,
             taken_at = excluded.taken_at
         WHERE excluded.version > snapshots.version",
    )?
    .execute(params![
        snapshot.stream_id.as_str(),
        i64::try_from(snapshot.version).unwrap_or(i64::MAX),
        i64::from(snapshot.schema_version),
        snapshot.state,
        snapshot.taken_at_micros,
    ])
    .map(drop)
}

impl SnapshotStore for SqliteSnapshotStore {
    async fn load(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let stream = stream.clone();
        self.with_conn(move |conn| load(conn, &stream)).await
    }

    async fn save(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let snapshot = snapshot.clone();
        self.with_conn(move |conn| match save(conn, &snapshot) {
            Err(error) if is_missing_table(&error) => {
                // Someone dropped the table: it is a cache, so make it again.
                conn.flush_prepared_statement_cache();
                conn.execute(CREATE, [])
                    .map_err(failed("creating the snapshots table"))?;
                save(conn, &snapshot).map_err(failed("saving a snapshot"))
            }
            other => other.map_err(failed("saving a snapshot")),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use mammoth_core::{Snapshot, SnapshotStore, StreamId};

    use super::SqliteSnapshotStore;

    fn snapshot(version: u64, state: &str) -> Snapshot {
        Snapshot {
            stream_id: StreamId::new("order-1").unwrap(),
            version,
            schema_version: 1,
            state: state.to_owned(),
            taken_at_micros: 7,
        }
    }

    #[tokio::test]
    async fn a_snapshot_never_moves_backwards_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mammoth.db");
        let store = SqliteSnapshotStore::open(&path).unwrap();
        let stream = StreamId::new("order-1").unwrap();
        assert_eq!(store.load(&stream).await.unwrap(), None);
        store.save(&snapshot(10, r#"{"n":10}"#)).await.unwrap();
        store.save(&snapshot(5, r#"{"n":5}"#)).await.unwrap();
        assert_eq!(
            store.load(&stream).await.unwrap(),
            Some(snapshot(10, r#"{"n":10}"#))
        );
        store.save(&snapshot(20, r#"{"n":20}"#)).await.unwrap();
        drop(store);
        let reopened = SqliteSnapshotStore::open(&path).unwrap();
        assert_eq!(
            reopened.load(&stream).await.unwrap(),
            Some(snapshot(20, r#"{"n":20}"#))
        );
    }

    #[tokio::test]
    async fn a_dropped_table_reads_as_no_snapshot_and_comes_back_on_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mammoth.db");
        let store = SqliteSnapshotStore::open(&path).unwrap();
        store.save(&snapshot(3, "{}")).await.unwrap();
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute("DROP TABLE snapshots", [])
            .unwrap();
        let stream = StreamId::new("order-1").unwrap();
        assert_eq!(store.load(&stream).await.unwrap(), None);
        store.save(&snapshot(4, "{}")).await.unwrap();
        assert_eq!(
            store.load(&stream).await.unwrap().map(|s| s.version),
            Some(4)
        );
    }
}
