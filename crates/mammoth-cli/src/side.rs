//! [`SideStores`]: where the app's saga runners keep their deadlines and checkpoints — beside
//! the events when the store is PostgreSQL or MySQL (the driver's own tables, in the same
//! schema or database), in the SQLite side file otherwise (the event store's own file on
//! SQLite, so one file holds everything).

use std::path::Path;

use mammoth_core::saga::{Timer, TimerStore};
use mammoth_core::{CheckpointStore, Position, StoreError};
use mammoth_mysql::{MysqlCheckpointStore, MysqlTimerStore};
use mammoth_postgres::{PgCheckpointStore, PgTimerStore};
use mammoth_sqlite::{SqliteCheckpointStore, SqliteTimerStore};
use uuid::Uuid;

use crate::store::AnyStore;

/// Saga deadlines in the backend's own place.
#[derive(Clone)]
pub(crate) enum AnyTimers {
    Sqlite(SqliteTimerStore),
    Postgres(PgTimerStore),
    Mysql(MysqlTimerStore),
}

/// Checkpoints in the backend's own place.
#[derive(Clone)]
pub(crate) enum AnyCheckpoints {
    Sqlite(SqliteCheckpointStore),
    Postgres(PgCheckpointStore),
    Mysql(MysqlCheckpointStore),
}

/// Opens the deadline and checkpoint stores for `store`; `side` is the SQLite file used when
/// the store has no tables of its own for them.
///
/// # Errors
/// The SQLite file cannot be opened.
pub(crate) fn open(
    store: &AnyStore,
    side: &Path,
) -> Result<(AnyTimers, AnyCheckpoints), StoreError> {
    Ok(match store {
        AnyStore::Postgres(pg) => (
            AnyTimers::Postgres(PgTimerStore::new(pg)),
            AnyCheckpoints::Postgres(PgCheckpointStore::new(pg)),
        ),
        AnyStore::Mysql(my) => (
            AnyTimers::Mysql(MysqlTimerStore::new(my)),
            AnyCheckpoints::Mysql(MysqlCheckpointStore::new(my)),
        ),
        AnyStore::Sqlite(_) | AnyStore::Memory(_) => (
            AnyTimers::Sqlite(SqliteTimerStore::open(side)?),
            AnyCheckpoints::Sqlite(SqliteCheckpointStore::open(side)?),
        ),
    })
}

macro_rules! each {
    ($enum:ident, $value:expr, $inner:ident => $body:expr) => {
        match $value {
            $enum::Sqlite($inner) => $body,
            $enum::Postgres($inner) => $body,
            $enum::Mysql($inner) => $body,
        }
    };
}

impl TimerStore for AnyTimers {
    async fn upsert(&self, timers: &[Timer]) -> Result<(), StoreError> {
        each!(AnyTimers, self, inner => inner.upsert(timers).await)
    }

    async fn delete(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        each!(AnyTimers, self, inner => inner.delete(ids).await)
    }

    async fn due(
        &self,
        saga_type: &str,
        now_micros: i64,
        limit: usize,
    ) -> Result<Vec<Timer>, StoreError> {
        each!(AnyTimers, self, inner => inner.due(saga_type, now_micros, limit).await)
    }

    async fn pending(&self) -> Result<Vec<Timer>, StoreError> {
        each!(AnyTimers, self, inner => inner.pending().await)
    }
}

impl CheckpointStore for AnyCheckpoints {
    async fn load(&self, name: &str) -> Result<Option<Position>, StoreError> {
        each!(AnyCheckpoints, self, inner => inner.load(name).await)
    }

    async fn save(&self, name: &str, position: Position) -> Result<(), StoreError> {
        each!(AnyCheckpoints, self, inner => inner.save(name, position).await)
    }

    async fn list(&self) -> Result<Vec<(String, Position)>, StoreError> {
        each!(AnyCheckpoints, self, inner => inner.list().await)
    }
}
