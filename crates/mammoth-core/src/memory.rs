//! [`InMemoryEventStore`]: the reference implementation of the [`EventStore`] contract.
//!
//! It is deliberately simple (one mutex around vectors and maps) so that it can serve as the
//! model that real drivers are compared against in property tests. It keeps nothing on disk.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use event_listener::Event;
use uuid::Uuid;

use crate::event::now_micros;
use crate::validate::{StoredAt, idempotent_replay, validate_append};
use crate::{
    AppendResult, Direction, EventFilter, EventStore, ExpectedVersion, Limits, NewEvent, Position,
    RecordedEvent, StoreError, StreamId, Version,
};

#[derive(Default)]
struct Inner {
    /// The global log; the event at index i has position i + 1.
    log: Vec<RecordedEvent>,
    /// Each stream's events as indexes into `log`, in version order.
    streams: HashMap<StreamId, Vec<usize>>,
    /// Where each event id is stored, as an index into `log`.
    ids: HashMap<Uuid, usize>,
    closed: bool,
}

/// An event store in memory: the model of the contract, and a store for tests.
#[derive(Default)]
pub struct InMemoryEventStore {
    inner: Mutex<Inner>,
    appended: Event,
    limits: Limits,
}

impl InMemoryEventStore {
    /// An empty store with default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Closes the store: later calls fail with [`StoreError::Closed`] and waiting subscribers
    /// wake up.
    pub fn close(&self) {
        self.lock().closed = true;
        self.appended.notify(usize::MAX);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the vectors half-updated in a way that
        // matters to readers (pushes are the last step), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn open(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        let inner = self.lock();
        if inner.closed {
            return Err(StoreError::Closed);
        }
        Ok(inner)
    }

    fn append_now(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let prepared = validate_append(stream, events, &self.limits)?;
        let mut inner = self.open()?;
        let ids: Vec<Uuid> = prepared.iter().map(|event| event.id).collect();
        let found: Vec<Option<StoredAt>> = prepared
            .iter()
            .map(|event| {
                let index = *inner.ids.get(&event.id).filter(|_| event.id_given)?;
                let stored = &inner.log[index];
                Some((
                    stored.stream_id.to_string(),
                    stored.version,
                    stored.position,
                ))
            })
            .collect();
        if let Some(first) = idempotent_replay(stream, &ids, &found)? {
            return Ok(first);
        }
        let current = inner.streams.get(stream).map_or(0, |indexes| indexes.len()) as Version;
        if !expected.is_satisfied_by(current) {
            return Err(StoreError::Conflict {
                stream: stream.clone(),
                expected,
                actual: current,
            });
        }
        // Parse every event's metadata before changing anything, so a failure writes nothing.
        let metadata = prepared
            .iter()
            .map(|event| crate::Metadata::from_json(&event.metadata))
            .collect::<Result<Vec<_>, _>>()?;
        let recorded_at_micros = now_micros();
        let first_position = inner.log.len() as Position + 1;
        let count = prepared.len();
        for (offset, (event, metadata)) in prepared.into_iter().zip(metadata).enumerate() {
            let index = inner.log.len();
            inner.log.push(RecordedEvent {
                id: event.id,
                stream_id: stream.clone(),
                version: current + 1 + offset as Version,
                position: index as Position + 1,
                event_type: event.event_type,
                schema_version: event.schema_version,
                data: event.data,
                metadata,
                recorded_at_micros,
            });
            inner.ids.insert(event.id, index);
            inner.streams.entry(stream.clone()).or_default().push(index);
        }
        drop(inner);
        self.appended.notify(usize::MAX);
        Ok(AppendResult {
            first_version: current + 1,
            last_version: current + count as Version,
            first_position,
            last_position: first_position + count as Position - 1,
        })
    }
}

fn check_limit(limit: usize) -> Result<(), StoreError> {
    if limit == 0 {
        return Err(StoreError::InvalidRead {
            reason: "limit must be at least 1".to_owned(),
        });
    }
    Ok(())
}

impl EventStore for InMemoryEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.append_now(stream, expected, events)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: Option<Version>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_limit(limit)?;
        let inner = self.open()?;
        let Some(indexes) = inner.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let events = indexes.iter().map(|&index| &inner.log[index]);
        let page = match direction {
            Direction::Forward => {
                let from = from.unwrap_or(1);
                events
                    .filter(|e| e.version >= from)
                    .take(limit)
                    .cloned()
                    .collect()
            }
            Direction::Backward => {
                let from = from.unwrap_or(Version::MAX);
                events
                    .rev()
                    .filter(|e| e.version <= from)
                    .take(limit)
                    .cloned()
                    .collect()
            }
        };
        Ok(page)
    }

    async fn read_all(
        &self,
        from: Position,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_limit(limit)?;
        let inner = self.open()?;
        let start = usize::try_from(from.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(inner
            .log
            .iter()
            .skip(start)
            .filter(|event| filter.matches(event))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        Ok(self.open()?.log.len() as Position)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version, StoreError> {
        Ok(self.open()?.streams.get(stream).map_or(0, Vec::len) as Version)
    }

    async fn wait_for_append(&self, after: Position) -> Result<(), StoreError> {
        loop {
            // Register before checking, so an append between the check and the wait wakes us.
            let listener = self.appended.listen();
            if self.open()?.log.len() as Position > after {
                return Ok(());
            }
            listener.await;
        }
    }
}
