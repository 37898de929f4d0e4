//! [`CommandContext`]: who sent a command, on whose behalf, and why. The repository copies it
//! into every event the command writes, so correlation and causation survive into the log.

use mammoth_core::{Metadata, RecordedEvent};
use serde_json::Value;
use uuid::Uuid;

/// The envelope data of one command.
///
/// `command_id` becomes the causation id of every event the command writes, and
/// `correlation_id` (by default the command's own id) is copied unchanged, so all events of
/// one original request share it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandContext {
    /// This command's id (UUID v7 by default).
    pub command_id: Uuid,
    /// The id that groups everything done for one original request.
    pub correlation_id: Uuid,
    /// The message (event or command) that caused this command, if any.
    pub causation_id: Option<Uuid>,
    /// Who sent the command.
    pub actor: Option<String>,
    /// The tenant it acts for.
    pub tenant: Option<String>,
    /// A client-chosen key: sending the same key again returns the first result and writes
    /// nothing new.
    pub idempotency_key: Option<String>,
    /// The saga (`<type>/<id>`) whose command this is: copied into the `saga` metadata field
    /// of every event the command writes, so the saga runner routes them back (see
    /// `mammoth_runtime::saga::SagaCommandContext`).
    pub saga: Option<String>,
}

impl Default for CommandContext {
    fn default() -> Self {
        Self::new()
    }
}

impl CommandContext {
    /// A context for a new request: fresh command id, which is also the correlation id.
    pub fn new() -> Self {
        let command_id = Uuid::now_v7();
        Self {
            command_id,
            correlation_id: command_id,
            causation_id: None,
            actor: None,
            tenant: None,
            idempotency_key: None,
            saga: None,
        }
    }

    /// A context for a command caused by `event` (a saga or policy reacting to it): the
    /// event's correlation id is kept and the event becomes the cause.
    pub fn caused_by(event: &RecordedEvent) -> Self {
        Self {
            correlation_id: event.metadata.correlation_id.unwrap_or(event.id),
            causation_id: Some(event.id),
            actor: event.metadata.actor.clone(),
            tenant: event.metadata.tenant.clone(),
            ..Self::new()
        }
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, correlation_id: Uuid) -> Self {
        self.correlation_id = correlation_id;
        self
    }

    /// Sets the actor.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Sets the tenant.
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets the saga (`<type>/<id>`) the command works for.
    pub fn with_saga(mut self, saga: impl Into<String>) -> Self {
        self.saga = Some(saga.into());
        self
    }

    /// The metadata of events this command writes: its correlation id, itself as the cause,
    /// its actor and tenant, and its idempotency key (as the free field `idempotency_key`).
    pub fn metadata(&self) -> Metadata {
        let mut metadata = Metadata {
            correlation_id: Some(self.correlation_id),
            causation_id: Some(self.command_id),
            actor: self.actor.clone(),
            tenant: self.tenant.clone(),
            ..Metadata::default()
        };
        if let Some(key) = &self.idempotency_key {
            metadata
                .extra
                .insert("idempotency_key".to_owned(), Value::String(key.clone()));
        }
        if let Some(saga) = &self.saga {
            metadata.extra.insert(
                mammoth_core::saga::SAGA_FIELD.to_owned(),
                Value::String(saga.clone()),
            );
        }
        metadata
    }
}
