//! [`PgSnapshotStore`]: the latest snapshot of each stream, in the store's schema.

use mammoth_core::{Snapshot, SnapshotStore, StoreError, StreamId, Version};

use crate::PgEventStore;
use crate::error::{on, pool};

/// Snapshots in the `snapshots` table of a [`PgEventStore`]'s schema, sharing its pool.
///
/// `save` is one upsert that only replaces an older version, so concurrent writers (in any
/// process) never move a stream's snapshot backwards.
#[derive(Clone)]
pub struct PgSnapshotStore {
    store: PgEventStore,
}

impl PgSnapshotStore {
    /// Snapshots kept beside `store`'s events.
    pub fn new(store: &PgEventStore) -> Self {
        Self {
            store: store.clone(),
        }
    }
}

impl SnapshotStore for PgSnapshotStore {
    async fn load(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let action = "loading a snapshot";
        let client = self.store.pool().get().await.map_err(pool)?;
        let statement = client
            .prepare_cached(&self.store.sql().load_snapshot)
            .await
            .map_err(on(action))?;
        let row = client
            .query_opt(&statement, &[&stream.as_str()])
            .await
            .map_err(on(action))?;
        let Some(row) = row else { return Ok(None) };
        let schema_version: i64 = row.get(1);
        Ok(Some(Snapshot {
            stream_id: stream.clone(),
            version: row.get::<_, i64>(0) as Version,
            schema_version: u32::try_from(schema_version).unwrap_or(u32::MAX),
            state: row.get(2),
            taken_at_micros: row.get(3),
        }))
    }

    async fn save(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let action = "saving a snapshot";
        let client = self.store.pool().get().await.map_err(pool)?;
        let statement = client
            .prepare_cached(&self.store.sql().save_snapshot)
            .await
            .map_err(on(action))?;
        let version = i64::try_from(snapshot.version).unwrap_or(i64::MAX);
        client
            .execute(
                &statement,
                &[
                    &snapshot.stream_id.as_str(),
                    &version,
                    &i64::from(snapshot.schema_version),
                    &snapshot.state,
                    &snapshot.taken_at_micros,
                ],
            )
            .await
            .map_err(on(action))?;
        Ok(())
    }
}
