//! [`MysqlSagaIndex`]: the saga index in MySQL/MariaDB — one row per saga (type, id, status,
//! reason, started, updated, steps) over the saga streams, kept in a [`ReadModelDatabase`] by
//! [`crate::read_model::MysqlReadModel`], with its checkpoint in the same transaction.
//! [`list`] and [`counts`] read its `saga_index` view (the active version).
//!
//! It is `mammoth_sqlite::saga::SagaIndex` on MySQL: the same projection name, filter,
//! columns and upsert, and queries that return the same [`SagaRow`]s and [`SagaCount`]s in the
//! same order. Types and ids are `VARBINARY`, as the event store's stream ids are: compared
//! and sorted byte for byte as SQLite's `TEXT` is (a `VARCHAR` under MySQL's usual collations
//! would merge `A` and `a` into one saga and sort them apart from SQLite).
//!
//! ```no_run
//! # async fn demo(store: mammoth_mysql::MysqlEventStore) -> Result<(), Box<dyn std::error::Error>> {
//! use mammoth_mysql::read_model::{MysqlReadModel, ReadModelDatabase};
//! use mammoth_mysql::saga_index::{self, MysqlSagaIndex};
//! use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
//!
//! let db = ReadModelDatabase::connect("mysql://root@127.0.0.1:3306/app", None)?;
//! let target = MysqlReadModel::open(&db, MysqlSagaIndex).await?;
//! let mut runner = ProjectionRunner::new(store, target, ProjectionOptions::default());
//! runner.catch_up(None, |_, _| {}).await?;
//! let failed = saga_index::list(&db, None, Some(mammoth_core::saga::SagaStatus::Failed), 50).await?;
//! # drop(failed); Ok(()) }
//! ```

use mammoth_core::saga::{SAGA_CATEGORY, SAGA_STEPPED, SagaStatus, SagaStepped};
use mammoth_core::{EventFilter, ProjectionError, RecordedEvent};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Transaction};
use serde::Deserialize;

use crate::read_model::{EventFailure, MysqlProjection, ReadModelDatabase, Tables};

pub use mammoth_core::saga::{SAGA_INDEX, SagaCount, SagaRow};

const TABLES: &[&str] = &[SAGA_INDEX];

/// The longest saga type or id, in bytes, the key columns hold: a whole stream id's worth
/// (both are parts of `$saga-<type>-<id>`, at most 255 bytes).
const KEY_BYTES: usize = 255;

/// MySQL's error for a table or view that does not exist.
const NO_SUCH_TABLE: u16 = 1146;

/// The saga index as a [`MysqlProjection`]: the same name ([`SAGA_INDEX`]), filter, columns
/// and rows as `mammoth_sqlite::saga::SagaIndex`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MysqlSagaIndex;

impl MysqlProjection for MysqlSagaIndex {
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

