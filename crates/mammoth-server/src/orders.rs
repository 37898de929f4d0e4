//! The built-in app (examples/orders, the seed's order domain) as an [`AppRegistry`]: what
//! `mammoth serve` serves, and what the `own_app` example shows a user's binary doing with
//! its own app. Compiled with the `orders` feature (on by default).
//!
//! Commands: `CreateOrder` `{order_id, customer_id, items: [{sku, quantity,
//! unit_price_cents}], total_cents}`, `CancelOrder` `{order_id, reason}`. Queries: `GetOrder`
//! `?order_id=` (from the order's stream), `GetStock` `?sku=`, and, when a read-model query
//! bus is given, `GetOrderSummary` `?order_id=` from the `orders` projection, which
//! `min_position` makes wait for the projection (read-your-writes).

use mammoth_core::EventStore;
use mammoth_example_orders::app::{CreateOrder, GetOrder, GetStock, OrdersApp};
use mammoth_example_orders::order::{Order, OrderCommand, OrderLine};
use mammoth_example_orders::projection::GetOrderSummary;
use mammoth_runtime::{CommandContext, Execute, QueryBus};
use serde::Deserialize;

use crate::AppRegistry;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOrderBody {
    order_id: String,
    customer_id: String,
    items: Vec<OrderLine>,
    total_cents: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelOrderBody {
    order_id: String,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderIdParams {
    order_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SkuParams {
    sku: String,
}

/// The orders app's commands and queries; `read_model` serves `GetOrderSummary` when given
/// (a query bus with [`mammoth_example_orders::projection::OrderSummaries::register`]).
pub fn registry<S>(app: &OrdersApp<S>, read_model: Option<QueryBus>) -> AppRegistry {
    let commands = app.commands.clone();
    let cancel_bus = app.commands.clone();
    let queries = app.queries.clone();
    let stock = app.queries.clone();
    let registry = AppRegistry::new()
        .command(
            "CreateOrder",
            move |body: CreateOrderBody, context: CommandContext| {
                let commands = commands.clone();
                async move {
                    let command = CreateOrder {
                        order_id: body.order_id,
                        customer_id: body.customer_id,
                        items: body.items,
                        total_cents: body.total_cents,
                    };
                    commands.dispatch_with(command, context).await
                }
            },
        )
        .command(
            "CancelOrder",
            move |body: CancelOrderBody, context: CommandContext| {
                let commands = cancel_bus.clone();
                async move {
                    let command = Execute::<Order>::new(
                        body.order_id,
                        OrderCommand::Cancel {
                            reason: body.reason,
                        },
                    );
                    commands.dispatch_with(command, context).await
                }
            },
        )
        .query("GetOrder", move |params: OrderIdParams, options| {
            let queries = queries.clone();
            async move {
                queries
                    .query_with(
                        GetOrder {
                            order_id: params.order_id,
                        },
                        options,
                    )
                    .await
            }
        })
        .query("GetStock", move |params: SkuParams, options| {
            let queries = stock.clone();
            async move {
                queries
                    .query_with(GetStock { sku: params.sku }, options)
                    .await
            }
        });
    match read_model {
        None => registry,
        Some(read_model) => {
            registry.query("GetOrderSummary", move |params: OrderIdParams, options| {
                let queries = read_model.clone();
                async move {
                    queries
                        .query_with(
                            GetOrderSummary {
                                order_id: params.order_id,
                            },
                            options,
                        )
                        .await
                }
            })
        }
    }
}

/// The orders app over `store` and its registry, without the projection's query.
pub fn app<S: EventStore + Clone + Send + Sync + 'static>(store: S) -> (OrdersApp<S>, AppRegistry) {
    let app = OrdersApp::new(store);
    let registry = registry(&app, None);
    (app, registry)
}
