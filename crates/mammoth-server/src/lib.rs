//! # mammoth-server
//!
//! The HTTP API of mammoth, as a library: `mammoth serve` uses it with the built-in app
//! (examples/orders), and a user's own binary uses it with theirs.
//!
//! - Event store: `POST /streams/{stream}` appends (expected version as the `Expected-Version`
//!   header or the `expected_version` field; a conflict is 409 with `expected` and `actual`),
//!   `GET /streams/{stream}` reads a stream, `GET /events` reads the global log (type and
//!   category filters), `GET /events/subscribe` follows it over Server-Sent Events and
//!   resumes after `Last-Event-ID`.
//! - Application: `POST /commands/{name}` and `GET /queries/{name}?min_position=P` for what
//!   an [`AppRegistry`] names.
//! - Admin: projections, sagas, dead letters, bus stats ([`ProjectionsAdmin`], [`SagaAdmin`],
//!   [`BusAdmin`]).
//! - Operations: `/health`, `/ready`, `/metrics` (Prometheus), `/openapi.json` (generated
//!   from the handlers by utoipa; every served route is in it).
//!
//! Every error is `{code, message}` JSON; a client's mistake is a 4xx that says what to fix.
//! [`run`] serves on a listener you bind (port 0 in tests) until `shutdown` resolves, then
//! stops accepting, lets in-flight requests finish (ending live subscriptions), and returns.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = std::sync::Arc::new(mammoth_core::InMemoryEventStore::new());
//! let server = mammoth_server::Server::new(store).backend("memory");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! mammoth_server::run(listener, server, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod app;
pub mod bench;
mod error;
pub mod events;
mod metered;
mod metrics;
pub mod ops;
#[cfg(feature = "orders")]
pub mod orders;
mod routes;
pub mod sagas;
mod sqlite_admin;
mod state;
mod store;

use std::future::{Future, IntoFuture as _};
use std::sync::Arc;
use std::time::Duration;

use mammoth_core::EventStore;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use admin::{AdminError, BusAdmin, ProjectionRow, ProjectionsAdmin};
pub use app::AppRegistry;
pub use error::{ApiError, ErrorBody};
pub use metered::Metered;
pub use metrics::Metrics;
pub use sagas::{SagaAdmin, SqliteSagas};
pub use sqlite_admin::{SqliteProjections, SqliteReadModelEntry};
pub use state::AppState;
pub use store::{BoxFuture, DynStore, SharedStore};

/// How the server behaves: `[http]` and `[metrics]` of mammoth.tsk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// The largest request body accepted, in bytes; larger is 413 `body_too_large`.
    pub body_limit: usize,
    /// How long a request may take before it is answered 408 (live subscriptions stream past
    /// it: only the time to the response's start counts).
    pub request_timeout: Duration,
    /// How long a shutdown waits for in-flight requests before it drops them.
    pub shutdown_timeout: Duration,
    /// Serve metrics at all.
    pub metrics_enabled: bool,
    /// Where.
    pub metrics_path: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            body_limit: 1 << 20,
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            metrics_enabled: true,
            metrics_path: "/metrics".to_owned(),
        }
    }
}

impl ServerConfig {
    /// The server part of a loaded configuration.
    pub fn from_config(config: &mammoth_config::Config) -> Self {
        Self {
            body_limit: usize::try_from(config.http.body_limit).unwrap_or(usize::MAX),
            request_timeout: config.http.request_timeout,
            shutdown_timeout: config.http.shutdown_timeout,
            metrics_enabled: config.metrics.enabled,
            metrics_path: config.metrics.path.clone(),
        }
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Accepting or serving connections failed.
    #[error("the HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
    /// The metrics path cannot be served.
    #[error(
        "metrics.path {0:?} clashes with an API route or is not a path; choose another, such as \"/metrics\""
    )]
    MetricsPath(String),
}

/// A server to run: the store, the app, the admin backends and the configuration.
pub struct Server {
    store: SharedStore,
    backend: &'static str,
    registry: AppRegistry,
    projections: Option<Arc<dyn ProjectionsAdmin>>,
    bus: Option<Arc<dyn BusAdmin>>,
    sagas: Option<Arc<dyn SagaAdmin>>,
    config: ServerConfig,
    metrics: Arc<Metrics>,
}

impl Server {
    /// A server over `store`, with no app, no admin backends and the default configuration.
    pub fn new<S: EventStore + 'static>(store: S) -> Self {
        Self {
            store: SharedStore(Arc::new(store)),
            backend: "unknown",
            registry: AppRegistry::new(),
            projections: None,
            bus: None,
            sagas: None,
            config: ServerConfig::default(),
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Records into `metrics` (a fresh recorder by default): give the same recorder to a
    /// [`Metered`] store so the app's own appends and reads are counted too.
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Names the store's backend in metrics labels (`sqlite`, `postgres`, ...).
    pub fn backend(mut self, name: &'static str) -> Self {
        self.backend = name;
        self
    }

    /// Sets the configuration.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Serves the app's commands and queries.
    pub fn app(mut self, registry: AppRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// Serves the projections admin routes and their metrics.
    pub fn projections(mut self, projections: impl ProjectionsAdmin + 'static) -> Self {
        self.projections = Some(Arc::new(projections));
        self
    }

    /// Serves the dead-letter and bus routes and their metrics.
    pub fn bus(mut self, bus: impl BusAdmin + 'static) -> Self {
        self.bus = Some(Arc::new(bus));
        self
    }

    /// Serves the saga routes and the saga counts in `/metrics`.
    pub fn sagas(mut self, sagas: impl SagaAdmin + 'static) -> Self {
        self.sagas = Some(Arc::new(sagas));
        self
    }

    /// The router and the OpenAPI document it serves, with `shutdown` as the signal that ends
    /// live subscriptions.
    ///
    /// # Errors
    /// [`ServerError::MetricsPath`] for a metrics path that clashes with a route.
    pub fn into_router(
        self,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(axum::Router, utoipa::openapi::OpenApi), ServerError> {
        let config = self.config.clone();
        let state = AppState(Arc::new(state::Inner {
            store: self.store,
            backend: self.backend,
            registry: self.registry,
            projections: self.projections,
            bus: self.bus,
            sagas: self.sagas,
            metrics: self.metrics,
            metrics_enabled: config.metrics_enabled,
            shutdown,
        }));
        routes::build(state, &config)
    }
}

/// Serves `server` on `listener` until `shutdown` resolves; then stops accepting, ends live
/// subscriptions, waits for in-flight requests (up to the configured shutdown timeout) and
/// returns. Stop the app's runners after it returns: their checkpoints are theirs to save.
///
/// # Errors
/// [`ServerError`] when the router cannot be built or serving fails.
pub async fn run(
    listener: TcpListener,
    server: Server,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let grace = server.config.shutdown_timeout;
    let (stopping, stop_signal) = watch::channel(false);
    let (router, _document) = server.into_router(stop_signal.clone())?;
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        // Receivers may all be gone (no subscription ever opened): nothing to tell then.
        let _ = stopping.send(true);
    };
    let serve = axum::serve(listener, router)
        .with_graceful_shutdown(signal)
        .into_future();
    let mut deadline_signal = stop_signal;
    let deadline = async move {
        let _ = deadline_signal.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = serve => served?,
        () = deadline => tracing::warn!(
            "requests still in flight {grace:?} after the shutdown signal were dropped"
        ),
    }
    Ok(())
}
