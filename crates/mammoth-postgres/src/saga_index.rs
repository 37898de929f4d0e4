//! [`PgSagaIndex`]: the saga index in PostgreSQL — one row per saga (type, id, status,
//! reason, started, updated, steps) over the saga streams, kept in the read-model schema of a
//! [`PgReadModelDb`] by [`crate::read_model::PgReadModel`], with its checkpoint in the same
//! transaction. [`list`] and [`counts`] read its `saga_index` view (the active version).
//!
//! It is `mammoth_sqlite::saga::SagaIndex` on PostgreSQL: the same projection name, filter,
//! columns and upsert, and queries that return the same [`SagaRow`]s and [`SagaCount`]s in the
//! same order. Types and ids are `TEXT COLLATE "C"`, so they sort byte for byte as SQLite's
//! `TEXT` does, whatever the database's default collation.
//!
//! One difference: PostgreSQL text cannot hold a NUL character, which a service's rejection
//! reason might carry. The index stores such a reason with each NUL replaced by U+FFFD
//! rather than stall the projection on it (types and ids are stream-id parts, which hold no
//! control characters).
//!
//! ```no_run
//! # async fn demo(store: mammoth_postgres::PgEventStore) -> Result<(), Box<dyn std::error::Error>> {
//! use mammoth_postgres::read_model::{PgReadModel, PgReadModelDb};
//! use mammoth_postgres::saga_index::{self, PgSagaIndex};
//! use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
//!
//! let db = PgReadModelDb::beside(&store, "mammoth_read").await?;
//! let target = PgReadModel::open(&db, PgSagaIndex);
//! let mut runner = ProjectionRunner::new(store, target, ProjectionOptions::default());
//! runner.catch_up(None, |_, _| {}).await?;
//! let failed = saga_index::list(&db, None, Some(mammoth_core::saga::SagaStatus::Failed), 50).await?;
//! # drop(failed); Ok(()) }
//! ```

use mammoth_core::saga::{SAGA_CATEGORY, SAGA_STEPPED, SagaStatus, SagaStepped};
use mammoth_core::{EventFilter, ProjectionError, RecordedEvent};
use serde::Deserialize;
use tokio_postgres::Transaction;
use tokio_postgres::error::SqlState;

use crate::read_model::{EventFailure, PgProjection, PgReadModelDb, Tables};

pub use mammoth_core::saga::{SAGA_INDEX, SagaCount, SagaRow};

const TABLES: &[&str] = &[SAGA_INDEX];

/// The saga index as a [`PgProjection`]: the same name ([`SAGA_INDEX`]), filter, columns and
/// rows as `mammoth_sqlite::saga::SagaIndex`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PgSagaIndex;

impl PgProjection for PgSagaIndex {
    fn name(&self) -> &str {
        SAGA_INDEX
    }

    fn filter(&self) -> EventFilter {
        EventFilter::all()
            .with_categories([SAGA_CATEGORY])
            .with_types([SAGA_STEPPED])
    }

    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }

    async fn create(
        &self,
        tx: &Transaction<'_>,
        tables: &Tables,
    ) -> Result<(), tokio_postgres::Error> {
        let table = tables.name(SAGA_INDEX);
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" (
                saga_type TEXT COLLATE \"C\" NOT NULL,
                saga_id TEXT COLLATE \"C\" NOT NULL,
                status TEXT COLLATE \"C\" NOT NULL,
                reason TEXT,
                started_micros BIGINT NOT NULL,
                updated_micros BIGINT NOT NULL,
                steps BIGINT NOT NULL,
                PRIMARY KEY (saga_type, saga_id)
            );
            CREATE INDEX IF NOT EXISTS \"{table}_status\" ON \"{table}\" (saga_type, status)"
        ))
        .await
    }

    async fn apply(
        &mut self,
        tx: &Transaction<'_>,
        tables: &Tables,
        events: &[RecordedEvent],
    ) -> Result<(), EventFailure> {
        if events.is_empty() {
            return Ok(());
        }
        let upsert = tx
            .prepare(&format!(
                "INSERT INTO \"{}\" (saga_type, saga_id, status, reason, started_micros,
                     updated_micros, steps)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (saga_type, saga_id) DO UPDATE SET status = excluded.status,
                     reason = excluded.reason, updated_micros = excluded.updated_micros,
                     steps = excluded.steps",
                tables.name(SAGA_INDEX)
            ))
            .await
            .map_err(|error| EventFailure {
                index: 0,
                error: Box::new(error),
            })?;
        for (index, event) in events.iter().enumerate() {
            let fail =
                |error: Box<dyn std::error::Error + Send + Sync>| EventFailure { index, error };
            let record = stepped(event).map_err(fail)?;
            let reason = record.reason.map(|reason| reason.replace('\0', "\u{FFFD}"));
            tx.execute(
                &upsert,
                &[
                    &record.saga_type,
                    &record.saga_id,
                    &record.status.label(),
                    &reason,
                    &record.started_micros,
                    &event.recorded_at_micros,
                    &i64::try_from(record.steps).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(|error| fail(Box::new(error)))?;
        }
        Ok(())
    }
}

