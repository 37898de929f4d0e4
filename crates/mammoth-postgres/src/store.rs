//! [`PgEventStore`]: the handle users hold. Appends go to the writer task; reads run on a
//! deadpool of connections; waits follow the head that the writer and the LISTEN task raise.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use mammoth_core::validate::validate_append;
use mammoth_core::{
    AppendResult, Direction, EventFilter, EventStore, ExpectedVersion, NewEvent, Position,
    RecordedEvent, StoreError, StreamId, Version,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

use crate::admin::{self, PgStoreStatus};
use crate::error::{BACKEND, on, pool};
use crate::schema::{self, Sql};
use crate::writer::{Append, Request, Writer};
use crate::{PgOptions, listen, read};

/// Appends queued for the writer before `append` waits for room.
const QUEUE: usize = 16_384;

struct Shared {
    sql: Arc<Sql>,
    options: PgOptions,
    /// Where the store connects: for connections of their own (the bus's LISTEN).
    connect: tokio_postgres::Config,
    pool: Pool,
    requests: mpsc::Sender<Request>,
    head: watch::Receiver<Position>,
    closed: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.get_mut() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

/// The PostgreSQL event store: one writer task with group commit, a pool of readers, and a
/// LISTEN connection for live subscriptions. Cloning is cheap and shares the same store.
///
/// Several processes may open the same schema at once: positions are assigned under the
/// `log_head` row lock, so the global order stays gap-safe across all of them, and the
/// unique indexes turn a stale cached stream head into a re-check, never a double write.
#[derive(Clone)]
pub struct PgEventStore {
    shared: Arc<Shared>,
}

/// Parses a `postgres://` URL (or key=value connection string).
pub(crate) fn parse_url(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    url.parse::<tokio_postgres::Config>().map_err(|error| {
        StoreError::backend(
            BACKEND,
            "reading the connection URL",
            format!("{error}; write a URL such as postgres://user@host:5432/database"),
            false,
        )
    })
}

impl PgEventStore {
    /// Connects to the database at `url`, creates or migrates the schema
    /// `options.schema`, and starts the writer and listener tasks. Must be called inside a
    /// tokio runtime.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the URL is invalid, the database cannot be reached, or the
    /// schema was written by a newer mammoth.
    pub async fn open(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        schema::check_schema_name(&options.schema)?;
        let config = parse_url(url)?;
        let sql = Arc::new(Sql::new(&options.schema));
        {
            let (mut client, connection) = config
                .connect(NoTls)
                .await
                .map_err(on("connecting to the database"))?;
            let driver = tokio::spawn(connection);
            schema::migrate(&mut client, &sql).await?;
            drop(client);
            let _ = driver.await;
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|error| {
                StoreError::backend(BACKEND, "building the connection pool", error, false)
            })?;
        let current: i64 = {
            let client = pool.get().await.map_err(pool_error)?;
            client
                .query_one(&sql.head, &[])
                .await
                .map_err(on("reading the head"))?
                .get(0)
        };
        let (head_tx, head) = watch::channel(current as Position);
        let head_tx = Arc::new(head_tx);
        let (requests, receiver) = mpsc::channel(QUEUE);
        let writer = Writer::new(config.clone(), sql.clone(), head_tx.clone());
        let writer = tokio::spawn(writer.run(receiver));
        let listener = tokio::spawn(listen::run(config.clone(), sql.clone(), head_tx));
        Ok(Self {
            shared: Arc::new(Shared {
                sql,
                options,
                connect: config,
                pool,
                requests,
                head,
                closed: AtomicBool::new(false),
                tasks: Mutex::new(vec![writer, listener]),
            }),
        })
    }

    /// Opens the store the configuration describes: its DSN (URL or PDO form, with the
    /// username and secret password merged in), schema, pool size and limits.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the configuration names no PostgreSQL DSN; see
    /// [`PgEventStore::open`].
    pub async fn open_config(
        config: &mammoth_config::EventStoreConfig,
    ) -> Result<Self, StoreError> {
        let url = crate::config_url(config)?;
        Self::open(&url, PgOptions::from_config(config)).await
    }

    /// Where the store connects, for a connection of one's own (pooled connections drop
    /// notifications, so a LISTEN needs one).
    pub(crate) fn connect_config(&self) -> &tokio_postgres::Config {
        &self.shared.connect
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.shared.sql.schema
    }

    pub(crate) fn sql(&self) -> &Sql {
        &self.shared.sql
    }

    /// The pool of read connections (also usable for read models in the same database).
    pub fn pool(&self) -> &Pool {
        &self.shared.pool
    }

    /// Finishes the queued appends, stops the writer and the listener, and closes the pool.
    /// Calls afterwards fail with [`StoreError::Closed`]; closing twice is fine.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for a final flush.
    pub async fn close(&self) -> Result<(), StoreError> {
        if self.shared.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let (reply, done) = oneshot::channel();
        if self
            .shared
            .requests
            .send(Request::Close(reply))
            .await
            .is_ok()
        {
            let _ = done.await;
        }
        if let Ok(mut tasks) = self.shared.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
        self.shared.pool.close();
        Ok(())
    }

    /// Schema version, event and stream counts, head position and size on disk.
    ///
    /// # Errors
    /// [`StoreError::Backend`] or [`StoreError::Closed`].
    pub async fn status(&self) -> Result<PgStoreStatus, StoreError> {
        let client = self.client().await?;
        admin::status_on(&client, &self.shared.sql).await
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.check_open()?;
        self.shared.pool.get().await.map_err(pool)
    }
}

fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    pool(error)
}

fn check_limit(limit: usize) -> Result<(), StoreError> {
    if limit == 0 {
        return Err(StoreError::InvalidRead {
            reason: "limit must be at least 1".to_owned(),
        });
    }
    Ok(())
}

impl EventStore for PgEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.check_open()?;
        let events = validate_append(stream, events, &self.shared.options.limits)?;
        let (reply, result) = oneshot::channel();
        let append = Append {
            stream: stream.clone(),
            expected,
            events,
            reply,
        };
        self.shared
            .requests
            .send(Request::Append(append))
            .await
            .map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: Option<Version>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_limit(limit)?;
        let client = self.client().await?;
        read::stream(&client, &self.shared.sql, stream, direction, from, limit).await
    }

    async fn read_all(
        &self,
        from: Position,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_limit(limit)?;
        let client = self.client().await?;
        read::all(&client, &self.shared.sql, from, filter, limit).await
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.shared.sql.head)
            .await
            .map_err(on("reading the head"))?;
        let head: i64 = client
            .query_one(&statement, &[])
            .await
            .map_err(on("reading the head"))?
            .get(0);
        Ok(head as Position)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.shared.sql.stream_version)
            .await
            .map_err(on("reading a stream version"))?;
        let version: i64 = client
            .query_one(&statement, &[&stream.as_str()])
            .await
            .map_err(on("reading a stream version"))?
            .get(0);
        Ok(version as Version)
    }

    async fn wait_for_append(&self, after: Position) -> Result<(), StoreError> {
        self.check_open()?;
        let mut head = self.shared.head.clone();
        let poll = self
            .shared
            .options
            .poll_interval
            .max(Duration::from_millis(1));
        tokio::select! {
            changed = head.wait_for(|head| *head > after) => {
                changed.map_err(|_| StoreError::Closed)?;
            }
            () = tokio::time::sleep(poll) => {}
        }
        self.check_open()
    }
}
