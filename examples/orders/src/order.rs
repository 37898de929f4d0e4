//! The Order aggregate: created with a customer, items and a total; then paid and confirmed,
//! or cancelled. The seed's `CreateOrderCommand` and `OrderCreatedEvent`, as a decider.

use mammoth_core::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// One line of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The product's stock keeping unit.
    pub sku: String,
    /// How many, at least 1.
    pub quantity: u32,
    /// Price of one, in cents.
    pub unit_price_cents: u64,
}

impl OrderLine {
    /// A line of `quantity` × `sku` at `unit_price_cents` each.
    pub fn new(sku: impl Into<String>, quantity: u32, unit_price_cents: u64) -> Self {
        Self {
            sku: sku.into(),
            quantity,
            unit_price_cents,
        }
    }

    /// The line's amount in cents.
    pub fn amount_cents(&self) -> u64 {
        u64::from(self.quantity) * self.unit_price_cents
    }
}

/// What an order is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderCommand {
    /// Place a new order. The stated total must match the items (the seed trusted it).
    Create {
        /// The new order's id (also the aggregate id).
        order_id: String,
        /// Who orders.
        customer_id: String,
        /// What, at least one line.
        items: Vec<OrderLine>,
        /// The total the client computed, in cents.
        total_cents: u64,
    },
    /// Cancel a pending or paid order.
    Cancel {
        /// Why, for the customer and the audit trail.
        reason: String,
    },
    /// Record the payment of a pending order.
    MarkPaid {
        /// The payment that paid it.
        payment_id: String,
        /// The amount paid, which must be the total.
        amount_cents: u64,
    },
    /// Confirm a paid order.
    Confirm,
}

/// What happened to an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEvent {
    /// The order was placed. Version 2; version 1 stored `total` as a decimal string.
    OrderCreated {
        /// The order's id.
        order_id: String,
        /// Who ordered.
        customer_id: String,
        /// What.
        items: Vec<OrderLine>,
        /// The total in cents.
        total_cents: u64,
    },
    /// The order was cancelled.
    OrderCancelled {
        /// The order's id.
        order_id: String,
        /// Why.
        reason: String,
    },
    /// The order was paid.
    OrderPaid {
        /// The order's id.
        order_id: String,
        /// The payment.
        payment_id: String,
        /// The amount in cents.
        amount_cents: u64,
    },
    /// The order was confirmed.
    OrderConfirmed {
        /// The order's id.
        order_id: String,
    },
}

impl DomainEvent for OrderEvent {
    fn schema_version(event_type: &str) -> Option<u32> {
        match event_type {
            "OrderCreated" => Some(2),
            "OrderCancelled" | "OrderPaid" | "OrderConfirmed" => Some(1),
            _ => None,
        }
    }
}

/// Why an order refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// Create on an order that exists.
    #[error("order {0} already exists")]
    AlreadyExists(String),
    /// Anything but Create on an order that does not exist.
    #[error("no such order")]
    NotFound,
    /// An order without lines.
    #[error("an order needs at least one item")]
    NoItems,
    /// A line with quantity 0.
    #[error("item {sku}: quantity must be at least 1")]
    ZeroQuantity {
        /// The line's SKU.
        sku: String,
    },
    /// The stated total is not the sum of the lines.
    #[error("stated total {stated} cents does not match the items' {computed} cents")]
    TotalMismatch {
        /// What the client said.
        stated: u64,
        /// What the lines add up to.
        computed: u64,
    },
    /// A payment of another amount than the total.
    #[error("payment of {paid} cents does not match the total of {total} cents")]
    AmountMismatch {
        /// What was paid.
        paid: u64,
        /// What is owed.
        total: u64,
    },
    /// A command the order's status does not allow.
    #[error("cannot {action} an order that is {status:?}")]
    InvalidTransition {
        /// The command.
        action: &'static str,
        /// The order's status.
        status: OrderStatus,
    },
}

