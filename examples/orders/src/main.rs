//! Runs the order domain end to end on the embedded SQLite store, with no infrastructure:
//! stock arrives, two orders are placed, one is paid and confirmed, the other's card is
//! declined so its reservation is released and it is cancelled (by hand here; the saga layer
//! automates it). Then it prints this run's events as the current code decodes them.
//!
//! `cargo run --release -p mammoth-example-orders [-- PATH]` reads `mammoth.tsk` as the
//! `mammoth` CLI does (`--config` aside: `MAMMOTH_CONFIG`, else `./mammoth.tsk`, else the
//! defaults) and writes to PATH, by default the configured SQLite file
//! (`./mammoth-data/mammoth.db`), so `cargo run --release -- events all` shows the same log
//! afterwards. `[snapshots]` and `cqrs.max_conflict_retries` tune the repositories. Each run
//! uses its own order ids, so runs add up rather than collide.

use std::path::PathBuf;
use std::process::ExitCode;

use futures_util::TryStreamExt;

use mammoth_core::{EventFilter, EventStore, read_all_pages};
use mammoth_example_orders::app::{
    CreateOrder, GetOrder, GetStock, OrdersApp, WAREHOUSE, customer,
};
use mammoth_example_orders::inventory::{Inventory, InventoryCommand, StockLine};
use mammoth_example_orders::order::{Order, OrderCommand, OrderLine};
use mammoth_example_orders::payment::{Payment, PaymentCommand};
use mammoth_example_orders::versioning::registry;
use mammoth_runtime::{CommandContext, Execute, QueryOptions};
use mammoth_sqlite::snapshot::SqliteSnapshotStore;
use mammoth_sqlite::{SqliteEventStore, SqliteOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (config, _) = mammoth_config::load(None)?;
    if config.event_store.backend != mammoth_config::EventStoreBackend::Sqlite {
        return Err(
            "this demo runs on the embedded store: set event_store.backend to \"sqlite\"".into(),
        );
    }
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(|| config.event_store.sqlite_path(), PathBuf::from);
    let options = SqliteOptions {
        synchronous: match config.event_store.synchronous {
            mammoth_config::Synchronous::Normal => mammoth_sqlite::Synchronous::Normal,
            _ => mammoth_sqlite::Synchronous::Full,
        },
        ..SqliteOptions::default()
    };
    let store = SqliteEventStore::open(&path, options)?;
    let start = store.head_position().await? + 1;
    // Order ids unique to this run: the log's head when it started.
    let id = |n: u32| format!("{start}x{n}");
    println!("writing to {} from position {start}", path.display());
    let app = OrdersApp::configured(store.clone(), SqliteSnapshotStore::open(&path)?, &config);
    let warehouse = CommandContext::new().with_actor("warehouse");
    for (sku, quantity) in [("book", 10), ("lamp", 1)] {
        let add = InventoryCommand::AddStock(StockLine::new(sku, quantity));
        app.commands
            .dispatch_with(Execute::<Inventory>::new(WAREHOUSE, add), warehouse.clone())
            .await?;
    }

    // Order 1: reserved, paid, confirmed.
    let ada = customer("ada").with_idempotency_key(format!("ada-checkout-{}", id(1)));
    let create = CreateOrder {
        order_id: id(1),
        customer_id: "ada".into(),
        items: vec![OrderLine::new("book", 2, 1500)],
        total_cents: 3000,
    };
    let first = app
        .commands
        .dispatch_with(create.clone(), ada.clone())
        .await?;
    // The client retries (say its connection dropped): same key, same answer, no second write.
    let again = app.commands.dispatch_with(create, ada).await?;
    assert_eq!(first, again);
    println!(
        "order 1 placed at position {} (a retry with the same key wrote nothing)",
        first.position
    );

    let saga = CommandContext::new().with_actor("saga");
    let reserve = InventoryCommand::Reserve {
        reservation_id: id(1),
        items: vec![StockLine::new("book", 2)],
    };
    app.commands
        .dispatch_with(Execute::<Inventory>::new(WAREHOUSE, reserve), saga.clone())
        .await?;
    let pay = PaymentCommand::Process {
        order_id: id(1),
        amount_cents: 3000,
        card_token: "tok_visa".into(),
    };
    app.commands
        .dispatch_with(Execute::<Payment>::new(id(1), pay), saga.clone())
        .await?;
    let paid = OrderCommand::MarkPaid {
        payment_id: id(1),
        amount_cents: 3000,
    };
    app.commands
        .dispatch_with(Execute::<Order>::new(id(1), paid), saga.clone())
        .await?;
    let confirmed = app
        .commands
        .dispatch_with(
            Execute::<Order>::new(id(1), OrderCommand::Confirm),
            saga.clone(),
        )
        .await?;
    let view = app
        .queries
        .query_with(
            GetOrder { order_id: id(1) },
            QueryOptions::after(confirmed.position),
        )
        .await?
        .ok_or("order 1 is missing")?;
    println!(
        "order 1 is {:?}, total {} cents",
        view.status, view.total_cents
    );

    // Order 2: the card is declined; the reservation is released and the order cancelled.
    let create = CreateOrder {
        order_id: id(2),
        customer_id: "grace".into(),
        items: vec![OrderLine::new("lamp", 1, 4999)],
        total_cents: 4999,
    };
    app.commands
        .dispatch_with(create, customer("grace"))
        .await?;
    let reserve = InventoryCommand::Reserve {
        reservation_id: id(2),
        items: vec![StockLine::new("lamp", 1)],
    };
    app.commands
        .dispatch_with(Execute::<Inventory>::new(WAREHOUSE, reserve), saga.clone())
        .await?;
    let pay = PaymentCommand::Process {
        order_id: id(2),
        amount_cents: 4999,
        card_token: "tok_decline_insufficient_funds".into(),
    };
    app.commands
        .dispatch_with(Execute::<Payment>::new(id(2), pay), saga.clone())
        .await?;
    let release = InventoryCommand::Release {
        reservation_id: id(2),
    };
    app.commands
        .dispatch_with(Execute::<Inventory>::new(WAREHOUSE, release), saga.clone())
        .await?;
    let cancel = OrderCommand::Cancel {
        reason: "payment declined".into(),
    };
    app.commands
        .dispatch_with(Execute::<Order>::new(id(2), cancel), saga)
        .await?;
    let lamps = app.queries.query(GetStock { sku: "lamp".into() }).await?;
    println!("order 2 cancelled after a declined card; lamps in stock again: {lamps}");

    // A rejected command: confirming a cancelled order.
    let rejected = app
        .commands
        .dispatch_with(
            Execute::<Order>::new(id(2), OrderCommand::Confirm),
            customer("grace"),
        )
        .await
        .expect_err("a cancelled order cannot be confirmed");
    println!("rejected as expected: {rejected}");

    println!("\nthis run's events, decoded:");
    let registry = registry();
    let mut log = std::pin::pin!(read_all_pages(&store, start, EventFilter::all(), 256));
    while let Some(event) = log.try_next().await? {
        for decoded in registry.decode(&event)? {
            println!(
                "  {:>3} {:<12} {} v{} {}",
                event.position,
                event.stream_id,
                decoded.event_type,
                decoded.schema_version,
                decoded.data
            );
        }
    }
    store.close().await?;
    println!(
        "\nthe log is in {}; look around with `cargo run --release -- events all` or `-- events stats`",
        path.display()
    );
    Ok(())
}
