//! [`PgCheckpointStore`]: named checkpoints in the `checkpoints` table of the event store's
//! schema, for consumers of the global log that are not SQL read models (the outbox relay, a
//! saga runner, handlers with side effects elsewhere). They get at-least-once delivery: the
//! handler runs, then the checkpoint is saved here.

use mammoth_core::{CheckpointStore, Position, StoreError};

use crate::PgEventStore;
use crate::error::{BACKEND, on, pool};

/// Durable named checkpoints beside a [`PgEventStore`]'s events, sharing its pool. Cheap to
/// clone.
///
/// `save` is one upsert, committed when it returns; `list` sorts names bytewise (the column's
/// collation is `"C"`), as the in-memory store does.
#[derive(Clone)]
pub struct PgCheckpointStore {
    store: PgEventStore,
}

impl std::fmt::Debug for PgCheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCheckpointStore")
            .field("schema", &self.store.schema())
            .finish_non_exhaustive()
    }
}

impl PgCheckpointStore {
    /// Checkpoints kept beside `store`'s events (the table is created by its migrations).
    pub fn new(store: &PgEventStore) -> Self {
        Self {
            store: store.clone(),
        }
    }
}

/// A stored position; the column is signed, and `save` never writes a negative one.
fn to_position(value: i64) -> Position {
    Position::try_from(value).unwrap_or(0)
}

impl CheckpointStore for PgCheckpointStore {
    async fn load(&self, name: &str) -> Result<Option<Position>, StoreError> {
        let action = "loading a checkpoint";
        let client = self.store.pool().get().await.map_err(pool)?;
        let statement = client
            .prepare_cached(&self.store.sql().load_checkpoint)
            .await
            .map_err(on(action))?;
        let row = client
            .query_opt(&statement, &[&name])
            .await
            .map_err(on(action))?;
        Ok(row.map(|row| to_position(row.get(0))))
    }

    async fn save(&self, name: &str, position: Position) -> Result<(), StoreError> {
        let action = "saving a checkpoint";
        let position = i64::try_from(position).map_err(|_| {
            StoreError::backend(
                BACKEND,
                action,
                format!(
                    "checkpoint {name:?}: position {position} is beyond the largest PostgreSQL bigint ({})",
                    i64::MAX
                ),
                false,
            )
        })?;
        let client = self.store.pool().get().await.map_err(pool)?;
        let statement = client
            .prepare_cached(&self.store.sql().save_checkpoint)
            .await
            .map_err(on(action))?;
        client
            .execute(&statement, &[&name, &position, &mammoth_core::now_micros()])
            .await
            .map_err(on(action))?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<(String, Position)>, StoreError> {
        let action = "listing checkpoints";
        let client = self.store.pool().get().await.map_err(pool)?;
        let statement = client
            .prepare_cached(&self.store.sql().list_checkpoints)
            .await
            .map_err(on(action))?;
        let rows = client.query(&statement, &[]).await.map_err(on(action))?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), to_position(row.get(1))))
            .collect())
    }
}
