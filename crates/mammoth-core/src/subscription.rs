//! Reading without holding everything in memory: paged streams over one stream or the global
//! log, and [`Subscription`], which catches up from a position and then follows the log live.
//!
//! All of them page through [`EventStore`] reads, so memory is bounded by the page size however
//! long the log is, and all of them track positions, so the switch from catch-up to live has no
//! gap and no duplicate.

use std::collections::VecDeque;
use std::sync::Arc;

use futures_core::Stream;
use futures_util::stream;

use crate::{
    AppendResult, Direction, EventFilter, EventStore, ExpectedVersion, NewEvent, Position,
    RecordedEvent, StoreError, StreamId, Version,
};

/// The page size the paged readers and subscriptions use unless told otherwise.
pub const DEFAULT_PAGE_SIZE: usize = 512;

/// Every event of `stream` from `from` on, read `page_size` at a time, as an async stream.
pub fn read_stream_pages<S: EventStore>(
    store: S,
    stream: StreamId,
    direction: Direction,
    from: Option<Version>,
    page_size: usize,
) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send {
    struct State<S> {
        store: S,
        stream: StreamId,
        next: Option<Version>,
        buffer: VecDeque<RecordedEvent>,
        done: bool,
    }
    let page_size = page_size.max(1);
    let state = State {
        store,
        stream,
        next: from,
        buffer: VecDeque::new(),
        done: false,
    };
    stream::unfold(state, move |mut state| async move {
        if state.buffer.is_empty() && !state.done {
            let page = state
                .store
                .read_stream(&state.stream, direction, state.next, page_size)
                .await;
            match page {
                Err(error) => {
                    state.done = true;
                    return Some((Err(error), state));
                }
                Ok(page) => {
                    state.done = page.len() < page_size;
                    match (page.last(), direction) {
                        (Some(last), Direction::Forward) => state.next = Some(last.version + 1),
                        (Some(last), Direction::Backward) if last.version > 1 => {
                            state.next = Some(last.version - 1);
                        }
                        (Some(_), Direction::Backward) => state.done = true,
                        (None, _) => {}
                    }
                    state.buffer.extend(page);
                }
            }
        }
        let event = state.buffer.pop_front()?;
        Some((Ok(event), state))
    })
}

/// Every event of the global log that passes `filter`, from `from` to the head as it is when
/// the reader gets there, read `page_size` at a time, as an async stream.
pub fn read_all_pages<S: EventStore>(
    store: S,
    from: Position,
    filter: EventFilter,
    page_size: usize,
) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send {
    let page_size = page_size.max(1);
    let state = (store, from, filter, VecDeque::new(), false);
    stream::unfold(state, move |mut state| async move {
        let (store, next, filter, buffer, done) = &mut state;
        if buffer.is_empty() && !*done {
            match store.read_all(*next, filter, page_size).await {
                Err(error) => {
                    *done = true;
                    return Some((Err(error), state));
                }
                Ok(page) => {
                    *done = page.len() < page_size;
                    if let Some(last) = page.last() {
                        *next = last.position + 1;
                    }
                    buffer.extend(page);
                }
            }
        }
        let event = buffer.pop_front()?;
        Some((Ok(event), state))
    })
}

/// A catch-up-then-live subscription to the global log.
///
/// It reads from its position in pages; once it has caught up it waits on the store's
/// notification ([`EventStore::wait_for_append`]) and goes on. It remembers the next position
/// to scan, so it delivers every committed event that passes the filter exactly once, in
/// position order, across the switch from catch-up to live.
pub struct Subscription<S> {
    store: S,
    filter: EventFilter,
    next: Position,
    page_size: usize,
    buffer: VecDeque<RecordedEvent>,
}

impl<S: EventStore> Subscription<S> {
    /// A subscription that starts at position `from` (inclusive; 1 or 0 for the beginning).
    pub fn new(store: S, from: Position, filter: EventFilter) -> Self {
        Self {
            store,
            filter,
            next: from.max(1),
            page_size: DEFAULT_PAGE_SIZE,
            buffer: VecDeque::new(),
        }
    }

    /// Sets how many events one read fetches.
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// The next position the subscription will scan. Every event before it that passes the
    /// filter has been returned or is buffered.
    pub fn position(&self) -> Position {
        self.buffer
            .front()
            .map_or(self.next, |event| event.position)
    }

    /// The next event, waiting for one to be appended if the subscription has caught up.
    ///
    /// # Errors
    /// Whatever the store's reads return; the subscription can be polled again afterwards.
    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Ok(event);
            }
            let page = self.next_batch().await?;
            self.buffer.extend(page);
        }
    }

    /// The next non-empty batch of up to the page size, waiting if caught up. Runners that
    /// commit a checkpoint per batch use this rather than [`Subscription::next`].
    ///
    /// # Errors
    /// Whatever the store's reads return; the subscription can be polled again afterwards.
    pub async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>, StoreError> {
        if !self.buffer.is_empty() {
            return Ok(self.buffer.drain(..).collect());
        }
        loop {
            // The head is read before the page: every event at or below it is visible to the
            // read that follows, so an empty page proves nothing below head+1 is left to see.
            let head = self.store.head_position().await?;
            let page = self
                .store
                .read_all(self.next, &self.filter, self.page_size)
                .await?;
            if let Some(last) = page.last() {
                self.next = last.position + 1;
                return Ok(page);
            }
            self.next = self.next.max(head + 1);
            self.store.wait_for_append(self.next - 1).await?;
        }
    }

    /// The subscription as an endless async stream of events.
    pub fn into_stream(self) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send
    where
        S: 'static,
    {
        stream::unfold(self, |mut subscription| async move {
            let event = subscription.next().await;
            Some((event, subscription))
        })
    }
}

macro_rules! forward_event_store {
    ($($ptr:ty),*) => {$(
        impl<T: EventStore + ?Sized> EventStore for $ptr {
            async fn append(
                &self,
                stream: &StreamId,
                expected: ExpectedVersion,
                events: Vec<NewEvent>,
            ) -> Result<AppendResult, StoreError> {
                (**self).append(stream, expected, events).await
            }
            async fn read_stream(
                &self,
                stream: &StreamId,
                direction: Direction,
                from: Option<Version>,
                limit: usize,
            ) -> Result<Vec<RecordedEvent>, StoreError> {
                (**self).read_stream(stream, direction, from, limit).await
            }
            async fn read_all(
                &self,
                from: Position,
                filter: &EventFilter,
                limit: usize,
            ) -> Result<Vec<RecordedEvent>, StoreError> {
                (**self).read_all(from, filter, limit).await
            }
            async fn head_position(&self) -> Result<Position, StoreError> {
                (**self).head_position().await
            }
            async fn stream_version(&self, stream: &StreamId) -> Result<Version, StoreError> {
                (**self).stream_version(stream).await
            }
            async fn wait_for_append(&self, after: Position) -> Result<(), StoreError> {
                (**self).wait_for_append(after).await
            }
        }
    )*};
}

forward_event_store!(Arc<T>, &T);
