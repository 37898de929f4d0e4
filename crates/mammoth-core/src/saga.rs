//! Sagas (process managers): the pure vocabulary the saga runner in `mammoth-runtime`, the
//! SQLite timer store and saga index, the test kit and the CLI share. No I/O.
//!
//! A [`Saga`] says which events start it, how an event maps to a saga id, and how it reacts
//! to an input ([`SagaInput`]) with [`SagaAction`]s: issue a command, record the compensation
//! that undoes a completed step, schedule or cancel a deadline, complete, compensate or fail.
//! [`SagaInstance::step`] turns one input into one [`SagaStep`]: the new envelope state, a
//! [`SagaStepped`] record and the commands issued — everything the runner appends to the
//! saga's own stream (`$saga-<type>-<id>`) in ONE append with an exact expected version. The
//! commands are events of that stream; the outbox relay publishes them.
//!
//! Compensation is generic: [`SagaAction::Compensation`] pushes a command on the saga's
//! stack; [`SagaAction::Compensate`] issues the top one, and each next one only when an event
//! caused by the previous one arrives, so they run strictly in reverse order, one at a time.

mod index;
mod record;
mod step;
mod timer;

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{EventFilter, RecordedEvent, StoreError, StreamId};

pub use index::{SAGA_INDEX, SagaCount, SagaRow};
pub use record::{
    COMMAND_REJECTED, CommandRejected, InputKind, IssuedSummary, KEY_FIELD, SAGA_CATEGORY,
    SAGA_FIELD, SAGA_STEPPED, SagaStepped, TOPIC_FIELD, saga_of,
};
pub use step::{IssuedCommand, SagaInstance, SagaStep, step_event_id};
pub use timer::{InMemoryTimerStore, Timer, TimerStore};

/// A saga type: pure decisions, no I/O. The runner persists, delivers and retries.
///
/// `react` must be deterministic: the runner may call it again for the same input after a
/// crash or a conflict, with the state as it was before that input.
pub trait Saga: Send + Sync + 'static {
    /// The saga type's name, e.g. `order`: its streams are `$saga-order-<id>`. Letters,
    /// digits and `_` only (no `-` or `/`).
    const TYPE: &'static str;

    /// The saga's own state, kept as JSON in each [`SagaStepped`] record.
    type State: Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The events of the global log the saga may need: the ones that start it, the answers
    /// to the commands it issues, AND the answers to its compensations (the runner waits for
    /// an event caused by each compensation before it issues the next one). The runner adds
    /// [`COMMAND_REJECTED`] on its own.
    fn filter(&self) -> EventFilter;

    /// `Some(saga id)` when `event` starts a new saga.
    fn starts(&self, event: &RecordedEvent) -> Option<String>;

    /// The saga id of an event that carries no `saga` metadata field (written by code that
    /// does not copy it), or `None`.
    fn correlate(&self, event: &RecordedEvent) -> Option<String> {
        let _ = event;
        None
    }

    /// Reacts to `input`: updates `state` and returns what to do. Pure.
    fn react(&self, state: &mut Self::State, input: &SagaInput<'_>) -> Vec<SagaAction>;
}

/// What a saga reacts to.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum SagaInput<'a> {
    /// An event of the global log routed to this saga.
    Event(&'a RecordedEvent),
    /// The deadline `name` scheduled with [`SagaAction::Schedule`] expired.
    DeadlineExpired {
        /// The deadline's name.
        name: &'a str,
    },
    /// A service rejected the command `command` this saga issued.
    CommandRejected {
        /// The command's name, e.g. `ProcessPayment`.
        command: &'a str,
        /// The service's reason.
        reason: &'a str,
    },
}

impl SagaInput<'_> {
    /// A short label for timelines: `OrderPlaced`, `deadline payment`, `rejected ProcessPayment`.
    pub fn label(&self) -> String {
        match self {
            Self::Event(event) => event.event_type.clone(),
            Self::DeadlineExpired { name } => format!("deadline {name}"),
            Self::CommandRejected { command, .. } => format!("rejected {command}"),
        }
    }

    /// The input's kind.
    pub fn kind(&self) -> InputKind {
        match self {
            Self::Event(_) => InputKind::Event,
            Self::DeadlineExpired { .. } => InputKind::Deadline,
            Self::CommandRejected { .. } => InputKind::Rejection,
        }
    }
}

/// A command a saga issues: published by the outbox relay to `topic` with ordering `key`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SagaCommand {
    /// The command's name, e.g. `ReserveInventory`: the event type of its outbox event.
    pub name: String,
    /// The bus topic it goes to, e.g. `inventory`.
    pub topic: String,
    /// The ordering key (an aggregate id): commands with one key are handled in order.
    pub key: String,
    /// The command as a JSON object.
    pub payload: Value,
}

