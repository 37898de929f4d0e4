//! Snapshots in the repository: when to take them ([`SnapshotPolicy`]), the type-erased
//! snapshot store, loading the latest usable one, and saving after a write. Every failure
//! here is logged and only costs time.

use std::future::Future;
use std::pin::Pin;

use mammoth_core::{
    Aggregate, EventStore, Snapshot, SnapshotStore, StoreError, StreamId, Version, now_micros,
};

use super::{Loaded, Repository};

/// When to take snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Take one after a write once this many events follow the last snapshot (or the start
    /// of the stream). 0 disables snapshots.
    pub every: u64,
}

impl SnapshotPolicy {
    /// A snapshot every `every` events.
    pub fn every(every: u64) -> Self {
        Self { every }
    }

    /// The policy of aggregate `A` from configuration (`[snapshots]` in `mammoth.tsk`):
    /// `per_aggregate` overrides `every` for `A`, keyed by its category (`order`) or its type
    /// name (`Order`).
    pub fn for_aggregate<A: Aggregate>(
        every: u64,
        per_aggregate: &std::collections::BTreeMap<String, u64>,
    ) -> Self {
        let type_name = crate::command_bus::short_type_name::<A>();
        let every = per_aggregate
            .get(A::CATEGORY)
            .or_else(|| per_aggregate.get(type_name))
            .copied()
            .unwrap_or(every);
        Self { every }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A snapshot store with its type erased, so that [`Repository`] keeps two type parameters.
pub(super) trait DynSnapshots: Send + Sync {
    fn load<'a>(
        &'a self,
        stream: &'a StreamId,
    ) -> BoxFuture<'a, Result<Option<Snapshot>, StoreError>>;
    fn save<'a>(&'a self, snapshot: &'a Snapshot) -> BoxFuture<'a, Result<(), StoreError>>;
}

impl<T: SnapshotStore> DynSnapshots for T {
    fn load<'a>(
        &'a self,
        stream: &'a StreamId,
    ) -> BoxFuture<'a, Result<Option<Snapshot>, StoreError>> {
        Box::pin(SnapshotStore::load(self, stream))
    }

    fn save<'a>(&'a self, snapshot: &'a Snapshot) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SnapshotStore::save(self, snapshot))
    }
}

impl<A: Aggregate, S: EventStore> Repository<A, S> {
    /// The latest usable snapshot, or the default state. Every failure here only costs time.
    pub(super) async fn load_snapshot(&self, stream: &StreamId) -> Loaded<A> {
        let empty = Loaded {
            state: A::default(),
            version: 0,
            snapshot_version: None,
            events_read: 0,
        };
        let Some((snapshots, _)) = &self.snapshots else {
            return empty;
        };
        let snapshot = match snapshots.load(stream).await {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => return empty,
            Err(error) => {
                tracing::warn!(%stream, %error, "snapshot load failed; replaying the stream");
                return empty;
            }
        };
        if snapshot.schema_version != A::SNAPSHOT_VERSION {
            tracing::debug!(
                %stream,
                stored = snapshot.schema_version,
                current = A::SNAPSHOT_VERSION,
                "stale snapshot ignored"
            );
            return empty;
        }
        match serde_json::from_str(&snapshot.state) {
            Ok(state) => Loaded {
                state,
                version: snapshot.version,
                snapshot_version: Some(snapshot.version),
                events_read: 0,
            },
            Err(error) => {
                tracing::warn!(%stream, %error, "snapshot does not decode; replaying the stream");
                empty
            }
        }
    }

    /// The aggregate after its new events, with a snapshot saved when enough events follow
    /// the last one. Snapshot failures are logged only.
    pub(super) async fn after_write(
        &self,
        stream: &StreamId,
        loaded: Loaded<A>,
        events: &[A::Event],
        version: Version,
    ) -> Loaded<A> {
        let mut after = Loaded {
            state: events.iter().fold(loaded.state, A::evolve),
            version,
            snapshot_version: loaded.snapshot_version,
            events_read: loaded.events_read,
        };
        let Some((snapshots, policy)) = &self.snapshots else {
            return after;
        };
        let base = after.snapshot_version.unwrap_or(0);
        if version.saturating_sub(base) < policy.every {
            return after;
        }
        let state = match serde_json::to_string(&after.state) {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(%stream, %error, "state does not serialize; no snapshot taken");
                return after;
            }
        };
        let snapshot = Snapshot {
            stream_id: stream.clone(),
            version,
            schema_version: A::SNAPSHOT_VERSION,
            state,
            taken_at_micros: now_micros(),
        };
        match snapshots.save(&snapshot).await {
            Ok(()) => after.snapshot_version = Some(version),
            Err(error) => {
                tracing::warn!(%stream, %error, "snapshot save failed; the next load replays more");
            }
        }
        after
    }
}
