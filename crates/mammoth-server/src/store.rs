//! [`DynStore`]: the server's one type erasure. Handlers are plain functions (so utoipa can
//! document them) over `Arc<dyn DynStore>`; [`SharedStore`] turns that back into an
//! [`EventStore`] so [`mammoth_core::Subscription`] and the runtime can use it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use mammoth_core::{
    AppendResult, Direction, EventFilter, EventStore, ExpectedVersion, NewEvent, Position,
    RecordedEvent, StoreError, StreamId, Version,
};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`EventStore`] with boxed futures, so it can live behind `dyn`. Every [`EventStore`] is one.
pub trait DynStore: Send + Sync {
    /// See [`EventStore::append`].
    fn append_dyn<'a>(
        &'a self,
        stream: &'a StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'a, Result<AppendResult, StoreError>>;
    /// See [`EventStore::read_stream`].
    fn read_stream_dyn<'a>(
        &'a self,
        stream: &'a StreamId,
        direction: Direction,
        from: Option<Version>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<RecordedEvent>, StoreError>>;
    /// See [`EventStore::read_all`].
    fn read_all_dyn<'a>(
        &'a self,
        from: Position,
        filter: &'a EventFilter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<RecordedEvent>, StoreError>>;
    /// See [`EventStore::head_position`].
    fn head_position_dyn(&self) -> BoxFuture<'_, Result<Position, StoreError>>;
    /// See [`EventStore::stream_version`].
    fn stream_version_dyn<'a>(
        &'a self,
        stream: &'a StreamId,
    ) -> BoxFuture<'a, Result<Version, StoreError>>;
    /// See [`EventStore::wait_for_append`].
    fn wait_for_append_dyn(&self, after: Position) -> BoxFuture<'_, Result<(), StoreError>>;
}

impl<T: EventStore> DynStore for T {
    fn append_dyn<'a>(
        &'a self,
        stream: &'a StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'a, Result<AppendResult, StoreError>> {
        Box::pin(self.append(stream, expected, events))
    }
    fn read_stream_dyn<'a>(
        &'a self,
        stream: &'a StreamId,
        direction: Direction,
        from: Option<Version>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<RecordedEvent>, StoreError>> {
        Box::pin(self.read_stream(stream, direction, from, limit))
    }
    fn read_all_dyn<'a>(
        &'a self,
        from: Position,
        filter: &'a EventFilter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<RecordedEvent>, StoreError>> {
        Box::pin(self.read_all(from, filter, limit))
    }
    fn head_position_dyn(&self) -> BoxFuture<'_, Result<Position, StoreError>> {
        Box::pin(self.head_position())
    }
    fn stream_version_dyn<'a>(
        &'a self,
        stream: &'a StreamId,
    ) -> BoxFuture<'a, Result<Version, StoreError>> {
        Box::pin(self.stream_version(stream))
    }
    fn wait_for_append_dyn(&self, after: Position) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.wait_for_append(after))
    }
}

/// A cheaply cloned handle on an erased store; it is an [`EventStore`] again.
#[derive(Clone)]
pub struct SharedStore(pub Arc<dyn DynStore>);

impl EventStore for SharedStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.0.append_dyn(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: Option<Version>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.0.read_stream_dyn(stream, direction, from, limit).await
    }
    async fn read_all(
        &self,
        from: Position,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.0.read_all_dyn(from, filter, limit).await
    }
    async fn head_position(&self) -> Result<Position, StoreError> {
        self.0.head_position_dyn().await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Version, StoreError> {
        self.0.stream_version_dyn(stream).await
    }
    async fn wait_for_append(&self, after: Position) -> Result<(), StoreError> {
        self.0.wait_for_append_dyn(after).await
    }
}
