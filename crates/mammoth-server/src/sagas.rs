//! Saga admin: list sagas by type and status (from the saga index, a SQL read model caught up
//! from the log first), show one saga's timeline (its `$saga-<type>-<id>` stream), and the
//! per-type, per-status counts `/metrics` exports. [`SqliteSagas`] keeps the index in a
//! SQLite read-model file, as `mammoth sagas` does.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use mammoth_core::saga::{SagaStatus, saga_stream};
use mammoth_core::{Direction, EventStore};
use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
use mammoth_sqlite::SqliteReadModel;
use mammoth_sqlite::saga::{SagaCount, SagaIndex, SagaRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::admin::AdminError;
use crate::error::{ApiError, ErrorBody};
use crate::events::EventView;
use crate::state::AppState;
use crate::store::{BoxFuture, SharedStore};

/// The saga index a server reads.
pub trait SagaAdmin: Send + Sync {
    /// Sagas newest first, optionally of one type and one status, at most `limit`.
    fn list(
        &self,
        saga_type: Option<String>,
        status: Option<SagaStatus>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<SagaRow>, AdminError>>;
    /// How many sagas of each type are in each status.
    fn counts(&self) -> BoxFuture<'_, Result<Vec<SagaCount>, AdminError>>;
}

/// The saga index in a SQLite read-model file, caught up from the log before each read.
pub struct SqliteSagas {
    store: SharedStore,
    path: PathBuf,
    // One catch-up at a time: concurrent requests would only race for the same batches.
    lock: tokio::sync::Mutex<()>,
}

impl SqliteSagas {
    /// The index in the file at `path`, built from `store`.
    pub fn new<S: EventStore + 'static>(store: S, path: impl Into<PathBuf>) -> Self {
        Self {
            store: SharedStore(Arc::new(store)),
            path: path.into(),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    async fn caught_up(&self) -> Result<rusqlite::Connection, AdminError> {
        let failed =
            |error: &dyn std::fmt::Display| AdminError::Failed(format!("saga index: {error}"));
        let _one = self.lock.lock().await;
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| failed(&e))?;
        }
        let target = SqliteReadModel::open(&self.path, SagaIndex).map_err(|e| failed(&e))?;
        let mut runner =
            ProjectionRunner::new(self.store.clone(), target, ProjectionOptions::default());
        runner
            .catch_up(None, |_, _| {})
            .await
            .map_err(|e| failed(&e))?;
        rusqlite::Connection::open(&self.path).map_err(|e| failed(&e))
    }
}

impl SagaAdmin for SqliteSagas {
    fn list(
        &self,
        saga_type: Option<String>,
        status: Option<SagaStatus>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<SagaRow>, AdminError>> {
        Box::pin(async move {
            let conn = self.caught_up().await?;
            mammoth_sqlite::saga::list(&conn, saga_type.as_deref(), status, limit)
                .map_err(|error| AdminError::Failed(format!("saga index: {error}")))
        })
    }

    fn counts(&self) -> BoxFuture<'_, Result<Vec<SagaCount>, AdminError>> {
        Box::pin(async move {
            let conn = self.caught_up().await?;
            mammoth_sqlite::saga::counts(&conn)
                .map_err(|error| AdminError::Failed(format!("saga index: {error}")))
        })
    }
}

/// One saga as the admin API lists it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SagaView {
    /// The saga type.
    pub saga_type: String,
    /// The saga id.
    pub saga_id: String,
    /// running, compensating, completed, compensated or failed.
    pub status: String,
    /// Why it is compensating, compensated or failed.
    pub reason: Option<String>,
    /// Its first step, microseconds since the Unix epoch.
    pub started_micros: i64,
    /// Its last step.
    pub updated_micros: i64,
    /// Steps taken.
    pub steps: u64,
}

/// Which sagas to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SagaParams {
    /// Only this saga type, such as `order`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub saga_type: Option<String>,
    /// Only this status: running, compensating, completed, compensated, failed.
    pub status: Option<String>,
    /// At most this many (default 100, at most 1,000).
    pub limit: Option<usize>,
}

fn sagas(state: &AppState) -> Result<&Arc<dyn SagaAdmin>, ApiError> {
    state.sagas().ok_or_else(|| {
        ApiError::not_found(
            "sagas_not_configured",
            "this server has no saga index; register one with Server::sagas",
        )
    })
}

/// Lists sagas newest first, by type and status.
#[utoipa::path(get, path = "/admin/sagas", tag = "admin", params(SagaParams),
    responses(
        (status = 200, description = "Sagas", body = Vec<SagaView>),
        (status = 400, description = "Invalid status or limit", body = ErrorBody),
        (status = 404, description = "No saga index configured", body = ErrorBody),
    ))]
pub async fn list_sagas(
    State(state): State<AppState>,
    params: Result<Query<SagaParams>, QueryRejection>,
) -> Result<Json<Vec<SagaView>>, ApiError> {
    let Query(params) = params?;
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > 1_000 {
        return Err(ApiError::bad_request(
            "invalid_read",
            "limit must be between 1 and 1000",
        ));
    }
    let status = params
        .status
        .as_deref()
        .map(|text| {
            text.parse::<SagaStatus>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_status",
                    format!("status {text:?} is not valid; use running, compensating, completed, compensated or failed"),
                )
            })
        })
        .transpose()?;
    let rows = sagas(&state)?.list(params.saga_type, status, limit).await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| SagaView {
                saga_type: row.saga_type,
                saga_id: row.saga_id,
                status: row.status,
                reason: row.reason,
                started_micros: row.started_micros,
                updated_micros: row.updated_micros,
                steps: row.steps,
            })
            .collect(),
    ))
}

/// One saga's timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct SagaTimeline {
    /// The saga's stream, `$saga-<type>-<id>`.
    pub stream_id: String,
    /// Every step it recorded, oldest first: inputs, commands, compensations, deadlines,
    /// status changes.
    pub events: Vec<EventView>,
}

/// Shows one saga's timeline: the events of its stream, oldest first (up to 1,000).
#[utoipa::path(get, path = "/admin/sagas/{saga_type}/{saga_id}", tag = "admin",
    params(
        ("saga_type" = String, Path, description = "The saga type, such as order"),
        ("saga_id" = String, Path, description = "The saga id"),
    ),
    responses(
        (status = 200, description = "The timeline", body = SagaTimeline),
        (status = 404, description = "No such saga", body = ErrorBody),
    ))]
pub async fn show_saga(
    State(state): State<AppState>,
    Path((saga_type, saga_id)): Path<(String, String)>,
) -> Result<Json<SagaTimeline>, ApiError> {
    let stream = saga_stream(&saga_type, &saga_id)?;
    let events = state
        .store()
        .read_stream(&stream, Direction::Forward, None, 1_000)
        .await?;
    if events.is_empty() {
        return Err(ApiError::not_found(
            "unknown_saga",
            format!(
                "no saga {saga_type}-{saga_id} (stream {stream} is empty); GET /admin/sagas lists them"
            ),
        ));
    }
    Ok(Json(SagaTimeline {
        stream_id: stream.to_string(),
        events: events.into_iter().map(EventView::from).collect(),
    }))
}
