//! The Payment aggregate: one payment per order. Processing may fail — a declined card is a
//! fact (`PaymentFailed`), not an error — so the saga can compensate.
//!
//! The "gateway" is simulated and pure: card tokens starting with `tok_decline` are declined,
//! and so is any amount over the card's limit of 10,000.00; `tok_expired` marks a charge asked
//! for too late (its saga's payment deadline is passing), also declined.

use mammoth_core::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// The simulated card limit, in cents.
pub const CARD_LIMIT_CENTS: u64 = 1_000_000;

/// What a payment is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentCommand {
    /// Charge `amount_cents` for `order_id` to `card_token`.
    Process {
        /// The order paid for.
        order_id: String,
        /// How much.
        amount_cents: u64,
        /// The card, as a gateway token.
        card_token: String,
    },
}

/// What happened to a payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentEvent {
    /// The charge went through.
    PaymentProcessed {
        /// The order paid for.
        order_id: String,
        /// How much.
        amount_cents: u64,
    },
    /// The charge was declined.
    PaymentFailed {
        /// The order.
        order_id: String,
        /// How much was asked.
        amount_cents: u64,
        /// Why.
        reason: String,
    },
}

impl DomainEvent for PaymentEvent {
    fn schema_version(event_type: &str) -> Option<u32> {
        matches!(event_type, "PaymentProcessed" | "PaymentFailed").then_some(1)
    }
}

/// Why a payment refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// A payment is processed once; a failed one needs a new payment id.
    #[error("payment was already processed ({0})")]
    AlreadyProcessed(&'static str),
    /// A zero amount.
    #[error("amount must be positive")]
    ZeroAmount,
}

/// A payment's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// `None` until processed; then whether it succeeded.
    pub succeeded: Option<bool>,
    /// The amount charged or attempted.
    pub amount_cents: u64,
}

impl Aggregate for Payment {
    const CATEGORY: &'static str = "payment";
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;

    fn decide(&self, command: &PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
        let PaymentCommand::Process {
            order_id,
            amount_cents,
            card_token,
        } = command;
        match self.succeeded {
            Some(true) => return Err(PaymentError::AlreadyProcessed("succeeded")),
            Some(false) => return Err(PaymentError::AlreadyProcessed("failed")),
            None => {}
        }
        if *amount_cents == 0 {
            return Err(PaymentError::ZeroAmount);
        }
        let declined = if card_token.starts_with("tok_expired") {
            Some("the payment's deadline passed before it was charged")
        } else if card_token.starts_with("tok_decline") {
            Some("card declined by issuer")
        } else if *amount_cents > CARD_LIMIT_CENTS {
            Some("amount over the card limit")
        } else {
            None
        };
        Ok(vec![match declined {
            Some(reason) => PaymentEvent::PaymentFailed {
                order_id: order_id.clone(),
                amount_cents: *amount_cents,
                reason: reason.to_owned(),
            },
            None => PaymentEvent::PaymentProcessed {
                order_id: order_id.clone(),
                amount_cents: *amount_cents,
            },
        }])
    }

    fn evolve(mut self, event: &PaymentEvent) -> Self {
        match event {
            PaymentEvent::PaymentProcessed { amount_cents, .. } => {
                self.succeeded = Some(true);
                self.amount_cents = *amount_cents;
            }
            PaymentEvent::PaymentFailed { amount_cents, .. } => {
                self.succeeded = Some(false);
                self.amount_cents = *amount_cents;
            }
        }
        self
    }
}
