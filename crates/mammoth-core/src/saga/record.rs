//! What a saga writes: the [`SagaStepped`] record that opens every step in its stream, the
//! [`CommandRejected`] report a service writes, and the metadata fields that route answers
//! back to the saga.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{SagaCommand, SagaStatus, Timer};
use crate::{Metadata, RecordedEvent};

/// The category of every saga stream (`$saga-<type>-<id>`).
pub const SAGA_CATEGORY: &str = "$saga";
/// The event type of a step record.
pub const SAGA_STEPPED: &str = "SagaStepped";
/// The event type of a service's report that it rejected a saga command.
pub const COMMAND_REJECTED: &str = "CommandRejected";
/// The free metadata field naming the saga an event belongs to: `<type>/<id>`. The runner
/// writes it on every command; services copy it onto the events the command causes.
pub const SAGA_FIELD: &str = "saga";
/// The free metadata field of a command event naming the bus topic it goes to.
pub const TOPIC_FIELD: &str = "topic";
/// The free metadata field of a command event naming its ordering key.
pub const KEY_FIELD: &str = "key";

/// The saga (`(type, id)`) named by an event's `saga` metadata field, if it has one.
pub fn saga_of(metadata: &Metadata) -> Option<(&str, &str)> {
    metadata
        .extra
        .get(SAGA_FIELD)
        .and_then(Value::as_str)
        .and_then(|text| text.split_once('/'))
}

/// What kind of input a step handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// An event of the global log.
    Event,
    /// An expired deadline.
    Deadline,
    /// A rejected command.
    Rejection,
}

/// One command a step issued, as the step record lists it (the command itself is the event
/// with this id that follows the record in the same append).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedSummary {
    /// The command event's id: the message id on the bus, the causation id of its answers.
    pub id: Uuid,
    /// The command's name.
    pub name: String,
    /// The topic it goes to.
    pub topic: String,
    /// True for a compensation.
    pub compensation: bool,
}

/// The record that opens every step in a saga's stream: the input handled and the saga's
/// envelope after it. Loading a saga reads its stream's records; the last one is the state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SagaStepped {
    /// The saga type.
    pub saga_type: String,
    /// The saga id.
    pub saga_id: String,
    /// The input's id (event id, deadline timer id, or rejection event id): a saga handles
    /// each id once.
    pub input_id: Uuid,
    /// What kind of input it was.
    pub input_kind: InputKind,
    /// A label for timelines: the event type, `deadline <name>` or `rejected <command>`.
    pub input: String,
    /// The rejection or compensation reason that came with the input, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The saga's own state after the step.
    pub state: Value,
    /// The status after the step.
    pub status: SagaStatus,
    /// Why it is compensating, compensated or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The commands this step issued, in order.
    #[serde(default)]
    pub issued: Vec<IssuedSummary>,
    /// The compensation stack after the step (the last runs first).
    #[serde(default)]
    pub compensations: Vec<SagaCommand>,
    /// The compensation command in flight, whose answer the saga waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting: Option<Uuid>,
    /// Deadlines this step scheduled.
    #[serde(default)]
    pub scheduled: Vec<Timer>,
    /// Names of deadlines this step cancelled (explicitly, or because the saga ended).
    #[serde(default)]
    pub cancelled: Vec<String>,
    /// Every deadline pending after the step.
    #[serde(default)]
    pub timers: Vec<Timer>,
    /// When the saga started (its first step), microseconds since the Unix epoch.
    pub started_micros: i64,
    /// How many steps the saga has taken, this one included.
    pub steps: u64,
}

/// A service's report that it rejected a command a saga issued (written to
/// `$saga-<type>-<id>-rejections` with the command's id as causation id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRejected {
    /// The rejected command's id (its outbox event id).
    pub command_id: Uuid,
    /// The command's name.
    pub command: String,
    /// Why the service rejected it.
    pub reason: String,
}

impl CommandRejected {
    /// Parses the report from a [`COMMAND_REJECTED`] event; `None` for any other event.
    pub fn from_event(event: &RecordedEvent) -> Option<Self> {
        if event.event_type != COMMAND_REJECTED {
            return None;
        }
        serde_json::from_str(&event.data).ok()
    }
}
