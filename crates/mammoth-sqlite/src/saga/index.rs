//! [`SagaIndex`]: a SQL read model over the saga streams, one row per saga (type, id,
//! status, reason, started, updated, steps), kept with its checkpoint in one transaction by
//! [`crate::SqliteReadModel`]. [`list`] and [`counts`] query it through its view.

use mammoth_core::saga::{SAGA_CATEGORY, SAGA_STEPPED, SagaStatus, SagaStepped};
use mammoth_core::{EventFilter, RecordedEvent};
use rusqlite::{Connection, Transaction, params};

use crate::read_model::{EventFailure, SqliteProjection, Tables};

pub use mammoth_core::saga::{SAGA_INDEX, SagaCount, SagaRow};

const TABLES: &[&str] = &[SAGA_INDEX];

/// The saga index read model.
#[derive(Clone, Copy, Debug, Default)]
pub struct SagaIndex;

impl SqliteProjection for SagaIndex {
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

    fn create(&self, conn: &Connection, tables: &Tables) -> rusqlite::Result<()> {
        let table = tables.name(SAGA_INDEX);
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" (
                saga_type TEXT NOT NULL,
                saga_id TEXT NOT NULL,
                status TEXT NOT NULL,
                reason TEXT,
                started_micros INTEGER NOT NULL,
                updated_micros INTEGER NOT NULL,
                steps INTEGER NOT NULL,
                PRIMARY KEY (saga_type, saga_id)
            );
            CREATE INDEX IF NOT EXISTS \"{table}_status\" ON \"{table}\" (saga_type, status)"
        ))
    }

    fn apply(
        &mut self,
        tx: &Transaction<'_>,
        tables: &Tables,
        events: &[RecordedEvent],
    ) -> Result<(), EventFailure> {
        let sql = format!(
            "INSERT INTO \"{}\" (saga_type, saga_id, status, reason, started_micros,
                 updated_micros, steps)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (saga_type, saga_id) DO UPDATE SET status = excluded.status,
                 reason = excluded.reason, updated_micros = excluded.updated_micros,
                 steps = excluded.steps",
            tables.name(SAGA_INDEX)
        );
        for (index, event) in events.iter().enumerate() {
            let fail =
                |error: Box<dyn std::error::Error + Send + Sync>| EventFailure { index, error };
            let record: SagaStepped =
                serde_json::from_str(&event.data).map_err(|error| fail(Box::new(error)))?;
            tx.prepare_cached(&sql)
                .and_then(|mut insert| {
                    insert.execute(params![
                        record.saga_type,
                        record.saga_id,
                        record.status.label(),
                        record.reason,
                        record.started_micros,
                        event.recorded_at_micros,
                        i64::try_from(record.steps).unwrap_or(i64::MAX),
                    ])
                })
                .map_err(|error| fail(Box::new(error)))?;
        }
        Ok(())
    }
}

/// The sagas in the index (read through its view), optionally of one type and one status,
/// newest first, at most `limit`.
///
/// # Errors
/// SQLite errors (the view is missing until the index has been built once).
pub fn list(
    conn: &Connection,
    saga_type: Option<&str>,
    status: Option<SagaStatus>,
    limit: usize,
) -> rusqlite::Result<Vec<SagaRow>> {
    let mut statement = conn.prepare(&format!(
        "SELECT saga_type, saga_id, status, reason, started_micros, updated_micros, steps
         FROM \"{SAGA_INDEX}\"
         WHERE (?1 IS NULL OR saga_type = ?1) AND (?2 IS NULL OR status = ?2)
         ORDER BY updated_micros DESC, saga_type, saga_id LIMIT ?3"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(
        params![saga_type, status.map(SagaStatus::label), limit],
        |row| {
            Ok(SagaRow {
                saga_type: row.get(0)?,
                saga_id: row.get(1)?,
                status: row.get(2)?,
                reason: row.get(3)?,
                started_micros: row.get(4)?,
                updated_micros: row.get(5)?,
                steps: u64::try_from(row.get::<_, i64>(6)?).unwrap_or(0),
            })
        },
    )?;
    rows.collect()
}

/// The number of sagas per type and status, sorted by type then status.
///
/// # Errors
/// SQLite errors (the view is missing until the index has been built once).
pub fn counts(conn: &Connection) -> rusqlite::Result<Vec<SagaCount>> {
    let mut statement = conn.prepare(&format!(
        "SELECT saga_type, status, COUNT(*) FROM \"{SAGA_INDEX}\"
         GROUP BY saga_type, status ORDER BY saga_type, status"
    ))?;
    let rows = statement.query_map([], |row| {
        Ok(SagaCount {
            saga_type: row.get(0)?,
            status: row.get(1)?,
            count: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
        })
    })?;
    rows.collect()
}
