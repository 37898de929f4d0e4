//! The admin API: projections (list with state and lag, pause, resume, rebuild, verify), dead
//! letters (list, show, replay, discard) and bus stats. The server reaches them through two
//! small object-safe traits, [`ProjectionsAdmin`] and [`BusAdmin`], so any read-model store
//! and any [`MessageBus`] can sit behind the same routes; a server without them answers 404
//! with a code saying which one is not configured.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use mammoth_core::bus::{
    ConsumerGroup, DeadLetter, DeadLetterFilter, MessageBus, Topic, TopicStats,
};
use mammoth_core::{EventStore as _, ProjectionState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::store::BoxFuture;

/// One projection as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProjectionRow {
    /// Its name.
    pub name: String,
    /// The read model's version (blue/green rebuilds add one; 0 before the first run).
    pub version: u32,
    /// True for the version queries read.
    pub active: bool,
    /// Running, paused, rebuilding, failed (at a position, with the error) or stopped.
    #[schema(value_type = Object)]
    pub state: ProjectionState,
    /// The last position applied.
    pub checkpoint: u64,
    /// The head of the global log.
    pub head: u64,
    /// Head minus checkpoint.
    pub lag: u64,
    /// A pause was asked for and not yet taken.
    pub pause_requested: bool,
}

/// Why a projection admin call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No projection has this name.
    #[error("no projection named {name:?}; known: {known}")]
    UnknownProjection {
        /// The name asked for.
        name: String,
        /// The names that exist, comma-separated.
        known: String,
    },
    /// The operation ran and failed.
    #[error("{0}")]
    Failed(String),
}

impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> Self {
        let message = error.to_string();
        match error {
            AdminError::UnknownProjection { known, .. } => {
                ApiError::not_found("unknown_projection", message)
                    .with_details(serde_json::json!({ "known": known }))
            }
            AdminError::Failed(_) => ApiError::internal(message),
        }
    }
}

/// The projections a server can operate. `head` is the global log's head, for the lag.
pub trait ProjectionsAdmin: Send + Sync {
    /// Every projection (each version) with its state, checkpoint and lag.
    fn list(&self, head: u64) -> BoxFuture<'_, Result<Vec<ProjectionRow>, AdminError>>;
    /// Asks `name`'s runner to pause after its current batch.
    fn pause<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), AdminError>>;
    /// Clears a pause, or makes a failed projection retry from its checkpoint.
    fn resume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), AdminError>>;
    /// Builds a new version of `name` beside the serving one and switches when caught up.
    /// Answers what the rebuild reports (version, checkpoint reached).
    fn rebuild<'a>(&'a self, name: &'a str)
    -> BoxFuture<'a, Result<serde_json::Value, AdminError>>;
    /// Rebuilds `name` into a shadow and diffs it with the live read model.
    fn verify<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<serde_json::Value, AdminError>>;
}

/// The message bus operations the admin API and `/metrics` need, object-safe.
pub trait BusAdmin: Send + Sync {
    /// See [`MessageBus::dead_letters`].
    fn dead_letters<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>, mammoth_core::bus::BusError>>;
    /// See [`MessageBus::replay_dead_letters`].
    fn replay<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
    ) -> BoxFuture<'a, Result<u64, mammoth_core::bus::BusError>>;
    /// See [`MessageBus::discard_dead_letters`].
    fn discard<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
    ) -> BoxFuture<'a, Result<u64, mammoth_core::bus::BusError>>;
    /// See [`MessageBus::stats`].
    fn stats(&self) -> BoxFuture<'_, Result<Vec<TopicStats>, mammoth_core::bus::BusError>>;
}

impl<B: MessageBus> BusAdmin for B {
    fn dead_letters<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>, mammoth_core::bus::BusError>> {
        Box::pin(MessageBus::dead_letters(self, filter, limit))
    }
    fn replay<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
    ) -> BoxFuture<'a, Result<u64, mammoth_core::bus::BusError>> {
        Box::pin(self.replay_dead_letters(filter))
    }
    fn discard<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
    ) -> BoxFuture<'a, Result<u64, mammoth_core::bus::BusError>> {
        Box::pin(self.discard_dead_letters(filter))
    }
    fn stats(&self) -> BoxFuture<'_, Result<Vec<TopicStats>, mammoth_core::bus::BusError>> {
        Box::pin(MessageBus::stats(self))
    }
}

fn projections(state: &AppState) -> Result<&Arc<dyn ProjectionsAdmin>, ApiError> {
    state.projections().ok_or_else(|| {
        ApiError::not_found(
            "projections_not_configured",
            "this server runs no projections; register them with Server::projections",
        )
    })
}

