//! [`Metered`]: an event store whose appends and reads are counted in a server's [`Metrics`],
//! so the app's commands (which append through their own repository, not the HTTP event
//! routes) and the sagas' and projections' traffic show in `mammoth_appends_total`,
//! `mammoth_append_seconds` and `mammoth_events_read_total` beside the HTTP API's own.

use std::sync::Arc;
use std::time::Instant;

use mammoth_core::{
    AppendResult, Direction, EventFilter, EventStore, ExpectedVersion, NewEvent, Position,
    RecordedEvent, StoreError, StreamId, Version,
};

use crate::metrics::Metrics;

/// `S` with its appends and reads recorded in `metrics` under the backend label `backend`.
#[derive(Clone, Debug)]
pub struct Metered<S> {
    inner: S,
    backend: &'static str,
    metrics: Arc<Metrics>,
}

impl<S> Metered<S> {
    /// Counts `inner`'s traffic in `metrics` (give the same recorder to
    /// [`crate::Server::metrics`]) as backend `backend`.
    pub fn new(inner: S, backend: &'static str, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            backend,
            metrics,
        }
    }

    /// The store underneath.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: EventStore> EventStore for Metered<S> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let count = events.len() as u64;
        let started = Instant::now();
        let appended = self.inner.append(stream, expected, events).await;
        if appended.is_ok() {
            self.metrics
                .appended(self.backend, count, started.elapsed());
        }
        appended
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: Option<Version>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self
            .inner
            .read_stream(stream, direction, from, limit)
            .await?;
        self.metrics.read(self.backend, events.len() as u64);
        Ok(events)
    }

    async fn read_all(
        &self,
        from: Position,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self.inner.read_all(from, filter, limit).await?;
        self.metrics.read(self.backend, events.len() as u64);
        Ok(events)
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        self.inner.head_position().await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version, StoreError> {
        self.inner.stream_version(stream).await
    }

    async fn wait_for_append(&self, after: Position) -> Result<(), StoreError> {
        self.inner.wait_for_append(after).await
    }
}
