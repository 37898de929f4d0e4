//! [`SagaTarget`]: the saga runner as a [`ProjectionTarget`]. A batch is split by saga id;
//! different sagas are stepped concurrently, one saga's inputs in order; the checkpoint moves
//! only once the whole batch is stepped.

use std::collections::HashMap;
use std::sync::Arc;

use mammoth_core::saga::{Saga, TimerStore};
use mammoth_core::{
    ApplyFailure, CheckpointStore, EventFilter, EventStore, Position, ProjectionError,
    ProjectionTarget, RecordedEvent,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::SagaError;
use super::engine::Engine;

/// The projection target of a saga runner (built by [`super::SagaRunner`]).
pub struct SagaTarget<S: Saga, St, T, C> {
    engine: Arc<Engine<S, St, T>>,
    checkpoints: C,
    name: String,
    checkpoint: Position,
}

impl<S: Saga, St, T, C> SagaTarget<S, St, T, C> {
    pub(super) fn new(engine: Arc<Engine<S, St, T>>, checkpoints: C) -> Self {
        Self {
            engine,
            checkpoints,
            name: format!("saga-{}", S::TYPE),
            checkpoint: 0,
        }
    }
}

impl<S, St, T, C> SagaTarget<S, St, T, C>
where
    S: Saga,
    St: EventStore + 'static,
    T: TimerStore + 'static,
    C: CheckpointStore,
{
    /// Steps every routed event of `events`; on failure, the failing event's position.
    async fn step_all(
        &self,
        events: &[RecordedEvent],
    ) -> Result<(), (Position, String, SagaError)> {
        let mut by_saga: HashMap<String, Vec<RecordedEvent>> = HashMap::new();
        let mut order = Vec::new();
        for event in events {
            if let Some(saga_id) = self.engine.route(event) {
                let inputs = by_saga.entry(saga_id.clone()).or_insert_with(|| {
                    order.push(saga_id);
                    Vec::new()
                });
                inputs.push(event.clone());
            }
        }
        let limit = Arc::new(Semaphore::new(self.engine.options.concurrency.max(1)));
        let mut running = JoinSet::new();
        for saga_id in order {
            let inputs = by_saga.remove(&saga_id).unwrap_or_default();
            let engine = Arc::clone(&self.engine);
            let limit = Arc::clone(&limit);
            running.spawn(async move {
                let _permit = limit.acquire_owned().await;
                for event in &inputs {
                    if let Err(error) = engine.handle_event(&saga_id, event).await {
                        return Err((event.position, event.event_type.clone(), error));
                    }
                }
                Ok(())
            });
        }
        let mut first: Option<(Position, String, SagaError)> = None;
        while let Some(joined) = running.join_next().await {
            let failed = match joined {
                Ok(Ok(())) => None,
                Ok(Err(failure)) => Some(failure),
                Err(panic) => Some((
                    events.first().map_or(0, |event| event.position),
                    "a panicking step".to_owned(),
                    SagaError::Projection(ProjectionError::ReadModel {
                        projection: self.name.clone(),
                        action: "stepping a saga",
                        message: panic.to_string(),
                    }),
                )),
            };
            if let Some(failure) = failed
                && first
                    .as_ref()
                    .is_none_or(|(position, ..)| failure.0 < *position)
            {
                first = Some(failure);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl<S, St, T, C> ProjectionTarget for SagaTarget<S, St, T, C>
where
    S: Saga,
    St: EventStore + 'static,
    T: TimerStore + 'static,
    C: CheckpointStore,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn filter(&self) -> EventFilter {
        self.engine.read_filter()
    }

    async fn checkpoint(&mut self) -> Result<Position, ProjectionError> {
        self.checkpoint = self.checkpoints.load(&self.name).await?.unwrap_or(0);
        Ok(self.checkpoint)
    }

    async fn apply(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<(), ApplyFailure> {
        if let Err((position, event_type, error)) = self.step_all(events).await {
            // Every step is idempotent, so the whole batch is retried from its start.
            return Err(ApplyFailure {
                checkpoint: self.checkpoint,
                error: ProjectionError::Handler {
                    projection: self.name.clone(),
                    position,
                    event_type,
                    message: error.to_string(),
                },
            });
        }
        if let Err(error) = self.checkpoints.save(&self.name, through).await {
            return Err(ApplyFailure {
                checkpoint: self.checkpoint,
                error: error.into(),
            });
        }
        self.checkpoint = through;
        Ok(())
    }

    async fn park(
        &mut self,
        event: &RecordedEvent,
        error: &str,
        attempts: u32,
    ) -> Result<(), ProjectionError> {
        // No dead-letter table of its own: the skipped input is logged loudly and the
        // checkpoint moves past it.
        tracing::error!(
            saga = S::TYPE,
            position = event.position,
            event_type = %event.event_type,
            attempts,
            error,
            "saga input parked after its last attempt"
        );
        self.checkpoints.save(&self.name, event.position).await?;
        self.checkpoint = event.position;
        Ok(())
    }
}
