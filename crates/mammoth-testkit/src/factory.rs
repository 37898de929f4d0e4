//! [`StoreFactory`]: how the conformance suite and the model check get stores from a driver,
//! and [`InMemoryFactory`] for the reference store.

use std::future::Future;

use mammoth_core::{EventStore, InMemoryEventStore};

/// Makes stores for the conformance suite: one fresh, empty store per scenario.
///
/// Every store `fresh` returns must use [`mammoth_core::Limits::default`] (1 MiB per event,
/// 4096 events per append): the limit scenarios append an event of exactly 1 MiB and a batch
/// of exactly 4096 events, and expect one byte or one event more to be refused. A driver whose
/// limits are configurable builds its test stores with the defaults.
///
/// Scenarios run concurrently (one `#[tokio::test]` each), so every store must be isolated:
/// its own file, schema or database, never shared tables.
pub trait StoreFactory: Send + Sync + 'static {
    /// The driver's store.
    type Store: EventStore + 'static;

    /// A fresh, empty store (its own file/schema/database) with default limits.
    ///
    /// Panics (with a message naming the backend and the reason) when the backend cannot be
    /// reached: the scenario then fails, which is right in CI.
    fn fresh(&self) -> impl Future<Output = Self::Store> + Send;

    /// Closes `store` and opens the same data again; `None` when the backend keeps nothing
    /// across a reopen (memory), which skips the durability scenario with a printed note.
    fn reopen(&self, store: Self::Store) -> impl Future<Output = Option<Self::Store>> + Send;
}

/// Makes [`InMemoryEventStore`]s with default limits; they keep nothing across a reopen.
#[derive(Clone, Copy, Debug, Default)]
pub struct InMemoryFactory;

impl StoreFactory for InMemoryFactory {
    type Store = InMemoryEventStore;

    async fn fresh(&self) -> InMemoryEventStore {
        InMemoryEventStore::new()
    }

    async fn reopen(&self, store: InMemoryEventStore) -> Option<InMemoryEventStore> {
        store.close();
        None
    }
}
