//! The Inventory aggregate: stock per SKU in one warehouse; reservations hold stock for an
//! order until released. A reservation that finds too little stock is recorded as
//! `ReservationFailed` (a fact the order saga reacts to, as in the seed), not refused.

use std::collections::BTreeMap;

use mammoth_core::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// A quantity of one SKU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLine {
    /// The SKU.
    pub sku: String,
    /// How many, at least 1.
    pub quantity: u32,
}

impl StockLine {
    /// `quantity` of `sku`.
    pub fn new(sku: impl Into<String>, quantity: u32) -> Self {
        Self {
            sku: sku.into(),
            quantity,
        }
    }
}

/// What a warehouse is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InventoryCommand {
    /// Goods arrived.
    AddStock(StockLine),
    /// Hold stock for `reservation_id` (usually the order id); all lines or none.
    Reserve {
        /// The reservation's id.
        reservation_id: String,
        /// What to hold.
        items: Vec<StockLine>,
    },
    /// Give a reservation's stock back (a saga's compensation).
    Release {
        /// The reservation's id.
        reservation_id: String,
    },
}

/// What happened in a warehouse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InventoryEvent {
    /// Stock arrived.
    StockAdded(StockLine),
    /// Stock is held for a reservation.
    StockReserved {
        /// The reservation's id.
        reservation_id: String,
        /// What is held.
        items: Vec<StockLine>,
    },
    /// A reservation could not be made; nothing is held.
    ReservationFailed {
        /// The reservation's id.
        reservation_id: String,
        /// The first SKU that was short.
        sku: String,
        /// How many were asked for.
        requested: u32,
        /// How many were available.
        available: u32,
    },
    /// A reservation's stock is available again.
    ReservationReleased {
        /// The reservation's id.
        reservation_id: String,
        /// What was given back.
        items: Vec<StockLine>,
    },
}

impl DomainEvent for InventoryEvent {
    fn schema_version(event_type: &str) -> Option<u32> {
        matches!(
            event_type,
            "StockAdded" | "StockReserved" | "ReservationFailed" | "ReservationReleased"
        )
        .then_some(1)
    }
}

/// Why a warehouse refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// A quantity of 0.
    #[error("{sku}: quantity must be at least 1")]
    ZeroQuantity {
        /// The SKU.
        sku: String,
    },
    /// A reservation with no lines.
    #[error("a reservation needs at least one item")]
    NoItems,
    /// A reservation id used before.
    #[error("reservation {0} already exists")]
    DuplicateReservation(String),
    /// Releasing a reservation that is not held.
    #[error("no reservation {0} is held")]
    UnknownReservation(String),
}

/// A warehouse's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Available (unreserved) stock per SKU.
    pub available: BTreeMap<String, u32>,
    /// Held stock per reservation.
    pub reserved: BTreeMap<String, Vec<StockLine>>,
    /// Every reservation id ever seen, so one cannot be reused after release or failure.
    pub seen: Vec<String>,
}

impl Inventory {
    /// Available stock of `sku`.
    pub fn available(&self, sku: &str) -> u32 {
        self.available.get(sku).copied().unwrap_or(0)
    }
}

impl Aggregate for Inventory {
    const CATEGORY: &'static str = "inventory";
    type Command = InventoryCommand;
    type Event = InventoryEvent;
    type Error = InventoryError;

    fn decide(&self, command: &InventoryCommand) -> Result<Vec<InventoryEvent>, InventoryError> {
        match command {
            InventoryCommand::AddStock(line) => {
                if line.quantity == 0 {
                    return Err(InventoryError::ZeroQuantity {
                        sku: line.sku.clone(),
                    });
                }
                Ok(vec![InventoryEvent::StockAdded(line.clone())])
            }
            InventoryCommand::Reserve {
                reservation_id,
                items,
            } => {
                if items.is_empty() {
                    return Err(InventoryError::NoItems);
                }
                if let Some(line) = items.iter().find(|line| line.quantity == 0) {
                    return Err(InventoryError::ZeroQuantity {
                        sku: line.sku.clone(),
                    });
                }
                if self.seen.contains(reservation_id) {
                    return Err(InventoryError::DuplicateReservation(reservation_id.clone()));
                }
                // Sum per SKU first: two lines of one SKU must fit together.
                let mut wanted: BTreeMap<&str, u32> = BTreeMap::new();
                for line in items {
                    *wanted.entry(&line.sku).or_default() += line.quantity;
                }
                for (sku, requested) in wanted {
                    let available = self.available(sku);
                    if requested > available {
                        return Ok(vec![InventoryEvent::ReservationFailed {
                            reservation_id: reservation_id.clone(),
                            sku: sku.to_owned(),
                            requested,
                            available,
                        }]);
                    }
                }
                Ok(vec![InventoryEvent::StockReserved {
                    reservation_id: reservation_id.clone(),
                    items: items.clone(),
                }])
            }
            InventoryCommand::Release { reservation_id } => {
                let Some(items) = self.reserved.get(reservation_id) else {
                    return Err(InventoryError::UnknownReservation(reservation_id.clone()));
                };
                Ok(vec![InventoryEvent::ReservationReleased {
                    reservation_id: reservation_id.clone(),
                    items: items.clone(),
                }])
            }
        }
    }

    fn evolve(mut self, event: &InventoryEvent) -> Self {
        match event {
            InventoryEvent::StockAdded(line) => {
                *self.available.entry(line.sku.clone()).or_default() += line.quantity;
            }
            InventoryEvent::StockReserved {
                reservation_id,
                items,
            } => {
                for line in items {
                    let stock = self.available.entry(line.sku.clone()).or_default();
                    *stock = stock.saturating_sub(line.quantity);
                }
                self.reserved.insert(reservation_id.clone(), items.clone());
                self.seen.push(reservation_id.clone());
            }
            InventoryEvent::ReservationFailed { reservation_id, .. } => {
                self.seen.push(reservation_id.clone());
            }
            InventoryEvent::ReservationReleased {
                reservation_id,
                items,
            } => {
                for line in items {
                    *self.available.entry(line.sku.clone()).or_default() += line.quantity;
                }
                self.reserved.remove(reservation_id);
            }
        }
        self
    }
}
