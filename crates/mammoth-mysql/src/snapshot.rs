//! [`MysqlSnapshotStore`]: the latest snapshot of each stream, in the store's database.

use mammoth_core::{Snapshot, SnapshotStore, StoreError, StreamId, Version};
use mysql_async::prelude::Queryable;

use crate::MysqlEventStore;
use crate::error::on;

/// Snapshots in the `snapshots` table of a [`MysqlEventStore`]'s database, sharing its pool.
///
/// `save` is one upsert that only replaces an older version, so concurrent writers (in any
/// process) never move a stream's snapshot backwards.
#[derive(Clone)]
pub struct MysqlSnapshotStore {
    store: MysqlEventStore,
}

impl MysqlSnapshotStore {
    /// Snapshots kept beside `store`'s events.
    pub fn new(store: &MysqlEventStore) -> Self {
        Self {
            store: store.clone(),
        }
    }
}

impl SnapshotStore for MysqlSnapshotStore {
    async fn load(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let mut conn = self.store.conn().await?;
        let row: Option<(u64, i64, String, i64)> = conn
            .exec_first(
                self.store.sql().load_snapshot.as_str(),
                (stream.as_str().as_bytes(),),
            )
            .await
            .map_err(on("loading a snapshot"))?;
        Ok(
            row.map(|(version, schema_version, state, taken_at)| Snapshot {
                stream_id: stream.clone(),
                version: version as Version,
                schema_version: u32::try_from(schema_version).unwrap_or(u32::MAX),
                state,
                taken_at_micros: taken_at,
            }),
        )
    }

    async fn save(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let mut conn = self.store.conn().await?;
        conn.exec_drop(
            self.store.sql().save_snapshot.as_str(),
            (
                snapshot.stream_id.as_str().as_bytes(),
                snapshot.version,
                i64::from(snapshot.schema_version),
                snapshot.state.as_str(),
                snapshot.taken_at_micros,
            ),
        )
        .await
        .map_err(on("saving a snapshot"))
    }
}
