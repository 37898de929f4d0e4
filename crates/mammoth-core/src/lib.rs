//! # mammoth-core
//!
//! The vocabulary every other mammoth crate speaks: stream ids and their categories, expected
//! versions, global positions, new and recorded events, limits, typed errors, and the byte-level
//! [`EventStore`] contract that every storage driver (SQLite, PostgreSQL, MySQL, memory)
//! implements. It does no I/O and depends on no async runtime.
//!
//! [`InMemoryEventStore`] is the reference implementation: it is the model the conformance
//! suite and the property tests compare real drivers against.
//!
//! ```
//! use mammoth_core::{EventStore, ExpectedVersion, InMemoryEventStore, NewEvent, StreamId};
//! # futures_util::FutureExt::now_or_never(async {
//! let store = InMemoryEventStore::new();
//! let stream = StreamId::new("order-42")?;
//! let event = NewEvent::json("OrderCreated", serde_json::json!({ "total": 30 }))?;
//! let written = store.append(&stream, ExpectedVersion::NoStream, vec![event]).await?;
//! assert_eq!(written.last_version, 1);
//! assert_eq!(stream.category(), "order");
//! # Ok::<(), mammoth_core::StoreError>(())
//! # }).unwrap().unwrap();
//! ```

mod aggregate;
pub mod bus;
mod checkpoint;
mod codec;
mod error;
mod event;
mod ids;
mod limits;
mod memory;
pub mod plan;
mod projection;
pub mod read_model;
mod registry;
pub mod saga;
mod snapshot;
mod store;
mod subscription;
mod upcast;
pub mod validate;

pub use aggregate::Aggregate;
pub use checkpoint::{CheckpointStore, InMemoryCheckpointStore};
pub use codec::{
    CodecError, DomainEvent, JsonEvent, Location, decode_event, decode_recorded, encode_event,
};
pub use error::StoreError;
pub use event::now_micros;
pub use event::{Metadata, NewEvent, RecordedEvent};
pub use ids::{ExpectedVersion, StreamId};
pub use limits::Limits;
pub use memory::InMemoryEventStore;
pub use projection::{
    ApplyFailure, HandlerError, Projection, ProjectionError, ProjectionState, ProjectionStatus,
    ProjectionTarget, Requested,
};
pub use registry::{DecodedEvent, EventRegistry};
pub use snapshot::{InMemorySnapshotStore, Snapshot, SnapshotStore};
pub use store::{AppendResult, Direction, EventFilter, EventStore};
pub use subscription::{Subscription, read_all_pages, read_stream_pages};
pub use upcast::{MAX_UPCAST_STEPS, Upcasters};
pub use validate::{PreparedEvent, StoredAt, check_event_type, idempotent_replay, validate_append};

/// A position in the global log. The first event ever appended is at position 1; 0 means
/// "before everything". Positions strictly increase in commit order but may have holes.
pub type Position = u64;

/// A version within one stream. The first event of a stream has version 1; 0 means "no events".
pub type Version = u64;
