//! # mammoth-postgres
//!
//! mammoth's PostgreSQL event store (tokio-postgres + deadpool-postgres). One writer task per
//! store handle does group commit: appends that arrive while a commit is in flight are written
//! together by one statement in one transaction, yet each is checked and fails on its own.
//! Position assignment is serialized across every process writing the same schema (the
//! one-row `log_head` is updated first in each append transaction and stays locked until
//! commit), so readers of the global log never skip a commit. Live subscriptions wake on
//! LISTEN/NOTIFY.
//!
//! ```no_run
//! use mammoth_core::{EventStore, ExpectedVersion, NewEvent, StreamId};
//! use mammoth_postgres::{PgEventStore, PgOptions};
//! # async fn demo() -> Result<(), mammoth_core::StoreError> {
//! let store = PgEventStore::open("postgres://postgres@127.0.0.1/app", PgOptions::default()).await?;
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
mod listen;
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

pub use admin::{PgStoreStatus, drop_schema, init, status};
pub use checkpoint::PgCheckpointStore;
pub use snapshot::PgSnapshotStore;
pub use store::PgEventStore;
pub use timers::PgTimerStore;

/// The schema the tables go into unless configured otherwise.
pub const DEFAULT_SCHEMA: &str = "mammoth";

/// How to open a [`PgEventStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgOptions {
    /// The schema holding the tables (created if missing). Default `mammoth`.
    pub schema: String,
    /// Connections in the read pool. Default 10. The writer and the listener each use one
    /// more connection of their own.
    pub pool_size: usize,
    /// Size limits enforced on every append.
    pub limits: Limits,
    /// The longest `wait_for_append` waits without a notification before it returns to let
    /// the caller look again (a safety net if the LISTEN connection is down). Default 1 s.
    pub poll_interval: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            schema: DEFAULT_SCHEMA.to_owned(),
            pool_size: 10,
            limits: Limits::default(),
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl PgOptions {
    /// The options `[event_store]` of a configuration gives: schema, pool size and limits.
    pub fn from_config(config: &mammoth_config::EventStoreConfig) -> Self {
        Self {
            schema: config
                .schema
                .clone()
                .unwrap_or_else(|| DEFAULT_SCHEMA.to_owned()),
            pool_size: config.pool_size.max(1) as usize,
            limits: Limits {
                max_event_bytes: usize::try_from(config.max_event_size).unwrap_or(usize::MAX),
                max_events_per_append: config.max_events_per_append.max(1) as usize,
            },
            ..Self::default()
        }
    }
}

/// The connection URL of a configuration, with its credentials merged in.
///
/// # Errors
/// [`StoreError::Backend`] (not transient) carrying the configuration problem.
pub fn config_url(config: &mammoth_config::EventStoreConfig) -> Result<String, StoreError> {
    config
        .connection_url()
        .map(|url| url.expose().clone())
        .map_err(|error| {
            StoreError::backend(error::BACKEND, "reading the configuration", error, false)
        })
}
