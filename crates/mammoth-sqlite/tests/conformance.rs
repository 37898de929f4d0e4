//! The shared conformance suite and the model check, run against the SQLite store: each store
//! in its own temporary directory.

use mammoth_sqlite::{SqliteEventStore, SqliteOptions};
use mammoth_testkit::{StoreFactory, check_against_model, conformance, conformance_tests};
use tempfile::TempDir;

/// Fresh stores in temporary directories that live as long as the factory.
struct Sqlite {
    dirs: std::sync::Mutex<Vec<TempDir>>,
}

impl Sqlite {
    fn new() -> Self {
        Self {
            dirs: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl StoreFactory for Sqlite {
    type Store = SqliteEventStore;

    async fn fresh(&self) -> SqliteEventStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteEventStore::open(dir.path().join("events.db"), SqliteOptions::default())
            .expect("open a fresh store");
        self.dirs.lock().expect("dirs").push(dir);
        store
    }

    async fn reopen(&self, store: SqliteEventStore) -> Option<SqliteEventStore> {
        let path = store.path().to_path_buf();
        store.close().await.expect("close");
        drop(store);
        Some(SqliteEventStore::open(path, SqliteOptions::default()).expect("reopen"))
    }
}

conformance_tests!(Sqlite::new());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_hide_a_commit_at_32_writers_and_4_readers() {
    let config = conformance::RaceConfig {
        writers: 32,
        readers: 4,
        ..conformance::RaceConfig::default()
    };
    conformance::concurrent_writers_never_hide_a_commit_from_tailing_readers_with(
        &Sqlite::new(),
        config,
    )
    .await;
}

#[test]
fn sqlite_store_agrees_with_the_in_memory_model() {
    check_against_model(Sqlite::new(), 48);
}
