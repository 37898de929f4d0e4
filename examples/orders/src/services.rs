//! The inventory, payment and order services: handlers of the saga's commands as they arrive on
//! the bus, one consumer group each, as separate services would run them.
//!
//! Each handler decodes the relayed command event (the saga's outbox), dispatches the matching
//! aggregate command on the [`OrdersApp`] command bus with the saga's correlation (the command
//! event becomes the cause of the events it writes) and the message id as idempotency key (a
//! redelivery writes nothing twice), and answers the bus:
//! - success, or a domain rejection (reported to the saga as a `CommandRejected` event): ack;
//! - a conflict or a store failure: retry with the bus's backoff;
//! - a message that can never succeed (undecodable, unauthorized) or a poisoned payment: the
//!   dead-letter queue.
//!
//! The warehouse is a hot spot: every reservation and release of one warehouse appends to its
//! one stream. The inventory service runs the commands of one warehouse one at a time (a lock
//! per warehouse, in the process), so concurrent handlers never conflict on it; the demo also
//! spreads its SKUs over several warehouses so that different warehouses proceed in parallel.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mammoth_core::bus::{Delivery, Failure, NackAction};
use mammoth_core::{EventStore, RecordedEvent};
use mammoth_runtime::saga::{SagaCommandContext, report_rejection};
use mammoth_runtime::{CommandContext, CommandError, Execute};
use serde::de::DeserializeOwned;

use crate::app::OrdersApp;
use crate::inventory::{Inventory, InventoryCommand};
use crate::order::{Order, OrderCommand};
use crate::payment::{Payment, PaymentCommand};
use crate::saga::commands::{
    CancelOrder, ConfirmOrder, ProcessPayment, ReleaseInventory, ReserveInventory,
};

/// The card token the simulated gateway declines (see [`crate::payment`]).
pub const DECLINED_CARD: &str = "tok_decline_demo";
/// The card token of a charge asked for too late, which the simulated gateway declines.
pub const EXPIRED_CARD: &str = "tok_expired_demo";
/// The card token the simulated gateway accepts.
pub const ACCEPTED_CARD: &str = "tok_visa_demo";

/// How the simulated payment provider behaves: which orders' cards are declined and which
/// orders' payment commands are poison (their handler fails every attempt).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PaymentBehaviour {
    /// The share of orders (0.0 to 1.0) whose card is declined.
    pub failure_rate: f64,
    /// Mixed into the per-order hash, so another seed declines other orders.
    pub seed: u64,
    /// Orders whose payment command fails on every delivery and ends in the dead-letter queue.
    pub poison: BTreeSet<String>,
    /// A payment command older than this (since its saga issued it) is declined rather than
    /// charged: its saga's deadline is about to compensate, and a charge landing after that
    /// would be kept for a cancelled order. Set it well below the saga's payment deadline.
    pub charge_window: Option<Duration>,
}

impl PaymentBehaviour {
    /// True when `order_id`'s card is declined: a hash of the id and the seed, so a run with
    /// the same seed declines the same orders.
    pub fn declines(&self, order_id: &str) -> bool {
        // The top 53 bits as a fraction in [0, 1).
        let fraction = (order_hash(self.seed, order_id) >> 11) as f64 / (1u64 << 53) as f64;
        fraction < self.failure_rate
    }

    /// True when `order_id`'s payment command is poison.
    pub fn is_poison(&self, order_id: &str) -> bool {
        self.poison.contains(order_id)
    }
}

