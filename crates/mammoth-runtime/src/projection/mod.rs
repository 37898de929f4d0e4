//! The projection runner: follows the global log from a [`ProjectionTarget`]'s checkpoint in
//! batches, applies each batch (the target moves its checkpoint with it), goes live on the
//! store's notifications, retries a failing event with backoff and then stops as failed — or
//! parks it as a dead letter when told to — and never skips an event silently.
//!
//! [`ProjectionRunner::spawn`] runs it as a task and returns a [`ProjectionHandle`] (status,
//! pause, resume, stop, and a [`PositionWatch`] for read-your-writes queries);
//! [`ProjectionRunner::catch_up`] runs it to a position and returns (`mammoth projections
//! replay`, rebuilds, verify). [`AtLeastOnce`] adapts a non-SQL handler plus a
//! [`mammoth_core::CheckpointStore`].

mod at_least_once;
mod runner;
#[cfg(test)]
mod tests;

use std::time::Duration;

use mammoth_core::{Position, ProjectionError, ProjectionStatus};
use tokio::sync::watch;

use crate::{PositionWatch, RetryPolicy};

pub use at_least_once::AtLeastOnce;
pub use runner::ProjectionRunner;

/// What to do with an event that still fails after every retry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnFailure {
    /// Stop the projection as failed at that event (the default): nothing later is applied
    /// until it is resumed.
    #[default]
    Stop,
    /// Park the event as a dead letter (with its error and attempts) and go on.
    Park,
}

/// How a runner reads, retries and polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProjectionOptions {
    /// Events per read and per apply (one read-model transaction each). Default 1,000.
    pub batch_size: usize,
    /// Retries of a failing batch or event: default 5 attempts, 100 ms doubling to 5 s.
    pub retry: RetryPolicy,
    /// What happens after the last attempt.
    pub on_failure: OnFailure,
    /// How often an idle, paused or failed runner looks for requests from other processes
    /// (default 250 ms). Live events wake it at once.
    pub poll: Duration,
}

impl Default for ProjectionOptions {
    fn default() -> Self {
        Self {
            batch_size: 1_000,
            retry: RetryPolicy {
                max_attempts: 5,
                base: Duration::from_millis(100),
                factor: 2,
                cap: Duration::from_secs(5),
            },
            on_failure: OnFailure::Stop,
            poll: Duration::from_millis(250),
        }
    }
}

impl ProjectionOptions {
    /// Sets the batch size (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets what happens after the last attempt.
    pub fn on_failure(mut self, on_failure: OnFailure) -> Self {
        self.on_failure = on_failure;
        self
    }
}

/// What the owner of a handle asks the runner to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Control {
    Run,
    Pause,
    Stop,
}

/// A running projection. Dropping the handle does not stop it; call [`ProjectionHandle::stop`].
#[derive(Debug)]
pub struct ProjectionHandle<T> {
    control: watch::Sender<Control>,
    status: watch::Receiver<ProjectionStatus>,
    progress: PositionWatch,
    task: tokio::task::JoinHandle<Result<T, ProjectionError>>,
}

impl<T> ProjectionHandle<T> {
    /// The latest status (state, checkpoint, head, lag).
    pub fn status(&self) -> ProjectionStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch_status(&self) -> watch::Receiver<ProjectionStatus> {
        self.status.clone()
    }

    /// The checkpoint as a [`PositionWatch`]: give it to a query handler
    /// (`QueryBusBuilder::handle_with_progress`) so read-your-writes queries wait for it.
    pub fn progress(&self) -> PositionWatch {
        self.progress.clone()
    }

    /// Waits until the checkpoint reaches `position` or `timeout` passes; true if reached.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> bool {
        let mut status = self.status.clone();
        let reached = status.wait_for(|status| status.checkpoint >= position);
        matches!(tokio::time::timeout(timeout, reached).await, Ok(Ok(_)))
    }

    /// Pauses after the batch in progress.
    pub fn pause(&self) {
        self.control.send_replace(Control::Pause);
    }

    /// Resumes a paused projection, or retries a failed one from its checkpoint.
    pub fn resume(&self) {
        // `send` marks the value changed even when it is already `Run`: a failed runner
        // waiting for a change retries.
        let _ = self.control.send(Control::Run);
    }

    /// Stops after the batch in progress and returns the target.
    ///
    /// # Errors
    /// The error that ended the runner, if one did (a store that closed).
    pub async fn stop(self) -> Result<T, ProjectionError> {
        self.control.send_replace(Control::Stop);
        self.task
            .await
            .map_err(|error| ProjectionError::ReadModel {
                projection: self.status.borrow().name.clone(),
                action: "stopping the runner",
                message: error.to_string(),
            })?
    }
}

/// Blue-green rebuild: runs `next` (a target writing a new version of the read model, while
/// the active version keeps serving) up to the head, then calls `switch`, which makes it
/// active if it has caught up with the live version (true) or reports it still behind
/// (false, and the build catches up again). Returns the checkpoint it switched at.
///
/// # Errors
/// A failing event (the new version is left unswitched), store failures, or a switch that
/// is still refused after 1,000 rounds.
pub async fn rebuild<S, T, F, Fut>(
    store: S,
    next: T,
    options: ProjectionOptions,
    mut on_batch: impl FnMut(Position, Position) + Send,
    mut switch: F,
) -> Result<Position, ProjectionError>
where
    S: mammoth_core::EventStore + 'static,
    T: mammoth_core::ProjectionTarget + 'static,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, ProjectionError>>,
{
    let mut runner = ProjectionRunner::new(store, next, options);
    for _ in 0..1_000 {
        let reached = runner.catch_up(None, &mut on_batch).await?;
        if switch().await? {
            return Ok(reached);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(ProjectionError::ReadModel {
        projection: runner.target().name().to_owned(),
        action: "switching to the rebuilt version",
        message: "the live version kept moving ahead; try again when the write load is lower"
            .to_owned(),
    })
}

/// Verify: runs `shadow` (a fresh build of the read model) up to the live checkpoint
/// `live()` reports, then asks `diff` to compare both at that checkpoint; `diff` returns
/// `None` when the live one moved on meanwhile, and the shadow catches up again.
///
/// # Errors
/// A failing event, store failures, or a live read model that never holds still for 1,000
/// rounds.
pub async fn verify<S, T, R, L, LF, D, DF>(
    store: S,
    shadow: T,
    options: ProjectionOptions,
    mut live: L,
    mut diff: D,
) -> Result<R, ProjectionError>
where
    S: mammoth_core::EventStore + 'static,
    T: mammoth_core::ProjectionTarget + 'static,
    L: FnMut() -> LF,
    LF: std::future::Future<Output = Result<Position, ProjectionError>>,
    D: FnMut() -> DF,
    DF: std::future::Future<Output = Result<Option<R>, ProjectionError>>,
{
    let mut runner = ProjectionRunner::new(store, shadow, options);
    for _ in 0..1_000 {
        let target = live().await?;
        runner.catch_up(Some(target), |_, _| {}).await?;
        if let Some(report) = diff().await? {
            return Ok(report);
        }
    }
    Err(ProjectionError::ReadModel {
        projection: runner.target().name().to_owned(),
        action: "verifying",
        message: "the live read model never held still long enough to compare".to_owned(),
    })
}
