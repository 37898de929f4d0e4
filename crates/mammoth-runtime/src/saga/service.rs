//! The service side of a saga: decoding a saga command from a bus delivery, the
//! [`CommandContext`] that routes the events it writes back to the saga, and reporting a
//! rejection the saga must hear about.

use mammoth_core::bus::Delivery;
use mammoth_core::saga::{
    COMMAND_REJECTED, CommandRejected, SAGA_FIELD, rejections_stream, saga_of,
};
use mammoth_core::{
    AppendResult, EventStore, ExpectedVersion, NewEvent, RecordedEvent, StoreError,
};
use serde_json::Value;
use uuid::Uuid;

use crate::CommandContext;

/// A saga command as a bus service receives it (the outbox relay's message: the command's
/// event, whose type is the command's name and whose data is the command).
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedCommand {
    /// The command's id: its outbox event id and bus message id.
    pub id: Uuid,
    /// The command's name, e.g. `ReserveInventory`.
    pub name: String,
    /// The command as JSON.
    pub payload: Value,
    /// The saga that issued it, as `(type, id)`, when the message says so.
    pub saga: Option<(String, String)>,
    /// The context to dispatch it with (see [`SagaCommandContext::from_delivery`]).
    pub context: CommandContext,
}

/// Why a delivery is not a saga command.
#[derive(Debug, thiserror::Error)]
#[error(
    "message {id} on topic {topic} is not a saga command: {reason}; saga commands are published by the outbox relay from `$saga-...` streams"
)]
pub struct NotASagaCommand {
    /// The message id.
    pub id: Uuid,
    /// Its topic.
    pub topic: String,
    /// What is wrong.
    pub reason: String,
}

/// Builds the [`CommandContext`] a bus service dispatches a saga command with.
pub struct SagaCommandContext;

impl SagaCommandContext {
    /// The context for the command in `delivery`: the message id as command id (so the
    /// events it writes have it as causation id), the saga's correlation id, and the `saga`
    /// metadata field copied, so the saga runner routes the answers back to the saga. A
    /// message that is not a relayed event gets a context with just its id.
    pub fn from_delivery(delivery: &Delivery) -> CommandContext {
        match Self::decode(delivery) {
            Ok(command) => command.context,
            Err(_) => CommandContext {
                command_id: delivery.message.id,
                correlation_id: delivery.message.id,
                ..CommandContext::new()
            },
        }
    }

    /// Decodes the saga command in `delivery`.
    ///
    /// # Errors
    /// [`NotASagaCommand`] when the payload is not a relayed event or its data not JSON.
    pub fn decode(delivery: &Delivery) -> Result<ReceivedCommand, NotASagaCommand> {
        let not = |reason: String| NotASagaCommand {
            id: delivery.message.id,
            topic: delivery.message.topic.to_string(),
            reason,
        };
        let event: RecordedEvent = serde_json::from_slice(&delivery.message.payload)
            .map_err(|error| not(format!("the payload is not a relayed event: {error}")))?;
        let payload = event.data_json().map_err(|error| not(error.to_string()))?;
        Ok(Self::from_event(&event, payload))
    }

    /// The command carried by a saga's command `event` (read from the log, not the bus).
    pub fn from_event(event: &RecordedEvent, payload: Value) -> ReceivedCommand {
        let saga = saga_of(&event.metadata).map(|(t, i)| (t.to_owned(), i.to_owned()));
        let context = CommandContext {
            command_id: event.id,
            correlation_id: event.metadata.correlation_id.unwrap_or(event.id),
            causation_id: event.metadata.causation_id,
            actor: event.metadata.actor.clone(),
            tenant: event.metadata.tenant.clone(),
            idempotency_key: None,
            saga: saga.as_ref().map(|(t, i)| format!("{t}/{i}")),
        };
        ReceivedCommand {
            id: event.id,
            name: event.event_type.clone(),
            payload,
            saga,
            context,
        }
    }
}

/// Reports that the service rejected `command` for `reason`: appends a
/// [`COMMAND_REJECTED`] event to the saga's rejection stream (causation = the command), which
/// the saga runner passes to the saga as `SagaInput::CommandRejected`. Idempotent: reporting
/// the same command again writes nothing (the event id is derived from the command id).
///
/// # Errors
/// [`StoreError::InvalidData`] when the command names no saga; the store's errors.
pub async fn report_rejection<St: EventStore>(
    store: &St,
    command: &ReceivedCommand,
    reason: &str,
) -> Result<AppendResult, StoreError> {
    let Some((saga_type, saga_id)) = &command.saga else {
        return Err(StoreError::InvalidData {
            event_type: COMMAND_REJECTED.to_owned(),
            reason: format!(
                "command {} ({}) carries no `{SAGA_FIELD}` metadata, so no saga can hear of its rejection",
                command.id, command.name
            ),
        });
    };
    let stream = rejections_stream(saga_type, saga_id)?;
    let report = CommandRejected {
        command_id: command.id,
        command: command.name.clone(),
        reason: reason.to_owned(),
    };
    let data = serde_json::to_value(&report).map_err(|error| StoreError::InvalidData {
        event_type: COMMAND_REJECTED.to_owned(),
        reason: error.to_string(),
    })?;
    let id = Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("mammoth-saga-rejection/{}", command.id).as_bytes(),
    );
    let event = NewEvent::json(COMMAND_REJECTED, data)?
        .with_id(id)
        .with_metadata(command.context.metadata());
    store
        .append(&stream, ExpectedVersion::Any, vec![event])
        .await
}
