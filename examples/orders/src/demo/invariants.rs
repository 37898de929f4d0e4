//! The demo's invariants, computed from the store itself (one pass over the global log), never
//! from in-memory counters: every saga ended, inventory conserved and never negative, no order
//! paid twice (and no cancelled order charged), and the OrderProjection equal to a fresh
//! replay. [`LogFacts`] is that pass; the counts of the summary come from it too.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use futures_util::TryStreamExt;
use mammoth_core::saga::{SAGA_STEPPED, SagaStatus, SagaStepped, parse_saga_stream};
use mammoth_core::{EventFilter, EventStore, RecordedEvent, decode_recorded, read_all_pages};
use mammoth_runtime::projection::{self, ProjectionOptions};
use mammoth_sqlite::{ReadModelAdmin, SqliteReadModel};
use serde_json::Value;

use super::DemoError;
use super::summary::Invariant;
use crate::inventory::InventoryEvent;
use crate::order::OrderEvent;
use crate::projection::{NAME, OrderProjection, TABLES};
use crate::saga::SAGA_TYPE;
use crate::versioning::upcasters;

/// Where an order ended, as its own stream says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OrderOutcome {
    /// Created, not yet confirmed or cancelled.
    #[default]
    Open,
    /// Confirmed.
    Confirmed,
    /// Cancelled.
    Cancelled,
}

/// Commit times (µs) of the events of one order's way through the system.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrderTimes {
    /// OrderCreated.
    pub created: Option<i64>,
    /// The saga's ReserveInventory command.
    pub reserve_issued: Option<i64>,
    /// StockReserved.
    pub reserved: Option<i64>,
    /// The saga's ProcessPayment command.
    pub pay_issued: Option<i64>,
    /// PaymentProcessed.
    pub paid: Option<i64>,
    /// The saga's ConfirmOrder command.
    pub confirm_issued: Option<i64>,
    /// OrderConfirmed.
    pub confirmed: Option<i64>,
}

/// Stock movements of one SKU in one warehouse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkuLedger {
    /// StockAdded.
    pub added: u64,
    /// StockReserved.
    pub reserved: u64,
    /// ReservationReleased.
    pub released: u64,
    /// added − reserved + released as the log replays (signed: below zero is a violation).
    pub available: i64,
    /// The lowest `available` ever reached.
    pub lowest: i64,
}

/// What one pass over the global log found.
#[derive(Debug, Default)]
pub struct LogFacts {
    /// The last step record of every order saga, by saga id.
    pub sagas: HashMap<String, (SagaStatus, Option<String>)>,
    /// Every order's outcome and its SKUs.
    pub orders: HashMap<String, OrderOutcome>,
    /// PaymentProcessed events per order.
    pub payments: HashMap<String, u32>,
    /// Per warehouse, per SKU.
    pub stock: BTreeMap<String, BTreeMap<String, SkuLedger>>,
    /// Reservations held at the end: reservation (order) id → warehouse.
    pub held: HashMap<String, String>,
    /// Reservations released more than once.
    pub double_releases: Vec<String>,
    /// Timing of the orders whose ids start with the prefix asked for.
    pub times: HashMap<String, OrderTimes>,
    /// Events read.
    pub events: u64,
}

