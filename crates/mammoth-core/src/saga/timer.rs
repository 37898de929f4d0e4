//! Durable saga deadlines: [`Timer`] and the [`TimerStore`] contract (SQLite in
//! `mammoth-sqlite`, in memory here).
//!
//! A timer's id is deterministic (the saga stream, the deadline's name and the input that
//! scheduled it), so re-upserting after a crash changes nothing, and the runner feeds an
//! expired timer to the saga with the timer id as the input id: firing twice is a no-op.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;

/// A pending deadline of one saga.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Timer {
    /// Deterministic id: the input id of the deadline when it fires.
    pub id: Uuid,
    /// The saga type.
    pub saga_type: String,
    /// The saga id.
    pub saga_id: String,
    /// The deadline's name.
    pub name: String,
    /// When it expires, microseconds since the Unix epoch.
    pub due_micros: i64,
}

/// Durable timers, in the same database as the events.
///
/// Contract: `upsert` inserts or replaces by id and is durable when it returns; `due` returns
/// timers of `saga_type` due at or before `now_micros`, earliest first; `delete` of an id not
/// stored is not an error.
pub trait TimerStore: Send + Sync {
    /// Inserts or replaces `timers`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the storage fails; nothing was written.
    fn upsert(&self, timers: &[Timer]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes the timers with these ids.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the storage fails.
    fn delete(&self, ids: &[Uuid]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` timers of `saga_type` due at or before `now_micros`, earliest first.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the storage fails.
    fn due(
        &self,
        saga_type: &str,
        now_micros: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Timer>, StoreError>> + Send;

    /// Every pending timer, of every saga type, earliest first (for `mammoth status`).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the storage fails.
    fn pending(&self) -> impl Future<Output = Result<Vec<Timer>, StoreError>> + Send;
}

/// Timers in memory: the reference implementation and a store for tests.
#[derive(Clone, Debug, Default)]
pub struct InMemoryTimerStore {
    timers: Arc<Mutex<BTreeMap<Uuid, Timer>>>,
}

impl InMemoryTimerStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Uuid, Timer>> {
        // Each operation is a few map calls, so a poisoned lock holds a consistent map.
        self.timers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sorted(mut timers: Vec<Timer>) -> Vec<Timer> {
        timers.sort_by(|a, b| a.due_micros.cmp(&b.due_micros).then(a.id.cmp(&b.id)));
        timers
    }
}

impl TimerStore for InMemoryTimerStore {
    async fn upsert(&self, timers: &[Timer]) -> Result<(), StoreError> {
        let mut map = self.lock();
        for timer in timers {
            map.insert(timer.id, timer.clone());
        }
        Ok(())
    }

    async fn delete(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        let mut map = self.lock();
        for id in ids {
            map.remove(id);
        }
        Ok(())
    }

    async fn due(
        &self,
        saga_type: &str,
        now_micros: i64,
        limit: usize,
    ) -> Result<Vec<Timer>, StoreError> {
        let due = self
            .lock()
            .values()
            .filter(|timer| timer.saga_type == saga_type && timer.due_micros <= now_micros)
            .cloned()
            .collect();
        let mut due = Self::sorted(due);
        due.truncate(limit);
        Ok(due)
    }

    async fn pending(&self) -> Result<Vec<Timer>, StoreError> {
        Ok(Self::sorted(self.lock().values().cloned().collect()))
    }
}

impl<T: TimerStore + ?Sized> TimerStore for Arc<T> {
    async fn upsert(&self, timers: &[Timer]) -> Result<(), StoreError> {
        (**self).upsert(timers).await
    }

    async fn delete(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        (**self).delete(ids).await
    }

    async fn due(
        &self,
        saga_type: &str,
        now_micros: i64,
        limit: usize,
    ) -> Result<Vec<Timer>, StoreError> {
        (**self).due(saga_type, now_micros, limit).await
    }

    async fn pending(&self) -> Result<Vec<Timer>, StoreError> {
        (**self).pending().await
    }
}
