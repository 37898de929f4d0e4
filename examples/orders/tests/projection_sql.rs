//! The order projection on PostgreSQL (`MAMMOTH_TEST_POSTGRES_URL`) and MySQL/MariaDB
//! (`MAMMOTH_TEST_MYSQL_URL`) builds the same rows as on SQLite: one event store (SQLite, so
//! every target sees the same events with the same commit times) is projected by the runner
//! into a SQLite read-model file and into the server, and every order's `OrderSummary` (and
//! every column, `confirmed_at` included) must match. The events cover created, paid,
//! confirmed and cancelled orders, an `OrderCreated` v1 that needs upcasting, two ids that
//! differ only in case, a second creation of one order and a payment of an order never
//! created. A blue-green rebuild switched by the admin is then served by the Summaries types.
//!
//! Each test has a schema or database of its own, dropped at the end. Without the URL a test
//! is skipped with a note; under `CI=true` a missing URL fails it.

mod projection_support;

use std::collections::BTreeMap;

use mammoth_core::{EventStore, ExpectedVersion, Metadata, NewEvent, StreamId, encode_event};
use mammoth_example_orders::order::OrderEvent;
use mammoth_example_orders::projection::{
    MysqlOrderProjection, MysqlOrderSummaries, NAME, OrderSummaries, OrderSummary,
    PgOrderProjection, PgOrderSummaries, TABLES,
};
use mammoth_mysql::read_model::{MysqlReadModel, MysqlReadModelAdmin, ReadModelDatabase};
use mammoth_postgres::read_model::{PgReadModel, PgReadModelAdmin, PgReadModelDb};
use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
use mammoth_sqlite::SqliteEventStore;
use mysql_async::prelude::Queryable;
use projection_support::{Fixture, cancelled, created, order_events, order_rows, paid};
use serde_json::json;

const POSTGRES_VAR: &str = "MAMMOTH_TEST_POSTGRES_URL";
const MYSQL_VAR: &str = "MAMMOTH_TEST_MYSQL_URL";

/// The URL in `var`, or `None` (after printing why) when the test should be skipped. Under
/// `CI=true` a missing URL is a failure, never a skip.
fn service_url(var: &str, example: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {var} is not set; .ci/run exports it ({example})"
            );
            eprintln!("skipped: set {var} (e.g. {example}) to run this test");
            None
        }
    }
}

fn postgres_url() -> Option<String> {
    service_url(POSTGRES_VAR, "postgres://postgres@127.0.0.1:5432/postgres")
}

fn mysql_url() -> Option<String> {
    service_url(MYSQL_VAR, "mysql://root@127.0.0.1:3306/test")
}

/// A schema or database name no other test or run uses.
fn unique_name() -> String {
    format!(
        "morders_rm_{}_{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Drops the test's schema or database when the test ends, passed or not.
struct Cleanup {
    url: String,
    name: String,
    mysql: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (url, name, mysql) = (self.url.clone(), self.name.clone(), self.mysql);
        // A runtime of its own on a thread of its own: the test's runtime may be the one
        // dropping this.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test schema");
            let result = runtime.block_on(async {
                if mysql {
                    mammoth_mysql::drop_database(&url, &name).await
                } else {
                    mammoth_postgres::drop_schema(&url, &name).await
                }
            });
            if let Err(error) = result {
                eprintln!("note: could not drop test schema {name}: {error}");
            }
        });
        let _ = dropper.join();
    }
}

fn event(event: &OrderEvent) -> NewEvent {
    encode_event(event)
        .unwrap()
        .into_new_event(Metadata::default())
}

fn confirmed(id: &str) -> NewEvent {
    event(&OrderEvent::OrderConfirmed {
        order_id: id.into(),
    })
}

/// An `OrderCreated` as the PHP era stored it (schema version 1, total as a decimal string).
fn created_v1(id: &str, total: &str) -> NewEvent {
    NewEvent::json(
        "OrderCreated",
        json!({
            "order_id": id,
            "customer_id": "php",
            "items": [{ "sku": "a", "quantity": 1, "price": total }],
            "total": total,
        }),
    )
    .unwrap()
}