impl LogFacts {
    /// Reads the whole log of `store`, collecting timings for orders whose id starts with
    /// `run_prefix`.
    ///
    /// # Errors
    /// [`DemoError::Store`] when a read fails.
    pub async fn scan<S: EventStore + Clone + 'static>(
        store: &S,
        run_prefix: &str,
    ) -> Result<Self, DemoError> {
        let mut facts = Self::default();
        let upcasters = upcasters();
        let mut log = std::pin::pin!(read_all_pages(store.clone(), 1, EventFilter::all(), 1024));
        while let Some(event) = log.try_next().await? {
            facts.events += 1;
            facts.see(&event, &upcasters, run_prefix);
        }
        Ok(facts)
    }

    fn see(&mut self, event: &RecordedEvent, upcasters: &mammoth_core::Upcasters, prefix: &str) {
        let category = event.stream_id.category();
        let at = event.recorded_at_micros;
        if let Some((saga_type, saga_id)) = parse_saga_stream(&event.stream_id) {
            if saga_type != SAGA_TYPE {
                return;
            }
            let times = saga_id
                .starts_with(prefix)
                .then(|| self.times.entry(saga_id.to_owned()).or_default());
            match event.event_type.as_str() {
                SAGA_STEPPED => {
                    if let Ok(record) = serde_json::from_str::<SagaStepped>(&event.data) {
                        self.sagas
                            .insert(saga_id.to_owned(), (record.status, record.reason));
                    }
                }
                "ReserveInventory" => {
                    if let Some(times) = times {
                        times.reserve_issued.get_or_insert(at);
                    }
                }
                "ProcessPayment" => {
                    if let Some(times) = times {
                        times.pay_issued.get_or_insert(at);
                    }
                }
                "ConfirmOrder" => {
                    if let Some(times) = times {
                        times.confirm_issued.get_or_insert(at);
                    }
                }
                _ => {}
            }
            return;
        }
        match category {
            "order" => {
                let Ok(decoded) = decode_recorded::<OrderEvent>(event, upcasters) else {
                    return;
                };
                for order_event in decoded {
                    self.see_order(&order_event, at, prefix);
                }
            }
            "payment" if event.event_type == "PaymentProcessed" => {
                if let Some(order_id) = field(event, "order_id") {
                    *self.payments.entry(order_id.clone()).or_default() += 1;
                    if order_id.starts_with(prefix) {
                        self.times
                            .entry(order_id)
                            .or_default()
                            .paid
                            .get_or_insert(at);
                    }
                }
            }
            "inventory" => {
                let warehouse = event
                    .stream_id
                    .as_str()
                    .split_once('-')
                    .map_or("", |(_, id)| id)
                    .to_owned();
                if let Ok(decoded) = decode_recorded::<InventoryEvent>(event, upcasters) {
                    for inventory_event in decoded {
                        self.see_stock(&warehouse, &inventory_event, at, prefix);
                    }
                }
            }
            _ => {}
        }
    }

    fn see_order(&mut self, event: &OrderEvent, at: i64, prefix: &str) {
        let (order_id, outcome) = match event {
            OrderEvent::OrderCreated { order_id, .. } => (order_id, OrderOutcome::Open),
            OrderEvent::OrderConfirmed { order_id } => (order_id, OrderOutcome::Confirmed),
            OrderEvent::OrderCancelled { order_id, .. } => (order_id, OrderOutcome::Cancelled),
            OrderEvent::OrderPaid { .. } => return,
        };
        self.orders.insert(order_id.clone(), outcome);
        if order_id.starts_with(prefix) {
            let times = self.times.entry(order_id.clone()).or_default();
            match outcome {
                OrderOutcome::Open => {
                    times.created.get_or_insert(at);
                }
                OrderOutcome::Confirmed => {
                    times.confirmed.get_or_insert(at);
                }
                OrderOutcome::Cancelled => {}
            }
        }
    }

    fn see_stock(&mut self, warehouse: &str, event: &InventoryEvent, at: i64, prefix: &str) {
        let ledgers = self.stock.entry(warehouse.to_owned()).or_default();
        let mut apply = |sku: &str, change: i64| {
            let ledger = ledgers.entry(sku.to_owned()).or_default();
            ledger.available += change;
            ledger.lowest = ledger.lowest.min(ledger.available);
            let quantity = change.unsigned_abs();
            if change > 0 {
                ledger.added += quantity;
            } else {
                ledger.reserved += quantity;
            }
        };
        match event {
            InventoryEvent::StockAdded(line) => apply(&line.sku, i64::from(line.quantity)),
            InventoryEvent::StockReserved {
                reservation_id,
                items,
            } => {
                for line in items {
                    apply(&line.sku, -i64::from(line.quantity));
                }
                self.held
                    .insert(reservation_id.clone(), warehouse.to_owned());
                if reservation_id.starts_with(prefix) {
                    let times = self.times.entry(reservation_id.clone()).or_default();
                    times.reserved.get_or_insert(at);
                }
            }
            InventoryEvent::ReservationReleased {
                reservation_id,
                items,
            } => {
                for line in items {
                    let ledger = ledgers.entry(line.sku.clone()).or_default();
                    ledger.available += i64::from(line.quantity);
                    ledger.released += u64::from(line.quantity);
                }
                if self.held.remove(reservation_id).is_none() {
                    self.double_releases.push(reservation_id.clone());
                }
            }
            InventoryEvent::ReservationFailed { .. } => {}
        }
    }

    /// This run's sagas (ids starting with `prefix`) per status.
    pub fn sagas_by_status(&self, prefix: &str) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for (id, (status, _)) in &self.sagas {
            if id.starts_with(prefix) {
                *counts.entry(status.label().to_owned()).or_default() += 1;
            }
        }
        counts
    }

    /// This run's orders with outcome `outcome`.
    pub fn orders_with(&self, prefix: &str, outcome: OrderOutcome) -> u64 {
        self.orders
            .iter()
            .filter(|(id, found)| id.starts_with(prefix) && **found == outcome)
            .count() as u64
    }

    /// The ids of sagas that have not ended (whole store).
    pub fn unfinished(&self) -> Vec<&str> {
        let mut open: Vec<&str> = self
            .sagas
            .iter()
            .filter(|(_, (status, _))| !status.is_terminal())
            .map(|(id, _)| id.as_str())
            .collect();
        // An order whose saga never took a step is not finished either.
        open.extend(
            self.orders
                .keys()
                .filter(|id| !self.sagas.contains_key(*id))
                .map(String::as_str),
        );
        open.sort_unstable();
        open
    }

    /// The invariants that need only the log: sagas ended, stock conserved, payments once.
    pub fn check(&self) -> Vec<Invariant> {
        vec![
            self.every_saga_terminal(),
            self.inventory_conserved(),
            self.no_double_payment(),
        ]
    }

    fn every_saga_terminal(&self) -> Invariant {
        let open = self.unfinished();
        Invariant {
            name: "every_saga_terminal".to_owned(),
            ok: open.is_empty(),
            detail: if open.is_empty() {
                format!(
                    "all {} sagas ended (completed, compensated or failed)",
                    self.sagas.len()
                )
            } else {
                format!(
                    "{} of {} sagas have not ended, e.g. {}",
                    open.len(),
                    self.orders.len().max(self.sagas.len()),
                    first(&open)
                )
            },
        }
    }

    fn inventory_conserved(&self) -> Invariant {
        let mut problems = Vec::new();
        let mut skus = 0;
        for (warehouse, ledgers) in &self.stock {
            for (sku, ledger) in ledgers {
                skus += 1;
                let expected =
                    ledger.added as i64 - ledger.reserved as i64 + ledger.released as i64;
                if expected != ledger.available || ledger.lowest < 0 {
                    problems.push(format!(
                        "{warehouse}/{sku}: added {} − reserved {} + released {} = {expected}, replay {} (lowest {})",
                        ledger.added, ledger.reserved, ledger.released, ledger.available, ledger.lowest
                    ));
                }
            }
        }
        for id in &self.double_releases {
            problems.push(format!("reservation {id} released twice or never held"));
        }
        for (order_id, outcome) in &self.orders {
            let held = self.held.contains_key(order_id);
            match outcome {
                OrderOutcome::Confirmed if !held => {
                    problems.push(format!("confirmed order {order_id} holds no stock"));
                }
                OrderOutcome::Cancelled if held => {
                    problems.push(format!("cancelled order {order_id} still holds stock"));
                }
                _ => {}
            }
        }
        Invariant {
            name: "inventory_conserved".to_owned(),
            ok: problems.is_empty(),
            detail: if problems.is_empty() {
                format!(
                    "{skus} SKUs: stock = added − reserved + released, never below zero; confirmed orders hold their stock, cancelled ones none"
                )
            } else {
                format!("{} problems, e.g. {}", problems.len(), first(&problems))
            },
        }
    }

    fn no_double_payment(&self) -> Invariant {
        let mut problems = Vec::new();
        for (order_id, count) in &self.payments {
            if *count > 1 {
                problems.push(format!("order {order_id} was charged {count} times"));
            }
        }
        for (order_id, outcome) in &self.orders {
            let charged = self.payments.get(order_id).copied().unwrap_or(0);
            match outcome {
                OrderOutcome::Confirmed if charged != 1 => {
                    problems.push(format!(
                        "confirmed order {order_id} was charged {charged} times"
                    ));
                }
                OrderOutcome::Cancelled if charged > 0 => {
                    problems.push(format!("cancelled order {order_id} was charged"));
                }
                _ => {}
            }
        }
        Invariant {
            name: "no_double_payment".to_owned(),
            ok: problems.is_empty(),
            detail: if problems.is_empty() {
                format!(
                    "{} payments: at most one per order, one per confirmed order, none for a cancelled one",
                    self.payments.values().sum::<u32>()
                )
            } else {
                format!("{} problems, e.g. {}", problems.len(), first(&problems))
            },
        }
    }
}

