//! The saga runtime: [`SagaRunner`] drives a [`Saga`] over the global log and its durable
//! deadlines; [`SagaCommandContext`] and [`report_rejection`] are what a bus service handling
//! saga commands uses.
//!
//! One input = one step = one append to the saga's stream `$saga-<type>-<id>` with an exact
//! expected version: the `SagaStepped` record (state, processed input id, status, timers)
//! followed by one event per issued command. Event ids are deterministic, so a retried append
//! after a crash is a no-op, and the outbox relay publishes the command events (nothing is
//! published that was not committed). Two runners stepping one saga conflict; the loser
//! reloads the stream, finds the input handled, and writes nothing.
//!
//! The runner is a projection target named `saga-<type>` (checkpoint in a
//! [`CheckpointStore`], moved only after a whole batch is stepped and its timers stored), run
//! by the [`ProjectionRunner`], beside a timer poller that feeds due deadlines through the
//! same step path.

mod engine;
mod service;
mod target;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mammoth_core::saga::{Saga, TimerStore};
use mammoth_core::{
    CheckpointStore, EventStore, Position, ProjectionError, ProjectionStatus, StoreError,
    now_micros,
};
use tokio::sync::watch;

use crate::projection::{ProjectionHandle, ProjectionOptions, ProjectionRunner};

use engine::Engine;
pub use service::{NotASagaCommand, ReceivedCommand, SagaCommandContext, report_rejection};
pub use target::SagaTarget;

pub use mammoth_core::saga::saga_stream;

/// Why the saga runtime could not make progress.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SagaError {
    /// The event store or the timer store failed, or a saga stream holds bad data.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stepping a saga kept conflicting with other writers of its stream.
    #[error(
        "saga stream {stream:?}: {attempts} appends in a row conflicted with another writer; raise SagaOptions::max_conflict_retries or run fewer runners"
    )]
    Conflicts {
        /// The saga's stream.
        stream: String,
        /// How many appends conflicted.
        attempts: u32,
    },
    /// The projection runner failed.
    #[error(transparent)]
    Projection(#[from] ProjectionError),
}

/// How a saga runner works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SagaOptions {
    /// How many sagas of one batch are stepped at once (default 16); one saga's inputs are
    /// always stepped in order.
    pub concurrency: usize,
    /// How often due deadlines are looked for (default 100 ms).
    pub timer_poll: Duration,
    /// How many conflicting appends in a row one step tolerates (default 10).
    pub max_conflict_retries: u32,
    /// How many sagas' states are cached (default 10,000).
    pub cache: usize,
    /// The projection runner's batch, retry and poll settings.
    pub projection: ProjectionOptions,
}

impl Default for SagaOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            timer_poll: Duration::from_millis(100),
            max_conflict_retries: 10,
            cache: 10_000,
            projection: ProjectionOptions::default(),
        }
    }
}

/// Runs saga `S` over store `St`, with deadlines in `T` and its checkpoint in `C`.
pub struct SagaRunner<S: Saga, St, T, C> {
    engine: Arc<Engine<S, St, T>>,
    checkpoints: C,
}

