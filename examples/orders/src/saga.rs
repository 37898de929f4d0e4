//! The seed's `OrderSaga` as a pure [`Saga`]: an order is reserved, paid and confirmed, or
//! compensated.
//!
//! ```text
//! OrderCreated ─► ReserveInventory ─► StockReserved ─► ProcessPayment ─► PaymentProcessed ─► ConfirmOrder ─► OrderConfirmed: completed
//!                        │                                   │ (deadline "payment")
//!                        ▼                                   ▼
//!                 ReservationFailed                PaymentFailed / deadline expired / rejected
//!                        │                                   │
//!                 CancelOrder: compensated          ReleaseInventory, then CancelOrder: compensated
//! ```
//!
//! Compensations are recorded as the steps complete (`CancelOrder` when the order is seen,
//! `ReleaseInventory` once stock is held) and the saga runner runs them in reverse order, one
//! at a time, when the saga answers [`SagaAction::Compensate`]. The saga does no I/O: the
//! runner (`mammoth_runtime::saga`) persists each step and the commands it issues in one
//! append, and the outbox relay delivers those commands to the services
//! ([`crate::services`]) over the bus topics in [`commands`].

pub mod commands;

use std::time::Duration;

use mammoth_core::saga::{Saga, SagaAction, SagaCommand, SagaInput};
use mammoth_core::{EventFilter, RecordedEvent, Upcasters, decode_recorded};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::order::OrderEvent;
use crate::versioning::upcasters;
use commands::{
    CancelOrder, ConfirmOrder, INVENTORY_TOPIC, ORDERS_TOPIC, PAYMENT_TOPIC, ProcessPayment,
    ReleaseInventory, reservation_for,
};

/// The saga type: its streams are `$saga-order-<order id>`.
pub const SAGA_TYPE: &str = "order";

/// The name of the payment deadline.
pub const PAYMENT_DEADLINE: &str = "payment";

/// The default time a payment may take before the saga compensates.
pub const DEFAULT_PAYMENT_DEADLINE: Duration = Duration::from_secs(5);

/// The event types the saga reads: what starts it, the answers to its commands and to its
/// compensations.
pub const EVENT_TYPES: [&str; 8] = [
    "OrderCreated",
    "StockReserved",
    "ReservationFailed",
    "ReservationReleased",
    "PaymentProcessed",
    "PaymentFailed",
    "OrderConfirmed",
    "OrderCancelled",
];

/// Where an order's saga is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStage {
    /// Not started.
    #[default]
    New,
    /// Waiting for the warehouse.
    Reserving,
    /// Stock held; waiting for the payment (under the payment deadline).
    Paying,
    /// Paid; waiting for the order's confirmation.
    Confirming,
    /// Confirmed.
    Done,
    /// Undoing what was done.
    Compensating,
}

/// The saga's own state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSagaState {
    /// The order (also the saga id, the reservation id and the payment id).
    pub order_id: String,
    /// Who pays.
    pub customer_id: String,
    /// How much.
    pub total_cents: u64,
    /// The warehouse holding its stock.
    pub warehouse: String,
    /// Where it is.
    pub stage: OrderStage,
}

/// The order saga.
#[derive(Clone)]
pub struct OrderSaga {
    payment_deadline: Duration,
    upcasters: Upcasters,
}

impl Default for OrderSaga {
    fn default() -> Self {
        Self::new(DEFAULT_PAYMENT_DEADLINE)
    }
}

impl std::fmt::Debug for OrderSaga {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderSaga")
            .field("payment_deadline", &self.payment_deadline)
            .finish_non_exhaustive()
    }
}

impl OrderSaga {
    /// The saga, compensating when no payment answer arrives within `payment_deadline`.
    pub fn new(payment_deadline: Duration) -> Self {
        Self {
            payment_deadline,
            upcasters: upcasters(),
        }
    }

    /// The payment deadline.
    pub fn payment_deadline(&self) -> Duration {
        self.payment_deadline
    }

    fn started(&self, state: &mut OrderSagaState, event: &RecordedEvent) -> Vec<SagaAction> {
        let created = decode_recorded::<OrderEvent>(event, &self.upcasters)
            .ok()
            .and_then(|events| events.into_iter().next());
        let Some(OrderEvent::OrderCreated {
            order_id,
            customer_id,
            items,
            total_cents,
        }) = created
        else {
            return vec![SagaAction::Fail {
                reason: format!(
                    "event {} at position {} is not an OrderCreated this saga can read",
                    event.id, event.position
                ),
            }];
        };
        let reserve = reservation_for(&order_id, &items);
        *state = OrderSagaState {
            order_id: order_id.clone(),
            customer_id,
            total_cents,
            warehouse: reserve.warehouse.clone(),
            stage: OrderStage::Reserving,
        };
        let cancel = CancelOrder {
            order_id: order_id.clone(),
            reason: "the order saga could not complete it".to_owned(),
        };
        vec![
            SagaAction::Compensation(command(CancelOrder::NAME, ORDERS_TOPIC, &order_id, &cancel)),
            SagaAction::Issue(command(
                commands::ReserveInventory::NAME,
                INVENTORY_TOPIC,
                &reserve.warehouse,
                &reserve,
            )),
        ]
    }

