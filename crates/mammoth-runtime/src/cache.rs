//! The repository's cache of recently used aggregates: state and version, taken out for one
//! command and put back after it.
//!
//! It can never make a command decide on stale state: the append that follows uses
//! `ExpectedVersion::Exact(cached version)`, so if anyone else (another process, or a command
//! that missed the cache) wrote in between, the append conflicts and the repository reloads
//! from the store. What it saves is the read of the stream before each command, which is most
//! of a command's cost on a store whose appends are group-committed.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use mammoth_core::StreamId;

use crate::repository::Loaded;

struct Inner<A> {
    entries: HashMap<StreamId, Loaded<A>>,
    /// Insertion order, for eviction; may hold ids no longer cached.
    order: VecDeque<StreamId>,
}

/// At most `capacity` aggregates, the oldest evicted first.
pub(crate) struct StateCache<A> {
    capacity: usize,
    inner: Mutex<Inner<A>>,
}

impl<A> StateCache<A> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<A>> {
        // Every operation leaves the map consistent; a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Removes and returns the cached aggregate. While one command holds it, others on the
    /// same aggregate load from the store (and the loser of the race conflicts and retries).
    pub(crate) fn take(&self, stream: &StreamId) -> Option<Loaded<A>> {
        if self.capacity == 0 {
            return None;
        }
        self.lock().entries.remove(stream)
    }

    /// Caches `loaded` as the aggregate's latest state, unless a newer one is already cached.
    pub(crate) fn put(&self, stream: &StreamId, loaded: Loaded<A>) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        if let Some(cached) = inner.entries.get(stream)
            && cached.version >= loaded.version
        {
            return;
        }
        if inner.entries.insert(stream.clone(), loaded).is_none() {
            inner.order.push_back(stream.clone());
        }
        while inner.entries.len() > self.capacity {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            inner.entries.remove(&oldest);
        }
        if inner.order.len() > 4 * self.capacity {
            // Drop ids that were taken and never put back.
            let Inner { entries, order } = &mut *inner;
            order.retain(|id| entries.contains_key(id));
        }
    }
}
