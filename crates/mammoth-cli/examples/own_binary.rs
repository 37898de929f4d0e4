//! A binary of your own app, with every `mammoth` command: `serve` runs its projection,
//! relay and worker and serves its command and query; `projections status|replay|rebuild|
//! verify event_counts` operate its read model; `events`, `dlq`, `status`, ... work as usual.
//!
//! ```text
//! cargo run -p mammoth-cli --example own_binary -- serve --listen 127.0.0.1:8081
//! curl -s -XPOST localhost:8081/commands/CreateOrder -H 'content-type: application/json' \
//!   -d '{"order_id":"o-1","customer_id":"c-1","items":[{"sku":"A","quantity":1,"unit_price_cents":500}],"total_cents":500}'
//! curl -s 'localhost:8081/queries/EventCount?event_type=OrderCreated&min_position=1'
//! cargo run -p mammoth-cli --example own_binary -- projections verify event_counts
//! ```
//!
//! The app here: the order aggregate's commands (from examples/orders; register your own
//! the same way), a projection counting events per type, and an audit worker that receives
//! every `OrderCreated` through the outbox relay.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use mammoth_cli::{App, AppContext, ReadModelDatabase};
use mammoth_core::bus::{Failure, Topic, TopicMap};
use mammoth_core::{EventFilter, RecordedEvent};
use mammoth_example_orders::app::OrdersApp;
use mammoth_runtime::{Query, QueryBus, QueryError};
use mammoth_sqlite::SqliteProjection;
use mammoth_sqlite::read_model::{EventFailure, Tables};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, Transaction};
use serde::Deserialize;

/// The app: one call per part, then `.main()`.
pub fn app(audited: Arc<Mutex<BTreeSet<String>>>) -> App {
    App::new("shop")
        .projection(EventCounts::default)
        .topics(TopicMap::default().event_type("OrderCreated", audit_topic()))
        .worker("audit.orders", "audit", move |_: &AppContext| {
            let audited = Arc::clone(&audited);
            move |delivery: mammoth_core::bus::Delivery| {
                let audited = Arc::clone(&audited);
                async move {
                    let stream = delivery.message.key.clone().unwrap_or_default();
                    audited
                        .lock()
                        .map_err(|_| Failure::retry("audit set poisoned"))?
                        .insert(stream);
                    Ok(())
                }
            }
        })
        .routes(|context: &AppContext| {
            let orders = OrdersApp::new(context.store().clone());
            let mut registry = mammoth_server::orders::registry(&orders, None);
            // This projection is registered for SQLite only, so its read model is a file.
            if let Some(model) = context.read_model("event_counts")
                && let ReadModelDatabase::Sqlite(path) = &model.database
            {
                let path = path.clone();
                let counts = QueryBus::builder()
                    .handle_with_progress(
                        move |query: EventCount| {
                            let path = path.clone();
                            async move { count(path, query.event_type) }
                        },
                        model.progress.clone(),
                    )
                    .build();
                registry = registry.query("EventCount", move |query: EventCount, options| {
                    let counts = counts.clone();
                    async move { counts.query_with(query, options).await }
                });
            }
            registry
        })
}

fn main() -> ExitCode {
    app(Arc::default()).main()
}

fn audit_topic() -> Topic {
    Topic::new("audit.orders").unwrap_or_else(|_| unreachable!("a valid topic name"))
}

/// How many events of one type the store holds (`GET /queries/EventCount?event_type=T`).
#[derive(Debug, Deserialize)]
pub struct EventCount {
    /// The event type.
    pub event_type: String,
}

impl Query for EventCount {
    type Output = u64;
}

fn count(path: PathBuf, event_type: String) -> Result<u64, QueryError> {
    let failed = |error: rusqlite::Error| QueryError::Failed {
        query: "EventCount",
        message: error.to_string(),
    };
    let conn =
        Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(failed)?;
    let events: Option<i64> = conn
        .query_row(
            "SELECT events FROM event_counts WHERE event_type = ?1",
            [&event_type],
            |row| row.get(0),
        )
        .optional()
        .map_err(failed)?;
    Ok(events.map_or(0, |n| n.unsigned_abs()))
}

/// Events per type: a SQL read model in SQLite, its checkpoint committed with its rows.
#[derive(Debug, Default)]
pub struct EventCounts;

impl SqliteProjection for EventCounts {
    fn name(&self) -> &str {
        "event_counts"
    }

    fn filter(&self) -> EventFilter {
        EventFilter::default()
    }

    fn tables(&self) -> &'static [&'static str] {
        &["event_counts"]
    }

    fn create(&self, conn: &Connection, tables: &Tables) -> rusqlite::Result<()> {
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS \"{}\" (event_type TEXT PRIMARY KEY, events INTEGER NOT NULL)",
            tables.name("event_counts")
        ))
    }

    fn apply(
        &mut self,
        tx: &Transaction<'_>,
        tables: &Tables,
        events: &[RecordedEvent],
    ) -> Result<(), EventFailure> {
        let sql = format!(
            "INSERT INTO \"{}\" (event_type, events) VALUES (?1, 1)
             ON CONFLICT (event_type) DO UPDATE SET events = events + 1",
            tables.name("event_counts")
        );
        for (index, event) in events.iter().enumerate() {
            tx.execute(&sql, [&event.event_type])
                .map_err(|error| EventFailure {
                    index,
                    error: error.into(),
                })?;
        }
        Ok(())
    }
}
