//! # mammoth-runtime
//!
//! The engines that run a domain written against `mammoth-core`:
//!
//! - [`Repository`]: loads an [`mammoth_core::Aggregate`] (snapshot + newer events, upcast),
//!   decides, checks schemas, appends with an exact expected version, retries conflicts a
//!   bounded number of times, keeps snapshots, and makes idempotency keys durable.
//! - [`CommandBus`] and [`QueryBus`]: typed routing to handlers registered in code, a
//!   [`Middleware`] chain ([`Tracing`], [`Validation`], [`Authorization`],
//!   [`RetryOnConflict`], [`Idempotency`]), and read-your-writes waits on a
//!   [`ReadModelProgress`].
//! - [`Schemas`]: optional JSON Schemas per event type and version, checked before append.
//! - [`RetryPolicy`]: bounded exponential backoff with full jitter.
//!
//! Errors are typed per layer: [`CommandError`] keeps a domain rejection
//! ([`CommandError::Rejected`]) apart from conflicts, unknown commands and infrastructure
//! failures; [`QueryError`] covers the read side.

pub mod bench;
mod bus_worker;
mod cache;
mod command_bus;
mod context;
mod error;
pub mod middleware;
pub mod projection;
mod query_bus;
pub mod relay;
mod repository;
mod retry;
pub mod saga;
mod schema;

pub use bus_worker::{BusWorker, WorkerCounts};
pub use command_bus::{
    BoxFuture, Command, CommandBus, CommandBusBuilder, Envelope, ErasedResult, Execute, Middleware,
    Next, Reply,
};
pub use context::CommandContext;
pub use error::{BoxError, CommandError, QueryError};
pub use middleware::{Authorization, Authorize, Idempotency, RetryOnConflict, Tracing, Validation};
pub use query_bus::{
    PositionWatch, Query, QueryBus, QueryBusBuilder, QueryOptions, ReadModelProgress, StoreProgress,
};
pub use relay::{Relay, RelayError, RelayProgress};
pub use repository::{
    Committed, DEFAULT_CACHE, Loaded, Repository, SnapshotPolicy, idempotent_event_id,
};
pub use retry::RetryPolicy;
pub use schema::{InvalidSchema, SchemaViolation, Schemas};
