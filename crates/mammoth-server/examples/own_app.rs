//! A user's own binary: their store, their commands and queries, every mammoth route.
//!
//! ```text
//! cargo run -p mammoth-server --example own_app
//! curl -s -XPOST localhost:8081/commands/CreateOrder -H 'content-type: application/json' \
//!   -H 'X-Actor: alice' -d '{"order_id":"o-1","customer_id":"c-1",
//!   "items":[{"sku":"A","quantity":1,"unit_price_cents":500}],"total_cents":500}'
//! ```

use mammoth_example_orders::app::{GetOrder, OrdersApp};
use mammoth_server::{AppRegistry, Server};
use mammoth_sqlite::{SqliteEventStore, SqliteOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = SqliteEventStore::open("own_app.db", SqliteOptions::default())?;
    // The app: here the orders example's buses; register your own the same way.
    let app = OrdersApp::new(store.clone());
    let commands = mammoth_server::orders::registry(&app, None);
    let queries = app.queries.clone();
    let registry: AppRegistry = commands.query(
        "OrderById",
        move |id: serde_json::Map<String, serde_json::Value>, options| {
            let queries = queries.clone();
            let order_id = id
                .get("id")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            async move { queries.query_with(GetOrder { order_id }, options).await }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
    println!("listening on http://{}", listener.local_addr()?);
    let server = Server::new(store).backend("sqlite").app(registry);
    mammoth_server::run(listener, server, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