impl<S, St, T, C> SagaRunner<S, St, T, C>
where
    S: Saga,
    St: EventStore + Clone + 'static,
    T: TimerStore + 'static,
    C: CheckpointStore + 'static,
{
    /// A runner of `saga` with default options.
    pub fn new(saga: S, store: St, timers: T, checkpoints: C) -> Self {
        Self::with_options(saga, store, timers, checkpoints, SagaOptions::default())
    }

    /// A runner of `saga` with `options`.
    pub fn with_options(
        saga: S,
        store: St,
        timers: T,
        checkpoints: C,
        options: SagaOptions,
    ) -> Self {
        Self {
            engine: Arc::new(Engine::new(saga, store, timers, options)),
            checkpoints,
        }
    }

    /// The runner's projection name (its checkpoint's key): `saga-<type>`.
    pub fn name() -> String {
        format!("saga-{}", S::TYPE)
    }

    /// Steps every input up to the head of the log now, then fires the deadlines due now.
    /// Returns the checkpoint reached.
    ///
    /// # Errors
    /// [`SagaError`] when stepping keeps failing.
    pub async fn catch_up(&self) -> Result<Position, SagaError>
    where
        C: Clone,
    {
        let target = SagaTarget::new(Arc::clone(&self.engine), self.checkpoints.clone());
        let options = self.engine.options.projection;
        let mut runner = ProjectionRunner::new(self.engine.store.clone(), target, options);
        let reached = runner.catch_up(None, |_, _| {}).await?;
        self.fire_due_timers(now_micros()).await?;
        Ok(reached)
    }

    /// Fires every deadline due at `now_micros`; returns how many were due.
    ///
    /// # Errors
    /// [`SagaError`] when the stores fail.
    pub async fn fire_due_timers(&self, now_micros: i64) -> Result<usize, SagaError> {
        fire_due(&self.engine, now_micros).await
    }

    /// Runs the projection runner and the timer poller as tasks until stopped.
    pub fn spawn(self) -> SagaHandle<S, St, T, C>
    where
        St: Sync,
    {
        let target = SagaTarget::new(Arc::clone(&self.engine), self.checkpoints);
        let options = self.engine.options.projection;
        let projection = ProjectionRunner::new(self.engine.store.clone(), target, options).spawn();
        let (stop, mut stopped) = watch::channel(false);
        let engine = Arc::clone(&self.engine);
        let progress = projection.progress();
        let timers = tokio::spawn(async move {
            // A deadline due at `cutoff` fires only once the runner has stepped every event
            // committed before `cutoff` (the head read after it): an answer that made it into
            // the log in time always wins over the deadline it beat.
            let mut barrier: Option<(i64, Position)> = None;
            loop {
                let next = match barrier {
                    Some(pending) => Ok(pending),
                    None => {
                        let cutoff = now_micros();
                        engine
                            .store
                            .head_position()
                            .await
                            .map(|head| (cutoff, head))
                    }
                };
                match next {
                    Ok((cutoff, head)) if progress.get() >= head => {
                        barrier = None;
                        if let Err(error) = fire_due(&engine, cutoff).await {
                            tracing::warn!(saga = S::TYPE, %error, "firing deadlines failed; retrying");
                        }
                    }
                    Ok(pending) => barrier = Some(pending),
                    Err(error) => {
                        tracing::warn!(saga = S::TYPE, %error, "reading the head for deadlines failed; retrying");
                    }
                }
                let poll = engine.options.timer_poll;
                if matches!(
                    tokio::time::timeout(poll, stopped.changed()).await,
                    Ok(Ok(()) | Err(_))
                ) {
                    return;
                }
            }
        });
        SagaHandle {
            projection,
            timers,
            stop,
        }
    }

    /// Runs until `shutdown` resolves, then stops both tasks.
    ///
    /// # Errors
    /// The error that ended the projection runner, if one did.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), SagaError>
    where
        St: Sync,
    {
        let handle = self.spawn();
        shutdown.await;
        handle.stop().await
    }
}

async fn fire_due<S: Saga, St: EventStore, T: TimerStore>(
    engine: &Engine<S, St, T>,
    now_micros: i64,
) -> Result<usize, SagaError> {
    let mut fired = 0;
    loop {
        let due = engine.timers.due(S::TYPE, now_micros, 256).await?;
        if due.is_empty() {
            return Ok(fired);
        }
        fired += due.len();
        for timer in &due {
            engine.fire(timer).await?;
        }
        // A deadline re-scheduled at once by its own firing waits for the next poll.
        if due.len() < 256 {
            return Ok(fired);
        }
    }
}

/// A running saga runner.
pub struct SagaHandle<S: Saga, St, T, C> {
    projection: ProjectionHandle<SagaTarget<S, St, T, C>>,
    timers: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl<S: Saga, St, T, C> SagaHandle<S, St, T, C> {
    /// The projection runner's status (checkpoint, head, lag, state).
    pub fn status(&self) -> ProjectionStatus {
        self.projection.status()
    }

    /// Waits until the checkpoint reaches `position` or `timeout` passes; true if reached.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> bool {
        self.projection.wait_for(position, timeout).await
    }

    /// Pauses stepping at a batch boundary. Deadlines do not fire while the runner is behind
    /// the log, so a paused runner fires none that an unread answer might have beaten.
    pub fn pause(&self) {
        self.projection.pause();
    }

    /// Resumes stepping after [`SagaHandle::pause`].
    pub fn resume(&self) {
        self.projection.resume();
    }

    /// Stops both tasks after the work in hand.
    ///
    /// # Errors
    /// The error that ended the projection runner, if one did.
    pub async fn stop(self) -> Result<(), SagaError> {
        self.stop.send_replace(true);
        let _ = self.timers.await;
        self.projection.stop().await?;
        Ok(())
    }
}
