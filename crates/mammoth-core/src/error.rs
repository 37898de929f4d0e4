//! [`StoreError`]: every way an event store operation can fail, as data a caller can act on.

use uuid::Uuid;

use crate::{ExpectedVersion, StreamId, Version};

/// Why an event store operation failed.
///
/// Input errors (`Invalid*`, `EventTooLarge`, `TooManyEvents`, `EmptyAppend`, id errors) and
/// [`StoreError::Conflict`] are raised before anything is written: the append wrote nothing.
/// [`StoreError::Backend`] carries driver failures and says whether retrying may help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stream was not at the expected version. `actual` is 0 when the stream has no events.
    #[error("stream \"{stream}\": expected {expected}, found {}", found(*.actual))]
    Conflict {
        /// The stream appended to.
        stream: StreamId,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The stream's version when the append was checked.
        actual: Version,
    },

    /// A stream id is empty, too long, or holds control characters.
    #[error(
        "invalid stream id {id:?}: {reason}; use 1 to 255 bytes of printable text such as \"order-42\""
    )]
    InvalidStreamId {
        /// The rejected id.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// An event type name is not a valid identifier.
    #[error("invalid event type {name:?}: {reason}")]
    InvalidEventType {
        /// The rejected name.
        name: String,
        /// What is wrong with it and what would be accepted.
        reason: &'static str,
    },

    /// A schema version below 1.
    #[error("event {event_type:?}: schema version must be 1 or more, got {schema_version}")]
    InvalidSchemaVersion {
        /// The event's type.
        event_type: String,
        /// The rejected version.
        schema_version: u32,
    },

    /// Event data that is not a JSON object.
    #[error("event {event_type:?}: {reason}")]
    InvalidData {
        /// The event's type.
        event_type: String,
        /// What is wrong with the data.
        reason: String,
    },

    /// Metadata that is not a JSON object of the metadata shape.
    #[error("invalid event metadata: {reason}; metadata must be a JSON object")]
    InvalidMetadata {
        /// What the JSON parser reported.
        reason: String,
    },

    /// An event whose data plus metadata exceeds the configured maximum.
    #[error(
        "event {event_type:?} is {size} bytes, over the limit of {max} bytes; store large payloads elsewhere and keep a reference in the event, or raise event_store.max_event_size"
    )]
    EventTooLarge {
        /// The event's type.
        event_type: String,
        /// Its size in bytes (data plus metadata).
        size: usize,
        /// The limit in bytes.
        max: usize,
    },

    /// An append with no events.
    #[error("append to stream \"{stream}\" has no events; give at least one")]
    EmptyAppend {
        /// The stream appended to.
        stream: StreamId,
    },

    /// An append with more events than allowed at once.
    #[error(
        "append of {count} events is over the limit of {max} per append; split it, or raise event_store.max_events_per_append"
    )]
    TooManyEvents {
        /// Events in the append.
        count: usize,
        /// The limit.
        max: usize,
    },

    /// An event id that is already used by another stream, or twice in one append.
    #[error(
        "event id {id} is already used in stream \"{existing_stream}\"; event ids must be unique across the store"
    )]
    DuplicateEventId {
        /// The id.
        id: Uuid,
        /// The stream that already holds it (the appended stream for a repeat within one batch).
        existing_stream: String,
    },

    /// A re-sent append whose ids only partly match an earlier append to the same stream.
    #[error(
        "stream \"{stream}\": event id {id} was already appended, but the batch does not match the earlier append; re-send exactly the same events, or use new ids"
    )]
    IdempotencyMismatch {
        /// The stream appended to.
        stream: StreamId,
        /// The first id that did not match.
        id: Uuid,
    },

    /// A read limit of zero or a bad range.
    #[error("invalid read: {reason}")]
    InvalidRead {
        /// What is wrong.
        reason: String,
    },

    /// The store was closed and cannot serve this call.
    #[error("the event store is closed")]
    Closed,

    /// The storage backend failed (I/O, connection, corruption).
    #[error("{backend} failed while {action}: {message}")]
    Backend {
        /// Which driver: `sqlite`, `postgres`, ...
        backend: &'static str,
        /// What the store was doing.
        action: &'static str,
        /// The driver's message.
        message: String,
        /// True when the same call may succeed if retried (busy, timeout, lost connection).
        transient: bool,
    },
}

fn found(actual: Version) -> String {
    if actual == 0 {
        "no stream".to_owned()
    } else {
        format!("version {actual}")
    }
}

impl StoreError {
    /// True for optimistic-concurrency conflicts, which a caller resolves by reloading.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// True when retrying the same call may succeed (a conflict is not transient: the caller
    /// must re-decide).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Backend {
                transient: true,
                ..
            }
        )
    }

    /// True when the caller's input was at fault; nothing was written.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::InvalidStreamId { .. }
                | Self::InvalidEventType { .. }
                | Self::InvalidSchemaVersion { .. }
                | Self::InvalidData { .. }
                | Self::InvalidMetadata { .. }
                | Self::EventTooLarge { .. }
                | Self::EmptyAppend { .. }
                | Self::TooManyEvents { .. }
                | Self::DuplicateEventId { .. }
                | Self::IdempotencyMismatch { .. }
                | Self::InvalidRead { .. }
        )
    }

    /// Wraps a driver failure.
    pub fn backend(
        backend: &'static str,
        action: &'static str,
        error: impl std::fmt::Display,
        transient: bool,
    ) -> Self {
        Self::Backend {
            backend,
            action,
            message: error.to_string(),
            transient,
        }
    }
}