fn bus(state: &AppState) -> Result<&Arc<dyn BusAdmin>, ApiError> {
    state.bus().ok_or_else(|| {
        ApiError::not_found(
            "bus_not_configured",
            "this server has no message bus; register one with Server::bus",
        )
    })
}

/// What a pause or resume did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Requested {
    /// The projection.
    pub name: String,
    /// `pause` or `resume`.
    pub requested: String,
}

/// Lists the projections with their state, checkpoint and lag.
#[utoipa::path(get, path = "/admin/projections", tag = "admin",
    responses(
        (status = 200, description = "Every projection", body = Vec<ProjectionRow>),
        (status = 404, description = "No projections configured", body = ErrorBody),
    ))]
pub async fn list_projections(
    State(state): State<AppState>,
) -> Result<Json<Vec<ProjectionRow>>, ApiError> {
    let head = state.store().head_position().await?;
    Ok(Json(projections(&state)?.list(head).await?))
}

/// Asks a projection to pause after its current batch.
#[utoipa::path(post, path = "/admin/projections/{name}/pause", tag = "admin",
    params(("name" = String, Path, description = "The projection")),
    responses(
        (status = 202, description = "Pause requested", body = Requested),
        (status = 404, description = "Unknown projection", body = ErrorBody),
    ))]
pub async fn pause_projection(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Requested>), ApiError> {
    projections(&state)?.pause(&name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Requested {
            name,
            requested: "pause".to_owned(),
        }),
    ))
}

/// Clears a pause, or makes a failed projection retry from its checkpoint.
#[utoipa::path(post, path = "/admin/projections/{name}/resume", tag = "admin",
    params(("name" = String, Path, description = "The projection")),
    responses(
        (status = 202, description = "Resume requested", body = Requested),
        (status = 404, description = "Unknown projection", body = ErrorBody),
    ))]
pub async fn resume_projection(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Requested>), ApiError> {
    projections(&state)?.resume(&name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Requested {
            name,
            requested: "resume".to_owned(),
        }),
    ))
}

/// Rebuilds a projection blue/green: a new version beside the serving one, switched to when
/// caught up. Answers when done.
#[utoipa::path(post, path = "/admin/projections/{name}/rebuild", tag = "admin",
    params(("name" = String, Path, description = "The projection")),
    responses(
        (status = 200, description = "Rebuilt", body = Object),
        (status = 404, description = "Unknown projection", body = ErrorBody),
    ))]
pub async fn rebuild_projection(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(projections(&state)?.rebuild(&name).await?))
}

/// Rebuilds a projection into a shadow and diffs it with the live read model.
#[utoipa::path(post, path = "/admin/projections/{name}/verify", tag = "admin",
    params(("name" = String, Path, description = "The projection")),
    responses(
        (status = 200, description = "The verify report (clean or with differences)", body = Object),
        (status = 404, description = "Unknown projection", body = ErrorBody),
    ))]
pub async fn verify_projection(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(projections(&state)?.verify(&name).await?))
}

/// A dead letter as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterView {
    /// Its id in the dead-letter queue.
    pub id: String,
    /// The topic.
    pub topic: String,
    /// The consumer group that failed it.
    pub group: String,
    /// The message's id.
    pub message_id: String,
    /// The message's ordering key.
    pub key: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    pub last_error: String,
    /// First failure, microseconds since the Unix epoch.
    pub first_failed_at_micros: i64,
    /// Last failure, microseconds since the Unix epoch.
    pub last_failed_at_micros: i64,
    /// The message's headers.
    pub headers: std::collections::BTreeMap<String, String>,
    /// The payload as text.
    pub payload: String,
}

impl From<&DeadLetter> for DeadLetterView {
    fn from(letter: &DeadLetter) -> Self {
        Self {
            id: letter.id.clone(),
            topic: letter.message.topic.to_string(),
            group: letter.group.to_string(),
            message_id: letter.message.id.to_string(),
            key: letter.message.key.clone(),
            attempts: letter.attempts,
            last_error: letter.last_error.clone(),
            first_failed_at_micros: letter.first_failed_at_micros,
            last_failed_at_micros: letter.last_failed_at_micros,
            headers: letter.message.headers.clone(),
            payload: letter.message.payload_text(),
        }
    }
}

/// Which dead letters to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterParams {
    /// Only this topic.
    pub topic: Option<String>,
    /// Only this consumer group.
    pub group: Option<String>,
    /// Only letters whose last error contains this text.
    pub error: Option<String>,
    /// At most this many (default 100, at most 1,000).
    pub limit: Option<usize>,
}