/// A stable 64-bit hash of `seed` and `order_id`, the same on every run and platform: FNV-1a,
/// then MurmurHash3's finalizer (FNV alone leaves the high bits of ids that differ only in
/// their last characters nearly equal, so `order-1`, `order-2`, ... would all fall on one
/// side of a threshold).
pub fn order_hash(seed: u64, order_id: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in seed.to_le_bytes().iter().chain(order_id.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// What the services did, for the demo's summary.
#[derive(Debug, Default)]
pub struct ServiceCounters {
    /// Commands that wrote their events (or found them written by an earlier delivery).
    pub handled: AtomicU64,
    /// Deliveries of a command whose events an earlier delivery had written already.
    pub replayed: AtomicU64,
    /// Commands the domain rejected (reported to the saga).
    pub rejected: AtomicU64,
    /// Deliveries handed back for a retry (conflicts, store failures).
    pub retried: AtomicU64,
    /// Poisoned payment deliveries failed on purpose.
    pub poisoned: AtomicU64,
}

/// The three services over one [`OrdersApp`].
pub struct Services<S> {
    app: Arc<OrdersApp<S>>,
    store: S,
    payment: PaymentBehaviour,
    warehouses: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    counters: Arc<ServiceCounters>,
}

/// A handler's outcome as the bus worker wants it.
pub type Handled = Result<(), Failure>;

impl<S: EventStore + Clone + Send + Sync + 'static> Services<S> {
    /// The services over `app` (writing to `store`, where rejections are reported), paying as
    /// `payment` says.
    pub fn new(app: Arc<OrdersApp<S>>, store: S, payment: PaymentBehaviour) -> Arc<Self> {
        Arc::new(Self {
            app,
            store,
            payment,
            warehouses: Mutex::new(HashMap::new()),
            counters: Arc::default(),
        })
    }

    /// The counters all three services add to.
    pub fn counters(&self) -> Arc<ServiceCounters> {
        Arc::clone(&self.counters)
    }

    /// The inventory service's handler (`ReserveInventory`, `ReleaseInventory`), for a
    /// `BusWorker` on the inventory topic.
    pub fn inventory_handler(
        self: &Arc<Self>,
    ) -> impl Fn(Delivery) -> std::pin::Pin<Box<dyn Future<Output = Handled> + Send>>
    + Send
    + Sync
    + 'static
    + use<S> {
        let services = Arc::clone(self);
        move |delivery| {
            let services = Arc::clone(&services);
            Box::pin(async move { services.inventory(delivery).await })
        }
    }

    /// The payment service's handler (`ProcessPayment`).
    pub fn payment_handler(
        self: &Arc<Self>,
    ) -> impl Fn(Delivery) -> std::pin::Pin<Box<dyn Future<Output = Handled> + Send>>
    + Send
    + Sync
    + 'static
    + use<S> {
        let services = Arc::clone(self);
        move |delivery| {
            let services = Arc::clone(&services);
            Box::pin(async move { services.payment(delivery).await })
        }
    }

    /// The order service's handler (`ConfirmOrder`, `CancelOrder`).
    pub fn orders_handler(
        self: &Arc<Self>,
    ) -> impl Fn(Delivery) -> std::pin::Pin<Box<dyn Future<Output = Handled> + Send>>
    + Send
    + Sync
    + 'static
    + use<S> {
        let services = Arc::clone(self);
        move |delivery| {
            let services = Arc::clone(&services);
            Box::pin(async move { services.orders(delivery).await })
        }
    }

    async fn inventory(&self, delivery: Delivery) -> Handled {
        let event = command_event(&delivery)?;
        let (warehouse, command) = match event.event_type.as_str() {
            ReserveInventory::NAME => {
                let reserve: ReserveInventory = payload(&event)?;
                let command = InventoryCommand::Reserve {
                    reservation_id: reserve.reservation_id,
                    items: reserve.items,
                };
                (reserve.warehouse, command)
            }
            ReleaseInventory::NAME => {
                let release: ReleaseInventory = payload(&event)?;
                let command = InventoryCommand::Release {
                    reservation_id: release.reservation_id,
                };
                (release.warehouse, command)
            }
            other => return Err(unknown(other)),
        };
        let lock = self.warehouse_lock(&warehouse);
        let _turn = lock.lock().await;
        let context = context_for(&delivery, 0);
        let outcome = self
            .app
            .commands
            .dispatch_with(Execute::<Inventory>::new(warehouse, command), context)
            .await;
        self.answer(&delivery, &event, outcome).await
    }

    async fn payment(&self, delivery: Delivery) -> Handled {
        let event = command_event(&delivery)?;
        if event.event_type != ProcessPayment::NAME {
            return Err(unknown(&event.event_type));
        }
        let pay: ProcessPayment = payload(&event)?;
        if self.payment.is_poison(&pay.order_id) {
            self.counters.poisoned.fetch_add(1, Ordering::Relaxed);
            return Err(Failure::retry(format!(
                "payment provider returned garbage for order {} (a poison message: it fails every attempt)",
                pay.order_id
            )));
        }
        let age_micros = mammoth_core::now_micros().saturating_sub(event.recorded_at_micros);
        let too_late = self
            .payment
            .charge_window
            .is_some_and(|window| u128::try_from(age_micros).unwrap_or(0) > window.as_micros());
        let card_token = if too_late {
            EXPIRED_CARD
        } else if self.payment.declines(&pay.order_id) {
            DECLINED_CARD
        } else {
            ACCEPTED_CARD
        };
        let command = PaymentCommand::Process {
            order_id: pay.order_id.clone(),
            amount_cents: pay.amount_cents,
            card_token: card_token.to_owned(),
        };
        let context = context_for(&delivery, 0);
        let outcome = self
            .app
            .commands
            .dispatch_with(Execute::<Payment>::new(pay.order_id, command), context)
            .await;
        self.answer(&delivery, &event, outcome).await
    }

    async fn orders(&self, delivery: Delivery) -> Handled {
        let event = command_event(&delivery)?;
        match event.event_type.as_str() {
            ConfirmOrder::NAME => {
                let confirm: ConfirmOrder = payload(&event)?;
                let paid = OrderCommand::MarkPaid {
                    payment_id: confirm.payment_id,
                    amount_cents: confirm.amount_cents,
                };
                // Two commands, two keys: a redelivery after the first replays it and runs
                // the second.
                let outcome = self
                    .app
                    .commands
                    .dispatch_with(
                        Execute::<Order>::new(confirm.order_id.clone(), paid),
                        context_for(&delivery, 0),
                    )
                    .await;
                if let Err(error) = outcome {
                    return self.answer(&delivery, &event, Err(error)).await;
                }
                let outcome = self
                    .app
                    .commands
                    .dispatch_with(
                        Execute::<Order>::new(confirm.order_id, OrderCommand::Confirm),
                        context_for(&delivery, 1),
                    )
                    .await;
                self.answer(&delivery, &event, outcome).await
            }
            CancelOrder::NAME => {
                let cancel: CancelOrder = payload(&event)?;
                let command = OrderCommand::Cancel {
                    reason: cancel.reason,
                };
                let outcome = self
                    .app
                    .commands
                    .dispatch_with(
                        Execute::<Order>::new(cancel.order_id, command),
                        context_for(&delivery, 0),
                    )
                    .await;
                self.answer(&delivery, &event, outcome).await
            }
            other => Err(unknown(other)),
        }
    }

    fn warehouse_lock(&self, warehouse: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .warehouses
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(locks.entry(warehouse.to_owned()).or_default())
    }

    /// Turns a command's outcome into the bus's answer; a rejection is reported to the saga.
    async fn answer<E: std::fmt::Display>(
        &self,
        delivery: &Delivery,
        event: &RecordedEvent,
        outcome: Result<mammoth_runtime::Committed, CommandError<E>>,
    ) -> Handled {
        match outcome {
            Ok(committed) => {
                self.counters.handled.fetch_add(1, Ordering::Relaxed);
                if committed.replayed {
                    self.counters.replayed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(CommandError::Rejected(reason)) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                let command = SagaCommandContext::decode(delivery).map_err(|error| Failure {
                    error: error.to_string(),
                    action: NackAction::DeadLetter,
                })?;
                match report_rejection(&self.store, &command, &reason.to_string()).await {
                    Ok(_) => Ok(()),
                    Err(error) => Err(Failure::retry(format!(
                        "{} {} was rejected ({reason}) but reporting it failed: {error}",
                        event.event_type, event.id
                    ))),
                }
            }
            Err(
                error @ (CommandError::Conflict { .. }
                | CommandError::Store(_)
                | CommandError::Failed { .. }),
            ) => {
                self.counters.retried.fetch_add(1, Ordering::Relaxed);
                Err(Failure::retry(error))
            }
            // Unauthorized, invalid, unknown, a schema or codec failure, a reused key: a
            // redelivery cannot fix any of them.
            Err(error) => Err(Failure {
                error: error.to_string(),
                action: NackAction::DeadLetter,
            }),
        }
    }
}

/// The saga's command event a delivery carries (the relay publishes the whole recorded event).
fn command_event(delivery: &Delivery) -> Result<RecordedEvent, Failure> {
    serde_json::from_slice(&delivery.message.payload).map_err(|error| Failure {
        error: format!(
            "message {} is not a relayed event ({error}); only the outbox relay publishes here",
            delivery.message.id
        ),
        action: NackAction::DeadLetter,
    })
}

fn payload<T: DeserializeOwned>(event: &RecordedEvent) -> Result<T, Failure> {
    serde_json::from_str(&event.data).map_err(|error| Failure {
        error: format!(
            "command {} {} has a payload this service cannot read: {error}",
            event.event_type, event.id
        ),
        action: NackAction::DeadLetter,
    })
}

fn unknown(command: &str) -> Failure {
    Failure {
        error: format!("this service does not handle {command}; check the relay's topic map"),
        action: NackAction::DeadLetter,
    }
}

/// The context of the `index`th aggregate command run for a delivered saga command: the
/// runtime's saga context (the command is the cause of what it writes, the `saga` field is
/// copied so the answer is routed back), acting as `saga`, with the message id (plus the
/// index) as idempotency key, so a redelivery writes nothing twice.
fn context_for(delivery: &Delivery, index: usize) -> CommandContext {
    let context = SagaCommandContext::from_delivery(delivery).with_actor("saga");
    let key = if index == 0 {
        delivery.message.id.to_string()
    } else {
        format!("{}/{index}", delivery.message.id)
    };
    context.with_idempotency_key(key)
}

#[cfg(test)]
mod tests {
    use super::PaymentBehaviour;

    #[test]
    fn the_failure_rate_declines_about_that_share_of_similar_order_ids_the_same_way_every_time() {
        let behaviour = PaymentBehaviour {
            failure_rate: 0.2,
            seed: 42,
            ..PaymentBehaviour::default()
        };
        for prefix in ["crash", "d0", "order"] {
            let ids: Vec<String> = (0..2_000).map(|n| format!("{prefix}-{n}")).collect();
            let declined = ids.iter().filter(|id| behaviour.declines(id)).count();
            assert!(
                (300..500).contains(&declined),
                "{prefix}: {declined} of 2000 declined at a rate of 0.2"
            );
            let again = ids.iter().filter(|id| behaviour.declines(id)).count();
            assert_eq!(declined, again, "deterministic");
        }
        let other_seed = PaymentBehaviour {
            seed: 7,
            ..behaviour.clone()
        };
        assert!((0..100).any(|n| {
            let id = format!("d0-{n}");
            behaviour.declines(&id) != other_seed.declines(&id)
        }));
    }
}
