//! Runs the order domain end to end in memory, with no infrastructure: stock arrives, two
//! orders are placed, one is paid and confirmed, the other's card is declined so its
//! reservation is released and it is cancelled (by hand here; the saga layer automates it).
//! Then it prints the event log as the current code decodes it.
//!
//! `cargo run -p mammoth-example-orders`

use std::process::ExitCode;
use std::sync::Arc;

use mammoth_core::{EventFilter, EventStore, InMemoryEventStore, InMemorySnapshotStore};
use mammoth_example_orders::app::{
    CreateOrder, GetOrder, GetStock, OrdersApp, WAREHOUSE, customer,
};
use mammoth_example_orders::inventory::{Inventory, InventoryCommand, StockLine};
use mammoth_example_orders::order::{Order, OrderCommand, OrderLine};
use mammoth_example_orders::payment::{Payment, PaymentCommand};
use mammoth_example_orders::versioning::registry;
use mammoth_runtime::{CommandContext, Execute, QueryOptions, SnapshotPolicy};

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
    let store = Arc::new(InMemoryEventStore::new());
    let app = OrdersApp::with_snapshots(
        Arc::clone(&store),
        InMemorySnapshotStore::new(),
        SnapshotPolicy::every(100),
    );
    let warehouse = CommandContext::new().with_actor("warehouse");
    for (sku, quantity) in [("book", 10), ("lamp", 1)] {
        let add = InventoryCommand::AddStock(StockLine::new(sku, quantity));
        app.commands
            .dispatch_with(Execute::<Inventory>::new(WAREHOUSE, add), warehouse.clone())
            .await?;
    }

    // Order 1: reserved, paid, confirmed.
    let ada = customer("ada").with_idempotency_key("ada-checkout-1");
    let create = CreateOrder {
        order_id: "1".into(),
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
        reservation_id: "1".into(),
        items: vec![StockLine::new("book", 2)],
    };
    app.commands
        .dispatch_with(Execute::<Inventory>::new(WAREHOUSE, reserve), saga.clone())
        .await?;
    let pay = PaymentCommand::Process {
        order_id: "1".into(),
        amount_cents: 3000,
        card_token: "tok_visa".into(),
    };
    app.commands
        .dispatch_with(Execute::<Payment>::new("1", pay), saga.clone())
        .await?;
    let paid = OrderCommand::MarkPaid {
        payment_id: "1".into(),
        amount_cents: 3000,
    };
    app.commands
        .dispatch_with(Execute::<Order>::new("1", paid), saga.clone())
        .await?;
    let confirmed = app
        .commands
        .dispatch_with(
            Execute::<Order>::new("1", OrderCommand::Confirm),
            saga.clone(),
        )
        .await?;
    let view = app
        .queries
        .query_with(
            GetOrder {
                order_id: "1".into(),
            },
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
        order_id: "2".into(),
        customer_id: "grace".into(),
        items: vec![OrderLine::new("lamp", 1, 4999)],
        total_cents: 4999,
    };
    app.commands
        .dispatch_with(create, customer("grace"))
        .await?;
    let reserve = InventoryCommand::Reserve {
        reservation_id: "2".into(),
        items: vec![StockLine::new("lamp", 1)],
    };
    app.commands
        .dispatch_with(Execute::<Inventory>::new(WAREHOUSE, reserve), saga.clone())
        .await?;
    let pay = PaymentCommand::Process {
        order_id: "2".into(),
        amount_cents: 4999,
        card_token: "tok_decline_insufficient_funds".into(),
    };
    app.commands
        .dispatch_with(Execute::<Payment>::new("2", pay), saga.clone())
        .await?;
    let release = InventoryCommand::Release {
        reservation_id: "2".into(),
    };
    app.commands
        .dispatch_with(Execute::<Inventory>::new(WAREHOUSE, release), saga.clone())
        .await?;
    let cancel = OrderCommand::Cancel {
        reason: "payment declined".into(),
    };
    app.commands
        .dispatch_with(Execute::<Order>::new("2", cancel), saga)
        .await?;
    let lamps = app.queries.query(GetStock { sku: "lamp".into() }).await?;
    println!("order 2 cancelled after a declined card; lamps in stock again: {lamps}");

    // A rejected command: confirming a cancelled order.
    let rejected = app
        .commands
        .dispatch_with(
            Execute::<Order>::new("2", OrderCommand::Confirm),
            customer("grace"),
        )
        .await
        .expect_err("a cancelled order cannot be confirmed");
    println!("rejected as expected: {rejected}");

    println!("\nthe event log, decoded:");
    let registry = registry();
    for event in store.read_all(1, &EventFilter::all(), 1000).await? {
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
    Ok(())
}
