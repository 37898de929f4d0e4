//! [`Counted`]: the SQLite store `mammoth bench commands` hands to the runtime's benchmark,
//! reporting appended events to the progress bar, and [`OpenStores`], which closes each
//! case's store before the next case starts.

use std::sync::{Arc, Mutex};

use mammoth_core::{
    AppendResult, Direction, EventFilter, EventStore, ExpectedVersion, NewEvent, Position,
    RecordedEvent, StoreError, StreamId, Version,
};
use mammoth_sqlite::SqliteEventStore;

use crate::Progress;

/// A SQLite store that reports every appended event (and, for the load case, every event read
/// from a stream) to a [`Progress`]. The raw baseline and the commands go through the same
/// wrapper, so its cost (one atomic add per call) is on both sides of every ratio.
#[derive(Clone)]
pub(crate) struct Counted {
    pub(crate) store: SqliteEventStore,
    pub(crate) progress: Arc<dyn Progress>,
    pub(crate) count_reads: bool,
}

impl EventStore for Counted {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let count = events.len() as u64;
        let written = self.store.append(stream, expected, events).await?;
        self.progress.advance(count);
        Ok(written)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: Option<Version>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self
            .store
            .read_stream(stream, direction, from, limit)
            .await?;
        if self.count_reads {
            self.progress.advance(events.len() as u64);
        }
        Ok(events)
    }

    async fn read_all(
        &self,
        from: Position,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_all(from, filter, limit).await
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        self.store.head_position().await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version, StoreError> {
        self.store.stream_version(stream).await
    }

    async fn wait_for_append(&self, after: Position) -> Result<(), StoreError> {
        self.store.wait_for_append(after).await
    }
}

/// The stores a run has opened and not yet closed.
///
/// A dropped store's writer flushes and checkpoints its write-ahead log on its own thread, so
/// a case that only dropped its store (the raw 64-caller case writes hundreds of thousands of
/// events) would slow the case after it. The runtime's benchmark opens stores through a
/// synchronous factory, so [`OpenStores::close_all_blocking`] closes the previous case's store
/// there, blocking the factory's worker thread until the close is done.
#[derive(Clone, Default)]
pub(crate) struct OpenStores(Arc<Mutex<Vec<SqliteEventStore>>>);

impl OpenStores {
    pub(crate) fn add(&self, store: SqliteEventStore) {
        self.locked(|stores| stores.push(store));
    }

    /// Closes every store from inside a synchronous callback. On a runtime that cannot block
    /// a worker (a current-thread runtime) the stores are only dropped, closing in the
    /// background as the runtime's own example does.
    pub(crate) fn close_all_blocking(&self) -> Result<(), StoreError> {
        let stores = self.locked(std::mem::take);
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return Ok(());
        };
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Ok(());
        }
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                for store in stores {
                    store.close().await?;
                }
                Ok(())
            })
        })
    }

    /// Closes every store.
    pub(crate) async fn close_all(&self) -> Result<(), StoreError> {
        for store in self.locked(std::mem::take) {
            store.close().await?;
        }
        Ok(())
    }

    fn locked<T>(&self, f: impl FnOnce(&mut Vec<SqliteEventStore>) -> T) -> T {
        // A panic while holding the lock leaves a plain list; keep using it.
        let mut stores = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut stores)
    }
}
