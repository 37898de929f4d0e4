//! The repository's cache of recently used aggregates: state and version, taken out for one
//! command and put back after it.
//!
//! It can never make a command decide on stale state: the append that follows uses
//! `ExpectedVersion::Exact(cached version)`, so if anyone else (another process, or a command
//! that missed the cache) wrote in between, the append conflicts and the repository reloads
//! from the store. What it saves is the read of the stream before each command, which is most
//! of a command's cost on a store whose appends are group-committed.

use std::collections::HashMap;
use std::sync::Mutex;

use mammoth_core::StreamId;

use crate::repository::Loaded;

/// At most `capacity` aggregates; when full, an arbitrary one is evicted (no recency
/// bookkeeping: every command takes and puts its entry, so tracking order would cost more
/// than the occasional extra read an unlucky eviction causes).
pub(crate) struct StateCache<A> {
    capacity: usize,
    entries: Mutex<HashMap<StreamId, Loaded<A>>>,
}

impl<A> StateCache<A> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, Loaded<A>>> {
        // Every operation is one map call; a poisoned lock still holds a consistent map.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Removes and returns the cached aggregate. While one command holds it, others on the
    /// same aggregate load from the store (and the loser of the race conflicts and retries).
    pub(crate) fn take(&self, stream: &StreamId) -> Option<Loaded<A>> {
        if self.capacity == 0 {
            return None;
        }
        self.lock().remove(stream)
    }

    /// Caches `loaded` as the aggregate's latest state, unless a newer one is already cached.
    pub(crate) fn put(&self, stream: &StreamId, loaded: Loaded<A>) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if let Some(cached) = entries.get(stream)
            && cached.version >= loaded.version
        {
            return;
        }
        if entries.len() >= self.capacity
            && !entries.contains_key(stream)
            && let Some(victim) = entries.keys().next().cloned()
        {
            entries.remove(&victim);
        }
        entries.insert(stream.clone(), loaded);
    }
}
