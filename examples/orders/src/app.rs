//! The order domain wired onto mammoth's buses: repositories for the three aggregates, the
//! commands and queries the seed's `CommandBus` and `QueryBus` carried, and the middleware.

use mammoth_core::{Aggregate, EventStore, SnapshotStore, Version};
use mammoth_runtime::{
    Authorization, Command, CommandBus, CommandContext, CommandError, Committed, Envelope, Execute,
    Idempotency, Query, QueryBus, QueryError, Repository, RetryPolicy, SnapshotPolicy,
    StoreProgress, Tracing, Validation,
};
use serde::Serialize;

use crate::inventory::Inventory;
use crate::order::{Order, OrderCommand, OrderError, OrderLine, OrderStatus};
use crate::payment::Payment;
use crate::versioning::{schemas, upcasters};

/// The id of the one warehouse of the example.
pub const WAREHOUSE: &str = "main";

/// The seed's `CreateOrderCommand`: place an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateOrder {
    /// The new order's id, chosen by the client (so a retry cannot create two orders).
    pub order_id: String,
    /// Who orders.
    pub customer_id: String,
    /// What.
    pub items: Vec<OrderLine>,
    /// The total in cents; it must match the items.
    pub total_cents: u64,
}

impl Command for CreateOrder {
    type Output = Committed;
    type Error = OrderError;
}

/// The seed's `GetOrderQuery`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetOrder {
    /// The order's id.
    pub order_id: String,
}

/// An order as the read side shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderView {
    /// The order's id.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// Where it is in its life.
    pub status: OrderStatus,
    /// What.
    pub items: Vec<OrderLine>,
    /// The total in cents.
    pub total_cents: u64,
    /// The order stream's version the view reflects.
    pub version: Version,
}

impl Query for GetOrder {
    type Output = Option<OrderView>;
}

/// How many of a SKU the warehouse can still reserve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetStock {
    /// The SKU.
    pub sku: String,
}

impl Query for GetStock {
    type Output = u32;
}

/// The example's buses and repositories over one event store.
pub struct OrdersApp<S> {
    /// Commands: [`CreateOrder`], and `Execute<Order | Inventory | Payment>`.
    pub commands: CommandBus,
    /// Queries: [`GetOrder`], [`GetStock`].
    pub queries: QueryBus,
    /// The orders.
    pub orders: Repository<Order, S>,
    /// The warehouse.
    pub inventory: Repository<Inventory, S>,
    /// The payments.
    pub payments: Repository<Payment, S>,
}

