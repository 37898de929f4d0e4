//! The seed's `OrderProjection`: an `orders` table (id, customer, total, status, created,
//! cancelled, paid and confirmed times) built from the order events, and its query side, in
//! three read-model backends:
//!
//! - SQLite ([`OrderProjection`], [`OrderSummaries`]): a read-model file, the default;
//! - PostgreSQL ([`PgOrderProjection`], [`PgOrderSummaries`]): a schema of a server;
//! - MySQL/MariaDB ([`MysqlOrderProjection`], [`MysqlOrderSummaries`]): a database of a server.
//!
//! All three have the same name ([`NAME`]), filter, table and columns, and build the same row
//! from the same events: [`row_changes`] turns one stored event (upcast first, so old
//! `OrderCreated` v1 events count) into [`RowChange`]s, a pure function each backend executes
//! with its own SQL. Times come from the events, never the clock, so a replay builds the same
//! rows, and each batch of events is written with the checkpoint in one transaction (exactly
//! once across crashes). The query side reads the `orders` view, which points at the active
//! version of the table, so a blue-green rebuild is served once it is switched to.
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

mod mysql;
mod postgres;
mod sqlite;

use mammoth_core::{EventFilter, HandlerError, RecordedEvent, Upcasters, decode_recorded};
use mammoth_runtime::{Query, QueryError};
use serde::Serialize;

use crate::order::OrderEvent;

pub use mysql::{MysqlOrderProjection, MysqlOrderSummaries};
pub use postgres::{PgOrderProjection, PgOrderSummaries};
pub use sqlite::{OrderProjection, OrderSummaries};

/// The projection's name: its key in the read-model store and in `mammoth.tsk`.
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

/// The events every backend's projection receives: the order category's [`EVENT_TYPES`].
pub fn filter() -> EventFilter {
    EventFilter::all()
        .with_categories(["order"])
        .with_types(EVENT_TYPES)
}

/// A later stage of an order: the status it sets and the column that records when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Milestone {
    /// `cancelled`, at `cancelled_at`.
    Cancelled,
    /// `paid`, at `paid_at`.
    Paid,
    /// `confirmed`, at `confirmed_at`.
    Confirmed,
}

impl Milestone {
    /// Every milestone, in the order of [`Milestone::index`].
    pub const ALL: [Milestone; 3] = [Milestone::Cancelled, Milestone::Paid, Milestone::Confirmed];

    /// The `status` column's value.
    pub fn status(self) -> &'static str {
        match self {
            Milestone::Cancelled => "cancelled",
            Milestone::Paid => "paid",
            Milestone::Confirmed => "confirmed",
        }
    }

    /// The column holding the milestone's time.
    pub fn time_column(self) -> &'static str {
        match self {
            Milestone::Cancelled => "cancelled_at",
            Milestone::Paid => "paid_at",
            Milestone::Confirmed => "confirmed_at",
        }
    }

    /// Its place in [`Milestone::ALL`], for a backend's array of prepared updates.
    pub fn index(self) -> usize {
        match self {
            Milestone::Cancelled => 0,
            Milestone::Paid => 1,
            Milestone::Confirmed => 2,
        }
    }

    /// The update of the `table` (already quoted) row whose id is parameter `id` setting the
    /// status and its time (parameter `at`); `id` and `at` are the backend's placeholders.
    /// With positional placeholders (`?`), bind the time first: it comes first in the text.
    pub fn update_sql(self, table: &str, id: &str, at: &str) -> String {
        format!(
            "UPDATE {table} SET status = '{}', {} = {at} WHERE id = {id}",
            self.status(),
            self.time_column()
        )
    }
}

/// What one order event does to the `orders` table. Every backend executes these with its
/// own SQL, so all of them build the same rows from the same events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowChange {
    /// Insert the order's row as `pending`, unless a row with that id exists (then nothing
    /// changes: the first creation wins).
    Insert {
        /// The order's id.
        id: String,
        /// Who ordered.
        customer: String,
        /// The total in cents.
        total_cents: i64,
        /// The event's commit time, in microseconds since the Unix epoch.
        created_at: i64,
    },
    /// Set the status of the row with that id and the time of the milestone (nothing when
    /// there is no such row).
    Reach {
        /// The order's id.
        id: String,
        /// Which milestone.
        milestone: Milestone,
        /// The event's commit time, in microseconds since the Unix epoch.
        at: i64,
    },
}

/// The row changes of one stored event, after `upcasters` bring it to the current version.
///
/// # Errors
/// The event cannot be decoded or upcast, or its total does not fit a signed 64-bit column.
pub fn row_changes(
    event: &RecordedEvent,
    upcasters: &Upcasters,
) -> Result<Vec<RowChange>, HandlerError> {
    let at = event.recorded_at_micros;
    let mut changes = Vec::with_capacity(1);
    for decoded in decode_recorded::<OrderEvent>(event, upcasters)? {
        let reach = |id: String, milestone| RowChange::Reach { id, milestone, at };
        changes.push(match decoded {
            OrderEvent::OrderCreated {
                order_id,
                customer_id,
                total_cents,
                ..
            } => RowChange::Insert {
                id: order_id,
                customer: customer_id,
                total_cents: i64::try_from(total_cents).map_err(|_| {
                    format!("total_cents {total_cents} does not fit a signed 64-bit column")
                })?,
                created_at: at,
            },
            OrderEvent::OrderCancelled { order_id, .. } => reach(order_id, Milestone::Cancelled),
            OrderEvent::OrderPaid { order_id, .. } => reach(order_id, Milestone::Paid),
            OrderEvent::OrderConfirmed { order_id } => reach(order_id, Milestone::Confirmed),
        });
    }
    Ok(changes)
}

/// The columns [`OrderSummary`] is read from, in its field order.
const SUMMARY_COLUMNS: &str =
    "id, customer, total_cents, status, created_at, cancelled_at, paid_at";

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

/// A failed [`GetOrderSummary`] with `message`.
fn query_failed<M: std::fmt::Display>(message: M) -> QueryError {
    QueryError::Failed {
        query: "GetOrderSummary",
        message: message.to_string(),
    }
}
