//! [`AnyStore`]: the one place the binary erases the backend type. Commands are written
//! against [`EventStore`]; the configuration's `event_store.backend` picks the variant.

use std::sync::Arc;

use anyhow::Context as _;
use futures_util::TryStreamExt as _;
use mammoth_config::EventStoreBackend;
use mammoth_core::{
    AppendResult, Direction, EventFilter, EventStore, ExpectedVersion, InMemoryEventStore,
    NewEvent, Position, RecordedEvent, StoreError, StreamId, Version, read_all_pages,
};
use mammoth_mysql::{MysqlEventStore, MysqlOptions};
use mammoth_postgres::{PgEventStore, PgOptions};
use mammoth_sqlite::{SqliteEventStore, SqliteOptions};
use serde::Serialize;

use crate::settings::StoreSettings;

/// What a command needs from the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Appends: the command becomes the file's one writer.
    ReadWrite,
    /// Reads only: no writer lock, so it works while another process writes.
    ReadOnly,
}

/// Every backend this binary can open, behind one [`EventStore`] implementation.
#[derive(Clone)]
pub enum AnyStore {
    /// The embedded default: one SQLite file.
    Sqlite(SqliteEventStore),
    /// The in-memory reference store: empty at start, gone at exit (for tests and trials).
    Memory(Arc<InMemoryEventStore>),
    /// PostgreSQL: the tables in `event_store.schema` (default `mammoth`).
    Postgres(PgEventStore),
    /// MySQL/MariaDB: the tables in the DSN's database (or `event_store.schema`).
    Mysql(MysqlEventStore),
}

/// What `events stats` reports.
#[derive(Debug, Serialize)]
pub struct Stats {
    /// The backend name from the configuration.
    pub backend: &'static str,
    /// The head of the global log.
    pub head_position: Position,
    /// Streams with at least one event.
    pub stream_count: u64,
    /// Events stored.
    pub event_count: u64,
    /// Events per type, most frequent first.
    pub events_per_type: Vec<TypeCount>,
    /// Bytes on disk (database plus write-ahead log), `None` for a store with no files.
    pub size_bytes: Option<u64>,
}

/// One row of [`Stats::events_per_type`].
#[derive(Debug, Serialize)]
pub struct TypeCount {
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// How many events of it are stored.
    pub events: u64,
}

impl AnyStore {
    /// Opens the backend the configuration names.
    ///
    /// # Errors
    /// A configuration error for a DSN that cannot be read (exit code 2); the backend's own
    /// error when it cannot open.
    pub async fn open(settings: &StoreSettings, access: Access) -> anyhow::Result<Self> {
        match settings.backend {
            EventStoreBackend::Sqlite => {
                let options = SqliteOptions {
                    synchronous: settings.synchronous,
                    limits: settings.limits,
                    ..SqliteOptions::default()
                };
                let path = &settings.sqlite_path;
                // Readers take no lock, so they work beside a process that writes the file;
                // with no file yet there is nothing to share, and a normal open creates it.
                let store = if access == Access::ReadOnly && path.is_file() {
                    SqliteEventStore::open_read_only(path, options)?
                } else {
                    SqliteEventStore::open(path, options)?
                };
                Ok(Self::Sqlite(store))
            }
            EventStoreBackend::Memory => Ok(Self::Memory(Arc::new(
                InMemoryEventStore::with_limits(settings.limits),
            ))),
            // The SQL servers have no read-only mode worth having: readers never lock writers.
            EventStoreBackend::Postgres => {
                let url = settings.event_store.connection_url()?;
                let options = PgOptions::from_config(&settings.event_store);
                Ok(Self::Postgres(
                    PgEventStore::open(url.expose(), options).await?,
                ))
            }
            EventStoreBackend::Mysql => {
                let url = mysql_url(settings)?;
                let options = MysqlOptions::from_config(&settings.event_store);
                Ok(Self::Mysql(MysqlEventStore::open(&url, options).await?))
            }
        }
    }

