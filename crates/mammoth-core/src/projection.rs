//! Projections: the vocabulary the projection runner (in `mammoth-runtime`) and the read-model
//! drivers share. Pure types and traits, no I/O.
//!
//! - [`ProjectionTarget`] is what the runner drives: apply a batch of events *and* move the
//!   checkpoint. A SQL read model does both in one transaction (exactly once, even across
//!   crashes); `mammoth_runtime::projection::AtLeastOnce` adapts any [`Projection`] handler plus
//!   a [`crate::CheckpointStore`] (handler first, checkpoint after: at-least-once, de-duplicate
//!   by event id).
//! - [`ProjectionState`] and [`ProjectionStatus`] are what `mammoth projections status` shows.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::{EventFilter, Position, RecordedEvent, StoreError};

/// The error a handler returns for one event. Any error type will do; its message is what the
/// failed state and the dead-letter record show.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// A handler of events that is not a SQL read model (an API call, a bus publish, a cache).
///
/// Delivery is at-least-once: after a crash the events since the last saved checkpoint are
/// handed over again, so `handle` must be idempotent — [`RecordedEvent::id`] is the key to
/// de-duplicate by (a broker's message id, a processed-ids table).
pub trait Projection: Send {
    /// The projection's name: its checkpoint's key, unique per application.
    fn name(&self) -> &str;

    /// Which events it receives.
    fn filter(&self) -> EventFilter;

    /// Handles one event. An error stops the batch; the runner retries the event with backoff.
    ///
    /// # Errors
    /// Whatever went wrong; see [`HandlerError`].
    fn handle(
        &mut self,
        event: &RecordedEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Why a projection could not make progress.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// The handler failed on the event at `position`.
    #[error(
        "projection {projection:?}: event at position {position} ({event_type}) failed: {message}"
    )]
    Handler {
        /// The projection.
        projection: String,
        /// The failing event's global position.
        position: Position,
        /// Its type.
        event_type: String,
        /// The handler's error message.
        message: String,
    },
    /// Someone else moved the checkpoint (a replay, a rebuild's switch, a second runner):
    /// the runner reloads it and goes on; nothing was written.
    #[error(
        "projection {projection:?}: the checkpoint moved under this runner (a replay, a rebuild or a second runner); reloading it"
    )]
    CheckpointMoved {
        /// The projection.
        projection: String,
    },
    /// The read model's storage failed.
    #[error("projection {projection:?}: the read model failed while {action}: {message}")]
    ReadModel {
        /// The projection.
        projection: String,
        /// What was being done.
        action: &'static str,
        /// The driver's message.
        message: String,
    },
    /// Reading the event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No projection of this name is registered.
    #[error("no projection named {name:?}; registered: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The registered names, comma-separated.
        known: String,
    },
}

impl ProjectionError {
    /// The position of the event that failed, when the error is about one event.
    pub fn position(&self) -> Option<Position> {
        match self {
            Self::Handler { position, .. } => Some(*position),
            _ => None,
        }
    }
}

/// A failed [`ProjectionTarget::apply`]: the error, and where the target's checkpoint stands
/// now (the batch's start for a transactional target, which rolled back; the last handled
/// event for an at-least-once one).
#[derive(Debug)]
pub struct ApplyFailure {
    /// The checkpoint after the failure: every event at or below it is applied.
    pub checkpoint: Position,
    /// What went wrong ([`ProjectionError::position`] names the failing event, if one did).
    pub error: ProjectionError,
}

/// What the runner drives: a read model or handler with its checkpoint.
pub trait ProjectionTarget: Send {
    /// The projection's name.
    fn name(&self) -> &str;

    /// Which events it receives.
    fn filter(&self) -> EventFilter;

    /// The checkpoint: every event at or below it has been applied. 0 before the first event.
    ///
    /// # Errors
    /// When the storage fails.
    fn checkpoint(&mut self) -> impl Future<Output = Result<Position, ProjectionError>> + Send;

    /// Applies `events` (in position order, all above the checkpoint) and moves the checkpoint
    /// to `through` (at least the last event's position: the events between that pass no
    /// filter count as applied). A transactional target does both atomically and fails with
    /// [`ProjectionError::CheckpointMoved`] if its stored checkpoint is not the one it loaded.
    ///
    /// # Errors
    /// [`ApplyFailure`] with the checkpoint as it now stands.
    fn apply(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> impl Future<Output = Result<(), ApplyFailure>> + Send;

    /// Parks `event` as a dead letter with its error and attempts and moves the checkpoint to
    /// its position (atomically for a transactional target).
    ///
    /// # Errors
    /// When the storage fails; nothing was parked.
    fn park(
        &mut self,
        event: &RecordedEvent,
        error: &str,
        attempts: u32,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;

    /// Records the runner's state where other processes can see it (`mammoth projections
    /// status`). Targets without shared storage keep nothing.
    ///
    /// # Errors
    /// When the storage fails.
    fn record_state(
        &mut self,
        state: &ProjectionState,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send {
        let _ = state;
        async { Ok(()) }
    }

    /// What other processes asked of this projection (`mammoth projections pause|resume`).
    /// The runner asks between batches and while idle or failed.
    ///
    /// # Errors
    /// When the storage fails.
    fn requested(&mut self) -> impl Future<Output = Result<Requested, ProjectionError>> + Send {
        async { Ok(Requested::default()) }
    }
}

/// What other processes asked of a projection, as its target stores it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requested {
    /// Pause until this is false again.
    pub paused: bool,
    /// How many times a resume was asked for; a failed runner retries when it grows.
    pub resumes: u64,
}

/// What a projection is doing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ProjectionState {
    /// Following the log (catching up or live).
    Running,
    /// Paused on request; resumes from its checkpoint.
    Paused,
    /// Replaying from zero or building a new version.
    Rebuilding,
    /// Stopped at the event at `position`, which failed `attempts` times with `error`.
    Failed {
        /// The failing event's position.
        position: Position,
        /// The last error.
        error: String,
        /// How many times it was tried.
        attempts: u32,
    },
    /// Not running in any process that reported it.
    Stopped,
}

impl ProjectionState {
    /// The state's name as the CLI prints it.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Rebuilding => "rebuilding",
            Self::Failed { .. } => "failed",
            Self::Stopped => "stopped",
        }
    }
}

/// A projection's progress and state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectionStatus {
    /// The projection.
    pub name: String,
    /// What it is doing.
    pub state: ProjectionState,
    /// Every event at or below this position is applied.
    pub checkpoint: Position,
    /// The event store's head when the status was taken.
    pub head: Position,
    /// `head - checkpoint`: how many positions it is behind.
    pub lag: u64,
}

impl ProjectionStatus {
    /// A status with `lag` computed from `head` and `checkpoint`.
    pub fn new(
        name: impl Into<String>,
        state: ProjectionState,
        checkpoint: Position,
        head: Position,
    ) -> Self {
        Self {
            name: name.into(),
            state,
            checkpoint,
            head,
            lag: head.saturating_sub(checkpoint),
        }
    }
}
