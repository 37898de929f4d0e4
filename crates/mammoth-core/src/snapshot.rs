//! Snapshots: an aggregate's serialized state at a stream version, so that loading it reads
//! only the events after that version. [`SnapshotStore`] is the seam each driver implements
//! (SQLite, and later PostgreSQL and MySQL); [`InMemorySnapshotStore`] is the reference.
//!
//! Snapshots are a cache, never a source of truth: a missing, failing, or stale snapshot only
//! costs the time of replaying the stream.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::{StoreError, StreamId, Version};

/// An aggregate's state as of one stream version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The aggregate's stream.
    pub stream_id: StreamId,
    /// The stream version the state includes (every event up to and including it).
    pub version: Version,
    /// The version of the state's serialized form (`Aggregate::SNAPSHOT_VERSION`).
    pub schema_version: u32,
    /// The state as JSON text.
    pub state: String,
    /// When it was taken, in microseconds since the Unix epoch.
    pub taken_at_micros: i64,
}

/// Keeps the latest snapshot of each stream.
///
/// Contract: `save` keeps a snapshot only if it is newer (higher `version`) than the one
/// stored, so concurrent writers can never move a stream's snapshot backwards; `load` returns
/// the latest one or `None`.
pub trait SnapshotStore: Send + Sync {
    /// The latest snapshot of `stream`, if any.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the storage fails; callers fall back to a full replay.
    fn load(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;

    /// Stores `snapshot` unless a snapshot at the same or a higher version is already stored.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the storage fails; the snapshot is simply not kept.
    fn save(&self, snapshot: &Snapshot) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Snapshots in memory: the reference implementation and a store for tests.
#[derive(Clone, Debug, Default)]
pub struct InMemorySnapshotStore {
    snapshots: Arc<Mutex<HashMap<StreamId, Snapshot>>>,
}

impl InMemorySnapshotStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets every snapshot, as if the table had been dropped.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many streams have a snapshot.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no stream has a snapshot.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, Snapshot>> {
        // Each operation is one map call, so a poisoned lock holds a consistent map.
        self.snapshots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SnapshotStore for InMemorySnapshotStore {
    async fn load(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.lock().get(stream).cloned())
    }

    async fn save(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let mut snapshots = self.lock();
        let newer = snapshots
            .get(&snapshot.stream_id)
            .is_none_or(|stored| stored.version < snapshot.version);
        if newer {
            snapshots.insert(snapshot.stream_id.clone(), snapshot.clone());
        }
        Ok(())
    }
}

impl<T: SnapshotStore + ?Sized> SnapshotStore for Arc<T> {
    async fn load(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        (**self).load(stream).await
    }

    async fn save(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        (**self).save(snapshot).await
    }
}