    /// The backend's name as the configuration spells it.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Memory(_) => "memory",
            Self::Postgres(_) => "postgres",
            Self::Mysql(_) => "mysql",
        }
    }

    /// Counts of what the store holds.
    ///
    /// # Errors
    /// The backend's error.
    pub async fn stats(&self) -> anyhow::Result<Stats> {
        match self {
            Self::Sqlite(store) => {
                let stats = store.stats().await?;
                Ok(Stats {
                    backend: self.backend_name(),
                    head_position: stats.head_position,
                    stream_count: stats.stream_count,
                    event_count: stats.event_count,
                    events_per_type: sort_types(stats.events_per_type),
                    size_bytes: Some(stats.size_bytes),
                })
            }
            Self::Memory(store) => {
                // The memory store keeps no counters; scanning is fine at the sizes it holds.
                let mut streams = std::collections::HashSet::new();
                let mut types = std::collections::BTreeMap::<String, u64>::new();
                let mut events = 0u64;
                let mut all =
                    std::pin::pin!(read_all_pages(store.as_ref(), 1, EventFilter::all(), 1024));
                while let Some(event) = all.try_next().await? {
                    events += 1;
                    streams.insert(event.stream_id);
                    *types.entry(event.event_type).or_default() += 1;
                }
                Ok(Stats {
                    backend: self.backend_name(),
                    head_position: store.head_position().await?,
                    stream_count: streams.len() as u64,
                    event_count: events,
                    events_per_type: sort_types(types),
                    size_bytes: None,
                })
            }
            Self::Postgres(store) => {
                let status = store.status().await?;
                Ok(Stats {
                    backend: self.backend_name(),
                    head_position: status.head_position,
                    stream_count: status.stream_count,
                    event_count: status.event_count,
                    events_per_type: sort_types(crate::sql_stats::pg_events_per_type(store).await?),
                    size_bytes: Some(status.size_bytes),
                })
            }
            Self::Mysql(store) => {
                let status = store.status().await?;
                Ok(Stats {
                    backend: self.backend_name(),
                    head_position: status.head_position,
                    stream_count: status.stream_count,
                    event_count: status.event_count,
                    events_per_type: sort_types(
                        crate::sql_stats::mysql_events_per_type(store).await?,
                    ),
                    size_bytes: Some(status.size_bytes),
                })
            }
        }
    }

    /// Flushes and closes the store; commands call it before they exit.
    ///
    /// # Errors
    /// The backend's error.
    pub async fn close(&self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(store) => store.close().await?,
            Self::Memory(store) => store.close(),
            Self::Postgres(store) => store.close().await?,
            Self::Mysql(store) => store.close().await?,
        }
        Ok(())
    }
}

fn sort_types(types: impl IntoIterator<Item = (String, u64)>) -> Vec<TypeCount> {
    let mut rows: Vec<TypeCount> = types
        .into_iter()
        .map(|(event_type, events)| TypeCount { event_type, events })
        .collect();
    rows.sort_by(|a, b| {
        b.events
            .cmp(&a.events)
            .then(a.event_type.cmp(&b.event_type))
    });
    rows
}

macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call,
            AnyStore::Memory($store) => $call,
            AnyStore::Postgres($store) => $call,
            AnyStore::Mysql($store) => $call,
        }
    };
}

impl EventStore for AnyStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        delegate!(self, store => store.append(stream, expected, events).await)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: Option<Version>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        delegate!(self, store => store.read_stream(stream, direction, from, limit).await)
    }

    async fn read_all(
        &self,
        from: Position,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        delegate!(self, store => store.read_all(from, filter, limit).await)
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        delegate!(self, store => store.head_position().await)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version, StoreError> {
        delegate!(self, store => store.stream_version(stream).await)
    }

    async fn wait_for_append(&self, after: Position) -> Result<(), StoreError> {
        // A read-only SQLite handle polls the file for other processes' commits itself.
        delegate!(self, store => store.wait_for_append(after).await)
    }
}

/// Opens the configured store, saying which store in the error when it fails.
///
/// # Errors
/// See [`AnyStore::open`].
pub async fn open(settings: &StoreSettings, access: Access) -> anyhow::Result<AnyStore> {
    AnyStore::open(settings, access)
        .await
        .with_context(|| match settings.backend {
            EventStoreBackend::Sqlite => format!(
                "cannot open the event store {} (event_store.dsn)",
                settings.sqlite_path.display()
            ),
            other => format!("cannot open the {} event store", other.as_str()),
        })
}

/// The MySQL URL of the configuration: the seed's PDO form translated, credentials merged in,
/// and `mariadb://` spelled the way the driver reads it.
///
/// # Errors
/// A configuration error (exit code 2) when the DSN cannot be read.
pub fn mysql_url(settings: &StoreSettings) -> anyhow::Result<String> {
    let url = settings.event_store.connection_url()?;
    Ok(url.expose().replacen("mariadb://", "mysql://", 1))
}
