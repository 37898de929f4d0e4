//! [`PgTimerStore`]: durable saga deadlines in the `saga_timers` table of the event store's
//! schema, so a deadline scheduled before a crash fires after the restart.

use mammoth_core::StoreError;
use mammoth_core::saga::{Timer, TimerStore};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::PgEventStore;
use crate::error::{on, pool};

/// Durable saga timers beside a [`PgEventStore`]'s events, sharing its pool. Cheap to clone.
///
/// An upsert is one statement: every timer in it is written, or none. Concurrent upserts of
/// the same ids (from any process) never deadlock: rows are written in id order.
#[derive(Clone)]
pub struct PgTimerStore {
    store: PgEventStore,
}

impl std::fmt::Debug for PgTimerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTimerStore")
            .field("schema", &self.store.schema())
            .finish_non_exhaustive()
    }
}

impl PgTimerStore {
    /// Timers kept beside `store`'s events (the table is created by its migrations).
    pub fn new(store: &PgEventStore) -> Self {
        Self {
            store: store.clone(),
        }
    }
}

fn read_timer(row: &Row) -> Timer {
    Timer {
        id: row.get(0),
        saga_type: row.get(1),
        saga_id: row.get(2),
        name: row.get(3),
        due_micros: row.get(4),
    }
}

/// `timers` in id order with one timer per id, the last given winning: one statement cannot
/// update a row twice, and a fixed lock order keeps concurrent upserts from deadlocking.
pub(crate) fn by_id_last_wins(timers: &[Timer]) -> Vec<&Timer> {
    let mut unique: std::collections::BTreeMap<Uuid, &Timer> = std::collections::BTreeMap::new();
    for timer in timers {
        unique.insert(timer.id, timer);
    }
    unique.into_values().collect()
}

impl TimerStore for PgTimerStore {
    async fn upsert(&self, timers: &[Timer]) -> Result<(), StoreError> {
        let action = "storing saga timers";
        if timers.is_empty() {
            return Ok(());
        }
        let timers = by_id_last_wins(timers);
        let ids: Vec<Uuid> = timers.iter().map(|timer| timer.id).collect();
        let saga_types: Vec<&str> = timers
            .iter()
            .map(|timer| timer.saga_type.as_str())
            .collect();
        let saga_ids: Vec<&str> = timers.iter().map(|timer| timer.saga_id.as_str()).collect();
        let names: Vec<&str> = timers.iter().map(|timer| timer.name.as_str()).collect();
        let dues: Vec<i64> = timers.iter().map(|timer| timer.due_micros).collect();
        let client = self.store.pool().get().await.map_err(pool)?;
        let statement = client
            .prepare_cached(&self.store.sql().upsert_timers)
            .await
            .map_err(on(action))?;
        client
            .execute(&statement, &[&ids, &saga_types, &saga_ids, &names, &dues])
            .await
            .map_err(on(action))?;
        Ok(())
    }

    async fn delete(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        let action = "deleting saga timers";
        if ids.is_empty() {
            return Ok(());
        }
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let client = self.store.pool().get().await.map_err(pool)?;
        let statement = client
            .prepare_cached(&self.store.sql().delete_timers)
            .await
            .map_err(on(action))?;
        client
            .execute(&statement, &[&ids])
            .await
            .map_err(on(action))?;
        Ok(())
    }

    async fn due(
        &self,
        saga_type: &str,
        now_micros: i64,
        limit: usize,
    ) -> Result<Vec<Timer>, StoreError> {
        let action = "reading due saga timers";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.store.pool().get().await.map_err(pool)?;
        let statement = client
            .prepare_cached(&self.store.sql().due_timers)
            .await
            .map_err(on(action))?;
        let rows = client
            .query(&statement, &[&saga_type, &now_micros, &limit])
            .await
            .map_err(on(action))?;
        Ok(rows.iter().map(read_timer).collect())
    }

    async fn pending(&self) -> Result<Vec<Timer>, StoreError> {
        let action = "listing saga timers";
        let client = self.store.pool().get().await.map_err(pool)?;
        let statement = client
            .prepare_cached(&self.store.sql().pending_timers)
            .await
            .map_err(on(action))?;
        let rows = client.query(&statement, &[]).await.map_err(on(action))?;
        Ok(rows.iter().map(read_timer).collect())
    }
}
