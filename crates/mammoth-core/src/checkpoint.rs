//! [`CheckpointStore`]: where a consumer of the global log that is not a SQL read model (the
//! outbox relay, a projection that calls an API, a bus bridge) records how far it has got.
//!
//! A checkpoint is a global [`Position`]: every event at or below it has been handled. Such
//! consumers get at-least-once delivery — the handler runs, then the checkpoint is saved, so a
//! crash in between hands the same events over again — and de-duplicate by the event id. SQL
//! read models do better by committing their checkpoint in the same transaction as their
//! writes (see the projection runner), and do not use this store.
//!
//! [`InMemoryCheckpointStore`] is the reference implementation; `mammoth-sqlite` has the
//! durable one.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::{Position, StoreError};

/// Durable named checkpoints.
///
/// Contract (every implementation): `load` of a name never saved is `None`; `save` overwrites
/// (it may move a checkpoint backwards, which is how a replay from zero starts) and is durable
/// when it returns; `list` returns every saved checkpoint, sorted by name.
pub trait CheckpointStore: Send + Sync {
    /// The checkpoint saved under `name`, if any.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the storage fails.
    fn load(&self, name: &str)
    -> impl Future<Output = Result<Option<Position>, StoreError>> + Send;

    /// Records that every event up to and including `position` has been handled by `name`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the storage fails; the previous checkpoint is kept.
    fn save(
        &self,
        name: &str,
        position: Position,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every checkpoint, sorted by name.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the storage fails.
    fn list(&self) -> impl Future<Output = Result<Vec<(String, Position)>, StoreError>> + Send;
}

/// Checkpoints in memory: the reference implementation and a store for tests.
#[derive(Clone, Debug, Default)]
pub struct InMemoryCheckpointStore {
    checkpoints: Arc<Mutex<BTreeMap<String, Position>>>,
}

impl InMemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Position>> {
        // Each operation is one map call, so a poisoned lock holds a consistent map.
        self.checkpoints
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl CheckpointStore for InMemoryCheckpointStore {
    async fn load(&self, name: &str) -> Result<Option<Position>, StoreError> {
        Ok(self.lock().get(name).copied())
    }

    async fn save(&self, name: &str, position: Position) -> Result<(), StoreError> {
        self.lock().insert(name.to_owned(), position);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<(String, Position)>, StoreError> {
        Ok(self
            .lock()
            .iter()
            .map(|(name, position)| (name.clone(), *position))
            .collect())
    }
}

impl<T: CheckpointStore + ?Sized> CheckpointStore for Arc<T> {
    async fn load(&self, name: &str) -> Result<Option<Position>, StoreError> {
        (**self).load(name).await
    }

    async fn save(&self, name: &str, position: Position) -> Result<(), StoreError> {
        (**self).save(name, position).await
    }

    async fn list(&self) -> Result<Vec<(String, Position)>, StoreError> {
        (**self).list().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_replay_can_move_a_checkpoint_back_to_zero() {
        let store = InMemoryCheckpointStore::new();
        assert_eq!(store.load("relay").await.ok().flatten(), None);
        store.save("relay", 42).await.ok();
        store.save("relay", 0).await.ok();
        assert_eq!(store.load("relay").await.ok().flatten(), Some(0));
        assert_eq!(store.list().await.ok(), Some(vec![("relay".to_owned(), 0)]));
    }
}
