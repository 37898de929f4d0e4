//! [`ProjectionRunner`]: the read → apply → checkpoint loop, its retries, and going live.

use std::time::{Duration, Instant};

use mammoth_core::{
    EventFilter, EventStore, Position, ProjectionError, ProjectionState, ProjectionStatus,
    ProjectionTarget, RecordedEvent,
};
use tokio::sync::watch;

use super::{Control, OnFailure, ProjectionHandle, ProjectionOptions};
use crate::PositionWatch;

/// One read of the log: the events that pass the filter, and the position through which the
/// log has been scanned (so events between that pass no filter still count as applied).
struct Page {
    from: Position,
    events: Vec<RecordedEvent>,
    through: Position,
    head: Position,
}

struct Reader<S> {
    store: S,
    filter: EventFilter,
    batch_size: usize,
}

impl<S: EventStore> Reader<S> {
    async fn read(&self, from: Position, until: Option<Position>) -> Result<Page, ProjectionError> {
        // The head is read first: every event at or below it is visible to the read below, so
        // a short page proves nothing up to the head is left.
        let head = self.store.head_position().await?;
        let limit = until.map_or(head, |until| head.min(until));
        if from > limit {
            let through = from.saturating_sub(1);
            return Ok(Page {
                from,
                events: Vec::new(),
                through,
                head,
            });
        }
        let mut events = self
            .store
            .read_all(from, &self.filter, self.batch_size)
            .await?;
        let full = events.len() == self.batch_size;
        let before = events.len();
        if let Some(until) = until {
            events.retain(|event| event.position <= until);
        }
        let last = events.last().map_or(0, |event| event.position);
        let through = match until {
            // Events past `until` were read, so everything up to it has been scanned.
            Some(until) if events.len() < before => until,
            _ if full => last,
            _ => limit.max(last),
        };
        Ok(Page {
            from,
            events,
            through,
            head: head.max(through),
        })
    }
}

/// What one step did.
enum Step {
    Applied,
    Idle(Position),
    Reloaded,
}

/// Runs one projection: see the module documentation of `mammoth_runtime::projection`.
pub struct ProjectionRunner<S, T> {
    reader: Reader<S>,
    target: T,
    options: ProjectionOptions,
    name: String,
    checkpoint: Position,
    loaded: bool,
    state: ProjectionState,
    status: watch::Sender<ProjectionStatus>,
    progress: PositionWatch,
    prefetched: Option<Page>,
}

impl<S: EventStore + 'static, T: ProjectionTarget + 'static> ProjectionRunner<S, T> {
    /// A runner of `target` over `store` (any handle that reads: a read-only one will do).
    pub fn new(store: S, target: T, options: ProjectionOptions) -> Self {
        let name = target.name().to_owned();
        let filter = target.filter();
        let status = ProjectionStatus::new(name.clone(), ProjectionState::Running, 0, 0);
        Self {
            reader: Reader {
                store,
                filter,
                batch_size: options.batch_size.max(1),
            },
            target,
            options,
            name,
            checkpoint: 0,
            loaded: false,
            state: ProjectionState::Running,
            status: watch::Sender::new(status),
            progress: PositionWatch::new(0),
            prefetched: None,
        }
    }

    /// The target, for example to query the read model.
    pub fn target(&self) -> &T {
        &self.target
    }

    /// Gives the target back.
    pub fn into_target(self) -> T {
        self.target
    }

    /// The checkpoint as a [`PositionWatch`] (see [`ProjectionHandle::progress`]).
    pub fn progress(&self) -> PositionWatch {
        self.progress.clone()
    }

    /// Applies every event up to `until` (the head as it is now when `None`) and returns the
    /// checkpoint reached. `on_batch(checkpoint, head)` is called after each batch, for
    /// progress bars.
    ///
    /// # Errors
    /// A failing event after its retries (unless the runner parks failures); store failures.
    pub async fn catch_up(
        &mut self,
        until: Option<Position>,
        mut on_batch: impl FnMut(Position, Position) + Send,
    ) -> Result<Position, ProjectionError> {
        self.load().await?;
        let until = match until {
            Some(until) => until,
            None => self.reader.store.head_position().await?,
        };
        while self.checkpoint < until {
            match self.step(Some(until)).await? {
                Step::Idle(_) => break,
                Step::Applied | Step::Reloaded => {}
            }
            let head = self.status.borrow().head;
            on_batch(self.checkpoint, head.max(until));
        }
        Ok(self.checkpoint)
    }

    /// Runs the projection as a task until stopped: catch up, then follow the log live.
    pub fn spawn(self) -> ProjectionHandle<T>
    where
        S: Send + Sync,
    {
        let (control, receiver) = watch::channel(Control::Run);
        let status = self.status.subscribe();
        let progress = self.progress.clone();
        let task = tokio::spawn(self.run(receiver));
        ProjectionHandle {
            control,
            status,
            progress,
            task,
        }
    }