async fn append(store: &SqliteEventStore, stream: &str, events: Vec<NewEvent>) {
    store
        .append(
            &StreamId::new(stream).unwrap(),
            ExpectedVersion::Any,
            events,
        )
        .await
        .unwrap();
}

/// The first half of the scenario: one order per interesting history, then orders 0..30.
async fn append_first_half(store: &SqliteEventStore) {
    append(store, "order-pending", vec![created("pending", 100)]).await;
    append(
        store,
        "order-paid",
        vec![created("paid", 200), paid("paid")],
    )
    .await;
    let confirmed_order = vec![
        created("confirmed", 300),
        paid("confirmed"),
        confirmed("confirmed"),
    ];
    append(store, "order-confirmed", confirmed_order).await;
    let cancelled_order = vec![created("cancelled", 400), cancelled("cancelled")];
    append(store, "order-cancelled", cancelled_order).await;
    let old = vec![created_v1("old", "12.50"), paid("old"), confirmed("old")];
    append(store, "order-old", old).await;
    // Two ids that differ only in case are two orders (a case-blind key would merge them).
    append(store, "order-A", vec![created("A", 500)]).await;
    append(store, "order-a", vec![created("a", 600)]).await;
    // A second creation of one order changes nothing: the first row stays.
    append(store, "order-twice", vec![created("twice", 700)]).await;
    append(store, "order-twice", vec![created("twice", 701)]).await;
    // A payment of an order never created makes no row.
    append(store, "order-ghost", vec![paid("ghost")]).await;
    // Not an order event: the filter leaves it out.
    let stock = NewEvent::json("StockAdded", json!({ "sku": "a" })).unwrap();
    append(store, "inventory-1", vec![stock]).await;
    for n in 0..30 {
        append(store, &format!("order-{n}"), order_events(n)).await;
    }
}

/// The second half: orders 30..60 and one more confirmed order.
async fn append_second_half(store: &SqliteEventStore) {
    for n in 30..60 {
        append(store, &format!("order-{n}"), order_events(n)).await;
    }
    let late = vec![created("late", 800), paid("late"), confirmed("late")];
    append(store, "order-late", late).await;
}

/// Small batches, so the projection sees many of them.
fn options() -> ProjectionOptions {
    ProjectionOptions::default().with_batch_size(16)
}

/// Projects the whole store into the fixture's SQLite file and returns every order id with
/// its summary there, after checking what the events must have built (so a bug shared by
/// every backend, in the event-to-row logic, fails here too).
async fn sqlite_reference(fixture: &Fixture) -> BTreeMap<String, OrderSummary> {
    fixture
        .runner(options())
        .catch_up(None, |_, _| {})
        .await
        .unwrap();
    let summaries = OrderSummaries::new(&fixture.read_path);
    let mut reference = BTreeMap::new();
    for row in order_rows(&fixture.read_path) {
        let id = row.split('|').next().unwrap().to_owned();
        let summary = summaries.get(&id).unwrap().unwrap();
        reference.insert(id, summary);
    }
    let get = |id: &str| reference.get(id).unwrap_or_else(|| panic!("order {id}"));
    assert_eq!(get("old").total_cents, 1250, "the v1 total is upcast");
    assert_eq!(get("old").status, "confirmed");
    assert!(get("old").paid_at.is_some());
    assert_eq!(get("pending").status, "pending");
    assert_eq!(get("paid").status, "paid");
    assert_eq!(get("cancelled").status, "cancelled");
    assert!(get("cancelled").cancelled_at.is_some());
    assert_eq!((get("A").total_cents, get("a").total_cents), (500, 600));
    assert_eq!(get("twice").total_cents, 700, "the first creation wins");
    assert!(!reference.contains_key("ghost"));
    reference
}

/// The ids every comparison looks up: the reference's, and some that have no row.
fn ids(reference: &BTreeMap<String, OrderSummary>) -> Vec<String> {
    let absent = ["ghost", "unknown", "PENDING", "pending "];
    reference
        .keys()
        .cloned()
        .chain(absent.map(str::to_owned))
        .collect()
}

/// Every row of a server's `orders` view, formatted as [`order_rows`] does, sorted by id.
fn format_row(row: (String, String, i64, String, i64, [Option<i64>; 3])) -> String {
    let (id, customer, total, status, created, [cancelled, paid, confirmed]) = row;
    format!("{id}|{customer}|{total}|{status}|{created}|{cancelled:?}|{paid:?}|{confirmed:?}")
}

