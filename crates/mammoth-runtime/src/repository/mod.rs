//! [`Repository`]: runs an [`Aggregate`]'s decisions against an [`EventStore`].
//!
//! `execute` loads the aggregate (latest usable snapshot, then the newer events, upcast),
//! calls `decide`, encodes and schema-checks the events, and appends them with
//! `ExpectedVersion::Exact(version)`. On a conflict it reloads and decides again, a bounded
//! number of times ([`RetryPolicy`]). It returns where the write landed ([`Committed`]), which
//! a caller hands to a query for read-your-writes.
//!
//! Idempotency keys are durable without a table of their own: the events of a keyed command
//! get ids derived from the key (UUID v5 of `key/index`), so the store's idempotent append
//! and its global id uniqueness make a second write of the same key impossible, across
//! processes and restarts. See [`Repository::execute`].

use std::fmt;
use std::sync::Arc;

use mammoth_core::{
    Aggregate, Direction, EventStore, ExpectedVersion, Position, SnapshotStore, StoreError,
    StreamId, Upcasters, Version, decode_recorded, encode_event,
};

mod idempotency;
mod snapshots;

pub use idempotency::idempotent_event_id;
pub use snapshots::SnapshotPolicy;

use idempotency::{KeyScan, KeyedWrite, replayed};
use snapshots::DynSnapshots;

use crate::cache::StateCache;
use crate::context::CommandContext;
use crate::error::CommandError;
use crate::retry::RetryPolicy;
use crate::schema::Schemas;

/// How many aggregates a repository keeps in memory by default.
pub const DEFAULT_CACHE: usize = 1024;

/// How many events one read of a stream fetches while loading.
const LOAD_PAGE: usize = 1024;

/// Where a command's write landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The aggregate's stream.
    pub stream_id: StreamId,
    /// The stream's version after the write (unchanged when no event was written).
    pub version: Version,
    /// The global position of the last event written, 0 when none was. Pass it to a query as
    /// its minimum position to read your own write.
    pub position: Position,
    /// How many events the command wrote.
    pub events: usize,
    /// True when this is the first result of an earlier command with the same idempotency
    /// key: nothing was written this time.
    pub replayed: bool,
    /// How many times the command was decided (1 unless conflicts forced a retry).
    pub attempts: u32,
}

/// An aggregate as loaded from the store.
#[derive(Clone, Debug)]
pub struct Loaded<A> {
    /// The state after every event.
    pub state: A,
    /// The stream version the state includes; 0 for an aggregate with no events.
    pub version: Version,
    /// The version of the snapshot the load started from, if one was used.
    pub snapshot_version: Option<Version>,
    /// How many stored events were read (after the snapshot).
    pub events_read: u64,
}

/// Loads aggregates of type `A` from store `S` and runs their commands.
///
/// Cheap to clone when `S` is (every driver's store is a handle); clones share settings.
pub struct Repository<A, S> {
    store: S,
    upcasters: Arc<Upcasters>,
    schemas: Arc<Schemas>,
    snapshots: Option<(Arc<dyn DynSnapshots>, SnapshotPolicy)>,
    retry: RetryPolicy,
    cache: Arc<StateCache<A>>,
}

impl<A, S: Clone> Clone for Repository<A, S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            upcasters: Arc::clone(&self.upcasters),
            schemas: Arc::clone(&self.schemas),
            snapshots: self.snapshots.clone(),
            retry: self.retry,
            cache: Arc::clone(&self.cache),
        }
    }
}

