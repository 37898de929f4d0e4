//! The [`EventStore`] contract: the byte-level, non-generic seam every storage driver
//! implements and the conformance suite in `mammoth-testkit` checks.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::{ExpectedVersion, NewEvent, Position, RecordedEvent, StoreError, StreamId, Version};

/// What an append wrote (or, for an idempotent re-send, what the first append wrote).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResult {
    /// The stream version of the first event written.
    pub first_version: Version,
    /// The stream version of the last event written: the stream's version after the append.
    pub last_version: Version,
    /// The global position of the first event written.
    pub first_position: Position,
    /// The global position of the last event written. Read-your-writes waits use it.
    pub last_position: Position,
}

/// Which way to read a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Oldest first.
    #[default]
    Forward,
    /// Newest first.
    Backward,
}

/// Which events a read of the global log returns. Empty lists mean "all".
///
/// An event passes when its type is in `event_types` (or that list is empty) and its stream's
/// category is in `categories` (or that list is empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    /// Event type names to keep.
    pub event_types: Vec<String>,
    /// Stream categories to keep (the text before the first `-` of a stream id).
    pub categories: Vec<String>,
}

impl EventFilter {
    /// A filter that keeps every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// True when the filter keeps every event.
    pub fn is_all(&self) -> bool {
        self.event_types.is_empty() && self.categories.is_empty()
    }

    /// Keeps only these event types.
    pub fn with_types<I: IntoIterator<Item = S>, S: Into<String>>(mut self, types: I) -> Self {
        self.event_types.extend(types.into_iter().map(Into::into));
        self
    }

    /// Keeps only streams of these categories.
    pub fn with_categories<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        categories: I,
    ) -> Self {
        self.categories
            .extend(categories.into_iter().map(Into::into));
        self
    }

    /// True when `event` passes the filter.
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        (self.event_types.is_empty() || self.event_types.contains(&event.event_type))
            && (self.categories.is_empty()
                || self
                    .categories
                    .iter()
                    .any(|category| category == event.stream_id.category()))
    }
}

/// An event store: append-only streams of events plus one global log in commit order.
///
/// The contract (checked for every driver by `mammoth_testkit::conformance`):
/// - `append` is atomic (all events or none) and checks the expected version atomically with
///   the write: of two writers expecting the same version, exactly one succeeds and the other
///   gets [`StoreError::Conflict`].
/// - Re-sending the same event ids to the same stream returns the first result and writes
///   nothing; ids used by another stream are [`StoreError::DuplicateEventId`].
/// - Global positions strictly increase in commit order as readers see them: a reader that has
///   seen position p never later finds a new event below p, whatever the concurrent writers do.
/// - Invalid input is a typed error and writes nothing.
/// - Reads return at most `limit` events, so memory stays bounded however long the stream;
///   [`crate::read_stream_pages`], [`crate::read_all_pages`] and [`crate::Subscription`] page
///   through longer ones.
pub trait EventStore: Send + Sync {
    /// Appends `events` to `stream` if it is at `expected`, atomically.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] on a version mismatch; input errors (see [`StoreError`]); a
    /// [`StoreError::Backend`] failure. In every error case nothing was written.
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<AppendResult, StoreError>> + Send;

    /// Reads up to `limit` events of one stream, starting at version `from` (inclusive;
    /// `None` is the first event forward or the last backward).
    ///
    /// # Errors
    /// [`StoreError::InvalidRead`] for a zero limit; [`StoreError::Backend`].
    fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: Option<Version>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Reads up to `limit` events of the global log that pass `filter`, in position order,
    /// starting at position `from` (inclusive).
    ///
    /// # Errors
    /// [`StoreError::InvalidRead`] for a zero limit; [`StoreError::Backend`].
    fn read_all(
        &self,
        from: Position,
        filter: &EventFilter,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// The head of the global log: the highest position such that every event at or below it
    /// that will ever be visible is visible now. 0 for an empty store.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    fn head_position(&self) -> impl Future<Output = Result<Position, StoreError>> + Send;

    /// The current version of `stream`, 0 when it has no events.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    fn stream_version(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<Version, StoreError>> + Send;

    /// Resolves once the head may have moved past `after` (it may also resolve spuriously, and
    /// drivers without notifications resolve after a short poll interval). Subscriptions call
    /// it when they have caught up.
    ///
    /// # Errors
    /// [`StoreError::Closed`] when the store shuts down; [`StoreError::Backend`].
    fn wait_for_append(
        &self,
        after: Position,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
