//! The unindexed tail of the log: stream index entries the writer has committed to `events`
//! but not yet to `stream_index`.
//!
//! The writer adds entries after each commit and clears them after each index flush; readers
//! copy one stream's entries before they query the database. Because the writer commits the
//! flush before it clears the tail, and readers copy the tail before they query, a reader
//! always finds every committed entry in one place or the other (possibly both, which the
//! reader de-duplicates by version).

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use mammoth_core::{Position, Version};

/// The entries after `indexed_through`, per stream key, in version order.
#[derive(Default)]
pub(crate) struct Tail {
    /// The last position whose `stream_index` row is committed.
    pub indexed_through: Position,
    /// Per stream key: (version, position) of each unindexed event, ascending.
    pub by_stream: HashMap<i64, Vec<(Version, Position)>>,
    /// The number of entries in `by_stream`.
    pub len: usize,
}

/// The tail behind a lock shared by the writer and the readers.
#[derive(Default)]
pub(crate) struct SharedTail(RwLock<Tail>);

impl SharedTail {
    pub fn read(&self) -> RwLockReadGuard<'_, Tail> {
        // The writer never panics while holding the lock with a half-done change (each change is
        // a single push or a whole replace), so a poisoned lock's data is still consistent.
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Tail> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of one stream's unindexed entries.
    pub fn entries(&self, stream_key: i64) -> Vec<(Version, Position)> {
        self.read()
            .by_stream
            .get(&stream_key)
            .cloned()
            .unwrap_or_default()
    }

    /// The stream's newest unindexed version, if any.
    pub fn last_version(&self, stream_key: i64) -> Option<Version> {
        self.read()
            .by_stream
            .get(&stream_key)
            .and_then(|entries| entries.last())
            .map(|(version, _)| *version)
    }
}
