//! # mammoth-sqlite
//!
//! mammoth's embedded event store: one SQLite file (SQLite is bundled, no system library), WAL
//! mode, durable by default (`synchronous=FULL`), with one writer thread doing group commit:
//! appends that arrive while a commit is in progress are committed together in one
//! transaction and one fsync, yet each is version-checked and fails on its own.
//!
//! ```no_run
//! use mammoth_core::{EventStore, ExpectedVersion, NewEvent, StreamId};
//! use mammoth_sqlite::{SqliteEventStore, SqliteOptions};
//! # async fn demo() -> Result<(), mammoth_core::StoreError> {
//! let store = SqliteEventStore::open("./mammoth-data/mammoth.db", SqliteOptions::default())?;
//! let stream = StreamId::new("order-42")?;
//! let event = NewEvent::json("OrderCreated", serde_json::json!({ "total": 30 }))?;
//! store.append(&stream, ExpectedVersion::NoStream, vec![event]).await?;
//! store.close().await?;
//! # Ok(()) }
//! ```
//!
//! See `docs/architecture.md` for the layout (append-only log, derived stream index) and how
//! each guarantee of the contract is enforced.

pub mod bus;
pub mod checkpoint;
mod durable;
mod error;
mod read;
pub mod read_model;
pub mod saga;
pub mod schema;
mod side;
pub mod snapshot;
mod store;
mod tail;
mod writer;

use mammoth_core::Limits;

pub use bus::{SqliteBus, SqliteBusOptions, SqliteConsumer};
pub use checkpoint::SqliteCheckpointStore;
pub use read_model::{ReadModelAdmin, SqliteProjection, SqliteReadModel};
pub use saga::{SagaIndex, SqliteTimerStore};
pub use schema::Synchronous;
pub use store::{SqliteEventStore, StoreStats};

/// How to open a [`SqliteEventStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Durability of each commit; [`Synchronous::Full`] by default.
    pub synchronous: Synchronous,
    /// Size limits enforced on every append.
    pub limits: Limits,
    /// How many reads may run at once, each on its own connection. Default 4.
    pub read_connections: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            limits: Limits::default(),
            read_connections: 4,
        }
    }
}