    async fn run(mut self, mut control: watch::Receiver<Control>) -> Result<T, ProjectionError> {
        let mut external = mammoth_core::Requested::default();
        let mut asked_at: Option<Instant> = None;
        // A runner starts as running in memory; it says so where other processes look,
        // replacing whatever an earlier runner recorded (stopped, failed), when the task
        // starts (a runner that caught up before `spawn` has its checkpoint loaded already)
        // and again after every reload.
        let mut announce = true;
        loop {
            if !self.loaded {
                if let Err(error) = self.load().await {
                    tracing::warn!(projection = %self.name, %error, "loading the checkpoint");
                    self.idle(&mut control, u64::MAX).await;
                    continue;
                }
                announce = true;
            }
            if announce {
                announce = false;
                if let Err(error) = self.target.record_state(&self.state).await {
                    tracing::warn!(projection = %self.name, %error, "recording the state");
                }
            }
            if asked_at.is_none_or(|at| at.elapsed() >= self.options.poll) {
                asked_at = Some(Instant::now());
                match self.target.requested().await {
                    Ok(requested) => external = requested,
                    Err(error) => {
                        tracing::warn!(projection = %self.name, %error, "reading requests")
                    }
                }
                if self.loaded
                    && let Err(error) = self.reload_if_moved().await
                {
                    tracing::warn!(projection = %self.name, %error, "reading the checkpoint");
                }
            }
            let wanted = *control.borrow_and_update();
            if wanted == Control::Stop {
                self.set_state(ProjectionState::Stopped).await;
                return Ok(self.target);
            }
            if wanted == Control::Pause || external.paused {
                self.set_state(ProjectionState::Paused).await;
                self.prefetched = None;
                self.idle(&mut control, u64::MAX).await;
                continue;
            }
            if self.state != ProjectionState::Running {
                self.set_state(ProjectionState::Running).await;
            }
            match self.step(None).await {
                Ok(Step::Applied | Step::Reloaded) => {}
                Ok(Step::Idle(head)) => self.idle(&mut control, head).await,
                Err(error) if error.position().is_none() => {
                    // The store or the read model is failing, not an event: keep trying.
                    tracing::warn!(projection = %self.name, %error, "projection cannot progress");
                    self.loaded = false;
                    self.idle(&mut control, u64::MAX).await;
                }
                Err(_) => {
                    let resumes = external.resumes;
                    self.prefetched = None;
                    // Failed: wait for a resume, here or from another process.
                    loop {
                        let changed = tokio::time::timeout(self.options.poll, control.changed());
                        if matches!(changed.await, Ok(Ok(()))) {
                            break;
                        }
                        if let Ok(requested) = self.target.requested().await
                            && requested.resumes > resumes
                        {
                            external = requested;
                            break;
                        }
                    }
                    self.loaded = false;
                }
            }
        }
    }

