//! [`SqliteCheckpointStore`]: named checkpoints in a `checkpoints` table of a SQLite file, on
//! a connection of its own, for consumers of the global log that are not SQL read models (the
//! outbox relay, handlers with side effects elsewhere). They get at-least-once delivery: the
//! handler runs, then the checkpoint is saved here.
//!
//! The file may be the event store's own (the table is tiny and written once per batch) or a
//! separate one. Saves run at `synchronous=FULL`: a checkpoint that went backwards after a
//! power cut would only re-deliver events, but re-delivery costs the consumer work.

use std::path::Path;

use mammoth_core::{CheckpointStore, Position, StoreError};
use rusqlite::{OptionalExtension, params};

use crate::side::{Actions, SideConnection};

const CREATE: &str = "CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY NOT NULL,
    position INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
)";

const ACTIONS: Actions = Actions {
    directory: "creating the checkpoint directory",
    open: "opening the checkpoint store",
    configure: "configuring the checkpoint store",
    create: "creating the checkpoints table",
};

/// Durable named checkpoints in the SQLite file at a path. Cheap to clone.
#[derive(Clone)]
pub struct SqliteCheckpointStore {
    conn: SideConnection,
}

impl std::fmt::Debug for SqliteCheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteCheckpointStore")
            .field("path", &self.conn.path())
            .finish_non_exhaustive()
    }
}

impl SqliteCheckpointStore {
    /// Opens (creating if needed) the `checkpoints` table in the SQLite file at `path`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the file cannot be opened or the table created.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Ok(Self {
            conn: SideConnection::open(path.as_ref(), &ACTIONS, CREATE)?,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.conn.path()
    }
}

fn to_position(value: i64) -> Position {
    Position::try_from(value).unwrap_or(0)
}

impl CheckpointStore for SqliteCheckpointStore {
    async fn load(&self, name: &str) -> Result<Option<Position>, StoreError> {
        let name = name.to_owned();
        self.conn
            .run(
                move |conn| {
                    conn.prepare_cached("SELECT position FROM checkpoints WHERE name = ?1")?
                        .query_row([name], |row| row.get::<_, i64>(0))
                        .optional()
                        .map(|found| found.map(to_position))
                },
                "loading a checkpoint",
            )
            .await
    }

    async fn save(&self, name: &str, position: Position) -> Result<(), StoreError> {
        let name = name.to_owned();
        let position = i64::try_from(position).unwrap_or(i64::MAX);
        self.conn
            .run(
                move |conn| {
                    conn.prepare_cached(
                        "INSERT INTO checkpoints (name, position, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET
                         position = excluded.position, updated_at = excluded.updated_at",
                    )?
                    .execute(params![name, position, mammoth_core::now_micros()])
                    .map(drop)
                },
                "saving a checkpoint",
            )
            .await
    }

    async fn list(&self) -> Result<Vec<(String, Position)>, StoreError> {
        self.conn
            .run(
                |conn| {
                    let mut statement = conn
                        .prepare_cached("SELECT name, position FROM checkpoints ORDER BY name")?;
                    let rows = statement.query_map([], |row| {
                        Ok((row.get::<_, String>(0)?, to_position(row.get(1)?)))
                    })?;
                    rows.collect()
                },
                "listing checkpoints",
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_saved_checkpoint_survives_reopening_and_can_go_back_to_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.db");
        let store = SqliteCheckpointStore::open(&path).unwrap();
        assert_eq!(store.load("relay").await.unwrap(), None);
        store.save("relay", 7).await.unwrap();
        store.save("other", 3).await.unwrap();
        drop(store);
        let store = SqliteCheckpointStore::open(&path).unwrap();
        assert_eq!(store.load("relay").await.unwrap(), Some(7));
        store.save("relay", 0).await.unwrap();
        assert_eq!(
            store.list().await.unwrap(),
            vec![("other".to_owned(), 3), ("relay".to_owned(), 0)]
        );
    }
}
