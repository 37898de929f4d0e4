//! The commands the order saga issues, as the JSON payloads of its command events, and the
//! bus topics they travel on. The services (`crate::services`) decode the same types, so the
//! saga and the services cannot disagree on a field name.

use serde::{Deserialize, Serialize};

use crate::app::WAREHOUSE;
use crate::inventory::StockLine;
use crate::order::OrderLine;

/// The topic of the inventory service's commands.
pub const INVENTORY_TOPIC: &str = "inventory.commands";
/// The topic of the payment service's commands.
pub const PAYMENT_TOPIC: &str = "payment.commands";
/// The topic of the order service's commands.
pub const ORDERS_TOPIC: &str = "orders.commands";

/// Hold stock of one warehouse for an order (the reservation id is the order id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveInventory {
    /// The warehouse (the inventory aggregate's id).
    pub warehouse: String,
    /// The reservation's id: the order id.
    pub reservation_id: String,
    /// What to hold.
    pub items: Vec<StockLine>,
}

impl ReserveInventory {
    /// The command name: the event type of the saga's command event.
    pub const NAME: &'static str = "ReserveInventory";
}

/// Give a reservation's stock back: the compensation of [`ReserveInventory`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseInventory {
    /// The warehouse.
    pub warehouse: String,
    /// The reservation's id: the order id.
    pub reservation_id: String,
}

impl ReleaseInventory {
    /// The command name.
    pub const NAME: &'static str = "ReleaseInventory";
}

/// Charge an order's total (the payment's id is the order id, so one order is paid once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessPayment {
    /// The order.
    pub order_id: String,
    /// Who pays.
    pub customer_id: String,
    /// How much.
    pub amount_cents: u64,
}

impl ProcessPayment {
    /// The command name.
    pub const NAME: &'static str = "ProcessPayment";
}

/// Record the payment of an order and confirm it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmOrder {
    /// The order.
    pub order_id: String,
    /// The payment that paid it (the order id: one payment per order).
    pub payment_id: String,
    /// The amount paid.
    pub amount_cents: u64,
}

impl ConfirmOrder {
    /// The command name.
    pub const NAME: &'static str = "ConfirmOrder";
}

/// Cancel an order: the order's own compensation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOrder {
    /// The order.
    pub order_id: String,
    /// Why, for the customer and the audit trail.
    pub reason: String,
}

impl CancelOrder {
    /// The command name.
    pub const NAME: &'static str = "CancelOrder";
}

/// The warehouse that stocks `sku`: the text before the first `:` (`"w2:lamp"` is in
/// warehouse `w2`), or the example's one warehouse ([`WAREHOUSE`]) for a plain SKU.
pub fn warehouse_of(sku: &str) -> &str {
    match sku.split_once(':') {
        Some((warehouse, _)) if !warehouse.is_empty() => warehouse,
        _ => WAREHOUSE,
    }
}

/// The reservation an order needs: all its lines, from the warehouse of its first line. (An
/// order whose lines span warehouses finds the others' SKUs out of stock there and is
/// cancelled: the demo's orders never do that.)
pub fn reservation_for(order_id: &str, items: &[OrderLine]) -> ReserveInventory {
    let warehouse = items
        .first()
        .map_or(WAREHOUSE, |line| warehouse_of(&line.sku));
    ReserveInventory {
        warehouse: warehouse.to_owned(),
        reservation_id: order_id.to_owned(),
        items: items
            .iter()
            .map(|line| StockLine::new(line.sku.clone(), line.quantity))
            .collect(),
    }
}
