//! [`SagaInstance`]: one saga's envelope (its state plus what the runner keeps for it) and the
//! pure step function that turns one input into one [`SagaStep`] — the events of one append.

use std::collections::HashSet;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use super::record::{
    InputKind, IssuedSummary, KEY_FIELD, SAGA_FIELD, SAGA_STEPPED, SagaStepped, TOPIC_FIELD,
};
use super::{Saga, SagaAction, SagaCommand, SagaInput, SagaStatus, Timer, saga_stream};
use crate::{Metadata, NewEvent, RecordedEvent, StoreError, StreamId, Version};

/// One saga as the runner holds it: the saga's own state and the envelope around it.
#[derive(Clone, Debug, PartialEq)]
pub struct SagaInstance<St> {
    /// The saga type.
    pub saga_type: String,
    /// The saga id.
    pub saga_id: String,
    /// Its stream, `$saga-<type>-<id>`.
    pub stream: StreamId,
    /// The stream's version (0 for a saga not started): the next step appends expecting it.
    pub version: Version,
    /// The saga's own state.
    pub state: St,
    /// Where it stands.
    pub status: SagaStatus,
    /// Why it is compensating, compensated or failed.
    pub reason: Option<String>,
    /// The compensations of completed steps; the last runs first.
    pub compensations: Vec<SagaCommand>,
    /// The compensation in flight whose answer it waits for.
    pub awaiting: Option<Uuid>,
    /// Pending deadlines.
    pub timers: Vec<Timer>,
    /// Every input id already handled.
    pub processed: HashSet<Uuid>,
    /// Steps taken.
    pub steps: u64,
    /// When its first step was taken (microseconds since the Unix epoch), 0 before.
    pub started_micros: i64,
}

/// An issued command with its deterministic id (the outbox event id and bus message id).
#[derive(Clone, Debug, PartialEq)]
pub struct IssuedCommand {
    /// The command's event id.
    pub id: Uuid,
    /// The command.
    pub command: SagaCommand,
    /// True for a compensation.
    pub compensation: bool,
}

/// The outcome of one step: what to append (expecting `expected`) and the saga after it.
#[derive(Clone, Debug, PartialEq)]
pub struct SagaStep<St> {
    /// The stream version the append expects (the saga's version before the step).
    pub expected: Version,
    /// The saga after the step (its `version` is set once the append returns).
    pub instance: SagaInstance<St>,
    /// The step record.
    pub record: SagaStepped,
    /// The commands issued, in order.
    pub commands: Vec<IssuedCommand>,
    /// The metadata every event of the step carries (causation = the input).
    pub metadata: Metadata,
}

/// The deterministic id of the `index`th event a step for `input_id` appends to `stream`:
/// a retried append after a crash re-sends the same ids, which the store answers as a no-op.
pub fn step_event_id(stream: &StreamId, input_id: Uuid, index: usize) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("mammoth-saga/{stream}/{input_id}/{index}").as_bytes(),
    )
}

fn timer_id(stream: &StreamId, name: &str, input_id: Uuid) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("mammoth-saga-timer/{stream}/{name}/{input_id}").as_bytes(),
    )
}

impl<St: Default + Clone + Serialize + DeserializeOwned> SagaInstance<St> {
    /// A saga that has not started: version 0, default state, running.
    ///
    /// # Errors
    /// [`StoreError::InvalidStreamId`] when type and id make no valid stream id.
    pub fn new(saga_type: &str, saga_id: &str) -> Result<Self, StoreError> {
        Ok(Self {
            saga_type: saga_type.to_owned(),
            saga_id: saga_id.to_owned(),
            stream: saga_stream(saga_type, saga_id)?,
            version: 0,
            state: St::default(),
            status: SagaStatus::Running,
            reason: None,
            compensations: Vec::new(),
            awaiting: None,
            timers: Vec::new(),
            processed: HashSet::new(),
            steps: 0,
            started_micros: 0,
        })
    }

    /// Folds one event of the saga's stream (in version order) into the instance.
    ///
    /// # Errors
    /// [`StoreError::InvalidData`] when a step record or its state does not parse.
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<(), StoreError> {
        self.version = self.version.max(event.version);
        if event.event_type != SAGA_STEPPED {
            return Ok(());
        }
        let invalid = |reason: String| StoreError::InvalidData {
            event_type: SAGA_STEPPED.to_owned(),
            reason: format!("{} version {}: {reason}", event.stream_id, event.version),
        };
        let record: SagaStepped =
            serde_json::from_str(&event.data).map_err(|error| invalid(error.to_string()))?;
        self.state = serde_json::from_value(record.state)
            .map_err(|error| invalid(format!("the saga state does not parse: {error}")))?;
        self.status = record.status;
        self.reason = record.reason;
        self.compensations = record.compensations;
        self.awaiting = record.awaiting;
        self.timers = record.timers;
        self.processed.insert(record.input_id);
        self.steps = record.steps;
        self.started_micros = record.started_micros;
        Ok(())
    }

