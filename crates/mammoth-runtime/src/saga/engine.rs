//! The step engine shared by the runner's projection target and its timer poller: route an
//! event to a saga, load the saga (cache or stream), step it, append the step with an exact
//! expected version (retrying conflicts), then bring the timer store in line.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use mammoth_core::saga::{
    COMMAND_REJECTED, CommandRejected, Saga, SagaInput, SagaInstance, Timer, TimerStore, saga_of,
    saga_stream,
};
use mammoth_core::{
    Direction, EventFilter, EventStore, ExpectedVersion, RecordedEvent, StoreError, now_micros,
};

use super::{SagaError, SagaOptions};

/// The routing and stepping of one saga type.
pub(super) struct Engine<S: Saga, St, T> {
    pub(super) saga: S,
    pub(super) store: St,
    pub(super) timers: T,
    pub(super) options: SagaOptions,
    user_filter: EventFilter,
    cache: Mutex<HashMap<String, SagaInstance<S::State>>>,
}

impl<S: Saga, St: EventStore, T: TimerStore> Engine<S, St, T> {
    pub(super) fn new(saga: S, store: St, timers: T, options: SagaOptions) -> Self {
        let user_filter = saga.filter();
        Self {
            saga,
            store,
            timers,
            options,
            user_filter,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The filter the projection runner reads with: the saga's, plus rejection reports.
    /// Filters combine types AND categories, so a saga filtering by category makes the
    /// runner read everything and filter here.
    pub(super) fn read_filter(&self) -> EventFilter {
        if self.user_filter.categories.is_empty() && !self.user_filter.event_types.is_empty() {
            let mut filter = self.user_filter.clone();
            filter.event_types.push(COMMAND_REJECTED.to_owned());
            filter
        } else {
            EventFilter::all()
        }
    }

    /// The saga id `event` belongs to, if it is an input of this saga type.
    pub(super) fn route(&self, event: &RecordedEvent) -> Option<String> {
        let tagged = saga_of(&event.metadata);
        if event.stream_id.is_reserved() {
            // Of mammoth's own streams, only rejection reports are inputs.
            return match tagged {
                Some((saga_type, saga_id))
                    if saga_type == S::TYPE && event.event_type == COMMAND_REJECTED =>
                {
                    Some(saga_id.to_owned())
                }
                _ => None,
            };
        }
        if !self.user_filter.matches(event) {
            return None;
        }
        match tagged {
            Some((saga_type, saga_id)) if saga_type == S::TYPE => Some(saga_id.to_owned()),
            // Untagged, or an answer to another saga type's command (which may still start
            // or concern a saga of this type).
            _ => self
                .saga
                .correlate(event)
                .or_else(|| self.saga.starts(event)),
        }
    }

    /// Handles one routed event.
    pub(super) async fn handle_event(
        &self,
        saga_id: &str,
        event: &RecordedEvent,
    ) -> Result<(), SagaError> {
        if let Some(report) = CommandRejected::from_event(event) {
            let input = SagaInput::CommandRejected {
                command: &report.command,
                reason: &report.reason,
            };
            return self.handle(saga_id, &input, Some(event), None).await;
        }
        self.handle(saga_id, &SagaInput::Event(event), Some(event), None)
            .await
    }

    /// Fires one due timer: a stale one (cancelled, re-scheduled, or of an ended saga) is
    /// just deleted.
    pub(super) async fn fire(&self, timer: &Timer) -> Result<(), SagaError> {
        let input = SagaInput::DeadlineExpired { name: &timer.name };
        self.handle(&timer.saga_id, &input, None, Some(timer))
            .await?;
        self.timers.delete(&[timer.id]).await?;
        Ok(())
    }

    /// Steps saga `saga_id` with `input`, retrying conflicts.
    async fn handle(
        &self,
        saga_id: &str,
        input: &SagaInput<'_>,
        source: Option<&RecordedEvent>,
        timer: Option<&Timer>,
    ) -> Result<(), SagaError> {
        let mut attempts = 0;
        loop {
            let instance = self.load(saga_id).await?;
            if instance.version == 0 {
                let starts =
                    matches!(input, SagaInput::Event(event) if self.saga.starts(event).is_some());
                if !starts {
                    return Ok(());
                }
            }
            if let Some(timer) = timer
                && !instance.timers.iter().any(|pending| pending.id == timer.id)
            {
                return Ok(());
            }
            let Some(step) = instance.step(&self.saga, input, source, now_micros())? else {
                // Already handled (or nothing to do): make sure the timers it recorded are
                // in the store, which a crash after the append may have prevented.
                self.sync_timers(&[], &instance.timers).await?;
                return Ok(());
            };
            let events = step.events()?;
            let stream = step.instance.stream.clone();
            match self
                .store
                .append(&stream, ExpectedVersion::Exact(step.expected), events)
                .await
            {
                Ok(written) if written.first_version != step.expected + 1 => {
                    // The store answered with an earlier append of the same ids: another
                    // runner took this step from a newer state than the cached one.
                    self.forget(saga_id);
                    return Ok(());
                }
                Ok(written) => {
                    let mut next = step.instance;
                    next.version = written.last_version;
                    self.sync_timers(&instance.timers, &next.timers).await?;
                    self.remember(next);
                    return Ok(());
                }
                Err(StoreError::Conflict { .. }) => {
                    self.forget(saga_id);
                    attempts += 1;
                    if attempts > self.options.max_conflict_retries {
                        return Err(SagaError::Conflicts {
                            stream: stream.to_string(),
                            attempts,
                        });
                    }
                }
                Err(error) => {
                    self.forget(saga_id);
                    return Err(error.into());
                }
            }
        }
    }

    /// Deletes the timers in `before` that are gone from `after` and upserts those of `after`
    /// that are new (ids are deterministic, so an unchanged timer needs no write).
    async fn sync_timers(&self, before: &[Timer], after: &[Timer]) -> Result<(), SagaError> {
        let kept: HashSet<_> = after.iter().map(|timer| timer.id).collect();
        let had: HashSet<_> = before.iter().map(|timer| timer.id).collect();
        let gone: Vec<_> = had
            .iter()
            .copied()
            .filter(|id| !kept.contains(id))
            .collect();
        if !gone.is_empty() {
            self.timers.delete(&gone).await?;
        }
        let new: Vec<Timer> = after
            .iter()
            .filter(|timer| !had.contains(&timer.id))
            .cloned()
            .collect();
        if !new.is_empty() {
            self.timers.upsert(&new).await?;
        }
        Ok(())
    }

    /// The saga from the cache, or read from its stream.
    pub(super) async fn load(&self, saga_id: &str) -> Result<SagaInstance<S::State>, SagaError> {
        if let Some(instance) = self.lock().get(saga_id) {
            return Ok(instance.clone());
        }
        let mut instance = SagaInstance::new(S::TYPE, saga_id)?;
        let stream = saga_stream(S::TYPE, saga_id)?;
        let page = 256;
        let mut from = Some(1);
        while let Some(start) = from {
            let events = self
                .store
                .read_stream(&stream, Direction::Forward, Some(start), page)
                .await?;
            for event in &events {
                instance.apply(event)?;
            }
            from = (events.len() == page).then(|| instance.version + 1);
        }
        Ok(instance)
    }

    fn remember(&self, instance: SagaInstance<S::State>) {
        let mut cache = self.lock();
        if cache.len() >= self.options.cache && !cache.contains_key(&instance.saga_id) {
            // A crude bound: dropping everything costs a re-read per saga, never correctness.
            cache.clear();
        }
        cache.insert(instance.saga_id.clone(), instance);
    }

    fn forget(&self, saga_id: &str) {
        self.lock().remove(saga_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SagaInstance<S::State>>> {
        // The map is only read or replaced entry-wise, so a poisoned lock holds a usable map.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
