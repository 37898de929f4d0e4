//! The checkpoint and saga timer conformance suites against PostgreSQL: every store in a
//! schema of its own, dropped with its last handle. Needs MAMMOTH_TEST_POSTGRES_URL (skips
//! with a note without it, fails under CI=true).

// The event store tests' factory: this binary uses only part of it.
#[allow(dead_code)]
#[path = "postgres/common.rs"]
mod common;

use mammoth_core::saga::{Timer, TimerStore};
use mammoth_core::{CheckpointStore, Position, StoreError};
use mammoth_postgres::{PgCheckpointStore, PgTimerStore};
use mammoth_testkit::{CheckpointFactory, StoreFactory, TimerFactory};
use uuid::Uuid;

use common::{PgFactory, TestStore, factory};

/// A side store and the event store (with its schema guard) it shares a pool with.
pub struct Side<S> {
    side: S,
    events: TestStore,
}

async fn reopen_events(factory: &PgFactory, events: TestStore) -> TestStore {
    StoreFactory::reopen(factory, events)
        .await
        .expect("a PostgreSQL store reopens")
}

impl CheckpointFactory for PgFactory {
    type Store = Side<PgCheckpointStore>;

    async fn fresh(&self) -> Self::Store {
        let events = StoreFactory::fresh(self).await;
        let side = PgCheckpointStore::new(&events.store);
        Side { side, events }
    }

    async fn reopen(&self, store: Self::Store) -> Option<Self::Store> {
        let Side { side, events } = store;
        drop(side);
        let events = reopen_events(self, events).await;
        let side = PgCheckpointStore::new(&events.store);
        Some(Side { side, events })
    }
}

impl TimerFactory for PgFactory {
    type Store = Side<PgTimerStore>;

    async fn fresh(&self) -> Self::Store {
        let events = StoreFactory::fresh(self).await;
        let side = PgTimerStore::new(&events.store);
        Side { side, events }
    }

    async fn reopen(&self, store: Self::Store) -> Option<Self::Store> {
        let Side { side, events } = store;
        drop(side);
        let events = reopen_events(self, events).await;
        let side = PgTimerStore::new(&events.store);
        Some(Side { side, events })
    }
}

impl CheckpointStore for Side<PgCheckpointStore> {
    async fn load(&self, name: &str) -> Result<Option<Position>, StoreError> {
        self.side.load(name).await
    }

    async fn save(&self, name: &str, position: Position) -> Result<(), StoreError> {
        self.side.save(name, position).await
    }

    async fn list(&self) -> Result<Vec<(String, Position)>, StoreError> {
        self.side.list().await
    }
}

impl TimerStore for Side<PgTimerStore> {
    async fn upsert(&self, timers: &[Timer]) -> Result<(), StoreError> {
        self.side.upsert(timers).await
    }

    async fn delete(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        self.side.delete(ids).await
    }

    async fn due(
        &self,
        saga_type: &str,
        now_micros: i64,
        limit: usize,
    ) -> Result<Vec<Timer>, StoreError> {
        self.side.due(saga_type, now_micros, limit).await
    }

    async fn pending(&self) -> Result<Vec<Timer>, StoreError> {
        self.side.pending().await
    }
}

mod checkpoints {
    mammoth_testkit::checkpoint_conformance_tests!({
        match super::factory() {
            Some(factory) => factory,
            None => return,
        }
    });
}

mod timers {
    mammoth_testkit::timer_conformance_tests!({
        match super::factory() {
            Some(factory) => factory,
            None => return,
        }
    });
}

/// A position beyond PostgreSQL's bigint is refused with an error naming the checkpoint,
/// and the stored one is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_beyond_bigint_is_refused_and_the_old_one_kept() {
    let Some(factory) = factory() else { return };
    let store = CheckpointFactory::fresh(&factory).await;
    store.save("relay", 5).await.expect("save");
    let error = store
        .save("relay", u64::MAX)
        .await
        .expect_err("u64::MAX does not fit");
    assert!(error.to_string().contains("\"relay\""), "{error}");
    assert_eq!(store.load("relay").await.expect("load"), Some(5));
}