    fn on_event(&self, state: &mut OrderSagaState, event: &RecordedEvent) -> Vec<SagaAction> {
        let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        let text = |field: &str| data.get(field).and_then(Value::as_str).unwrap_or("?");
        match (state.stage, event.event_type.as_str()) {
            (OrderStage::New, "OrderCreated") => self.started(state, event),
            (OrderStage::Reserving, "StockReserved") => {
                state.stage = OrderStage::Paying;
                let release = ReleaseInventory {
                    warehouse: state.warehouse.clone(),
                    reservation_id: state.order_id.clone(),
                };
                let pay = ProcessPayment {
                    order_id: state.order_id.clone(),
                    customer_id: state.customer_id.clone(),
                    amount_cents: state.total_cents,
                };
                vec![
                    SagaAction::Compensation(command(
                        ReleaseInventory::NAME,
                        INVENTORY_TOPIC,
                        &state.warehouse,
                        &release,
                    )),
                    SagaAction::Issue(command(
                        ProcessPayment::NAME,
                        PAYMENT_TOPIC,
                        &state.order_id,
                        &pay,
                    )),
                    SagaAction::Schedule {
                        name: PAYMENT_DEADLINE.to_owned(),
                        after: self.payment_deadline,
                    },
                ]
            }
            (OrderStage::Reserving, "ReservationFailed") => {
                state.stage = OrderStage::Compensating;
                let short = |field: &str| data.get(field).and_then(Value::as_u64).unwrap_or(0);
                vec![SagaAction::Compensate {
                    reason: format!(
                        "inventory: {} short (requested {}, available {})",
                        text("sku"),
                        short("requested"),
                        short("available")
                    ),
                }]
            }
            (OrderStage::Paying, "PaymentProcessed") => {
                state.stage = OrderStage::Confirming;
                let confirm = ConfirmOrder {
                    order_id: state.order_id.clone(),
                    payment_id: state.order_id.clone(),
                    amount_cents: state.total_cents,
                };
                vec![
                    SagaAction::Cancel {
                        name: PAYMENT_DEADLINE.to_owned(),
                    },
                    SagaAction::Issue(command(
                        ConfirmOrder::NAME,
                        ORDERS_TOPIC,
                        &state.order_id,
                        &confirm,
                    )),
                ]
            }
            (OrderStage::Paying, "PaymentFailed") => {
                state.stage = OrderStage::Compensating;
                vec![SagaAction::Compensate {
                    reason: format!("payment failed: {}", text("reason")),
                }]
            }
            (OrderStage::Confirming, "OrderConfirmed") => {
                state.stage = OrderStage::Done;
                vec![SagaAction::Complete]
            }
            (OrderStage::Reserving | OrderStage::Paying, "OrderCancelled") => {
                // Cancelled by someone else: give the stock back (the order's own
                // compensation will be refused, which ends the saga failed with the reason).
                state.stage = OrderStage::Compensating;
                vec![SagaAction::Compensate {
                    reason: format!(
                        "the order was cancelled outside the saga: {}",
                        text("reason")
                    ),
                }]
            }
            // Anything else (a late or duplicate answer) changes nothing.
            _ => Vec::new(),
        }
    }
}

impl Saga for OrderSaga {
    const TYPE: &'static str = SAGA_TYPE;
    type State = OrderSagaState;

    fn filter(&self) -> EventFilter {
        EventFilter::all().with_types(EVENT_TYPES)
    }

    fn starts(&self, event: &RecordedEvent) -> Option<String> {
        (event.event_type == "OrderCreated" && event.stream_id.category() == "order")
            .then(|| order_id_of(event))
            .flatten()
    }

    fn correlate(&self, event: &RecordedEvent) -> Option<String> {
        if !EVENT_TYPES.contains(&event.event_type.as_str()) {
            return None;
        }
        order_id_of(event)
    }

    fn react(&self, state: &mut OrderSagaState, input: &SagaInput<'_>) -> Vec<SagaAction> {
        match input {
            SagaInput::Event(event) => self.on_event(state, event),
            SagaInput::DeadlineExpired { name } if *name == PAYMENT_DEADLINE => {
                if state.stage != OrderStage::Paying {
                    return Vec::new();
                }
                state.stage = OrderStage::Compensating;
                vec![SagaAction::Compensate {
                    reason: format!(
                        "no payment answer within {} ms",
                        self.payment_deadline.as_millis()
                    ),
                }]
            }
            SagaInput::CommandRejected { command, reason } => match state.stage {
                OrderStage::Reserving | OrderStage::Paying => {
                    state.stage = OrderStage::Compensating;
                    vec![SagaAction::Compensate {
                        reason: format!("{command} was rejected: {reason}"),
                    }]
                }
                // Paid but not confirmable: a person must look (a refund is not automated).
                OrderStage::Confirming => vec![SagaAction::Fail {
                    reason: format!("{command} was rejected after payment: {reason}"),
                }],
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }
}

/// The order an event is about: `order_id` in its data, or `reservation_id` for the
/// warehouse's events (reservations are named after their order).
fn order_id_of(event: &RecordedEvent) -> Option<String> {
    let data: Value = serde_json::from_str(&event.data).ok()?;
    data.get("order_id")
        .or_else(|| data.get("reservation_id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

fn command(name: &str, topic: &str, key: &str, payload: &impl Serialize) -> SagaCommand {
    // The command types are plain structs of strings and numbers: they always serialize.
    let payload = serde_json::to_value(payload).unwrap_or(Value::Null);
    SagaCommand::new(name, topic, key, payload)
}

#[cfg(test)]
mod tests;
