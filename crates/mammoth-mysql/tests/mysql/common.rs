//! The test factory: every store lives in its own database, `mammoth_test_<pid>_<n>`, dropped
//! when the last handle on it goes away (and, for crashed runs, at the next run's start).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mammoth_core::{
    AppendResult, Direction, EventFilter, EventStore, ExpectedVersion, NewEvent, Position,
    RecordedEvent, StoreError, StreamId, Version,
};
use mammoth_mysql::{MysqlEventStore, MysqlOptions};
use mammoth_testkit::StoreFactory;
use mysql_async::prelude::Queryable;
use tokio::sync::OnceCell;

/// The environment variable holding the test database URL.
pub const URL_VAR: &str = "MAMMOTH_TEST_MYSQL_URL";

/// The test database URL, or `None` (after printing why) when the tests should be skipped.
/// Under `CI=true` a missing URL is a failure, never a skip.
pub fn url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {URL_VAR} is not set; .ci/run exports it (mysql://root@127.0.0.1:3306/test)"
            );
            eprintln!(
                "skipped: set {URL_VAR} (e.g. mysql://root@127.0.0.1:3306/test) to run the MySQL/MariaDB tests"
            );
            None
        }
    }
}

/// The factory, or `None` when the tests are skipped.
pub fn factory() -> Option<MyFactory> {
    url().map(|url| MyFactory { url })
}

static COUNTER: AtomicU64 = AtomicU64::new(0);
static CLEANED: OnceCell<()> = OnceCell::const_new();

/// A database name no other test or run uses.
pub fn unique_schema() -> String {
    format!(
        "mammoth_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Options for a test store in database `schema`.
pub fn options(schema: &str) -> MysqlOptions {
    MysqlOptions {
        database: Some(schema.to_owned()),
        pool_size: 4,
        ..MysqlOptions::default()
    }
}

/// Drops the databases of earlier runs whose process is gone.
async fn drop_stale_schemas(url: &str) {
    let Ok(opts) = mysql_async::Opts::from_url(url) else {
        return;
    };
    let Ok(mut conn) = mysql_async::Conn::new(opts).await else {
        return;
    };
    let Ok(names) = conn
        .query::<String, _>("SHOW DATABASES LIKE 'mammoth\\_test\\_%'")
        .await
    else {
        return;
    };
    let _ = conn.disconnect().await;
    for name in names {
        let pid = name
            .split('_')
            .nth(2)
            .and_then(|pid| pid.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = mammoth_mysql::drop_database(url, &name).await;
        }
    }
}

/// Drops its schema when dropped.
pub struct SchemaGuard {
    pub url: String,
    pub schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test schema");
            runtime.block_on(async {
                // Give aborted tasks a moment to release their connections.
                tokio::time::sleep(Duration::from_millis(20)).await;
                if let Err(error) = mammoth_mysql::drop_database(&url, &schema).await {
                    eprintln!("note: could not drop test schema {schema}: {error}");
                }
            });
        });
        let _ = dropper.join();
    }
}

/// A store whose schema is dropped with its last handle.
pub struct TestStore {
    pub store: MysqlEventStore,
    pub guard: Arc<SchemaGuard>,
}

/// Makes [`TestStore`]s, each in a schema of its own.
pub struct MyFactory {
    pub url: String,
}

impl MyFactory {
    /// A fresh store with `options` (its schema is replaced by a unique one).
    pub async fn fresh_with(&self, mut options: MysqlOptions) -> TestStore {
        CLEANED.get_or_init(|| drop_stale_schemas(&self.url)).await;
        let schema = unique_schema();
        options.database = Some(schema.clone());
        let guard = Arc::new(SchemaGuard {
            url: self.url.clone(),
            schema: schema.clone(),
        });
        let store = MysqlEventStore::open(&self.url, options)
            .await
            .unwrap_or_else(|error| panic!("mysql: cannot open a test store in {schema}: {error}"));
        TestStore { store, guard }
    }

    /// Another handle (as another process would open it) on `store`'s schema.
    pub async fn open_again(&self, store: &TestStore, options: MysqlOptions) -> TestStore {
        let options = MysqlOptions {
            database: Some(store.guard.schema.clone()),
            ..options
        };
        let other = MysqlEventStore::open(&self.url, options)
            .await
            .unwrap_or_else(|error| panic!("mysql: cannot reopen {}: {error}", store.guard.schema));
        TestStore {
            store: other,
            guard: store.guard.clone(),
        }
    }
}

impl StoreFactory for MyFactory {
    type Store = TestStore;

    async fn fresh(&self) -> TestStore {
        self.fresh_with(options("unused")).await
    }

    async fn reopen(&self, store: TestStore) -> Option<TestStore> {
        store.store.close().await.expect("closing a test store");
        let reopened = self.open_again(&store, options("unused")).await;
        drop(store);
        Some(reopened)
    }
}

impl EventStore for TestStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.store.append(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: Option<Version>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_stream(stream, direction, from, limit).await
    }
    async fn read_all(
        &self,
        from: Position,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_all(from, filter, limit).await
    }
    async fn head_position(&self) -> Result<Position, StoreError> {
        self.store.head_position().await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Version, StoreError> {
        self.store.stream_version(stream).await
    }
    async fn wait_for_append(&self, after: Position) -> Result<(), StoreError> {
        self.store.wait_for_append(after).await
    }
}