    /// Waits for an append past `head`, a control message, or the poll interval.
    async fn idle(&mut self, control: &mut watch::Receiver<Control>, head: Position) {
        let poll = self.options.poll;
        if head == u64::MAX {
            let _ = tokio::time::timeout(poll, control.changed()).await;
            return;
        }
        tokio::select! {
            _ = self.reader.store.wait_for_append(head) => {}
            _ = control.changed() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }

    /// Loads the checkpoint and points the progress watch at it, backwards too: after a
    /// replay in place the read model is empty, and a query waiting for a position the old
    /// model had reached must wait for the rebuild to pass it again.
    async fn load(&mut self) -> Result<(), ProjectionError> {
        self.checkpoint = self.target.checkpoint().await?;
        self.loaded = true;
        self.prefetched = None;
        self.progress.rewind(self.checkpoint);
        let head = self.status.borrow().head;
        self.publish(head);
        Ok(())
    }

    /// A replay in place (the read model emptied and its checkpoint reset, by another process
    /// or handle) shows in [`Self::step`] only when the next batch is applied; an idle runner
    /// would keep answering waiters from the emptied model. So the runner compares the stored
    /// checkpoint with its own on every poll, and reloads when they differ.
    async fn reload_if_moved(&mut self) -> Result<(), ProjectionError> {
        let stored = self.target.checkpoint().await?;
        if stored != self.checkpoint {
            tracing::info!(
                projection = %self.name,
                from = self.checkpoint,
                to = stored,
                "the checkpoint moved under the runner; following it"
            );
            self.load().await?;
        }
        Ok(())
    }

    async fn set_state(&mut self, state: ProjectionState) {
        if self.state == state {
            return;
        }
        self.state = state.clone();
        if let Err(error) = self.target.record_state(&state).await {
            tracing::warn!(projection = %self.name, %error, "recording the state");
        }
        let head = self.status.borrow().head;
        self.publish(head);
    }

    fn publish(&self, head: Position) {
        self.progress.advance(self.checkpoint);
        self.status.send_replace(ProjectionStatus::new(
            self.name.clone(),
            self.state.clone(),
            self.checkpoint,
            head.max(self.checkpoint),
        ));
    }

    async fn step(&mut self, until: Option<Position>) -> Result<Step, ProjectionError> {
        let from = self.checkpoint + 1;
        let page = match self.prefetched.take() {
            Some(page) if page.from == from => page,
            _ => self.reader.read(from, until).await?,
        };
        if page.events.is_empty() && page.through <= self.checkpoint {
            self.publish(page.head);
            return Ok(Step::Idle(page.head));
        }
        let full = page.events.len() == self.reader.batch_size;
        let applied = if full && until.is_none() {
            // Read the next page while this one is applied: the two overlap on two threads.
            let next_from = page.through + 1;
            let (applied, next) = tokio::join!(
                apply_with_retry(
                    &mut self.target,
                    &self.options,
                    &self.name,
                    &mut self.checkpoint,
                    &page
                ),
                self.reader.read(next_from, None)
            );
            self.prefetched = next.ok();
            applied
        } else {
            apply_with_retry(
                &mut self.target,
                &self.options,
                &self.name,
                &mut self.checkpoint,
                &page,
            )
            .await
        };
        match applied {
            Ok(()) => {
                self.publish(page.head);
                Ok(Step::Applied)
            }
            Err(ProjectionError::CheckpointMoved { .. }) => {
                self.prefetched = None;
                self.load().await?;
                Ok(Step::Reloaded)
            }
            Err(error) => {
                self.prefetched = None;
                if let Some(position) = error.position() {
                    let state = ProjectionState::Failed {
                        position,
                        error: error.to_string(),
                        attempts: self.options.retry.max_attempts,
                    };
                    self.set_state(state).await;
                }
                self.publish(page.head);
                Err(error)
            }
        }
    }
}

/// Applies `page` past `checkpoint`, retrying with backoff; parks or gives up after the last
/// attempt. Moves `checkpoint` as the target reports.
async fn apply_with_retry<T: ProjectionTarget>(
    target: &mut T,
    options: &ProjectionOptions,
    name: &str,
    checkpoint: &mut Position,
    page: &Page,
) -> Result<(), ProjectionError> {
    let mut attempts = 0u32;
    let mut failing: Option<Position> = None;
    loop {
        let pending: Vec<&RecordedEvent> = page
            .events
            .iter()
            .filter(|event| event.position > *checkpoint)
            .collect();
        let result = if pending.len() == page.events.len() {
            target.apply(&page.events, page.through).await
        } else {
            let owned: Vec<RecordedEvent> = pending.into_iter().cloned().collect();
            target.apply(&owned, page.through).await
        };
        let failure = match result {
            Ok(()) => {
                *checkpoint = page.through;
                return Ok(());
            }
            Err(failure) => failure,
        };
        *checkpoint = failure.checkpoint;
        if matches!(failure.error, ProjectionError::CheckpointMoved { .. }) {
            return Err(failure.error);
        }
        let position = failure.error.position();
        if position != failing {
            failing = position;
            attempts = 0;
        }
        attempts += 1;
        tracing::warn!(projection = name, attempts, error = %failure.error, "applying a batch failed");
        if attempts >= options.retry.max_attempts {
            let event = position.and_then(|p| page.events.iter().find(|e| e.position == p));
            match (options.on_failure, event) {
                (OnFailure::Park, Some(event)) => {
                    park(target, checkpoint, page, event, &failure.error, attempts).await?;
                    attempts = 0;
                    failing = None;
                    continue;
                }
                _ => return Err(failure.error),
            }
        }
        tokio::time::sleep(options.retry.delay(attempts).max(Duration::from_millis(1))).await;
    }
}

/// Applies the events before `event`, then parks it.
async fn park<T: ProjectionTarget>(
    target: &mut T,
    checkpoint: &mut Position,
    page: &Page,
    event: &RecordedEvent,
    error: &ProjectionError,
    attempts: u32,
) -> Result<(), ProjectionError> {
    let before: Vec<RecordedEvent> = page
        .events
        .iter()
        .filter(|e| e.position > *checkpoint && e.position < event.position)
        .cloned()
        .collect();
    if event.position > *checkpoint + 1 {
        target
            .apply(&before, event.position - 1)
            .await
            .map_err(|failure| failure.error)?;
        *checkpoint = event.position - 1;
    }
    target.park(event, &error.to_string(), attempts).await?;
    *checkpoint = event.position;
    Ok(())
}
