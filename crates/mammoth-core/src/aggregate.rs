//! [`Aggregate`]: a consistency boundary written as a decider. `decide` turns a command into
//! events (or a domain error) from the current state; `evolve` folds one event into the state.
//! Both are pure and synchronous, so domain tests need no runtime and no store; the repository
//! in `mammoth-runtime` does the loading, appending, retrying and snapshotting around them.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::DomainEvent;
use crate::{StoreError, StreamId};

/// An event-sourced aggregate. The implementing type is the aggregate's state; its
/// [`Default`] is the state before the first event.
///
/// ```
/// use mammoth_core::{Aggregate, DomainEvent};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// enum CounterEvent { Incremented { by: u32 } }
///
/// impl DomainEvent for CounterEvent {
///     fn schema_version(event_type: &str) -> Option<u32> {
///         (event_type == "Incremented").then_some(1)
///     }
/// }
///
/// #[derive(Debug, thiserror::Error, PartialEq)]
/// #[error("the counter would pass its limit of 10")]
/// struct OverLimit;
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Counter { value: u32 }
///
/// impl Aggregate for Counter {
///     const CATEGORY: &'static str = "counter";
///     type Command = u32;
///     type Event = CounterEvent;
///     type Error = OverLimit;
///
///     fn decide(&self, by: &u32) -> Result<Vec<CounterEvent>, OverLimit> {
///         if self.value + by > 10 { return Err(OverLimit); }
///         Ok(vec![CounterEvent::Incremented { by: *by }])
///     }
///
///     fn evolve(self, event: &CounterEvent) -> Self {
///         match event { CounterEvent::Incremented { by } => Counter { value: self.value + by } }
///     }
/// }
///
/// let counter = Counter::default().evolve(&CounterEvent::Incremented { by: 4 });
/// assert_eq!(counter.decide(&7), Err(OverLimit));
/// ```
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stream category, e.g. `order`: aggregate `42` lives in stream `order-42`.
    const CATEGORY: &'static str;

    /// The version of the state's serialized form. Bump it when the state's shape changes:
    /// snapshots of another version are ignored (the state is rebuilt from events).
    const SNAPSHOT_VERSION: u32 = 1;

    /// What the aggregate is asked to do.
    type Command: Send + Sync + 'static;
    /// What it records.
    type Event: DomainEvent;
    /// Why it refuses a command: a domain rejection, never an infrastructure failure.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Decides what happens when `command` meets the current state. Pure: no I/O, no clock,
    /// no randomness (pass those in the command).
    ///
    /// # Errors
    /// The domain's reason to refuse the command; nothing is written.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// The state after `event`. Pure and total: an event is a fact, so it cannot fail.
    fn evolve(self, event: &Self::Event) -> Self;

    /// The stream of the aggregate with this id: `{CATEGORY}-{id}`.
    ///
    /// # Errors
    /// [`StoreError::InvalidStreamId`] when the result is not a valid stream id.
    fn stream_id(id: &str) -> Result<StreamId, StoreError> {
        StreamId::new(format!("{}-{id}", Self::CATEGORY))
    }
}
