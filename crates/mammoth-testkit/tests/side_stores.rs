//! The checkpoint and saga timer conformance suites against the in-memory reference stores,
//! so the suites themselves run in CI.

use mammoth_core::InMemoryCheckpointStore;
use mammoth_core::saga::InMemoryTimerStore;
use mammoth_testkit::{CheckpointFactory, TimerFactory};

/// Fresh in-memory checkpoint stores; they keep nothing across a reopen.
struct MemoryCheckpoints;

impl CheckpointFactory for MemoryCheckpoints {
    type Store = InMemoryCheckpointStore;

    async fn fresh(&self) -> InMemoryCheckpointStore {
        InMemoryCheckpointStore::new()
    }

    async fn reopen(&self, _store: InMemoryCheckpointStore) -> Option<InMemoryCheckpointStore> {
        None
    }
}

/// Fresh in-memory timer stores; they keep nothing across a reopen.
struct MemoryTimers;

impl TimerFactory for MemoryTimers {
    type Store = InMemoryTimerStore;

    async fn fresh(&self) -> InMemoryTimerStore {
        InMemoryTimerStore::new()
    }

    async fn reopen(&self, _store: InMemoryTimerStore) -> Option<InMemoryTimerStore> {
        None
    }
}

mod checkpoints {
    mammoth_testkit::checkpoint_conformance_tests!(super::MemoryCheckpoints);
}

mod timers {
    mammoth_testkit::timer_conformance_tests!(super::MemoryTimers);
}
