//! The order projection in MySQL/MariaDB: [`MysqlOrderProjection`] keeps the `orders` table in
//! a [`ReadModelDatabase`] (run it with [`mammoth_mysql::read_model::MysqlReadModel`]), and
//! [`MysqlOrderSummaries`] reads its `orders` view, the active version, from the same pool.
//!
//! Ids are `VARBINARY`, as the event store's stream ids are: compared byte for byte, so `A`
//! and `a`, or `a` and `a `, are two orders here as they are in SQLite and PostgreSQL (a
//! `VARCHAR` key under MySQL's usual collations would merge them).
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<mammoth_mysql::MysqlEventStore>) -> Result<(), Box<dyn std::error::Error>> {
//! use mammoth_example_orders::projection::{MysqlOrderProjection, MysqlOrderSummaries};
//! use mammoth_mysql::read_model::{MysqlReadModel, ReadModelDatabase};
//! use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
//!
//! let db = ReadModelDatabase::connect("mysql://root@127.0.0.1:3306/app", None)?;
//! let target = MysqlReadModel::open(&db, MysqlOrderProjection::new()).await?;
//! let handle = ProjectionRunner::new(store, target, ProjectionOptions::default()).spawn();
//! let summary = MysqlOrderSummaries::new(db).get("42").await?;
//! # drop((handle, summary)); Ok(()) }
//! ```

use mammoth_core::{EventFilter, HandlerError, RecordedEvent, Upcasters};
use mammoth_mysql::read_model::{EventFailure, MysqlProjection, ReadModelDatabase, Tables};
use mammoth_runtime::{QueryBusBuilder, QueryError, ReadModelProgress};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Transaction};

use super::{
    GetOrderSummary, Milestone, NAME, OrderSummary, RowChange, SUMMARY_COLUMNS, TABLES,
    query_failed, row_changes,
};
use crate::versioning::upcasters;

/// The longest order id, in bytes, the `id` column holds: the 128 characters the
/// `OrderCreated` schema allows, at 4 bytes each.
const ID_BYTES: usize = 512;

/// MySQL's error for a table or view that does not exist.
const NO_SUCH_TABLE: u16 = 1146;

/// The order projection as a [`MysqlProjection`]: the same name, filter, columns and rows as
/// [`super::OrderProjection`].
#[derive(Debug)]
pub struct MysqlOrderProjection {
    upcasters: Upcasters,
    sql: Option<(u32, Statements)>,
}

/// The insert and the update of each [`Milestone`], for one version of the table.
#[derive(Clone, Debug)]
struct Statements {
    insert: String,
    reach: [String; 3],
}

impl Default for MysqlOrderProjection {
    fn default() -> Self {
        Self::new()
    }
}

impl MysqlOrderProjection {
    /// The projection with the order domain's upcasters.
    pub fn new() -> Self {
        Self {
            upcasters: upcasters(),
            sql: None,
        }
    }

    fn statements(&mut self, tables: &Tables) -> Statements {
        let version = tables.version();
        match &self.sql {
            Some((cached, sql)) if *cached == version => sql.clone(),
            _ => {
                let table = format!("`{}`", tables.name("orders"));
                let sql = Statements {
                    // `id = id` keeps the first row: the insert-if-absent of the other backends
                    // (INSERT IGNORE would also swallow errors such as an id too long).
                    insert: format!(
                        "INSERT INTO {table} (id, customer, total_cents, status, created_at)
                         VALUES (?, ?, ?, 'pending', ?)
                         ON DUPLICATE KEY UPDATE id = id"
                    ),
                    reach: Milestone::ALL.map(|milestone| milestone.update_sql(&table, "?", "?")),
                };
                self.sql = Some((version, sql.clone()));
                sql
            }
        }
    }
}

async fn apply_one(
    tx: &mut Transaction<'_>,
    sql: &Statements,
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
                tx.exec_drop(sql.insert.as_str(), (id, customer, total_cents, created_at))
                    .await?;
            }
            RowChange::Reach { id, milestone, at } => {
                // Positional parameters: the update's text names the time before the id.
                tx.exec_drop(sql.reach[milestone.index()].as_str(), (at, id))
                    .await?;
            }
        }
    }
    Ok(())
}

impl MysqlProjection for MysqlOrderProjection {
    fn name(&self) -> &str {
        NAME
    }

    fn filter(&self) -> EventFilter {
        super::filter()
    }

    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }

    async fn create(&self, conn: &mut Conn, tables: &Tables) -> mysql_async::Result<()> {
        conn.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS `{}` (
                id VARBINARY({ID_BYTES}) NOT NULL PRIMARY KEY,
                customer TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                total_cents BIGINT NOT NULL,
                status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
                created_at BIGINT NOT NULL,
                cancelled_at BIGINT NULL,
                paid_at BIGINT NULL,
                confirmed_at BIGINT NULL
            ) ENGINE=InnoDB",
            tables.name("orders")
        ))
        .await
    }

    async fn apply(
        &mut self,
        tx: &mut Transaction<'_>,
        tables: &Tables,
        events: &[RecordedEvent],
    ) -> Result<(), EventFailure> {
        let sql = self.statements(tables);
        for (index, event) in events.iter().enumerate() {
            apply_one(tx, &sql, &self.upcasters, event)
                .await
                .map_err(|error| EventFailure { index, error })?;
        }
        Ok(())
    }
}

/// Reads the `orders` view (the active version) of a MySQL/MariaDB read-model database.
#[derive(Clone, Debug)]
pub struct MysqlOrderSummaries {
    db: ReadModelDatabase,
    sql: String,
}

/// An [`OrderSummary`] as MySQL returns it.
type SummaryRow = (String, String, i64, String, i64, Option<i64>, Option<i64>);

impl MysqlOrderSummaries {
    /// Reads the `orders` view of `db`, on `db`'s pool.
    pub fn new(db: ReadModelDatabase) -> Self {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM {} WHERE id = ?",
            db.qualified("orders")
        );
        Self { db, sql }
    }

    /// The order's row, if the projection has seen it.
    ///
    /// # Errors
    /// [`QueryError::Failed`] when the server cannot be reached, or the database or the view
    /// does not exist yet (the projection creates them when it first runs).
    pub async fn get(&self, order_id: &str) -> Result<Option<OrderSummary>, QueryError> {
        let mut conn = self.db.conn().await.map_err(query_failed)?;
        let row: Option<SummaryRow> = conn
            .exec_first(self.sql.as_str(), (order_id,))
            .await
            .map_err(|error| self.failed(&error))?;
        Ok(row.map(
            |(id, customer, total_cents, status, created_at, cancelled_at, paid_at)| OrderSummary {
                id,
                customer,
                total_cents,
                status,
                created_at,
                cancelled_at,
                paid_at,
            },
        ))
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
    fn failed(&self, error: &mysql_async::Error) -> QueryError {
        match error {
            mysql_async::Error::Server(server) if server.code == NO_SUCH_TABLE => {
                query_failed(format!(
                    "{} does not exist: run the {NAME} projection (mammoth serve with [projections.{NAME}]) so it creates it",
                    self.db.qualified("orders")
                ))
            }
            _ => query_failed(error),
        }
    }
}