/// How many dead letters an operation touched.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Affected {
    /// The count.
    pub count: u64,
}

/// Lists dead letters, oldest first.
#[utoipa::path(get, path = "/admin/dead-letters", tag = "admin", params(DeadLetterParams),
    responses(
        (status = 200, description = "Dead letters", body = Vec<DeadLetterView>),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 404, description = "No bus configured", body = ErrorBody),
    ))]
pub async fn list_dead_letters(
    State(state): State<AppState>,
    params: Result<Query<DeadLetterParams>, QueryRejection>,
) -> Result<Json<Vec<DeadLetterView>>, ApiError> {
    let Query(params) = params?;
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > 1_000 {
        return Err(ApiError::bad_request(
            "invalid_read",
            "limit must be between 1 and 1000",
        ));
    }
    let filter = DeadLetterFilter {
        id: None,
        topic: params.topic.map(Topic::new).transpose()?,
        group: params.group.map(ConsumerGroup::new).transpose()?,
        error_contains: params.error,
    };
    let letters = bus(&state)?.dead_letters(&filter, limit).await?;
    Ok(Json(letters.iter().map(DeadLetterView::from).collect()))
}

async fn one(state: &AppState, id: &str) -> Result<DeadLetterView, ApiError> {
    let letters = bus(state)?
        .dead_letters(&DeadLetterFilter::id(id.to_owned()), 1)
        .await?;
    letters.first().map(DeadLetterView::from).ok_or_else(|| {
        ApiError::not_found(
            "unknown_dead_letter",
            format!("no dead letter {id:?}; GET /admin/dead-letters lists the ids"),
        )
    })
}

/// Shows one dead letter whole.
#[utoipa::path(get, path = "/admin/dead-letters/{id}", tag = "admin",
    params(("id" = String, Path, description = "The dead letter's id")),
    responses(
        (status = 200, description = "The dead letter", body = DeadLetterView),
        (status = 404, description = "No such dead letter", body = ErrorBody),
    ))]
pub async fn show_dead_letter(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeadLetterView>, ApiError> {
    Ok(Json(one(&state, &id).await?))
}

/// Delivers one dead letter again to the group that failed it.
#[utoipa::path(post, path = "/admin/dead-letters/{id}/replay", tag = "admin",
    params(("id" = String, Path, description = "The dead letter's id")),
    responses(
        (status = 200, description = "Replayed", body = Affected),
        (status = 404, description = "No such dead letter", body = ErrorBody),
    ))]
pub async fn replay_dead_letter(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Affected>, ApiError> {
    one(&state, &id).await?;
    let count = bus(&state)?.replay(&DeadLetterFilter::id(id)).await?;
    Ok(Json(Affected { count }))
}

/// Removes one dead letter for good.
#[utoipa::path(delete, path = "/admin/dead-letters/{id}", tag = "admin",
    params(("id" = String, Path, description = "The dead letter's id")),
    responses(
        (status = 200, description = "Discarded", body = Affected),
        (status = 404, description = "No such dead letter", body = ErrorBody),
    ))]
pub async fn discard_dead_letter(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Affected>, ApiError> {
    one(&state, &id).await?;
    let count = bus(&state)?.discard(&DeadLetterFilter::id(id)).await?;
    Ok(Json(Affected { count }))
}

/// One row of the bus stats.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TopicStatsView {
    /// The topic.
    pub topic: String,
    /// The group, null for a topic nobody subscribes to.
    pub group: Option<String>,
    /// Messages held.
    pub messages: u64,
    /// Waiting for the group.
    pub depth: u64,
    /// Delivered, not yet acknowledged.
    pub in_flight: u64,
    /// Waiting for a retry.
    pub retrying: u64,
    /// In the dead-letter queue.
    pub dead_letters: u64,
}

/// Depth, in flight, retrying and dead letters per topic and consumer group.
#[utoipa::path(get, path = "/admin/bus/stats", tag = "admin",
    responses(
        (status = 200, description = "Per topic and group", body = Vec<TopicStatsView>),
        (status = 404, description = "No bus configured", body = ErrorBody),
    ))]
pub async fn bus_stats(
    State(state): State<AppState>,
) -> Result<Json<Vec<TopicStatsView>>, ApiError> {
    let stats = bus(&state)?.stats().await?;
    Ok(Json(
        stats
            .into_iter()
            .map(|row| TopicStatsView {
                topic: row.topic,
                group: row.group,
                messages: row.messages,
                depth: row.depth,
                in_flight: row.in_flight,
                retrying: row.retrying,
                dead_letters: row.dead_letters,
            })
            .collect(),
    ))
}
