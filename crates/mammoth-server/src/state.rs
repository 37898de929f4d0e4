//! [`AppState`]: what every handler shares — the erased store, the app's registry, the admin
//! backends, the metrics recorder and the shutdown signal.

use std::sync::Arc;

use tokio::sync::watch;

use crate::admin::{BusAdmin, ProjectionsAdmin};
use crate::app::AppRegistry;
use crate::metrics::Metrics;
use crate::store::SharedStore;

pub(crate) struct Inner {
    pub(crate) store: SharedStore,
    pub(crate) backend: &'static str,
    pub(crate) registry: AppRegistry,
    pub(crate) projections: Option<Arc<dyn ProjectionsAdmin>>,
    pub(crate) bus: Option<Arc<dyn BusAdmin>>,
    pub(crate) sagas: Option<Arc<dyn crate::sagas::SagaAdmin>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) metrics_enabled: bool,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// The handlers' shared state (cheap to clone).
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

impl AppState {
    pub(crate) fn store(&self) -> &SharedStore {
        &self.0.store
    }

    pub(crate) fn shared_store(&self) -> SharedStore {
        self.0.store.clone()
    }

    pub(crate) fn backend(&self) -> &'static str {
        self.0.backend
    }

    pub(crate) fn registry(&self) -> &AppRegistry {
        &self.0.registry
    }

    pub(crate) fn projections(&self) -> Option<&Arc<dyn ProjectionsAdmin>> {
        self.0.projections.as_ref()
    }

    pub(crate) fn bus(&self) -> Option<&Arc<dyn BusAdmin>> {
        self.0.bus.as_ref()
    }

    pub(crate) fn sagas(&self) -> Option<&Arc<dyn crate::sagas::SagaAdmin>> {
        self.0.sagas.as_ref()
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// Resolves when the server starts shutting down; long-lived responses (SSE) end on it so
    /// the graceful shutdown does not wait for them forever.
    pub(crate) fn shutdown_signal(
        &self,
    ) -> impl std::future::Future<Output = ()> + Send + 'static + use<> {
        let mut shutdown = self.0.shutdown.clone();
        async move {
            // An error means the sender is gone: the server is gone too.
            let _ = shutdown.wait_for(|stopping| *stopping).await;
        }
    }
}
