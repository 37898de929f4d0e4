//! The seed's `OrderProjection`: an `orders` table (id, customer, total, status, created,
//! cancelled and paid times) built from the order events, in a SQLite read-model file, and
//! the [`GetOrderSummary`] query that reads it with read-your-writes.
//!
//! Unlike the seed's PHP, each batch of events and the checkpoint are written in one
//! transaction (exactly once across crashes), old `OrderCreated` v1 events are upcast before
//! they are applied, and times come from the events, so a replay builds the same rows.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<mammoth_sqlite::SqliteEventStore>) -> Result<(), Box<dyn std::error::Error>> {
//! use mammoth_example_orders::projection::OrderProjection;
//! use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
//! use mammoth_sqlite::SqliteReadModel;
//!
//! let target = SqliteReadModel::open("./mammoth-data/read_models.db", OrderProjection::new())?;
//! let handle = ProjectionRunner::new(store, target, ProjectionOptions::default()).spawn();
//! println!("lag: {}", handle.status().lag);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mammoth_core::{EventFilter, RecordedEvent, Upcasters, decode_recorded};
use mammoth_runtime::{Query, QueryBusBuilder, QueryError, ReadModelProgress};
use mammoth_sqlite::read_model::{EventFailure, SqliteProjection, Tables};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::order::OrderEvent;
use crate::versioning::upcasters;

/// The projection's name: its key in the read-model file and in `mammoth.tsk`.
pub const NAME: &str = "orders";

/// The tables it owns.
pub const TABLES: &[&str] = &["orders"];

/// The event types it reads.
pub const EVENT_TYPES: [&str; 4] = [
    "OrderCreated",
    "OrderCancelled",
    "OrderPaid",
    "OrderConfirmed",
];

/// The seed's `OrderProjection` as a [`SqliteProjection`].
#[derive(Debug)]
pub struct OrderProjection {
    upcasters: Upcasters,
    sql: Option<(u32, [String; 4])>,
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

    fn statements(&mut self, tables: &Tables) -> &[String; 4] {
        let version = tables.version();
        if self
            .sql
            .as_ref()
            .is_none_or(|(cached, _)| *cached != version)
        {
            let table = tables.name("orders");
            let update = |set: &str| format!("UPDATE \"{table}\" SET {set} WHERE id = ?1");
            let sql = [
                format!(
                    "INSERT INTO \"{table}\" (id, customer, total_cents, status, created_at)
                     VALUES (?1, ?2, ?3, 'pending', ?4)
                     ON CONFLICT (id) DO NOTHING"
                ),
                update("status = 'cancelled', cancelled_at = ?2"),
                update("status = 'paid', paid_at = ?2"),
                update("status = 'confirmed', confirmed_at = ?2"),
            ];
            self.sql = Some((version, sql));
        }
        match &self.sql {
            Some((_, sql)) => sql,
            None => unreachable!("set above"),
        }
    }

    fn apply_one(
        tx: &Transaction<'_>,
        sql: &[String; 4],
        upcasters: &Upcasters,
        event: &RecordedEvent,
    ) -> Result<(), mammoth_core::HandlerError> {
        let at = event.recorded_at_micros;
        for decoded in decode_recorded::<OrderEvent>(event, upcasters)? {
            match decoded {
                OrderEvent::OrderCreated {
                    order_id,
                    customer_id,
                    total_cents,
                    ..
                } => {
                    let total = i64::try_from(total_cents)?;
                    tx.prepare_cached(&sql[0])?.execute(params![
                        order_id,
                        customer_id,
                        total,
                        at
                    ])?;
                }
                OrderEvent::OrderCancelled { order_id, .. } => {
                    tx.prepare_cached(&sql[1])?.execute(params![order_id, at])?;
                }
                OrderEvent::OrderPaid { order_id, .. } => {
                    tx.prepare_cached(&sql[2])?.execute(params![order_id, at])?;
                }
                OrderEvent::OrderConfirmed { order_id } => {
                    tx.prepare_cached(&sql[3])?.execute(params![order_id, at])?;
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
        EventFilter::all()
            .with_categories(["order"])
            .with_types(EVENT_TYPES)
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

/// A row of the `orders` read model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderSummary {
    /// The order's id.
    pub id: String,
    /// Who ordered.
    pub customer: String,
    /// The total in cents.
    pub total_cents: i64,
    /// `pending`, `paid`, `confirmed` or `cancelled`.
    pub status: String,
    /// When it was created, in microseconds since the Unix epoch (the event's commit time).
    pub created_at: i64,
    /// When it was cancelled.
    pub cancelled_at: Option<i64>,
    /// When it was paid.
    pub paid_at: Option<i64>,
}

/// Look an order up in the `orders` read model (not in the event store).
#[derive(Clone, Debug)]
pub struct GetOrderSummary {
    /// The order's id.
    pub order_id: String,
}

impl Query for GetOrderSummary {
    type Output = Option<OrderSummary>;
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
        let failed = |error: rusqlite::Error| QueryError::Failed {
            query: "GetOrderSummary",
            message: error.to_string(),
        };
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
        conn.prepare_cached(
            "SELECT id, customer, total_cents, status, created_at, cancelled_at, paid_at
             FROM orders WHERE id = ?1",
        )
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
                        .map_err(|error| QueryError::Failed {
                            query: "GetOrderSummary",
                            message: error.to_string(),
                        })?
                }
            },
            progress,
        )
    }
}