    /// True when `input_id` was already handled.
    pub fn has_processed(&self, input_id: Uuid) -> bool {
        self.processed.contains(&input_id)
    }

    /// Steps the saga with `input`. `source` is the event the input came from (the event
    /// itself, or the `CommandRejected` report); `None` for a deadline. `now_micros` stamps
    /// the start and deadlines.
    ///
    /// `None` when there is nothing to write: the input was already handled, the saga has
    /// ended, the deadline is no longer pending, or a compensating saga got anything but the
    /// answer to its compensation in flight.
    ///
    /// # Errors
    /// [`StoreError::InvalidData`] when the saga's state does not serialize to JSON.
    pub fn step<S: Saga<State = St>>(
        &self,
        saga: &S,
        input: &SagaInput<'_>,
        source: Option<&RecordedEvent>,
        now_micros: i64,
    ) -> Result<Option<SagaStep<St>>, StoreError> {
        if self.status.is_terminal() {
            return Ok(None);
        }
        let input_id = match (source, input) {
            (Some(event), _) => event.id,
            (None, SagaInput::DeadlineExpired { name }) => {
                match self.timers.iter().find(|timer| timer.name == *name) {
                    Some(timer) => timer.id,
                    None => return Ok(None),
                }
            }
            (None, _) => return Ok(None),
        };
        if self.has_processed(input_id) {
            return Ok(None);
        }
        let cause = source.and_then(|event| event.metadata.causation_id);
        let mut next = self.clone();
        next.processed.insert(input_id);
        next.steps += 1;
        if next.started_micros == 0 {
            next.started_micros = now_micros;
        }
        let mut issued = Vec::new();
        let mut scheduled = Vec::new();
        let mut cancelled = Vec::new();
        let detail = match input {
            SagaInput::CommandRejected { reason, .. } => Some((*reason).to_owned()),
            _ => None,
        };
        if self.status == SagaStatus::Compensating {
            if cause.is_none() || cause != self.awaiting {
                return Ok(None);
            }
            if let SagaInput::CommandRejected { command, reason } = input {
                next.status = SagaStatus::Failed;
                next.awaiting = None;
                next.reason = Some(format!(
                    "compensation {command} was rejected: {reason} (compensating because: {})",
                    self.reason.as_deref().unwrap_or("no reason given")
                ));
            } else {
                next.compensate_next(input_id, &mut issued);
            }
        } else {
            if let SagaInput::DeadlineExpired { name } = input {
                next.timers.retain(|timer| timer.name != *name);
            }
            let actions = saga.react(&mut next.state, input);
            let mut ending: Option<(SagaStatus, Option<String>)> = None;
            for action in actions {
                match action {
                    SagaAction::Issue(command) => issued.push(IssuedCommand {
                        id: step_event_id(&next.stream, input_id, issued.len() + 1),
                        command,
                        compensation: false,
                    }),
                    SagaAction::Compensation(command) => next.compensations.push(command),
                    SagaAction::Schedule { name, after } => {
                        let after = i64::try_from(after.as_micros()).unwrap_or(i64::MAX);
                        let timer = Timer {
                            id: timer_id(&next.stream, &name, input_id),
                            saga_type: next.saga_type.clone(),
                            saga_id: next.saga_id.clone(),
                            name,
                            due_micros: now_micros.saturating_add(after),
                        };
                        next.timers.retain(|pending| pending.name != timer.name);
                        next.timers.push(timer.clone());
                        scheduled.push(timer);
                    }
                    SagaAction::Cancel { name } => {
                        let before = next.timers.len();
                        next.timers.retain(|pending| pending.name != name);
                        if next.timers.len() < before {
                            cancelled.push(name);
                        }
                    }
                    SagaAction::Complete if ending.is_none() => {
                        ending = Some((SagaStatus::Completed, None));
                    }
                    SagaAction::Fail { reason } if ending.is_none() => {
                        ending = Some((SagaStatus::Failed, Some(reason)));
                    }
                    SagaAction::Compensate { reason } if ending.is_none() => {
                        ending = Some((SagaStatus::Compensating, Some(reason)));
                    }
                    SagaAction::Complete
                    | SagaAction::Fail { .. }
                    | SagaAction::Compensate { .. } => {}
                }
            }
            if let Some((status, reason)) = ending {
                next.status = status;
                next.reason = reason;
                cancelled.extend(next.timers.drain(..).map(|timer| timer.name));
                if status == SagaStatus::Compensating {
                    next.compensate_next(input_id, &mut issued);
                }
            }
        }
        if next.status.is_terminal() {
            next.compensations.clear();
        }
        Ok(Some(next.finish(
            input, source, input_id, detail, issued, scheduled, cancelled,
        )?))
    }