const ALL_COLUMNS: &str =
    "id, customer, total_cents, status, created_at, cancelled_at, paid_at, confirmed_at";

async fn pg_rows(db: &PgReadModelDb) -> Vec<String> {
    let client = db.pool().get().await.unwrap();
    let sql = format!("SELECT {ALL_COLUMNS} FROM {}", db.view("orders"));
    let mut rows: Vec<String> = client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|row| {
            format_row((
                row.get(0),
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
                [row.get(5), row.get(6), row.get(7)],
            ))
        })
        .collect();
    rows.sort();
    rows
}

type MysqlRow = (
    String,
    String,
    i64,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

async fn mysql_rows(db: &ReadModelDatabase) -> Vec<String> {
    let mut conn = db.conn().await.unwrap();
    let sql = format!("SELECT {ALL_COLUMNS} FROM {}", db.qualified("orders"));
    let rows: Vec<MysqlRow> = conn.query(sql).await.unwrap();
    let mut rows: Vec<String> = rows
        .into_iter()
        .map(|(id, customer, total, status, created, a, b, c)| {
            format_row((id, customer, total, status, created, [a, b, c]))
        })
        .collect();
    rows.sort();
    rows
}

fn sorted(mut rows: Vec<String>) -> Vec<String> {
    rows.sort();
    rows
}

async fn pg_db(url: &str) -> (PgReadModelDb, Cleanup) {
    let name = unique_name();
    let cleanup = Cleanup {
        url: url.to_owned(),
        name: name.clone(),
        mysql: false,
    };
    let db = PgReadModelDb::connect(url, &name, 4).await.unwrap();
    (db, cleanup)
}

fn mysql_db(url: &str) -> (ReadModelDatabase, Cleanup) {
    let name = unique_name();
    let cleanup = Cleanup {
        url: url.to_owned(),
        name: name.clone(),
        mysql: true,
    };
    let db = ReadModelDatabase::connect(url, Some(&name)).unwrap();
    (db, cleanup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_builds_the_same_order_summaries_as_sqlite() {
    let Some(url) = postgres_url() else { return };
    let (db, _cleanup) = pg_db(&url).await;
    let fixture = Fixture::new();
    append_first_half(&fixture.store).await;
    append_second_half(&fixture.store).await;
    let reference = sqlite_reference(&fixture).await;

    let target = PgReadModel::open(&db, PgOrderProjection::new());
    let head = ProjectionRunner::new(fixture.store.clone(), target, options())
        .catch_up(None, |_, _| {})
        .await
        .unwrap();
    assert_eq!(head, fixture.store.head_position().await.unwrap());

    let summaries = PgOrderSummaries::new(db.clone());
    for id in ids(&reference) {
        assert_eq!(
            summaries.get(&id).await.unwrap(),
            reference.get(&id).cloned(),
            "order {id:?}"
        );
    }
    assert_eq!(pg_rows(&db).await, sorted(order_rows(&fixture.read_path)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_builds_the_same_order_summaries_as_sqlite() {
    let Some(url) = mysql_url() else { return };
    let (db, _cleanup) = mysql_db(&url);
    let fixture = Fixture::new();
    append_first_half(&fixture.store).await;
    append_second_half(&fixture.store).await;
    let reference = sqlite_reference(&fixture).await;

    let target = MysqlReadModel::open(&db, MysqlOrderProjection::new())
        .await
        .unwrap();
    let head = ProjectionRunner::new(fixture.store.clone(), target, options())
        .catch_up(None, |_, _| {})
        .await
        .unwrap();
    assert_eq!(head, fixture.store.head_position().await.unwrap());

    let summaries = MysqlOrderSummaries::new(db.clone());
    for id in ids(&reference) {
        assert_eq!(
            summaries.get(&id).await.unwrap(),
            reference.get(&id).cloned(),
            "order {id:?}"
        );
    }
    assert_eq!(
        mysql_rows(&db).await,
        sorted(order_rows(&fixture.read_path))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_summaries_serve_a_blue_green_version_once_switched() {
    let Some(url) = postgres_url() else { return };
    let (db, _cleanup) = pg_db(&url).await;
    let fixture = Fixture::new();
    let summaries = PgOrderSummaries::new(db.clone());
    append_first_half(&fixture.store).await;
    ProjectionRunner::new(
        fixture.store.clone(),
        PgReadModel::open(&db, PgOrderProjection::new()),
        options(),
    )
    .catch_up(None, |_, _| {})
    .await
    .unwrap();
    assert_eq!(summaries.get("paid").await.unwrap().unwrap().status, "paid");

    // Version 1 stops here; version 2 is built from zero over every event.
    append_second_half(&fixture.store).await;
    let next = PgReadModel::next_version(&db, PgOrderProjection::new())
        .await
        .unwrap();
    assert_eq!(next.version(), 2);
    ProjectionRunner::new(fixture.store.clone(), next, options())
        .catch_up(None, |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        summaries.get("late").await.unwrap(),
        None,
        "version 1 serves until the switch"
    );

    let admin = PgReadModelAdmin::new(&db);
    assert!(admin.switch(NAME, TABLES, 2).await.unwrap());
    assert_eq!(admin.active(NAME).await.unwrap().unwrap().version, 2);
    let reference = sqlite_reference(&fixture).await;
    assert!(reference.contains_key("late") && reference.contains_key("59"));
    for id in ids(&reference) {
        assert_eq!(
            summaries.get(&id).await.unwrap(),
            reference.get(&id).cloned(),
            "order {id:?}"
        );
    }
    assert_eq!(pg_rows(&db).await, sorted(order_rows(&fixture.read_path)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_summaries_serve_a_blue_green_version_once_switched() {
    let Some(url) = mysql_url() else { return };
    let (db, _cleanup) = mysql_db(&url);
    let fixture = Fixture::new();
    let summaries = MysqlOrderSummaries::new(db.clone());
    append_first_half(&fixture.store).await;
    let live = MysqlReadModel::open(&db, MysqlOrderProjection::new())
        .await
        .unwrap();
    ProjectionRunner::new(fixture.store.clone(), live, options())
        .catch_up(None, |_, _| {})
        .await
        .unwrap();
    assert_eq!(summaries.get("paid").await.unwrap().unwrap().status, "paid");

    // Version 1 stops here; version 2 is built from zero over every event.
    append_second_half(&fixture.store).await;
    let next = MysqlReadModel::next_version(&db, MysqlOrderProjection::new())
        .await
        .unwrap();
    ProjectionRunner::new(fixture.store.clone(), next, options())
        .catch_up(None, |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        summaries.get("late").await.unwrap(),
        None,
        "version 1 serves until the switch"
    );

    let admin = MysqlReadModelAdmin::open(&db).await.unwrap();
    assert!(admin.switch(NAME, TABLES, 2).await.unwrap());
    assert_eq!(admin.active(NAME).await.unwrap().unwrap().version, 2);
    let reference = sqlite_reference(&fixture).await;
    assert!(reference.contains_key("late") && reference.contains_key("59"));
    for id in ids(&reference) {
        assert_eq!(
            summaries.get(&id).await.unwrap(),
            reference.get(&id).cloned(),
            "order {id:?}"
        );
    }
    assert_eq!(
        mysql_rows(&db).await,
        sorted(order_rows(&fixture.read_path))
    );
}

/// Before any projection has run, a query names the missing view and the fix instead of
/// answering `None` for every order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_before_the_projection_ran_says_what_to_start() {
    if let Some(url) = postgres_url() {
        let (db, _cleanup) = pg_db(&url).await;
        let error = PgOrderSummaries::new(db).get("1").await.unwrap_err();
        assert!(
            error.to_string().contains("run the orders projection"),
            "{error}"
        );
    }
    if let Some(url) = mysql_url() {
        let (db, _cleanup) = mysql_db(&url);
        // The database exists (the admin creates it); the view does not yet.
        let _admin = MysqlReadModelAdmin::open(&db).await.unwrap();
        let error = MysqlOrderSummaries::new(db).get("1").await.unwrap_err();
        assert!(
            error.to_string().contains("run the orders projection"),
            "{error}"
        );
    }
}