/// Where an order is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Not created yet.
    #[default]
    New,
    /// Created, waiting for payment.
    Pending,
    /// Paid, waiting for confirmation.
    Paid,
    /// Confirmed: final.
    Confirmed,
    /// Cancelled: final.
    Cancelled,
}

/// An order's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order's id, empty before creation.
    pub id: String,
    /// Where it is in its life.
    pub status: OrderStatus,
    /// Who ordered.
    pub customer_id: String,
    /// What.
    pub items: Vec<OrderLine>,
    /// The total in cents.
    pub total_cents: u64,
    /// The payment, once paid.
    pub payment_id: Option<String>,
}

impl Aggregate for Order {
    const CATEGORY: &'static str = "order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    fn decide(&self, command: &OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        use OrderStatus::{New, Paid, Pending};
        let order_id = self.id.clone();
        match (command, self.status) {
            (OrderCommand::Create { .. }, status) if status != New => {
                Err(OrderError::AlreadyExists(order_id))
            }
            (
                OrderCommand::Create {
                    order_id,
                    customer_id,
                    items,
                    total_cents,
                },
                _,
            ) => create(order_id, customer_id, items, *total_cents),
            (_, New) => Err(OrderError::NotFound),
            (OrderCommand::Cancel { reason }, Pending | Paid) => {
                Ok(vec![OrderEvent::OrderCancelled {
                    order_id,
                    reason: reason.clone(),
                }])
            }
            (
                OrderCommand::MarkPaid {
                    payment_id,
                    amount_cents,
                },
                Pending,
            ) => {
                if *amount_cents != self.total_cents {
                    return Err(OrderError::AmountMismatch {
                        paid: *amount_cents,
                        total: self.total_cents,
                    });
                }
                Ok(vec![OrderEvent::OrderPaid {
                    order_id,
                    payment_id: payment_id.clone(),
                    amount_cents: *amount_cents,
                }])
            }
            (OrderCommand::Confirm, Paid) => Ok(vec![OrderEvent::OrderConfirmed { order_id }]),
            (command, status) => Err(OrderError::InvalidTransition {
                action: match command {
                    OrderCommand::Create { .. } => "create",
                    OrderCommand::Cancel { .. } => "cancel",
                    OrderCommand::MarkPaid { .. } => "mark paid",
                    OrderCommand::Confirm => "confirm",
                },
                status,
            }),
        }
    }

    fn evolve(mut self, event: &OrderEvent) -> Self {
        match event {
            OrderEvent::OrderCreated {
                order_id,
                customer_id,
                items,
                total_cents,
            } => {
                self.id.clone_from(order_id);
                self.customer_id.clone_from(customer_id);
                self.items.clone_from(items);
                self.total_cents = *total_cents;
                self.status = OrderStatus::Pending;
            }
            OrderEvent::OrderCancelled { .. } => self.status = OrderStatus::Cancelled,
            OrderEvent::OrderPaid { payment_id, .. } => {
                self.payment_id = Some(payment_id.clone());
                self.status = OrderStatus::Paid;
            }
            OrderEvent::OrderConfirmed { .. } => self.status = OrderStatus::Confirmed,
        }
        self
    }
}

fn create(
    order_id: &str,
    customer_id: &str,
    items: &[OrderLine],
    total_cents: u64,
) -> Result<Vec<OrderEvent>, OrderError> {
    if items.is_empty() {
        return Err(OrderError::NoItems);
    }
    if let Some(line) = items.iter().find(|line| line.quantity == 0) {
        return Err(OrderError::ZeroQuantity {
            sku: line.sku.clone(),
        });
    }
    let computed = items.iter().map(OrderLine::amount_cents).sum();
    if computed != total_cents {
        return Err(OrderError::TotalMismatch {
            stated: total_cents,
            computed,
        });
    }
    Ok(vec![OrderEvent::OrderCreated {
        order_id: order_id.to_owned(),
        customer_id: customer_id.to_owned(),
        items: items.to_vec(),
        total_cents,
    }])
}