    async fn create(&self, conn: &mut Conn, tables: &Tables) -> mysql_async::Result<()> {
        let table = tables.name(SAGA_INDEX);
        conn.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS `{table}` (
                saga_type VARBINARY({KEY_BYTES}) NOT NULL,
                saga_id VARBINARY({KEY_BYTES}) NOT NULL,
                status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
                reason MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
                started_micros BIGINT NOT NULL,
                updated_micros BIGINT NOT NULL,
                steps BIGINT NOT NULL,
                PRIMARY KEY (saga_type, saga_id),
                KEY `{table}_status` (saga_type, status)
            ) ENGINE=InnoDB"
        ))
        .await
    }

    async fn apply(
        &mut self,
        tx: &mut Transaction<'_>,
        tables: &Tables,
        events: &[RecordedEvent],
    ) -> Result<(), EventFailure> {
        let upsert = format!(
            "INSERT INTO `{}` (saga_type, saga_id, status, reason, started_micros,
                 updated_micros, steps)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON DUPLICATE KEY UPDATE status = VALUES(status), reason = VALUES(reason),
                 updated_micros = VALUES(updated_micros), steps = VALUES(steps)",
            tables.name(SAGA_INDEX)
        );
        for (index, event) in events.iter().enumerate() {
            let fail =
                |error: Box<dyn std::error::Error + Send + Sync>| EventFailure { index, error };
            let record = stepped(event).map_err(fail)?;
            tx.exec_drop(
                upsert.as_str(),
                (
                    record.saga_type.as_bytes(),
                    record.saga_id.as_bytes(),
                    record.status.label(),
                    record.reason.as_deref(),
                    record.started_micros,
                    event.recorded_at_micros,
                    i64::try_from(record.steps).unwrap_or(i64::MAX),
                ),
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

/// A [`SagaRow`] as MySQL returns it.
type Row = (Vec<u8>, Vec<u8>, String, Option<String>, i64, i64, i64);

/// The sagas in the index (read through its view), optionally of one type and one status,
/// newest first (latest step; ties by type, then id, byte for byte), at most `limit`.
///
/// # Errors
/// [`ProjectionError::ReadModel`] when the server cannot be reached, or the database or the
/// view does not exist yet (they are created when the index first runs).
pub async fn list(
    db: &ReadModelDatabase,
    saga_type: Option<&str>,
    status: Option<SagaStatus>,
    limit: usize,
) -> Result<Vec<SagaRow>, ProjectionError> {
    let action = "listing sagas";
    let mut conn = db.conn().await?;
    let sql = format!(
        "SELECT saga_type, saga_id, status, reason, started_micros, updated_micros, steps
         FROM {}
         WHERE (? IS NULL OR saga_type = ?) AND (? IS NULL OR status = ?)
         ORDER BY updated_micros DESC, saga_type, saga_id LIMIT ?",
        db.qualified(SAGA_INDEX)
    );
    let saga_type = saga_type.map(str::as_bytes);
    let status = status.map(SagaStatus::label);
    let limit = u64::try_from(limit)
        .unwrap_or(u64::MAX)
        .min(i64::MAX as u64);
    let rows: Vec<Row> = conn
        .exec(sql.as_str(), (saga_type, saga_type, status, status, limit))
        .await
        .map_err(|error| query_failed(db, action, &error))?;
    rows.into_iter()
        .map(
            |(saga_type, saga_id, status, reason, started_micros, updated_micros, steps)| {
                Ok(SagaRow {
                    saga_type: text(action, saga_type)?,
                    saga_id: text(action, saga_id)?,
                    status,
                    reason,
                    started_micros,
                    updated_micros,
                    steps: u64::try_from(steps).unwrap_or(0),
                })
            },
        )
        .collect()
}

/// The number of sagas per type and status, sorted by type then status (byte for byte).
///
/// # Errors
/// As [`list`].
pub async fn counts(db: &ReadModelDatabase) -> Result<Vec<SagaCount>, ProjectionError> {
    let action = "counting sagas";
    let mut conn = db.conn().await?;
    let sql = format!(
        "SELECT saga_type, status, COUNT(*) FROM {}
         GROUP BY saga_type, status ORDER BY saga_type, status",
        db.qualified(SAGA_INDEX)
    );
    let rows: Vec<(Vec<u8>, String, i64)> = conn
        .query(sql)
        .await
        .map_err(|error| query_failed(db, action, &error))?;
    rows.into_iter()
        .map(|(saga_type, status, count)| {
            Ok(SagaCount {
                saga_type: text(action, saga_type)?,
                status,
                count: u64::try_from(count).unwrap_or(0),
            })
        })
        .collect()
}

/// A key column's bytes as text: the index writes only text there, so anything else was put
/// in behind its back.
fn text(action: &'static str, bytes: Vec<u8>) -> Result<String, ProjectionError> {
    String::from_utf8(bytes).map_err(|error| ProjectionError::ReadModel {
        projection: SAGA_INDEX.to_owned(),
        action,
        message: format!(
            "a saga type or id in the index is not UTF-8 ({error}); rebuild the {SAGA_INDEX} projection"
        ),
    })
}

/// The failure `error` of a query, naming the fix when the view is missing.
fn query_failed(
    db: &ReadModelDatabase,
    action: &'static str,
    error: &mysql_async::Error,
) -> ProjectionError {
    let message = match error {
        mysql_async::Error::Server(server) if server.code == NO_SUCH_TABLE => format!(
            "{} does not exist: run the {SAGA_INDEX} projection (MysqlSagaIndex) once so it creates it",
            db.qualified(SAGA_INDEX)
        ),
        _ => error.to_string(),
    };
    ProjectionError::ReadModel {
        projection: SAGA_INDEX.to_owned(),
        action,
        message,
    }
}
