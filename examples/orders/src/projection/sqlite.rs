//! The [`OrderProjection`] in a SQLite read-model file, and [`OrderSummaries`], which reads
//! its `orders` view on a read-only connection with read-your-writes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mammoth_core::{EventFilter, RecordedEvent, Upcasters};
use mammoth_runtime::{QueryBusBuilder, QueryError, ReadModelProgress};
use mammoth_sqlite::read_model::{EventFailure, SqliteProjection, Tables};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

use super::{
    GetOrderSummary, Milestone, NAME, OrderSummary, RowChange, SUMMARY_COLUMNS, TABLES,
    query_failed, row_changes,
};
use crate::versioning::upcasters;

/// The seed's `OrderProjection` as a [`SqliteProjection`].
#[derive(Debug)]
pub struct OrderProjection {
    upcasters: Upcasters,
    sql: Option<(u32, Statements)>,
}

/// The insert and the update of each [`Milestone`], for one version of the table.
#[derive(Clone, Debug)]
struct Statements {
    insert: String,
    reach: [String; 3],
}

impl Default for OrderProjection {
    fn default() -> Self {
        Self::new()
    }
}

impl OrderProjection {
    /// The projection with the order domain's upcasters.
    pub fn new() -> Self {
        Self {
            upcasters: upcasters(),
            sql: None,
        }
    }

    fn statements(&mut self, tables: &Tables) -> &Statements {
        let version = tables.version();
        if self
            .sql
            .as_ref()
            .is_none_or(|(cached, _)| *cached != version)
        {
            let table = format!("\"{}\"", tables.name("orders"));
            let sql = Statements {
                insert: format!(
                    "INSERT INTO {table} (id, customer, total_cents, status, created_at)
                     VALUES (?1, ?2, ?3, 'pending', ?4)
                     ON CONFLICT (id) DO NOTHING"
                ),
                reach: Milestone::ALL.map(|milestone| milestone.update_sql(&table, "?1", "?2")),
            };
            self.sql = Some((version, sql));
        }
        match &self.sql {
            Some((_, sql)) => sql,
            None => unreachable!("set above"),
        }
    }

    fn apply_one(
        tx: &Transaction<'_>,
        sql: &Statements,
        upcasters: &Upcasters,
        event: &RecordedEvent,
    ) -> Result<(), mammoth_core::HandlerError> {
        for change in row_changes(event, upcasters)? {
            match change {
                RowChange::Insert {
                    id,
                    customer,
                    total_cents,
                    created_at,
                } => {
                    tx.prepare_cached(&sql.insert)?.execute(params![
                        id,
                        customer,
                        total_cents,
                        created_at
                    ])?;
                }
                RowChange::Reach { id, milestone, at } => {
                    tx.prepare_cached(&sql.reach[milestone.index()])?
                        .execute(params![id, at])?;
                }
            }
        }
        Ok(())
    }
}

impl SqliteProjection for OrderProjection {
    fn name(&self) -> &str {
        NAME
    }

    fn filter(&self) -> EventFilter {
        super::filter()
    }

    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }

    fn create(&self, conn: &Connection, tables: &Tables) -> rusqlite::Result<()> {
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS \"{}\" (
                id TEXT PRIMARY KEY NOT NULL,
                customer TEXT NOT NULL,
                total_cents INTEGER NOT NULL,
                status TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                cancelled_at INTEGER,
                paid_at INTEGER,
                confirmed_at INTEGER
            )",
            tables.name("orders")
        ))
    }

    fn apply(
        &mut self,
        tx: &Transaction<'_>,
        tables: &Tables,
        events: &[RecordedEvent],
    ) -> Result<(), EventFailure> {
        let sql = self.statements(tables).clone();
        for (index, event) in events.iter().enumerate() {
            Self::apply_one(tx, &sql, &self.upcasters, event)
                .map_err(|error| EventFailure { index, error })?;
        }
        Ok(())
    }
}

/// Reads the `orders` view of a read-model file, on a read-only connection of its own.
#[derive(Clone, Debug)]
pub struct OrderSummaries {
    path: PathBuf,
    conn: Arc<Mutex<Option<Connection>>>,
}

impl OrderSummaries {
    /// Reads the read-model file at `path` (opened on first use: the runner creates it).
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            conn: Arc::new(Mutex::new(None)),
        }
    }

    /// The order's row, if the projection has seen it.
    ///
    /// # Errors
    /// [`QueryError::Failed`] when the file cannot be read.
    pub fn get(&self, order_id: &str) -> Result<Option<OrderSummary>, QueryError> {
        let failed = query_failed::<rusqlite::Error>;
        let mut guard = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.is_none() {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            *guard = Some(Connection::open_with_flags(&self.path, flags).map_err(failed)?);
        }
        let Some(conn) = guard.as_ref() else {
            return Ok(None);
        };
        conn.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM orders WHERE id = ?1"
        ))
        .and_then(|mut statement| {
            statement
                .query_row([order_id], |row| {
                    Ok(OrderSummary {
                        id: row.get(0)?,
                        customer: row.get(1)?,
                        total_cents: row.get(2)?,
                        status: row.get(3)?,
                        created_at: row.get(4)?,
                        cancelled_at: row.get(5)?,
                        paid_at: row.get(6)?,
                    })
                })
                .optional()
        })
        .map_err(failed)
    }

    /// Registers [`GetOrderSummary`] on `builder`, waiting on `progress` (the runner's
    /// [`mammoth_runtime::projection::ProjectionHandle::progress`]) for read-your-writes.
    pub fn register(
        self,
        builder: QueryBusBuilder,
        progress: impl ReadModelProgress,
    ) -> QueryBusBuilder {
        builder.handle_with_progress(
            move |query: GetOrderSummary| {
                let summaries = self.clone();
                async move {
                    tokio::task::spawn_blocking(move || summaries.get(&query.order_id))
                        .await
                        .map_err(query_failed)?
                }
            },
            progress,
        )
    }
}
