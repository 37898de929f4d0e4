//! The order domain through the buses on the embedded SQLite store, in a temporary directory:
//! the seed's flow end to end, idempotency across a restart, upcasting of stored v1 events,
//! schema checks, and snapshots in the same file (including a dropped snapshot table).

use std::path::Path;

use mammoth_core::{EventStore, ExpectedVersion, NewEvent, StreamId};
use mammoth_example_orders::app::{
    CreateOrder, GetOrder, GetStock, OrdersApp, WAREHOUSE, customer,
};
use mammoth_example_orders::inventory::{Inventory, InventoryCommand, StockLine};
use mammoth_example_orders::order::{Order, OrderCommand, OrderError, OrderLine, OrderStatus};
use mammoth_example_orders::payment::{Payment, PaymentCommand};
use mammoth_runtime::{CommandContext, CommandError, Execute, QueryOptions, SnapshotPolicy};
use mammoth_sqlite::snapshot::SqliteSnapshotStore;
use mammoth_sqlite::{SqliteEventStore, SqliteOptions};
use serde_json::json;

fn open(path: &Path) -> SqliteEventStore {
    SqliteEventStore::open(path, SqliteOptions::default()).unwrap()
}

fn book_order(order_id: &str) -> CreateOrder {
    CreateOrder {
        order_id: order_id.into(),
        customer_id: "ada".into(),
        items: vec![OrderLine::new("book", 2, 1500)],
        total_cents: 3000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_order_flow_runs_through_the_buses_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("mammoth.db"));
    let app = OrdersApp::new(store.clone());
    let warehouse = CommandContext::new().with_actor("warehouse");
    let saga = CommandContext::new().with_actor("saga");
    app.commands
        .dispatch_with(
            Execute::<Inventory>::new(
                WAREHOUSE,
                InventoryCommand::AddStock(StockLine::new("book", 5)),
            ),
            warehouse,
        )
        .await
        .unwrap();
    let request = customer("ada");
    app.commands
        .dispatch_with(book_order("1"), request.clone())
        .await
        .unwrap();
    let reserve = InventoryCommand::Reserve {
        reservation_id: "1".into(),
        items: vec![StockLine::new("book", 2)],
    };
    app.commands
        .dispatch_with(Execute::<Inventory>::new(WAREHOUSE, reserve), saga.clone())
        .await
        .unwrap();
    let pay = PaymentCommand::Process {
        order_id: "1".into(),
        amount_cents: 3000,
        card_token: "tok_visa".into(),
    };
    app.commands
        .dispatch_with(Execute::<Payment>::new("1", pay), saga.clone())
        .await
        .unwrap();
    let paid = OrderCommand::MarkPaid {
        payment_id: "1".into(),
        amount_cents: 3000,
    };
    app.commands
        .dispatch_with(Execute::<Order>::new("1", paid), saga.clone())
        .await
        .unwrap();
    let confirmed = app
        .commands
        .dispatch_with(Execute::<Order>::new("1", OrderCommand::Confirm), saga)
        .await
        .unwrap();

    let view = app
        .queries
        .query_with(
            GetOrder {
                order_id: "1".into(),
            },
            QueryOptions::after(confirmed.position),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (view.status, view.total_cents, view.version),
        (OrderStatus::Confirmed, 3000, 3)
    );
    assert_eq!(
        app.queries
            .query(GetStock { sku: "book".into() })
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        app.queries
            .query(GetOrder {
                order_id: "nope".into()
            })
            .await
            .unwrap(),
        None
    );

    // The order's events carry the request's correlation id; the later ones were caused by
    // the saga's command.
    let events = store
        .read_stream(
            &StreamId::new("order-1").unwrap(),
            Default::default(),
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        events[0].metadata.correlation_id,
        Some(request.correlation_id)
    );
    assert_eq!(events[0].metadata.actor.as_deref(), Some("ada"));
    assert_eq!(events[2].metadata.actor.as_deref(), Some("saga"));

    let error = app
        .commands
        .dispatch_with(book_order("1"), customer("ada"))
        .await
        .unwrap_err();
    assert_eq!(
        error.rejection(),
        Some(&OrderError::AlreadyExists("1".into()))
    );
    let error = app.commands.dispatch(book_order("2")).await.unwrap_err();
    assert!(
        matches!(error, CommandError::Unauthorized { .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mammoth.db");
    let keyed = || customer("ada").with_idempotency_key("checkout-77");
    let first = {
        let store = open(&path);
        let app = OrdersApp::new(store.clone());
        let first = app
            .commands
            .dispatch_with(book_order("77"), keyed())
            .await
            .unwrap();
        store.close().await.unwrap();
        first
    };
    // A new process: the middleware's memory is empty, the store remembers.
    let store = open(&path);
    let app = OrdersApp::new(store.clone());
    let again = app
        .commands
        .dispatch_with(book_order("77"), keyed())
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.position, again.version),
        (first.position, first.version)
    );
    assert_eq!(store.head_position().await.unwrap(), first.position);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_v1_order_is_upcast_on_every_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("mammoth.db"));
    let v1 = NewEvent::json(
        "OrderCreated",
        json!({
            "order_id": "old",
            "customer_id": "php",
            "items": [{ "sku": "lamp", "quantity": 1, "price": "49.99" }],
            "total": "49.99"
        }),
    )
    .unwrap();
    let stream = StreamId::new("order-old").unwrap();
    store
        .append(&stream, ExpectedVersion::NoStream, vec![v1])
        .await
        .unwrap();
    let app = OrdersApp::new(store.clone());
    let view = app
        .queries
        .query(GetOrder {
            order_id: "old".into(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (view.total_cents, view.items[0].unit_price_cents),
        (4999, 4999)
    );
    // The upcast state accepts new commands written at v2 beside the v1 event.
    let pay = OrderCommand::MarkPaid {
        payment_id: "p".into(),
        amount_cents: 4999,
    };
    app.commands
        .dispatch_with(Execute::<Order>::new("old", pay), customer("ada"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_breaking_its_schema_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("mammoth.db"));
    let app = OrdersApp::new(store.clone());
    // The domain allows free items (price 0) but not a zero total, which the schema forbids.
    let free = CreateOrder {
        order_id: "free".into(),
        customer_id: "ada".into(),
        items: vec![OrderLine::new("sample", 1, 0)],
        total_cents: 0,
    };
    let error = app
        .commands
        .dispatch_with(free, customer("ada"))
        .await
        .unwrap_err();
    let CommandError::Schema(violation) = &error else {
        panic!("expected a schema violation, got {error:?}");
    };
    assert_eq!(
        (violation.field.as_str(), violation.rule.as_str()),
        ("/total_cents", "minimum")
    );
    assert_eq!(store.head_position().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_live_in_the_same_file_and_a_dropped_table_only_costs_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mammoth.db");
    let store = open(&path);
    let snapshots = SqliteSnapshotStore::open(&path).unwrap();
    let app =
        OrdersApp::with_snapshots(store.clone(), snapshots.clone(), SnapshotPolicy::every(10));
    let warehouse = CommandContext::new().with_actor("warehouse");
    for _ in 0..25 {
        let add = InventoryCommand::AddStock(StockLine::new("book", 1));
        app.commands
            .dispatch_with(Execute::<Inventory>::new(WAREHOUSE, add), warehouse.clone())
            .await
            .unwrap();
    }
    let loaded = app.inventory.load(WAREHOUSE).await.unwrap();
    assert_eq!((loaded.snapshot_version, loaded.events_read), (Some(20), 5));
    assert_eq!(loaded.state.available("book"), 25);

    let admin = rusqlite::Connection::open(&path).unwrap();
    admin
        .busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    admin.execute("DROP TABLE snapshots", []).unwrap();
    let loaded = app.inventory.load(WAREHOUSE).await.unwrap();
    assert_eq!((loaded.snapshot_version, loaded.events_read), (None, 25));
    assert_eq!(loaded.state.available("book"), 25);
    // Writing goes on; the save that is due (10 events after the last snapshot this process
    // took, at 20) re-creates the table.
    for _ in 26..=30 {
        let add = InventoryCommand::AddStock(StockLine::new("book", 1));
        app.commands
            .dispatch_with(Execute::<Inventory>::new(WAREHOUSE, add), warehouse.clone())
            .await
            .unwrap();
    }
    let loaded = app.inventory.load(WAREHOUSE).await.unwrap();
    assert_eq!((loaded.snapshot_version, loaded.events_read), (Some(30), 0));
    assert_eq!(loaded.state.available("book"), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_reserving_from_one_warehouse_on_sqlite_all_land_and_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("mammoth.db"));
    let app = OrdersApp::new(store.clone());
    let warehouse = CommandContext::new().with_actor("warehouse");
    let stock = InventoryCommand::AddStock(StockLine::new("book", 1000));
    app.commands
        .dispatch_with(Execute::<Inventory>::new(WAREHOUSE, stock), warehouse)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let bus = app.commands.clone();
            tokio::spawn(async move {
                let reserve = InventoryCommand::Reserve {
                    reservation_id: format!("r{n}"),
                    items: vec![StockLine::new("book", 3)],
                };
                let saga = CommandContext::new().with_actor("saga");
                bus.dispatch_with(Execute::<Inventory>::new(WAREHOUSE, reserve), saga)
                    .await
            })
        })
        .collect();
    let mut retried = 0;
    for task in tasks {
        let committed = task.await.unwrap().unwrap();
        retried += committed.attempts - 1;
    }
    let loaded = app.inventory.load(WAREHOUSE).await.unwrap();
    assert_eq!(loaded.version, 41);
    assert_eq!(loaded.state.available("book"), 1000 - 40 * 3);
    assert_eq!(loaded.state.reserved.len(), 40);
    assert!(
        retried > 0,
        "40 concurrent writers of one stream should have conflicted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_no_retries_allowed_conflicting_commands_fail_typed_and_write_nothing() {
    use mammoth_example_orders::versioning::{schemas, upcasters};
    use mammoth_runtime::{Repository, RetryPolicy};

    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("mammoth.db"));
    let inventory = Repository::<Inventory, _>::new(store.clone())
        .with_upcasters(upcasters())
        .with_schemas(schemas())
        .with_retry(RetryPolicy::never())
        .with_cache(0);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let inventory = inventory.clone();
            tokio::spawn(async move {
                let add = InventoryCommand::AddStock(StockLine::new("book", 1));
                inventory
                    .execute(WAREHOUSE, &add, &CommandContext::new())
                    .await
            })
        })
        .collect();
    let (mut landed, mut conflicts) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(committed) => {
                assert_eq!(committed.attempts, 1);
                landed += 1;
            }
            Err(CommandError::Conflict { attempts, .. }) => {
                assert_eq!(attempts, 1);
                conflicts += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        conflicts > 0,
        "concurrent loads of one stream should conflict"
    );
    let loaded = inventory.load(WAREHOUSE).await.unwrap();
    assert_eq!(loaded.state.available("book"), landed);
    assert_eq!(loaded.version, u64::from(landed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_frequency_comes_from_mammoth_tsk_with_per_aggregate_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mammoth.db");
    let store = open(&path);
    let text = "[snapshots]\nevery: 1000\nper_aggregate: { inventory: 5 }\n";
    let config =
        mammoth_config::Config::from_str(text, std::path::Path::new("mammoth.tsk")).unwrap();
    let app = OrdersApp::configured(
        store.clone(),
        SqliteSnapshotStore::open(&path).unwrap(),
        &config,
    );
    let warehouse = CommandContext::new().with_actor("warehouse");
    for _ in 0..12 {
        let add = InventoryCommand::AddStock(StockLine::new("book", 1));
        app.commands
            .dispatch_with(Execute::<Inventory>::new(WAREHOUSE, add), warehouse.clone())
            .await
            .unwrap();
    }
    // `inventory: 5` overrides `every: 1000`: snapshots at 5 and 10, two events after.
    let loaded = app.inventory.load(WAREHOUSE).await.unwrap();
    assert_eq!((loaded.snapshot_version, loaded.events_read), (Some(10), 2));
    assert_eq!(loaded.state.available("book"), 12);
}
