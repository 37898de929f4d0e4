//! `mammoth serve`: the HTTP API (mammoth-server) over the configured store, with everything
//! the binary's [`App`] registers running in this process — for the `mammoth` binary the
//! built-in order app: its `orders` projection, the order saga, the outbox relay and the
//! inventory, payment and order services as workers on the configured bus (embedded, NATS or
//! Redis) — plus the saga index (`/admin/sagas`) and the bus's dead letters and stats under
//! `/admin`. SIGTERM or Ctrl-C stops accepting, lets requests in flight finish, then stops the
//! workers, relay, sagas and projections at a batch boundary (checkpoints saved) and closes
//! the store.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use mammoth_server::{Metered, Metrics, Server, ServerConfig};

use crate::app::{App, Started};
use crate::cli::GlobalOptions;
use crate::projections::AppProjections;
use crate::sagas::{AppSagas, SagaIndexDb};
use crate::settings::{self, Settings};
use crate::store::{self, Access};
use crate::{bus_backend, output};

/// Arguments of `mammoth serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// `host:port` to listen on, instead of `http.listen` (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
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
/// Configuration, store, bus, read-model and bind failures; a server failure; a part of the
/// app that stopped with an error.
pub async fn run(args: ServeArgs, global: &GlobalOptions, app: &App) -> anyhow::Result<()> {
    let settings = settings::load(global.config.as_deref())?;
    let listen = args
        .listen
        .unwrap_or_else(|| settings.config.http.listen.clone());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (http.listen or --listen)"))?;
    let out = output::Output::new(global.json);
    serve(app, settings, listener, shutdown_signal(), Some(out)).await
}

/// Serves `app` on `listener` until `shutdown` resolves; `out` (when given) gets the startup
/// lines.
///
/// # Errors
/// As [`run`], without the bind.
pub(crate) async fn serve(
    app: &App,
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    out: Option<output::Output>,
) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let store = store::open(&settings.store, Access::ReadWrite).await?;
    let backend = store.backend_name();
    let (bus, bus_note) = match bus_backend::open_on(&settings, &store, false).await {
        Ok(bus) => {
            let label = bus.label();
            (
                Some(bus),
                format!("{label} bus: /admin/dead-letters, /admin/bus/stats"),
            )
        }
        Err(error) => (None, format!("no bus ({error:#})")),
    };
    let saga_index = match SagaIndexDb::open(&settings).await {
        Ok(index) => index,
        Err(error) => {
            store.close().await?;
            return Err(error.context("opening the saga index ([projections.saga_index])"));
        }
    };
    // One recorder for the HTTP routes and the app's own store traffic.
    let recorder = Arc::new(Metrics::new());
    let metered = Metered::new(store.clone(), backend, Arc::clone(&recorder));
    let mut started = match app.start(Arc::clone(&settings), metered, bus.clone()).await {
        Ok(started) => started,
        Err(error) => {
            store.close().await?;
            return Err(error);
        }
    };
    let projections = AppProjections::new(store.clone(), std::mem::take(&mut started.known));
    let config = ServerConfig::from_config(&settings.config);
    let metrics = config.metrics_enabled.then(|| config.metrics_path.clone());
    let mut server = Server::new(store.clone())
        .backend(backend)
        .metrics(recorder)
        .config(config)
        .app(std::mem::take(&mut started.registry))
        .projections(projections)
        .sagas(AppSagas::new(store.clone(), saga_index));
    if let Some(bus) = bus {
        server = server.bus(bus);
    }
    if let Some(mut out) = out {
        let announced = announce(
            &mut out, app, &listener, backend, &bus_note, &started, metrics,
        );
        if let Err(error) = announced {
            let _ = started.stop().await;
            store.close().await?;
            return Err(error);
        }
    }
    let served = mammoth_server::run(listener, server, shutdown).await;
    // The server is done: stop the workers, relay, sagas and projections at a batch boundary
    // (checkpoints saved), then close the store, whatever the server's outcome.
    tracing::info!("HTTP server stopped; stopping the app");
    let stopped = started.stop().await;
    tracing::info!("app stopped; closing the store");
    store.close().await?;
    tracing::info!("store closed");
    served?;
    stopped
}

/// Prints where the server listens and what runs.
fn announce(
    out: &mut output::Output,
    app: &App,
    listener: &tokio::net::TcpListener,
    backend: &str,
    bus_note: &str,
    started: &Started,
    metrics: Option<String>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    if out.is_json() {
        out.json_document(&serde_json::json!({
            "listening": format!("http://{addr}"),
            "backend": backend,
            "app": app.name(),
            "running": started.labels(),
            "openapi": format!("http://{addr}/openapi.json"),
            "metrics": metrics.as_ref().map(|path| format!("http://{addr}{path}")),
        }))?;
    } else {
        out.line(format!(
            "mammoth serve: app {} listening on http://{addr} ({backend} store; {bus_note})",
            app.name()
        ))?;
        if started.labels().is_empty() {
            out.line("  nothing else runs in this process")?;
        } else {
            out.line(format!("  running: {}", started.labels().join(", ")))?;
        }
        out.line(format!(
            "  API: http://{addr}/openapi.json   health: /health /ready   metrics: {}",
            metrics.as_deref().unwrap_or("off")
        ))?;
        out.line("  stop with Ctrl-C or SIGTERM")?;
    }
    out.flush()
}