impl<A, S> fmt::Debug for Repository<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &std::any::type_name::<A>())
            .field("upcasters", &self.upcasters)
            .field("schemas", &self.schemas)
            .field(
                "snapshots",
                &self.snapshots.as_ref().map(|(_, policy)| policy),
            )
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl<A: Aggregate, S: EventStore> Repository<A, S> {
    /// A repository over `store` with no upcasters, no schemas, no snapshots and the default
    /// [`RetryPolicy`].
    pub fn new(store: S) -> Self {
        Self {
            store,
            upcasters: Arc::new(Upcasters::new()),
            schemas: Arc::new(Schemas::new()),
            snapshots: None,
            retry: RetryPolicy::default(),
            cache: Arc::new(StateCache::new(DEFAULT_CACHE)),
        }
    }

    /// Upcasts stored events through `upcasters` on every load.
    pub fn with_upcasters(mut self, upcasters: impl Into<Arc<Upcasters>>) -> Self {
        self.upcasters = upcasters.into();
        self
    }

    /// Checks every event against `schemas` before it is appended.
    pub fn with_schemas(mut self, schemas: impl Into<Arc<Schemas>>) -> Self {
        self.schemas = schemas.into();
        self
    }

    /// Keeps snapshots in `snapshots` as `policy` says. Snapshots are an optimisation only: a
    /// failing or stale one is ignored and the stream replayed.
    pub fn with_snapshots(
        mut self,
        snapshots: impl SnapshotStore + 'static,
        policy: SnapshotPolicy,
    ) -> Self {
        self.snapshots = (policy.every > 0).then(|| {
            let store: Arc<dyn DynSnapshots> = Arc::new(snapshots);
            (store, policy)
        });
        self
    }

    /// How conflicts are retried.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Keeps up to `capacity` recently used aggregates in memory (default [`DEFAULT_CACHE`];
    /// 0 turns the cache off). A cached aggregate is decided without reading its stream; the
    /// append's exact expected version still guarantees the decision was made on the latest
    /// state (a stale entry conflicts and is reloaded), so the cache is safe with several
    /// processes writing the same streams.
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = Arc::new(StateCache::new(capacity));
        self
    }

    /// The event store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The upcasters applied on load.
    pub fn upcasters(&self) -> &Arc<Upcasters> {
        &self.upcasters
    }

    /// Loads the aggregate with id `id` (stream `{CATEGORY}-{id}`); an aggregate with no
    /// events is its `Default` state at version 0.
    ///
    /// # Errors
    /// [`CommandError::Store`] for an invalid id or a store failure; [`CommandError::Codec`]
    /// when a stored event cannot be upcast or decoded (naming its stream and position).
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, CommandError<A::Error>> {
        let stream = A::stream_id(id)?;
        self.load_stream(&stream, None).await
    }

    async fn load_stream(
        &self,
        stream: &StreamId,
        mut scan: Option<&mut KeyScan<'_>>,
    ) -> Result<Loaded<A>, CommandError<A::Error>> {
        let mut loaded = self.load_snapshot(stream).await;
        loop {
            let page = self
                .store
                .read_stream(
                    stream,
                    Direction::Forward,
                    Some(loaded.version + 1),
                    LOAD_PAGE,
                )
                .await?;
            let full = page.len() == LOAD_PAGE;
            for event in &page {
                if let Some(scan) = scan.as_deref_mut() {
                    scan.see(event);
                }
                for decoded in decode_recorded::<A::Event>(event, &self.upcasters)? {
                    loaded.state = loaded.state.evolve(&decoded);
                }
                loaded.version = event.version;
                loaded.events_read += 1;
            }
            if !full {
                return Ok(loaded);
            }
        }
    }

    /// Runs `command` against aggregate `id` and appends its events, each carrying the
    /// context's metadata (correlation id, the command as causation, actor, tenant).
    ///
    /// On a conflict the aggregate is reloaded and the command decided again, up to the retry
    /// policy's attempts. A command that decides no events writes nothing and succeeds.
    ///
    /// With an idempotency key in `context`, event ids are derived from the key, so:
    /// - if the key's events are already in this stream, their result is returned with
    ///   `replayed: true` and nothing is decided or written;
    /// - two concurrent commands with one key write once (the loser's retry finds the
    ///   winner's events);
    /// - a key already used on another stream is [`CommandError::IdempotencyKeyReused`].
    ///
    /// # Errors
    /// [`CommandError::Rejected`] when `decide` refuses; [`CommandError::Conflict`] when the
    /// retries run out; [`CommandError::Schema`] when an event breaks its schema;
    /// [`CommandError::Codec`] and [`CommandError::Store`] for infrastructure failures. In
    /// every error case nothing was written.
    pub async fn execute(
        &self,
        id: &str,
        command: &A::Command,
        context: &CommandContext,
    ) -> Result<Committed, CommandError<A::Error>> {
        let stream = A::stream_id(id)?;
        let key = context.idempotency_key.as_deref();
        let mut attempt = 0;
        loop {
            attempt += 1;
            // A keyed command reads the stream to look for its key's events, so it does not
            // use the cache (and drops the entry, which its append would make stale).
            let cached = self.cache.take(&stream).filter(|_| key.is_none());
            let mut scan = key.map(KeyScan::new);
            let from_cache = cached.is_some();
            let loaded = match cached {
                Some(loaded) => loaded,
                None => self.load_stream(&stream, scan.as_mut()).await?,
            };
            if let Some(write) = scan.and_then(|scan| scan.found) {
                return Ok(replayed(&stream, &write, attempt));
            }
            let events = match loaded.state.decide(command) {
                Ok(events) => events,
                Err(rejection) => {
                    // An append would have caught a stale cached state; a rejection must
                    // check it, or another process's write could be ignored indefinitely.
                    if from_cache && self.store.stream_version(&stream).await? != loaded.version {
                        continue;
                    }
                    // A keyed command decided again after its first success is usually
                    // rejected (the order already exists): answer with the first result.
                    if let (Some(key), Some(_)) = (key, loaded.snapshot_version)
                        && let Some(write) = self.find_key(&stream, key).await?
                    {
                        return Ok(replayed(&stream, &write, attempt));
                    }
                    self.cache.put(&stream, loaded);
                    return Err(CommandError::Rejected(rejection));
                }
            };
            if events.is_empty() {
                // As for a rejection: nothing is appended, so nothing checked the state.
                if from_cache && self.store.stream_version(&stream).await? != loaded.version {
                    continue;
                }
                let version = loaded.version;
                self.cache.put(&stream, loaded);
                return Ok(Committed {
                    stream_id: stream,
                    version,
                    position: 0,
                    events: 0,
                    replayed: false,
                    attempts: attempt,
                });
            }
            let metadata = context.metadata();
            let mut new_events = Vec::with_capacity(events.len());
            for (index, event) in events.iter().enumerate() {
                let json = encode_event(event)?;
                self.schemas.check(&json)?;
                let mut new_event = json.into_new_event(metadata.clone());
                if let Some(key) = key {
                    new_event.id = Some(idempotent_event_id(key, index));
                }
                new_events.push(new_event);
            }
            let expected = ExpectedVersion::Exact(loaded.version);
            match self.store.append(&stream, expected, new_events).await {
                Ok(written) if written.first_version != loaded.version + 1 => {
                    // The store recognised the ids: an earlier command with this key wrote
                    // these events before the snapshot this load started from.
                    let write = KeyedWrite {
                        first_version: written.first_version,
                        last_version: written.last_version,
                        last_position: written.last_position,
                    };
                    return Ok(replayed(&stream, &write, attempt));
                }
                Ok(written) => {
                    let after = self
                        .after_write(&stream, loaded, &events, written.last_version)
                        .await;
                    self.cache.put(&stream, after);
                    return Ok(Committed {
                        stream_id: stream,
                        version: written.last_version,
                        position: written.last_position,
                        events: events.len(),
                        replayed: false,
                        attempts: attempt,
                    });
                }
                Err(StoreError::Conflict {
                    stream,
                    expected,
                    actual,
                }) => {
                    if attempt >= self.retry.max_attempts {
                        return Err(CommandError::Conflict {
                            stream,
                            expected,
                            actual,
                            attempts: attempt,
                        });
                    }
                    tracing::debug!(%stream, attempt, "conflict; reloading and deciding again");
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                }
                Err(StoreError::DuplicateEventId {
                    existing_stream, ..
                }) if key.is_some() => {
                    return Err(CommandError::IdempotencyKeyReused {
                        key: key.unwrap_or_default().to_owned(),
                        stream: existing_stream,
                    });
                }
                Err(StoreError::IdempotencyMismatch { .. }) if key.is_some() => {
                    let key = key.unwrap_or_default();
                    return match self.find_key(&stream, key).await? {
                        Some(write) => Ok(replayed(&stream, &write, attempt)),
                        None => Err(CommandError::IdempotencyKeyReused {
                            key: key.to_owned(),
                            stream: stream.to_string(),
                        }),
                    };
                }
                Err(other) => return Err(other.into()),
            }
        }
    }
}
