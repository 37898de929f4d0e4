//! [`AtLeastOnce`]: a [`Projection`] handler plus a [`CheckpointStore`], driven by the runner
//! like any [`ProjectionTarget`]. Each event is handled, then the checkpoint is saved once per
//! batch, so a crash re-delivers at most one batch; handlers de-duplicate by event id.

use mammoth_core::{
    ApplyFailure, CheckpointStore, EventFilter, Position, Projection, ProjectionError,
    ProjectionTarget, RecordedEvent,
};

/// A handler with its checkpoint in a [`CheckpointStore`] (the outbox relay, API callers).
#[derive(Debug)]
pub struct AtLeastOnce<P, C> {
    handler: P,
    checkpoints: C,
    checkpoint: Position,
}

impl<P: Projection, C: CheckpointStore> AtLeastOnce<P, C> {
    /// Runs `handler` with its checkpoint under its name in `checkpoints`.
    pub fn new(handler: P, checkpoints: C) -> Self {
        Self {
            handler,
            checkpoints,
            checkpoint: 0,
        }
    }

    /// The handler.
    pub fn handler(&self) -> &P {
        &self.handler
    }

    async fn save(&mut self, position: Position) -> Result<(), ProjectionError> {
        self.checkpoints
            .save(self.handler.name(), position)
            .await
            .map_err(ProjectionError::from)?;
        self.checkpoint = position;
        Ok(())
    }
}

impl<P: Projection, C: CheckpointStore> ProjectionTarget for AtLeastOnce<P, C> {
    fn name(&self) -> &str {
        self.handler.name()
    }

    fn filter(&self) -> EventFilter {
        self.handler.filter()
    }

    async fn checkpoint(&mut self) -> Result<Position, ProjectionError> {
        let name = self.handler.name().to_owned();
        self.checkpoint = self.checkpoints.load(&name).await?.unwrap_or(0);
        Ok(self.checkpoint)
    }

    async fn apply(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<(), ApplyFailure> {
        let mut handled = self.checkpoint;
        for event in events {
            if let Err(error) = self.handler.handle(event).await {
                let error = ProjectionError::Handler {
                    projection: self.handler.name().to_owned(),
                    position: event.position,
                    event_type: event.event_type.clone(),
                    message: error.to_string(),
                };
                // Save what was handled so a retry starts at the failing event.
                if handled > self.checkpoint
                    && let Err(save) = self.save(handled).await
                {
                    tracing::warn!(%save, "could not save the checkpoint before a failure");
                }
                return Err(ApplyFailure {
                    checkpoint: self.checkpoint,
                    error,
                });
            }
            handled = event.position;
        }
        self.save(through).await.map_err(|error| ApplyFailure {
            checkpoint: self.checkpoint,
            error,
        })
    }

    async fn park(
        &mut self,
        event: &RecordedEvent,
        error: &str,
        attempts: u32,
    ) -> Result<(), ProjectionError> {
        // Handlers without a table of their own log the dead letter; the checkpoint moves on.
        tracing::error!(
            projection = self.handler.name(),
            position = event.position,
            event_id = %event.id,
            event_type = %event.event_type,
            attempts,
            error,
            "parked an event the handler keeps failing on"
        );
        self.save(event.position).await
    }
}