fn first<T: AsRef<str>>(items: &[T]) -> String {
    let shown: Vec<&str> = items.iter().take(3).map(AsRef::as_ref).collect();
    shown.join("; ")
}

fn field(event: &RecordedEvent, name: &str) -> Option<String> {
    let data: Value = serde_json::from_str(&event.data).ok()?;
    data.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// Rebuilds the OrderProjection in a shadow beside the live one (at the live checkpoint) and
/// compares them row by row.
///
/// # Errors
/// [`DemoError::Projection`] when the rebuild or the comparison fails to run.
pub async fn projection_matches_replay<S: EventStore + Clone + 'static>(
    store: &S,
    read_path: &Path,
) -> Result<Invariant, DemoError> {
    let shadow = SqliteReadModel::shadow(read_path, OrderProjection::new())?;
    let admin = std::cell::RefCell::new(ReadModelAdmin::open(read_path)?);
    let report = projection::verify(
        store.clone(),
        shadow,
        ProjectionOptions::default(),
        || std::future::ready(admin.borrow().live_checkpoint(NAME)),
        || std::future::ready(admin.borrow_mut().diff_shadow(NAME, TABLES)),
    )
    .await?;
    let _ = admin.borrow().drop_shadow(NAME, TABLES);
    Ok(Invariant {
        name: "projection_equals_replay".to_owned(),
        ok: report.is_clean(),
        detail: if report.is_clean() {
            "the orders read model equals a fresh replay of the log".to_owned()
        } else {
            format!("the orders read model differs from a fresh replay: {report:?}")
        },
    })
}
