//! [`App::orders`]: the built-in app of the `mammoth` binary — the seed's order domain
//! (examples/orders). `mammoth serve` runs all of it: the `orders` projection, the order saga,
//! the outbox relay to the three command topics, and the inventory, payment and order
//! services as bus workers; `POST /commands/CreateOrder` starts a saga that reserves stock,
//! takes payment and confirms the order (or compensates).

use std::sync::Arc;

use mammoth_example_orders::app::OrdersApp;
use mammoth_example_orders::demo;
use mammoth_example_orders::projection::{
    self as orders, MysqlOrderProjection, MysqlOrderSummaries, OrderProjection, OrderSummaries,
    PgOrderProjection, PgOrderSummaries,
};
use mammoth_example_orders::saga::commands::{INVENTORY_TOPIC, ORDERS_TOPIC, PAYMENT_TOPIC};
use mammoth_example_orders::saga::{DEFAULT_PAYMENT_DEADLINE, OrderSaga};
use mammoth_example_orders::services::{PaymentBehaviour, Services};
use mammoth_runtime::QueryBus;

use crate::app::{App, AppContext, AppStore, ReadModel, ReadModelDatabase};

/// The three services over the context's store; each worker gets its own (they share nothing
/// but the store, whose appends are version-checked).
fn services(context: &AppContext) -> Arc<Services<AppStore>> {
    let store = context.store().clone();
    let app = Arc::new(OrdersApp::new(store.clone()));
    let payment = PaymentBehaviour {
        // A charge asked for this late would land after the saga compensated.
        charge_window: Some(DEFAULT_PAYMENT_DEADLINE * 3 / 5),
        ..PaymentBehaviour::default()
    };
    Services::new(app, store, payment)
}

/// The order summaries query, reading the `orders` read model wherever it runs.
fn order_queries(model: &ReadModel) -> QueryBus {
    let builder = QueryBus::builder();
    let progress = model.progress.clone();
    match &model.database {
        ReadModelDatabase::Sqlite(path) => OrderSummaries::new(path).register(builder, progress),
        ReadModelDatabase::Postgres(db) => {
            PgOrderSummaries::new(db.clone()).register(builder, progress)
        }
        ReadModelDatabase::Mysql(db) => {
            MysqlOrderSummaries::new(db.clone()).register(builder, progress)
        }
    }
    .build()
}

impl App {
    /// The built-in order app (examples/orders), which the `mammoth` binary runs.
    pub fn orders() -> Self {
        let app = Self::new("orders")
            .projection(OrderProjection::new)
            .postgres_projection(PgOrderProjection::new)
            .mysql_projection(MysqlOrderProjection::new)
            .saga(|_: &AppContext| OrderSaga::new(DEFAULT_PAYMENT_DEADLINE))
            .worker(INVENTORY_TOPIC, "inventory", |context: &AppContext| {
                services(context).inventory_handler()
            })
            .worker(PAYMENT_TOPIC, "payment", |context: &AppContext| {
                services(context).payment_handler()
            })
            .worker(ORDERS_TOPIC, "orders", |context: &AppContext| {
                services(context).orders_handler()
            })
            .routes(|context: &AppContext| {
                let app = OrdersApp::new(context.store().clone());
                let read_model = context.read_model(orders::NAME).map(order_queries);
                mammoth_server::orders::registry(&app, read_model)
            });
        match demo::topic_map() {
            Ok(topics) => app.topics(topics),
            // The built-in names are valid; were one not, serve would run without a relay.
            Err(error) => {
                tracing::error!(%error, "the order app's topics are invalid; no relay");
                app
            }
        }
    }
}