    /// Issues the top compensation, or ends the saga compensated when none is left.
    fn compensate_next(&mut self, input_id: Uuid, issued: &mut Vec<IssuedCommand>) {
        match self.compensations.pop() {
            Some(command) => {
                let id = step_event_id(&self.stream, input_id, issued.len() + 1);
                self.awaiting = Some(id);
                issued.push(IssuedCommand {
                    id,
                    command,
                    compensation: true,
                });
            }
            None => {
                self.awaiting = None;
                self.status = SagaStatus::Compensated;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        self,
        input: &SagaInput<'_>,
        source: Option<&RecordedEvent>,
        input_id: Uuid,
        detail: Option<String>,
        commands: Vec<IssuedCommand>,
        scheduled: Vec<Timer>,
        cancelled: Vec<String>,
    ) -> Result<SagaStep<St>, StoreError> {
        let state = serde_json::to_value(&self.state).map_err(|error| StoreError::InvalidData {
            event_type: SAGA_STEPPED.to_owned(),
            reason: format!(
                "the state of saga {} does not serialize: {error}",
                self.stream
            ),
        })?;
        let record = SagaStepped {
            saga_type: self.saga_type.clone(),
            saga_id: self.saga_id.clone(),
            input_id,
            input_kind: input.kind(),
            input: input.label(),
            detail,
            state,
            status: self.status,
            reason: self.reason.clone(),
            issued: commands
                .iter()
                .map(|issued| IssuedSummary {
                    id: issued.id,
                    name: issued.command.name.clone(),
                    topic: issued.command.topic.clone(),
                    compensation: issued.compensation,
                })
                .collect(),
            compensations: self.compensations.clone(),
            awaiting: self.awaiting,
            scheduled,
            cancelled,
            timers: self.timers.clone(),
            started_micros: self.started_micros,
            steps: self.steps,
        };
        let mut metadata = Metadata {
            correlation_id: source.map(|event| event.metadata.correlation_id.unwrap_or(event.id)),
            causation_id: Some(input_id),
            actor: source.and_then(|event| event.metadata.actor.clone()),
            tenant: source.and_then(|event| event.metadata.tenant.clone()),
            ..Metadata::default()
        };
        metadata.extra.insert(
            SAGA_FIELD.to_owned(),
            Value::String(format!("{}/{}", self.saga_type, self.saga_id)),
        );
        Ok(SagaStep {
            expected: self.version,
            instance: self,
            record,
            commands,
            metadata,
        })
    }
}

impl<St> SagaStep<St> {
    /// The events of the step's single append: the record, then one event per command
    /// (type = the command's name, data = its payload, metadata with `topic` and `key`).
    ///
    /// # Errors
    /// [`StoreError::InvalidData`] when a command's payload is not a JSON object.
    pub fn events(&self) -> Result<Vec<NewEvent>, StoreError> {
        let stream = &self.instance.stream;
        let record =
            serde_json::to_value(&self.record).map_err(|error| StoreError::InvalidData {
                event_type: SAGA_STEPPED.to_owned(),
                reason: error.to_string(),
            })?;
        let mut events = Vec::with_capacity(1 + self.commands.len());
        events.push(
            NewEvent::json(SAGA_STEPPED, record)?
                .with_id(step_event_id(stream, self.record.input_id, 0))
                .with_metadata(self.metadata.clone()),
        );
        for issued in &self.commands {
            let mut metadata = self.metadata.clone();
            metadata.extra.insert(
                TOPIC_FIELD.to_owned(),
                Value::String(issued.command.topic.clone()),
            );
            metadata.extra.insert(
                KEY_FIELD.to_owned(),
                Value::String(issued.command.key.clone()),
            );
            events.push(
                NewEvent::json(issued.command.name.clone(), issued.command.payload.clone())?
                    .with_id(issued.id)
                    .with_metadata(metadata),
            );
        }
        Ok(events)
    }

    /// True when the step's input was a deadline.
    pub fn is_deadline(&self) -> bool {
        self.record.input_kind == InputKind::Deadline
    }
}
