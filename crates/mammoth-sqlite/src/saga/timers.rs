//! [`SqliteTimerStore`]: saga deadlines in a `saga_timers` table of the event store's file,
//! on a connection of its own. Upserts run at `synchronous=FULL`, so a deadline scheduled
//! before a crash fires after the restart.

use std::path::Path;

use mammoth_core::StoreError;
use mammoth_core::saga::{Timer, TimerStore};
use rusqlite::params;
use uuid::Uuid;

use crate::side::{Actions, SideConnection};

const CREATE: &str = "CREATE TABLE IF NOT EXISTS saga_timers (
    id TEXT PRIMARY KEY NOT NULL,
    saga_type TEXT NOT NULL,
    saga_id TEXT NOT NULL,
    name TEXT NOT NULL,
    due_micros INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS saga_timers_due ON saga_timers (saga_type, due_micros)";

const ACTIONS: Actions = Actions {
    directory: "creating the timer directory",
    open: "opening the timer store",
    configure: "configuring the timer store",
    create: "creating the saga_timers table",
};

/// Durable saga timers in the SQLite file at a path. Cheap to clone.
#[derive(Clone)]
pub struct SqliteTimerStore {
    conn: SideConnection,
}

impl std::fmt::Debug for SqliteTimerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTimerStore")
            .field("path", &self.conn.path())
            .finish_non_exhaustive()
    }
}

impl SqliteTimerStore {
    /// Opens (creating if needed) the `saga_timers` table in the SQLite file at `path`
    /// (normally the event store's file).
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

fn read_timer(row: &rusqlite::Row<'_>) -> rusqlite::Result<Timer> {
    let id: String = row.get(0)?;
    Ok(Timer {
        // Ids are written by `upsert` from Uuids; a row edited by hand reads as the nil id
        // and is then simply stale.
        id: Uuid::parse_str(&id).unwrap_or_default(),
        saga_type: row.get(1)?,
        saga_id: row.get(2)?,
        name: row.get(3)?,
        due_micros: row.get(4)?,
    })
}

const COLUMNS: &str = "id, saga_type, saga_id, name, due_micros";

impl TimerStore for SqliteTimerStore {
    async fn upsert(&self, timers: &[Timer]) -> Result<(), StoreError> {
        let timers = timers.to_vec();
        self.conn
            .run(
                move |conn| {
                    let tx = conn.transaction()?;
                    {
                        let mut insert = tx.prepare_cached(
                            "INSERT INTO saga_timers (id, saga_type, saga_id, name, due_micros)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (id) DO UPDATE SET saga_type = excluded.saga_type,
                             saga_id = excluded.saga_id, name = excluded.name,
                             due_micros = excluded.due_micros",
                        )?;
                        for timer in &timers {
                            insert.execute(params![
                                timer.id.to_string(),
                                timer.saga_type,
                                timer.saga_id,
                                timer.name,
                                timer.due_micros
                            ])?;
                        }
                    }
                    tx.commit()
                },
                "storing saga timers",
            )
            .await
    }

    async fn delete(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        self.conn
            .run(
                move |conn| {
                    let tx = conn.transaction()?;
                    {
                        let mut delete =
                            tx.prepare_cached("DELETE FROM saga_timers WHERE id = ?1")?;
                        for id in &ids {
                            delete.execute([id])?;
                        }
                    }
                    tx.commit()
                },
                "deleting saga timers",
            )
            .await
    }

    async fn due(
        &self,
        saga_type: &str,
        now_micros: i64,
        limit: usize,
    ) -> Result<Vec<Timer>, StoreError> {
        let saga_type = saga_type.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.conn
            .run(
                move |conn| {
                    let mut statement = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM saga_timers WHERE saga_type = ?1 AND due_micros <= ?2
                     ORDER BY due_micros, id LIMIT ?3"
                ))?;
                    let rows =
                        statement.query_map(params![saga_type, now_micros, limit], read_timer)?;
                    rows.collect()
                },
                "reading due saga timers",
            )
            .await
    }

    async fn pending(&self) -> Result<Vec<Timer>, StoreError> {
        self.conn
            .run(
                |conn| {
                    let mut statement = conn.prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM saga_timers ORDER BY due_micros, id"
                    ))?;
                    let rows = statement.query_map([], read_timer)?;
                    rows.collect()
                },
                "listing saga timers",
            )
            .await
    }
}
