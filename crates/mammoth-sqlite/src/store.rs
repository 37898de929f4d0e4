//! [`SqliteEventStore`]: the handle users hold. Appends go to the writer thread; reads run on
//! a small pool of read connections on tokio's blocking threads.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use mammoth_core::validate::validate_append;
use mammoth_core::{
    AppendResult, Direction, EventFilter, EventStore, ExpectedVersion, NewEvent, Position,
    RecordedEvent, StoreError, StreamId, Version,
};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use tokio::sync::{Semaphore, oneshot, watch};

use crate::error::on;
use crate::schema::{self, configure};
use crate::tail::SharedTail;
use crate::writer::{Append, Request, Writer};
use crate::{SqliteOptions, Synchronous, read};

/// How long `open` waits for another handle in this process (or a process that is exiting) to
/// release the writer lock.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// How often a read-only handle looks for events another process appended.
const READ_ONLY_POLL: Duration = Duration::from_millis(50);

/// Counts and sizes of a store, for `mammoth events stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// The head of the global log.
    pub head_position: Position,
    /// The number of streams.
    pub stream_count: u64,
    /// The number of events.
    pub event_count: u64,
    /// Event counts per type, most frequent first.
    pub events_per_type: Vec<(String, u64)>,
    /// Bytes on disk: the database file plus its write-ahead log.
    pub size_bytes: u64,
}

/// The writer side of a handle that owns the file.
struct WriterHandle {
    requests: mpsc::Sender<Request>,
    tail: Arc<SharedTail>,
    head: watch::Receiver<Position>,
}

struct Shared {
    path: PathBuf,
    options: SqliteOptions,
    /// None for a read-only handle.
    writer: Option<WriterHandle>,
    readers: Mutex<Vec<Connection>>,
    read_permits: Semaphore,
    closed: AtomicBool,
}

/// The embedded event store: one SQLite file, one writer thread with group commit, a pool of
/// readers. Cloning is cheap and shares the same store.
///
/// Only one process may have a file open at a time (a lock file beside it enforces that);
/// within the process, share clones of one handle.
#[derive(Clone)]
pub struct SqliteEventStore {
    shared: Arc<Shared>,
}

