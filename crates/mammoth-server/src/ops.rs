//! Operations routes: `/health` (the process is up), `/ready` (the store answers and no
//! projection has failed), the Prometheus metrics and the OpenAPI document.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mammoth_core::{EventStore as _, ProjectionState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::state::AppState;

/// What `/health` and `/ready` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `up`, `ready` or `not_ready`.
    pub status: String,
    /// Why the server is not ready, empty when it is.
    pub problems: Vec<String>,
}

/// The process is up and answering.
#[utoipa::path(get, path = "/health", tag = "ops",
    responses((status = 200, description = "Up", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "up".to_owned(),
        problems: Vec::new(),
    })
}

/// The store answers and no projection has failed: send traffic here.
#[utoipa::path(get, path = "/ready", tag = "ops",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready; `problems` says why", body = Health),
    ))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let mut problems = Vec::new();
    match state.store().head_position().await {
        Err(error) => problems.push(format!("the event store does not answer: {error}")),
        Ok(head) => {
            if let Some(projections) = state.projections() {
                match projections.list(head).await {
                    Err(error) => problems.push(format!("projections: {error}")),
                    Ok(rows) => {
                        for row in rows.iter().filter(|row| row.active || row.version == 0) {
                            if let ProjectionState::Failed {
                                position, error, ..
                            } = &row.state
                            {
                                problems.push(format!(
                                    "projection {} failed at position {position}: {error}",
                                    row.name
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    let (status, word) = if problems.is_empty() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    };
    (
        status,
        Json(Health {
            status: word.to_owned(),
            problems,
        }),
    )
}

/// The metrics in the Prometheus text format: appends and append latency per backend, reads,
/// command and query latency per name, projection lag and state, sagas per type and status,
/// bus depth, retries and dead letters. Served at `metrics.path` (default `/metrics`).
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // Gauges are read now; a part that fails to answer is logged and left as it was.
    match state.store().head_position().await {
        Ok(head) => {
            state.metrics().head(state.backend(), head);
            if let Some(projections) = state.projections() {
                match projections.list(head).await {
                    Ok(rows) => state.metrics().projections(&rows),
                    Err(error) => tracing::warn!(%error, "metrics: projections did not answer"),
                }
            }
        }
        Err(error) => tracing::warn!(%error, "metrics: the store did not answer"),
    }
    if let Some(sagas) = state.sagas() {
        match sagas.counts().await {
            Ok(counts) => state.metrics().sagas(&counts),
            Err(error) => tracing::warn!(%error, "metrics: the saga index did not answer"),
        }
    }
    if let Some(bus) = state.bus() {
        match bus.stats().await {
            Ok(stats) => state.metrics().bus(&stats),
            Err(error) => tracing::warn!(%error, "metrics: the bus did not answer"),
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
        .into_response()
}

/// The OpenAPI document as JSON, handed to [`openapi`] once the router is built.
#[derive(Clone, Debug)]
pub struct Document(pub Arc<serde_json::Value>);

/// This document: every route the server serves, with its parameters, bodies and responses.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI 3.1", body = Object)))]
pub async fn openapi(Extension(document): Extension<Document>) -> Json<serde_json::Value> {
    Json(document.0.as_ref().clone())
}
