//! # mammoth-mysql
//!
//! mammoth's MySQL/MariaDB event store (mysql_async) — the seed's own default backend. One
//! writer task per store handle does group commit: appends that arrive while a commit is in
//! flight share one transaction, yet each is checked and fails on its own. Position
//! assignment is serialized across every process writing the same database (the one-row
//! `log_head` is updated first in each append transaction and stays locked until commit), so
//! readers of the global log never skip a commit. MySQL has no LISTEN/NOTIFY: live
//! subscriptions are woken at once by appends of the same handle and find other processes'
//! commits by polling the head with exponential backoff.
//!
//! ```no_run
//! use mammoth_core::{EventStore, ExpectedVersion, NewEvent, StreamId};
//! use mammoth_mysql::{MysqlEventStore, MysqlOptions};
//! # async fn demo() -> Result<(), mammoth_core::StoreError> {
//! let store = MysqlEventStore::open("mysql://root@127.0.0.1:3306/event_store", MysqlOptions::default()).await?;
//! let stream = StreamId::new("order-42")?;
//! let event = NewEvent::json("OrderCreated", serde_json::json!({ "total": 30 }))?;
//! store.append(&stream, ExpectedVersion::NoStream, vec![event]).await?;
//! store.close().await?;
//! # Ok(()) }
//! ```
//!
//! See `docs/architecture.md` ("PostgreSQL and MySQL drivers") for why positions are assigned
//! this way and what was measured.

mod admin;
pub mod bus;
mod checkpoint;
mod error;
mod read;
pub mod read_model;
pub mod saga_index;
pub mod schema;
mod snapshot;
mod store;
mod timers;
mod writer;

use std::time::Duration;

use mammoth_core::{Limits, StoreError};

pub use admin::{MysqlStoreStatus, drop_database, init, status};
pub use checkpoint::MysqlCheckpointStore;
pub use snapshot::MysqlSnapshotStore;
pub use store::MysqlEventStore;
pub use timers::MysqlTimerStore;

/// How to open a [`MysqlEventStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MysqlOptions {
    /// The database holding the tables (created if missing). `None` uses the URL's database.
    pub database: Option<String>,
    /// Connections in the read pool. Default 10. The writer uses one more of its own.
    pub pool_size: usize,
    /// Size limits enforced on every append.
    pub limits: Limits,
    /// The longest pause between two looks at the head while a subscriber waits for another
    /// process's commit; the pause starts at 2 ms and doubles up to this. Default 50 ms.
    pub poll_interval: Duration,
}

impl Default for MysqlOptions {
    fn default() -> Self {
        Self {
            database: None,
            pool_size: 10,
            limits: Limits::default(),
            poll_interval: Duration::from_millis(50),
        }
    }
}

impl MysqlOptions {
    /// The options `[event_store]` of a configuration gives: pool size and limits (the
    /// database comes from the DSN, or from `schema` when set).
    pub fn from_config(config: &mammoth_config::EventStoreConfig) -> Self {
        Self {
            database: config.schema.clone(),
            pool_size: config.pool_size.max(1) as usize,
            limits: Limits {
                max_event_bytes: usize::try_from(config.max_event_size).unwrap_or(usize::MAX),
                max_events_per_append: config.max_events_per_append.max(1) as usize,
            },
            ..Self::default()
        }
    }
}

/// The connection URL of a configuration (`mysql://…`, PDO DSNs translated), with its
/// credentials merged in.
///
/// # Errors
/// [`StoreError::Backend`] (not transient) carrying the configuration problem.
pub fn config_url(config: &mammoth_config::EventStoreConfig) -> Result<String, StoreError> {
    config
        .connection_url()
        .map(|url| url.expose().replacen("mariadb://", "mysql://", 1))
        .map_err(|error| {
            StoreError::backend(error::BACKEND, "reading the configuration", error, false)
        })
}
