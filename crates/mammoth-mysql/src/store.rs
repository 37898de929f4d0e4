//! [`MysqlEventStore`]: the handle users hold. Appends go to the writer task; reads run on a
//! mysql_async pool; waits follow the head the writer raises, polling for other processes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mammoth_core::validate::validate_append;
use mammoth_core::{
    AppendResult, Direction, EventFilter, EventStore, ExpectedVersion, NewEvent, Position,
    RecordedEvent, StoreError, StreamId, Version,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::admin::{self, MysqlStoreStatus};
use crate::error::{BACKEND, on};
use crate::schema::{self, Sql};
use crate::writer::{Append, Request, Writer};
use crate::{MysqlOptions, read};

/// Appends queued for the writer before `append` waits for room.
const QUEUE: usize = 16_384;
/// The first pause of a polling wait.
const FIRST_POLL: Duration = Duration::from_millis(2);

struct Shared {
    sql: Arc<Sql>,
    options: MysqlOptions,
    pool: Pool,
    requests: mpsc::Sender<Request>,
    head_tx: Arc<watch::Sender<Position>>,
    closed: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Ok(writer) = self.writer.get_mut()
            && let Some(writer) = writer.take()
        {
            writer.abort();
        }
    }
}

/// The MySQL/MariaDB event store: one writer task with group commit and a pool of readers.
/// Cloning is cheap and shares the same store.
///
/// Several processes may open the same database at once: positions are assigned under the
/// `log_head` row lock, so the global order stays gap-safe across all of them, and the unique
/// indexes turn a stale cached stream head into a re-check, never a double write.
#[derive(Clone)]
pub struct MysqlEventStore {
    shared: Arc<Shared>,
}

/// Parses a `mysql://` URL and picks the database: `database` if given, else the URL's.
pub(crate) fn parse_url(url: &str, database: Option<&str>) -> Result<(Opts, String), StoreError> {
    let opts = Opts::from_url(url).map_err(|error| {
        StoreError::backend(
            BACKEND,
            "reading the connection URL",
            format!("{error}; write a URL such as mysql://user@host:3306/database"),
            false,
        )
    })?;
    let database = database
        .map(str::to_owned)
        .or_else(|| opts.db_name().map(str::to_owned))
        .ok_or_else(|| {
            StoreError::backend(
                BACKEND,
                "reading the connection URL",
                "the URL names no database; add one (mysql://host/event_store) or set the database option",
                false,
            )
        })?;
    schema::check_database_name(&database)?;
    Ok((opts, database))
}

/// Opens one connection on `opts` without selecting a database (it may not exist yet).
pub(crate) async fn connect_server(opts: &Opts) -> Result<Conn, StoreError> {
    let opts = OptsBuilder::from_opts(opts.clone()).db_name(None::<String>);
    Conn::new(opts)
        .await
        .map_err(on("connecting to the database"))
}

impl MysqlEventStore {
    /// Connects to the server at `url`, creates or migrates the tables in the database
    /// (`options.database`, else the URL's), and starts the writer task. Must be called inside
    /// a tokio runtime.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the URL is invalid, the server cannot be reached, or the
    /// database was written by a newer mammoth.
    pub async fn open(url: &str, options: MysqlOptions) -> Result<Self, StoreError> {
        let (opts, database) = parse_url(url, options.database.as_deref())?;
        let sql = Arc::new(Sql::new(&database));
        let mut conn = connect_server(&opts).await?;
        schema::migrate(&mut conn, &sql).await?;
        let current: Option<u64> = conn
            .query_first(&sql.head)
            .await
            .map_err(on("reading the head"))?;
        let _ = conn.disconnect().await;
        let opts: Opts = OptsBuilder::from_opts(opts).db_name(Some(database)).into();
        let constraints = PoolConstraints::new(0, options.pool_size.max(1)).unwrap_or_default();
        let pool = Pool::new(
            OptsBuilder::from_opts(opts.clone())
                .pool_opts(PoolOpts::default().with_constraints(constraints)),
        );
        let (head_tx, _) = watch::channel(current.unwrap_or(0));
        let head_tx = Arc::new(head_tx);
        let (requests, receiver) = mpsc::channel(QUEUE);
        let writer = Writer::new(opts, sql.clone(), head_tx.clone());
        let writer = tokio::spawn(writer.run(receiver));
        Ok(Self {
            shared: Arc::new(Shared {
                sql,
                options,
                pool,
                requests,
                head_tx,
                closed: AtomicBool::new(false),
                writer: Mutex::new(Some(writer)),
            }),
        })
    }

