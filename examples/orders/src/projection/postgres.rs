//! The order projection in PostgreSQL: [`PgOrderProjection`] keeps the `orders` table in the
//! read-model schema of a [`PgReadModelDb`] (run it with
//! [`mammoth_postgres::read_model::PgReadModel`]), and [`PgOrderSummaries`] reads its `orders`
//! view, the active version, from the same pool.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<mammoth_postgres::PgEventStore>) -> Result<(), Box<dyn std::error::Error>> {
//! use mammoth_example_orders::projection::{PgOrderProjection, PgOrderSummaries};
//! use mammoth_postgres::read_model::{PgReadModel, PgReadModelDb};
//! use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
//!
//! let db = PgReadModelDb::beside(&store, "mammoth_read").await?;
//! let target = PgReadModel::open(&db, PgOrderProjection::new());
//! let handle = ProjectionRunner::new(store, target, ProjectionOptions::default()).spawn();
//! let summary = PgOrderSummaries::new(db).get("42").await?;
//! # drop((handle, summary)); Ok(()) }
//! ```

use mammoth_core::{EventFilter, HandlerError, RecordedEvent, Upcasters};
use mammoth_postgres::read_model::{EventFailure, PgProjection, PgReadModelDb, Tables};
use mammoth_runtime::{QueryBusBuilder, QueryError, ReadModelProgress};
use tokio_postgres::{Statement, Transaction};

use super::{
    GetOrderSummary, Milestone, NAME, OrderSummary, RowChange, SUMMARY_COLUMNS, TABLES,
    query_failed, row_changes,
};
use crate::versioning::upcasters;

/// The order projection as a [`PgProjection`]: the same name, filter, columns and rows as
/// [`super::OrderProjection`].
#[derive(Debug)]
pub struct PgOrderProjection {
    upcasters: Upcasters,
}

impl Default for PgOrderProjection {
    fn default() -> Self {
        Self::new()
    }
}

impl PgOrderProjection {
    /// The projection with the order domain's upcasters.
    pub fn new() -> Self {
        Self {
            upcasters: upcasters(),
        }
    }
}

/// The insert and the update of each [`Milestone`], prepared in one batch's transaction.
struct Prepared {
    insert: Statement,
    reach: Vec<Statement>,
}

impl Prepared {
    async fn new(tx: &Transaction<'_>, tables: &Tables) -> Result<Self, tokio_postgres::Error> {
        let table = format!("\"{}\"", tables.name("orders"));
        let insert = tx
            .prepare(&format!(
                "INSERT INTO {table} (id, customer, total_cents, status, created_at)
                 VALUES ($1, $2, $3, 'pending', $4)
                 ON CONFLICT (id) DO NOTHING"
            ))
            .await?;
        let mut reach = Vec::with_capacity(Milestone::ALL.len());
        for milestone in Milestone::ALL {
            reach.push(
                tx.prepare(&milestone.update_sql(&table, "$1", "$2"))
                    .await?,
            );
        }
        Ok(Self { insert, reach })
    }

    async fn apply_one(
        &self,
        tx: &Transaction<'_>,
        upcasters: &Upcasters,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        for change in row_changes(event, upcasters)? {
            match change {
                RowChange::Insert {
                    id,
                    customer,
                    total_cents,
                    created_at,
                } => {
                    tx.execute(&self.insert, &[&id, &customer, &total_cents, &created_at])
                        .await?;
                }
                RowChange::Reach { id, milestone, at } => {
                    tx.execute(&self.reach[milestone.index()], &[&id, &at])
                        .await?;
                }
            }
        }
        Ok(())
    }
}

impl PgProjection for PgOrderProjection {
    fn name(&self) -> &str {
        NAME
    }

    fn filter(&self) -> EventFilter {
        super::filter()
    }

    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }

    async fn create(
        &self,
        tx: &Transaction<'_>,
        tables: &Tables,
    ) -> Result<(), tokio_postgres::Error> {
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS \"{}\" (
                id TEXT PRIMARY KEY NOT NULL,
                customer TEXT NOT NULL,
                total_cents BIGINT NOT NULL,
                status TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                cancelled_at BIGINT,
                paid_at BIGINT,
                confirmed_at BIGINT
            )",
            tables.name("orders")
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
        let prepared = Prepared::new(tx, tables)
            .await
            .map_err(|error| EventFailure {
                index: 0,
                error: Box::new(error),
            })?;
        for (index, event) in events.iter().enumerate() {
            prepared
                .apply_one(tx, &self.upcasters, event)
                .await
                .map_err(|error| EventFailure { index, error })?;
        }
        Ok(())
    }
}

/// Reads the `orders` view (the active version) of a PostgreSQL read-model schema.
#[derive(Clone, Debug)]
pub struct PgOrderSummaries {
    db: PgReadModelDb,
    sql: String,
}

impl PgOrderSummaries {
    /// Reads the `orders` view of `db`'s schema, on `db`'s pool.
    pub fn new(db: PgReadModelDb) -> Self {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM {} WHERE id = $1",
            db.view("orders")
        );
        Self { db, sql }
    }

    /// The order's row, if the projection has seen it.
    ///
    /// # Errors
    /// [`QueryError::Failed`] when the database cannot be reached, or the view does not exist
    /// yet (the projection creates it when it first runs).
    pub async fn get(&self, order_id: &str) -> Result<Option<OrderSummary>, QueryError> {
        let client =
            self.db.pool().get().await.map_err(|error| {
                query_failed(format!("no read-model database connection: {error}"))
            })?;
        let statement = client
            .prepare_cached(&self.sql)
            .await
            .map_err(|error| self.failed(&error))?;
        let row = client
            .query_opt(&statement, &[&order_id])
            .await
            .map_err(|error| self.failed(&error))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let summary = (|| {
            Ok::<_, tokio_postgres::Error>(OrderSummary {
                id: row.try_get(0)?,
                customer: row.try_get(1)?,
                total_cents: row.try_get(2)?,
                status: row.try_get(3)?,
                created_at: row.try_get(4)?,
                cancelled_at: row.try_get(5)?,
                paid_at: row.try_get(6)?,
            })
        })()
        .map_err(|error| self.failed(&error))?;
        Ok(Some(summary))
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
                async move { summaries.get(&query.order_id).await }
            },
            progress,
        )
    }

    /// The failure `error`, naming the fix when the view is missing.
    fn failed(&self, error: &tokio_postgres::Error) -> QueryError {
        match error.as_db_error() {
            Some(db) if db.code() == &tokio_postgres::error::SqlState::UNDEFINED_TABLE => {
                query_failed(format!(
                    "{} does not exist in schema {:?}: run the {NAME} projection (mammoth serve with [projections.{NAME}]) so it creates it",
                    self.db.view("orders"),
                    self.db.schema()
                ))
            }
            Some(db) => query_failed(format!("{}: {}", db.code().code(), db.message())),
            None => query_failed(error),
        }
    }
}
