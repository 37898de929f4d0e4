//! Shared by the projection tests: a store and a read-model file in a temporary directory,
//! order events appended straight to the store, and the `orders` rows as text.

#![allow(dead_code)]

use std::ops::Range;
use std::path::{Path, PathBuf};

use mammoth_core::{EventStore, ExpectedVersion, Metadata, NewEvent, StreamId, encode_event};
use mammoth_example_orders::app::CreateOrder;
use mammoth_example_orders::order::{OrderEvent, OrderLine};
use mammoth_example_orders::projection::OrderProjection;
use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
use mammoth_sqlite::{SqliteEventStore, SqliteOptions, SqliteReadModel};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: SqliteEventStore,
    pub read_path: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteEventStore::open(dir.path().join("mammoth.db"), SqliteOptions::default())
            .unwrap();
        let read_path = dir.path().join("read_models.db");
        Self {
            dir,
            store,
            read_path,
        }
    }

    pub async fn append_orders(&self, ids: Range<usize>) {
        append_orders(&self.store, ids).await;
    }

    pub fn runner(
        &self,
        options: ProjectionOptions,
    ) -> ProjectionRunner<SqliteEventStore, SqliteReadModel<OrderProjection>> {
        let target = SqliteReadModel::open(&self.read_path, OrderProjection::new()).unwrap();
        ProjectionRunner::new(self.store.clone(), target, options)
    }
}

pub fn book_order(order_id: &str) -> CreateOrder {
    CreateOrder {
        order_id: order_id.into(),
        customer_id: "ada".into(),
        items: vec![OrderLine::new("book", 2, 1500)],
        total_cents: 3000,
    }
}

fn event(event: &OrderEvent) -> NewEvent {
    encode_event(event)
        .unwrap()
        .into_new_event(Metadata::default())
}

pub fn created(id: &str, total_cents: u64) -> NewEvent {
    event(&OrderEvent::OrderCreated {
        order_id: id.into(),
        customer_id: format!("customer-{id}"),
        items: vec![OrderLine::new("book", 1, total_cents)],
        total_cents,
    })
}

pub fn paid(id: &str) -> NewEvent {
    event(&OrderEvent::OrderPaid {
        order_id: id.into(),
        payment_id: format!("p{id}"),
        amount_cents: 1,
    })
}

pub fn cancelled(id: &str) -> NewEvent {
    event(&OrderEvent::OrderCancelled {
        order_id: id.into(),
        reason: "changed mind".into(),
    })
}

/// Order `n` is created; every third is then paid, every fifth cancelled.
pub fn order_events(n: usize) -> Vec<NewEvent> {
    let id = n.to_string();
    let mut events = vec![created(&id, 100 + n as u64)];
    if n.is_multiple_of(3) {
        events.push(paid(&id));
    }
    if n.is_multiple_of(5) {
        events.push(cancelled(&id));
    }
    events
}

pub async fn append_orders(store: &impl EventStore, ids: Range<usize>) {
    for n in ids {
        let stream = StreamId::new(format!("order-{n}")).unwrap();
        store
            .append(&stream, ExpectedVersion::NoStream, order_events(n))
            .await
            .unwrap();
    }
}

/// Every row of the `orders` view, as text, sorted by id.
pub fn order_rows(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut statement = conn
        .prepare("SELECT id, customer, total_cents, status, created_at, cancelled_at, paid_at, confirmed_at FROM orders ORDER BY id")
        .unwrap();
    statement
        .query_map([], |row| {
            Ok(format!(
                "{}|{}|{}|{}|{}|{:?}|{:?}|{:?}",
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, Option<i64>>(5)?,
                row.get::<_, Option<i64>>(6)?,
                row.get::<_, Option<i64>>(7)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}