fn repository<A: Aggregate, S: EventStore + Clone>(
    store: &S,
    snapshots: Option<(&(impl SnapshotStore + Clone + 'static), &Tuning)>,
    retry: RetryPolicy,
) -> Repository<A, S> {
    let repository = Repository::new(store.clone())
        .with_upcasters(upcasters())
        .with_schemas(schemas())
        .with_retry(retry);
    match snapshots {
        Some((snapshots, tuning)) => {
            repository.with_snapshots(snapshots.clone(), tuning.policy::<A>())
        }
        None => repository,
    }
}

/// How snapshots are taken: one policy for every aggregate, or `[snapshots]` of `mammoth.tsk`
/// with its per-aggregate overrides.
enum Tuning {
    Every(SnapshotPolicy),
    Configured(mammoth_config::SnapshotConfig),
}

impl Tuning {
    fn policy<A: Aggregate>(&self) -> SnapshotPolicy {
        match self {
            Self::Every(policy) => *policy,
            Self::Configured(config) => {
                SnapshotPolicy::for_aggregate::<A>(config.every, &config.per_aggregate)
            }
        }
    }
}

/// Only a signed-in actor may place orders or process payments; stock changes need the
/// `warehouse` actor. Commands from sagas carry their own actor.
fn authorize(envelope: &Envelope) -> Result<(), String> {
    let actor = envelope.context.actor.as_deref();
    if envelope.command::<Execute<Inventory>>().is_some() {
        return match actor {
            Some("warehouse" | "saga") => Ok(()),
            _ => Err("stock changes need the warehouse or saga actor".to_owned()),
        };
    }
    match actor {
        Some(_) => Ok(()),
        None => Err("sign in first: the command context names no actor".to_owned()),
    }
}

impl<S: EventStore + Clone + Send + Sync + 'static> OrdersApp<S> {
    /// The app over `store`, without snapshots.
    pub fn new(store: S) -> Self {
        Self::build(
            store,
            None::<(&mammoth_core::InMemorySnapshotStore, _)>,
            RetryPolicy::default(),
        )
    }

    /// The app over `store` tuned by `mammoth.tsk`: snapshots as `[snapshots]` says (`every`,
    /// with `per_aggregate` overrides keyed by category or type name), conflict retries as
    /// `cqrs.max_conflict_retries` says.
    pub fn configured(
        store: S,
        snapshots: impl SnapshotStore + Clone + 'static,
        config: &mammoth_config::Config,
    ) -> Self {
        let tuning = Tuning::Configured(config.snapshots.clone());
        let retry = RetryPolicy::attempts(config.cqrs.max_conflict_retries.saturating_add(1));
        Self::build(store, Some((&snapshots, &tuning)), retry)
    }

    /// The app over `store`, with snapshots of every aggregate in `snapshots` as `policy` says.
    pub fn with_snapshots(
        store: S,
        snapshots: impl SnapshotStore + Clone + 'static,
        policy: SnapshotPolicy,
    ) -> Self {
        let tuning = Tuning::Every(policy);
        Self::build(store, Some((&snapshots, &tuning)), RetryPolicy::default())
    }

    fn build(
        store: S,
        snapshots: Option<(&(impl SnapshotStore + Clone + 'static), &Tuning)>,
        retry: RetryPolicy,
    ) -> Self {
        let orders = repository::<Order, S>(&store, snapshots, retry);
        let inventory = repository::<Inventory, S>(&store, snapshots, retry);
        let payments = repository::<Payment, S>(&store, snapshots, retry);
        let commands = CommandBus::builder()
            .layer(Tracing)
            .layer(Idempotency::default())
            .layer(Authorization::new(authorize))
            .layer(Validation::new().rule(|create: &CreateOrder| {
                if create.order_id.is_empty() || create.order_id.len() > 128 {
                    return Err("order_id must be 1 to 128 characters".to_owned());
                }
                Ok(())
            }))
            .aggregate(orders.clone(), |create: CreateOrder| {
                let id = create.order_id.clone();
                let command = OrderCommand::Create {
                    order_id: create.order_id,
                    customer_id: create.customer_id,
                    items: create.items,
                    total_cents: create.total_cents,
                };
                (id, command)
            })
            .repository(orders.clone())
            .repository(inventory.clone())
            .repository(payments.clone())
            .build();
        let get_order = {
            let orders = orders.clone();
            move |query: GetOrder| {
                let orders = orders.clone();
                async move { get_order(&orders, &query.order_id).await }
            }
        };
        let get_stock = {
            let inventory = inventory.clone();
            move |query: GetStock| {
                let inventory = inventory.clone();
                async move {
                    let loaded = inventory.load(WAREHOUSE).await.map_err(query_error)?;
                    Ok(loaded.state.available(&query.sku))
                }
            }
        };
        let queries = QueryBus::builder()
            .handle_with_progress(get_order, StoreProgress::new(store.clone()))
            .handle_with_progress(get_stock, StoreProgress::new(store))
            .build();
        Self {
            commands,
            queries,
            orders,
            inventory,
            payments,
        }
    }
}

async fn get_order<S: EventStore>(
    orders: &Repository<Order, S>,
    order_id: &str,
) -> Result<Option<OrderView>, QueryError> {
    let loaded = orders.load(order_id).await.map_err(query_error)?;
    if loaded.version == 0 {
        return Ok(None);
    }
    let order = loaded.state;
    Ok(Some(OrderView {
        order_id: order.id,
        customer_id: order.customer_id,
        status: order.status,
        items: order.items,
        total_cents: order.total_cents,
        version: loaded.version,
    }))
}

/// A load failure as the read side reports it.
fn query_error<E: std::fmt::Display>(error: CommandError<E>) -> QueryError {
    match error {
        CommandError::Store(error) => QueryError::Store(error),
        CommandError::Codec(error) => QueryError::Codec(error),
        other => QueryError::Failed {
            query: "load",
            message: other.to_string(),
        },
    }
}

/// A context for a signed-in customer.
pub fn customer(actor: &str) -> CommandContext {
    CommandContext::new().with_actor(actor)
}
