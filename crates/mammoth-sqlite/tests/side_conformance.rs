//! The checkpoint and saga timer conformance suites against the SQLite stores, each store in
//! its own temporary directory (kept as long as the store, so a reopen finds the file).

use mammoth_sqlite::{SqliteCheckpointStore, SqliteTimerStore};
use mammoth_testkit::{CheckpointFactory, TimerFactory};
use tempfile::TempDir;

/// A store and the directory holding its file.
pub struct InDir<S> {
    store: S,
    dir: TempDir,
}

/// Fresh SQLite checkpoint and timer stores, each in a new temporary directory.
struct Sqlite;

impl CheckpointFactory for Sqlite {
    type Store = InDir<SqliteCheckpointStore>;

    async fn fresh(&self) -> Self::Store {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteCheckpointStore::open(dir.path().join("events.db"))
            .expect("open a checkpoint store");
        InDir { store, dir }
    }

    async fn reopen(&self, store: Self::Store) -> Option<Self::Store> {
        let InDir { store, dir } = store;
        let path = store.path().to_owned();
        drop(store);
        let store = SqliteCheckpointStore::open(path).expect("reopen the checkpoint store");
        Some(InDir { store, dir })
    }
}

impl TimerFactory for Sqlite {
    type Store = InDir<SqliteTimerStore>;

    async fn fresh(&self) -> Self::Store {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            SqliteTimerStore::open(dir.path().join("events.db")).expect("open a timer store");
        InDir { store, dir }
    }

    async fn reopen(&self, store: Self::Store) -> Option<Self::Store> {
        let InDir { store, dir } = store;
        let path = store.path().to_owned();
        drop(store);
        let store = SqliteTimerStore::open(path).expect("reopen the timer store");
        Some(InDir { store, dir })
    }
}

impl mammoth_core::CheckpointStore for InDir<SqliteCheckpointStore> {
    async fn load(&self, name: &str) -> Result<Option<u64>, mammoth_core::StoreError> {
        self.store.load(name).await
    }

    async fn save(&self, name: &str, position: u64) -> Result<(), mammoth_core::StoreError> {
        self.store.save(name, position).await
    }

    async fn list(&self) -> Result<Vec<(String, u64)>, mammoth_core::StoreError> {
        self.store.list().await
    }
}

impl mammoth_core::saga::TimerStore for InDir<SqliteTimerStore> {
    async fn upsert(
        &self,
        timers: &[mammoth_core::saga::Timer],
    ) -> Result<(), mammoth_core::StoreError> {
        self.store.upsert(timers).await
    }

    async fn delete(&self, ids: &[uuid::Uuid]) -> Result<(), mammoth_core::StoreError> {
        self.store.delete(ids).await
    }

    async fn due(
        &self,
        saga_type: &str,
        now_micros: i64,
        limit: usize,
    ) -> Result<Vec<mammoth_core::saga::Timer>, mammoth_core::StoreError> {
        self.store.due(saga_type, now_micros, limit).await
    }

    async fn pending(&self) -> Result<Vec<mammoth_core::saga::Timer>, mammoth_core::StoreError> {
        self.store.pending().await
    }
}

mod checkpoints {
    mammoth_testkit::checkpoint_conformance_tests!(super::Sqlite);
}

mod timers {
    mammoth_testkit::timer_conformance_tests!(super::Sqlite);
}