impl SagaCommand {
    /// A command `name` to `topic` with ordering `key` and a JSON object `payload`.
    pub fn new(
        name: impl Into<String>,
        topic: impl Into<String>,
        key: impl Into<String>,
        payload: Value,
    ) -> Self {
        Self {
            name: name.into(),
            topic: topic.into(),
            key: key.into(),
            payload,
        }
    }
}

/// What a saga decides to do, in the order returned.
#[derive(Clone, Debug, PartialEq)]
pub enum SagaAction {
    /// Issue a command now.
    Issue(SagaCommand),
    /// Remember the command that undoes a completed step; compensations run in reverse order.
    Compensation(SagaCommand),
    /// Schedule (or re-schedule) the deadline `name` to expire `after` from now.
    Schedule {
        /// The deadline's name, unique per saga.
        name: String,
        /// When it expires, from now.
        after: Duration,
    },
    /// Cancel the deadline `name` (nothing if it is not scheduled).
    Cancel {
        /// The deadline's name.
        name: String,
    },
    /// End the saga as completed.
    Complete,
    /// Undo the completed steps (compensations in reverse order), then end compensated.
    Compensate {
        /// Why, as `mammoth sagas show` prints it.
        reason: String,
    },
    /// End the saga as failed, without compensating.
    Fail {
        /// Why.
        reason: String,
    },
}

/// Where a saga stands.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    /// Reacting to inputs.
    #[default]
    Running,
    /// Running its compensations, one at a time.
    Compensating,
    /// Ended: every step done.
    Completed,
    /// Ended: every completed step undone.
    Compensated,
    /// Ended: failed (without, or during, compensation).
    Failed,
}

impl SagaStatus {
    /// Every status, in the order the CLI lists them.
    pub const ALL: [Self; 5] = [
        Self::Running,
        Self::Compensating,
        Self::Completed,
        Self::Compensated,
        Self::Failed,
    ];

    /// The status's name: `running`, `compensating`, `completed`, `compensated`, `failed`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Compensating => "compensating",
            Self::Completed => "completed",
            Self::Compensated => "compensated",
            Self::Failed => "failed",
        }
    }

    /// True once the saga has ended: it reacts to nothing more and its timers are dropped.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Compensated | Self::Failed)
    }
}

impl fmt::Display for SagaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl std::str::FromStr for SagaStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|status| status.label() == text)
            .ok_or_else(|| {
                format!(
                    "saga status `{text}` is not known; use running, compensating, completed, compensated or failed"
                )
            })
    }
}

/// Checks a saga type name: 1..64 letters, digits or `_`.
///
/// # Errors
/// [`StoreError::InvalidStreamId`] naming the problem.
pub fn check_saga_type(saga_type: &str) -> Result<(), StoreError> {
    let valid = !saga_type.is_empty()
        && saga_type.len() <= 64
        && saga_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidStreamId {
            id: format!("$saga-{saga_type}"),
            reason: "a saga type must be 1 to 64 letters, digits or `_` (no `-` or `/`)",
        })
    }
}

/// The stream of saga `saga_id` of type `saga_type`: `$saga-<type>-<id>`.
///
/// # Errors
/// [`StoreError::InvalidStreamId`] for a bad type or an id that makes no valid stream id.
pub fn saga_stream(saga_type: &str, saga_id: &str) -> Result<StreamId, StoreError> {
    check_saga_type(saga_type)?;
    StreamId::new(format!("{SAGA_CATEGORY}-{saga_type}-{saga_id}"))
}

/// The stream services report rejected saga commands to: `$saga-<type>-<id>-rejections`.
///
/// # Errors
/// As [`saga_stream`].
pub fn rejections_stream(saga_type: &str, saga_id: &str) -> Result<StreamId, StoreError> {
    check_saga_type(saga_type)?;
    StreamId::new(format!("{SAGA_CATEGORY}-{saga_type}-{saga_id}-rejections"))
}

/// The saga type and id of a saga stream (`$saga-order-42` → `("order", "42")`), or `None`
/// for any other stream (rejection streams included).
pub fn parse_saga_stream(stream: &StreamId) -> Option<(&str, &str)> {
    let rest = stream
        .as_str()
        .strip_prefix(SAGA_CATEGORY)?
        .strip_prefix('-')?;
    let (saga_type, saga_id) = rest.split_once('-')?;
    if saga_id.ends_with("-rejections") || check_saga_type(saga_type).is_err() {
        return None;
    }
    Some((saga_type, saga_id))
}