    /// Opens the store the configuration describes: its DSN (URL or the seed's PDO form,
    /// with the username and secret password merged in), pool size and limits.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the configuration names no MySQL DSN; see
    /// [`MysqlEventStore::open`].
    pub async fn open_config(
        config: &mammoth_config::EventStoreConfig,
    ) -> Result<Self, StoreError> {
        let url = crate::config_url(config)?;
        Self::open(&url, MysqlOptions::from_config(config)).await
    }

    /// The database holding the tables.
    pub fn database(&self) -> &str {
        &self.shared.sql.database
    }

    pub(crate) fn sql(&self) -> &Sql {
        &self.shared.sql
    }

    /// The pool of read connections (also usable for read models in the same database).
    pub fn pool(&self) -> &Pool {
        &self.shared.pool
    }

    /// Finishes the queued appends, stops the writer and disconnects the pool. Calls
    /// afterwards fail with [`StoreError::Closed`]; closing twice is fine.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the pool fails to disconnect cleanly.
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
        let writer = self.shared.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        self.shared
            .pool
            .clone()
            .disconnect()
            .await
            .map_err(on("closing the pool"))
    }

    /// Schema version, event and stream counts, head position and size on disk.
    ///
    /// # Errors
    /// [`StoreError::Backend`] or [`StoreError::Closed`].
    pub async fn status(&self) -> Result<MysqlStoreStatus, StoreError> {
        let mut conn = self.conn().await?;
        admin::status_on(&mut conn, &self.shared.sql).await
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    pub(crate) async fn conn(&self) -> Result<Conn, StoreError> {
        self.check_open()?;
        self.shared
            .pool
            .get_conn()
            .await
            .map_err(on("getting a connection from the pool"))
    }

    fn raise(&self, position: Position) {
        self.shared.head_tx.send_if_modified(|current| {
            let newer = position > *current;
            if newer {
                *current = position;
            }
            newer
        });
    }
}

fn check_limit(limit: usize) -> Result<(), StoreError> {
    if limit == 0 {
        return Err(StoreError::InvalidRead {
            reason: "limit must be at least 1".to_owned(),
        });
    }
    Ok(())
}

impl EventStore for MysqlEventStore {
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
        let mut conn = self.conn().await?;
        read::stream(&mut conn, &self.shared.sql, stream, direction, from, limit).await
    }

    async fn read_all(
        &self,
        from: Position,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_limit(limit)?;
        let mut conn = self.conn().await?;
        read::all(&mut conn, &self.shared.sql, from, filter, limit).await
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        let mut conn = self.conn().await?;
        let head: Option<u64> = conn
            .exec_first(self.shared.sql.head.as_str(), ())
            .await
            .map_err(on("reading the head"))?;
        let head = head.unwrap_or(0);
        self.raise(head);
        Ok(head)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version, StoreError> {
        let mut conn = self.conn().await?;
        let version: Option<u64> = conn
            .exec_first(
                self.shared.sql.stream_version.as_str(),
                (stream.as_str().as_bytes(),),
            )
            .await
            .map_err(on("reading a stream version"))?;
        Ok(version.unwrap_or(0))
    }

    async fn wait_for_append(&self, after: Position) -> Result<(), StoreError> {
        let mut head = self.shared.head_tx.subscribe();
        let mut pause = FIRST_POLL;
        let longest = self.shared.options.poll_interval.max(FIRST_POLL);
        loop {
            self.check_open()?;
            tokio::select! {
                changed = head.wait_for(|head| *head > after) => {
                    changed.map_err(|_| StoreError::Closed)?;
                    return Ok(());
                }
                () = tokio::time::sleep(pause) => {}
            }
            // Another process may have committed: look at the head itself.
            if self.head_position().await? > after {
                return Ok(());
            }
            pause = (pause * 2).min(longest);
        }
    }
}