impl SqliteEventStore {
    /// Opens (creating if needed) the store at `path`, its parent directories and its schema,
    /// and starts the writer thread.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the file cannot be opened or created, is locked by another
    /// process, or has a newer schema.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let failed =
            |message: String| StoreError::backend("sqlite", "opening the store", message, false);
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            fs::create_dir_all(parent).map_err(|error| {
                failed(format!(
                    "cannot create directory {}: {error}",
                    parent.display()
                ))
            })?;
        }
        let lock = lock_writer(&path)?;
        let conn = Connection::open(&path).map_err(on("opening the store"))?;
        // SQLite runs at NORMAL either way; with Synchronous::Full, durable.rs adds the fsync
        // before each acknowledgement (see there for why that is as durable and faster).
        configure(&conn, Synchronous::Normal, 64 * 1024).map_err(on("configuring the store"))?;
        schema::migrate(&conn)?;
        let tail = Arc::new(SharedTail::default());
        let (head_tx, head) = watch::channel(0);
        let wal = match options.synchronous {
            Synchronous::Normal => None,
            Synchronous::Full => {
                // The schema step above wrote through the WAL, so the file exists now.
                let mut wal_path = path.clone().into_os_string();
                wal_path.push("-wal");
                let wal = File::options()
                    .read(true)
                    .write(true)
                    .open(&wal_path)
                    .map_err(|error| {
                        failed(format!(
                            "cannot open the write-ahead log {}: {error}",
                            Path::new(&wal_path).display()
                        ))
                    })?;
                Some(wal)
            }
        };
        let writer = Writer::new(conn, tail.clone(), head_tx, wal)?;
        let (requests, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("mammoth-sqlite-writer".to_owned())
            .spawn(move || {
                writer.run(receiver);
                drop(lock);
            })
            .map_err(|error| failed(format!("cannot start the writer thread: {error}")))?;
        Ok(Self {
            shared: Arc::new(Shared {
                path,
                read_permits: Semaphore::new(options.read_connections.max(1)),
                options,
                writer: Some(WriterHandle {
                    requests,
                    tail,
                    head,
                }),
                readers: Mutex::new(Vec::new()),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// Opens an existing store for reading only, beside a process that may be writing it.
    ///
    /// No lock is taken and no writer runs: appends fail with a clear error, the head is read
    /// from the file, and [`EventStore::wait_for_append`] polls every 50 ms. This is what
    /// `mammoth events read/all/tail/stats` use, so they work while a server writes.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the file does not exist or is not a mammoth store.
    pub fn open_read_only(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if !path.is_file() {
            return Err(StoreError::backend(
                "sqlite",
                "opening the store",
                format!(
                    "there is no store at {}; append an event first, or point event_store.dsn at the right file",
                    path.display()
                ),
                false,
            ));
        }
        let conn = open_reader(&path)?;
        let version: Option<i64> = conn
            .query_row(
                "SELECT value FROM mammoth_meta WHERE key = 'schema_version'",
                [],
                |row| row.get(0),
            )
            .map_err(|error| {
                StoreError::backend(
                    "sqlite",
                    "opening the store",
                    format!("{} is not a mammoth store: {error}", path.display()),
                    false,
                )
            })
            .map(Some)?;
        if version.is_some_and(|version| version > schema::SCHEMA_VERSION) {
            return Err(StoreError::backend(
                "sqlite",
                "opening the store",
                format!(
                    "{} has a newer schema than this mammoth knows; upgrade mammoth",
                    path.display()
                ),
                false,
            ));
        }
        Ok(Self {
            shared: Arc::new(Shared {
                path,
                read_permits: Semaphore::new(options.read_connections.max(1)),
                options,
                writer: None,
                readers: Mutex::new(vec![conn]),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// True for a handle opened with [`SqliteEventStore::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.shared.writer.is_none()
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Flushes the stream index, checkpoints the WAL into the database file, stops the writer
    /// and releases the file. Appends and reads afterwards fail with [`StoreError::Closed`];
    /// closing twice is fine.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the final flush or checkpoint failed (committed events are
    /// safe regardless: the index is re-derived on the next open).
    pub async fn close(&self) -> Result<(), StoreError> {
        if self.shared.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.shared
            .readers
            .lock()
            .map(|mut readers| readers.clear())
            .ok();
        let Some(writer) = &self.shared.writer else {
            return Ok(());
        };
        let (reply, done) = oneshot::channel();
        if writer.requests.send(Request::Close(reply)).is_err() {
            return Ok(());
        }
        done.await.unwrap_or(Ok(()))
    }

    /// Head position, stream and event counts, events per type, and size on disk.
    ///
    /// # Errors
    /// [`StoreError::Backend`] or [`StoreError::Closed`].
    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        let head_position = self.head_now().await?;
        let path = self.shared.path.clone();
        self.with_reader(move |conn, _| {
            let action = "computing statistics";
            let count = |sql: &str| conn.query_row(sql, [], |row| row.get::<_, i64>(0)).map_err(on(action));
            let stream_count = count("SELECT count(*) FROM streams")? as u64;
            let event_count = count("SELECT count(*) FROM events")? as u64;
            let mut statement = conn
                .prepare("SELECT event_type, count(*) AS n FROM events GROUP BY event_type ORDER BY n DESC, event_type")
                .map_err(on(action))?;
            let events_per_type = statement
                .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))
                .and_then(Iterator::collect)
                .map_err(on(action))?;
            let size_bytes = ["", "-wal"]
                .iter()
                .filter_map(|suffix| {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    fs::metadata(file).ok().map(|meta| meta.len())
                })
                .sum();
            Ok(StoreStats { head_position, stream_count, event_count, events_per_type, size_bytes })
        })
        .await
    }

    async fn head_now(&self) -> Result<Position, StoreError> {
        self.check_open()?;
        match &self.shared.writer {
            Some(writer) => Ok(*writer.head.borrow()),
            None => {
                self.with_reader(|conn, _| {
                    conn.query_row("SELECT coalesce(max(position), 0) FROM events", [], |row| {
                        row.get::<_, i64>(0)
                    })
                    .map(|head| head as Position)
                    .map_err(on("reading the head"))
                })
                .await
            }
        }
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    async fn with_reader<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, Option<&SharedTail>) -> Result<T, StoreError> + Send + 'static,
    {
        self.check_open()?;
        let _permit = self
            .shared
            .read_permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match shared
                .readers
                .lock()
                .ok()
                .and_then(|mut readers| readers.pop())
            {
                Some(conn) => conn,
                None => open_reader(&shared.path)?,
            };
            let tail = shared.writer.as_ref().map(|writer| &*writer.tail);
            let result = read(&conn, tail);
            if let Ok(mut readers) = shared.readers.lock()
                && !shared.closed.load(Ordering::SeqCst)
            {
                readers.push(conn);
            }
            result
        })
        .await
        .map_err(|error| StoreError::backend("sqlite", "reading", error, false))?
    }
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(on("opening a reader"))?;
    conn.pragma_update(None, "cache_size", -8192)
        .map_err(on("opening a reader"))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(on("opening a reader"))?;
    Ok(conn)
}

/// Takes the lock file beside the database that makes this process its only writer.
fn lock_writer(path: &Path) -> Result<File, StoreError> {
    let mut lock_path = path.to_path_buf().into_os_string();
    lock_path.push(".lock");
    let failed =
        |message: String| StoreError::backend("sqlite", "locking the store", message, false);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|error| {
            failed(format!(
                "cannot create {}: {error}",
                Path::new(&lock_path).display()
            ))
        })?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(failed(format!(
                    "{} is open in another process (its lock file {} is held); stop that process or use another path",
                    path.display(),
                    Path::new(&lock_path).display()
                )));
            }
            Err(TryLockError::Error(error)) => return Err(failed(error.to_string())),
        }
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

impl EventStore for SqliteEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.check_open()?;
        let Some(writer) = &self.shared.writer else {
            return Err(StoreError::backend(
                "sqlite",
                "appending events",
                format!(
                    "{} was opened read-only; open it with SqliteEventStore::open to append",
                    self.shared.path.display()
                ),
                false,
            ));
        };
        let events = validate_append(stream, events, &self.shared.options.limits)?;
        let (reply, result) = oneshot::channel();
        let append = Append {
            stream: stream.clone(),
            expected,
            events,
            reply,
        };
        writer
            .requests
            .send(Request::Append(append))
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
        let stream = stream.clone();
        self.with_reader(move |conn, tail| {
            read::stream(conn, tail, &stream, direction, from, limit)
        })
        .await
    }

    async fn read_all(
        &self,
        from: Position,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_limit(limit)?;
        let filter = filter.clone();
        self.with_reader(move |conn, _| read::all(conn, from, &filter, limit))
            .await
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        self.head_now().await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version, StoreError> {
        let mut page = self
            .read_stream(stream, Direction::Backward, None, 1)
            .await?;
        Ok(page.pop().map_or(0, |event| event.version))
    }

    async fn wait_for_append(&self, after: Position) -> Result<(), StoreError> {
        self.check_open()?;
        let Some(writer) = &self.shared.writer else {
            // Another process writes: poll the file.
            while self.head_now().await? <= after {
                tokio::time::sleep(READ_ONLY_POLL).await;
            }
            return Ok(());
        };
        let mut head = writer.head.clone();
        head.wait_for(|head| *head > after)
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(())
    }
}