/// The step record `event` carries.
fn stepped(event: &RecordedEvent) -> Result<SagaStepped, Box<dyn std::error::Error + Send + Sync>> {
    let value = event.data_json()?;
    Ok(SagaStepped::deserialize(value)?)
}

/// The sagas in the index (read through its view), optionally of one type and one status,
/// newest first (latest step; ties by type, then id, byte for byte), at most `limit`.
///
/// # Errors
/// [`ProjectionError::ReadModel`] when the database cannot be reached, or the view does not
/// exist yet (it is created when the index first runs).
pub async fn list(
    db: &PgReadModelDb,
    saga_type: Option<&str>,
    status: Option<SagaStatus>,
    limit: usize,
) -> Result<Vec<SagaRow>, ProjectionError> {
    let action = "listing sagas";
    let client = db
        .pool()
        .get()
        .await
        .map_err(|error| read_failed(action, format!("no database connection: {error}")))?;
    let sql = format!(
        "SELECT saga_type, saga_id, status, reason, started_micros, updated_micros, steps
         FROM {}
         WHERE ($1::text IS NULL OR saga_type = $1) AND ($2::text IS NULL OR status = $2)
         ORDER BY updated_micros DESC, saga_type COLLATE \"C\", saga_id COLLATE \"C\"
         LIMIT $3",
        db.view(SAGA_INDEX)
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(&sql, &[&saga_type, &status.map(SagaStatus::label), &limit])
        .await
        .map_err(|error| query_failed(db, action, &error))?;
    rows.iter()
        .map(|row| {
            Ok(SagaRow {
                saga_type: row.try_get(0)?,
                saga_id: row.try_get(1)?,
                status: row.try_get(2)?,
                reason: row.try_get(3)?,
                started_micros: row.try_get(4)?,
                updated_micros: row.try_get(5)?,
                steps: u64::try_from(row.try_get::<_, i64>(6)?).unwrap_or(0),
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(|error| query_failed(db, action, &error))
}

/// The number of sagas per type and status, sorted by type then status (byte for byte).
///
/// # Errors
/// As [`list`].
pub async fn counts(db: &PgReadModelDb) -> Result<Vec<SagaCount>, ProjectionError> {
    let action = "counting sagas";
    let client = db
        .pool()
        .get()
        .await
        .map_err(|error| read_failed(action, format!("no database connection: {error}")))?;
    let sql = format!(
        "SELECT saga_type, status, COUNT(*) FROM {}
         GROUP BY saga_type, status ORDER BY saga_type COLLATE \"C\", status COLLATE \"C\"",
        db.view(SAGA_INDEX)
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|error| query_failed(db, action, &error))?;
    rows.iter()
        .map(|row| {
            Ok(SagaCount {
                saga_type: row.try_get(0)?,
                status: row.try_get(1)?,
                count: u64::try_from(row.try_get::<_, i64>(2)?).unwrap_or(0),
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(|error| query_failed(db, action, &error))
}

fn read_failed(action: &'static str, message: String) -> ProjectionError {
    ProjectionError::ReadModel {
        projection: SAGA_INDEX.to_owned(),
        action,
        message,
    }
}

/// The failure `error` of a query, naming the fix when the view is missing.
fn query_failed(
    db: &PgReadModelDb,
    action: &'static str,
    error: &tokio_postgres::Error,
) -> ProjectionError {
    let message = match error.as_db_error() {
        Some(db_error) if db_error.code() == &SqlState::UNDEFINED_TABLE => format!(
            "{} does not exist in schema {:?}: run the {SAGA_INDEX} projection (PgSagaIndex) once so it creates it",
            db.view(SAGA_INDEX),
            db.schema()
        ),
        Some(db_error) => format!("{}: {}", db_error.code().code(), db_error.message()),
        None => error.to_string(),
    };
    read_failed(action, message)
}
