//! `mammoth serve`: the HTTP API (mammoth-server) over the configured store, with the
//! built-in app (examples/orders) registered, its `orders` projection running in this process,
//! the saga index (`/admin/sagas`) and the embedded bus's dead letters and stats under `/admin`. SIGTERM or Ctrl-C stops
//! accepting, lets requests in flight finish, then stops the projection at a batch boundary
//! (its checkpoint is committed with its rows) and closes the store.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use mammoth_example_orders::app::OrdersApp;
use mammoth_example_orders::projection::{self as orders, OrderProjection, OrderSummaries};
use mammoth_runtime::QueryBus;
use mammoth_runtime::projection::{OnFailure, ProjectionOptions, ProjectionRunner};
use mammoth_server::{Server, ServerConfig, SqliteProjections, SqliteReadModelEntry, SqliteSagas};
use mammoth_sqlite::SqliteReadModel;
use mammoth_sqlite::read_model::DEFAULT_READ_MODEL_PATH;

use crate::cli::GlobalOptions;
use crate::settings::{self, Settings};
use crate::store::{self, Access};
use crate::{bus, output};

/// Arguments of `mammoth serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// `host:port` to listen on, instead of `http.listen` (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// The read-model file of projection `name`: `[projections.NAME] read_dsn`, else the default.
fn read_model_path(settings: &Settings, name: &str) -> PathBuf {
    settings
        .config
        .projections
        .get(name)
        .and_then(|config| config.read_dsn.as_ref())
        .map(|dsn| {
            let dsn = dsn.expose();
            PathBuf::from(
                dsn.strip_prefix("sqlite://")
                    .or_else(|| dsn.strip_prefix("sqlite:"))
                    .unwrap_or(dsn),
            )
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_READ_MODEL_PATH))
}

/// The `orders` projection as configured: read-model file and runner options.
fn orders_projection(settings: &Settings) -> (PathBuf, ProjectionOptions) {
    let config = settings.config.projections.get(orders::NAME);
    let path = read_model_path(settings, orders::NAME);
    let batch = config.map_or(1_000, |config| config.batch_size.max(1) as usize);
    let on_failure = match config.map(|config| config.on_failure).unwrap_or_default() {
        mammoth_config::OnFailure::Stop => OnFailure::Stop,
        mammoth_config::OnFailure::Park => OnFailure::Park,
    };
    let options = ProjectionOptions::default()
        .with_batch_size(batch)
        .on_failure(on_failure);
    (path, options)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C still stops");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `mammoth serve` until SIGTERM or Ctrl-C.
///
/// # Errors
/// Configuration, store, read-model and bind failures; a server failure.
pub async fn run(args: ServeArgs, global: &GlobalOptions) -> anyhow::Result<()> {
    let settings = settings::load(global.config.as_deref())?;
    let store = store::open(&settings.store, Access::ReadWrite).await?;
    let backend = store.backend_name();
    let (path, options) = orders_projection(&settings);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let target = SqliteReadModel::open(&path, OrderProjection::new())
        .with_context(|| format!("opening the read model {}", path.display()))?;
    let runner = ProjectionRunner::new(store.clone(), target, options).spawn();
    let read_model = OrderSummaries::new(&path)
        .register(QueryBus::builder(), runner.progress())
        .build();
    let app = OrdersApp::new(store.clone());
    let registry = mammoth_server::orders::registry(&app, Some(read_model));
    let projections = SqliteProjections::new(store.clone()).with(SqliteReadModelEntry::new(
        orders::NAME,
        orders::TABLES,
        &path,
        options,
        OrderProjection::new,
    ));
    let config = ServerConfig::from_config(&settings.config);
    let metrics = config.metrics_enabled.then(|| config.metrics_path.clone());
    let mut server = Server::new(store.clone())
        .backend(backend)
        .config(config)
        .app(registry)
        .projections(projections)
        .sagas(SqliteSagas::new(
            store.clone(),
            read_model_path(&settings, mammoth_sqlite::saga::SAGA_INDEX),
        ));
    let bus_note = match bus::open(&settings, false) {
        Ok(bus) => {
            server = server.bus(bus);
            "embedded bus: /admin/dead-letters, /admin/bus/stats".to_owned()
        }
        Err(error) => format!("no bus routes ({error})"),
    };
    let listen = args
        .listen
        .unwrap_or_else(|| settings.config.http.listen.clone());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (http.listen or --listen)"))?;
    let addr = listener.local_addr()?;
    let mut out = output::Output::new(global.json);
    if out.is_json() {
        out.json_document(&serde_json::json!({
            "listening": format!("http://{addr}"),
            "backend": backend,
            "openapi": format!("http://{addr}/openapi.json"),
            "metrics": metrics.as_ref().map(|path| format!("http://{addr}{path}")),
        }))?;
    } else {
        out.line(format!(
            "mammoth serve: listening on http://{addr} ({backend} store; projection orders running; {bus_note})"
        ))?;
        out.line(format!(
            "  API: http://{addr}/openapi.json   health: /health /ready   metrics: {}",
            metrics.as_deref().unwrap_or("off")
        ))?;
        out.line("  stop with Ctrl-C or SIGTERM")?;
    }
    out.flush()?;
    let served = mammoth_server::run(listener, server, shutdown_signal()).await;
    // The server is done: stop the projection at a batch boundary (its checkpoint is saved
    // with its rows), then close the store, whatever the server's outcome.
    tracing::info!("HTTP server stopped; stopping the orders projection");
    let stopped = runner.stop().await;
    tracing::info!("projection stopped; closing the store");
    store.close().await?;
    tracing::info!("store closed");
    served?;
    stopped.context("stopping the orders projection")?;
    Ok(())
}
