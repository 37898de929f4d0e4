//! The route table. Every route goes through utoipa-axum's `routes!`, which registers the
//! handler and its `#[utoipa::path]` document together, so the OpenAPI document cannot miss a
//! route; the metrics route, whose path is configured, is moved in the document to where it
//! is served (or dropped from it when metrics are off).

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use axum::routing::get;
use axum::{Extension, Router};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::ops::Document;
use crate::state::AppState;
use crate::{ServerConfig, ServerError, admin, app, events, ops, sagas};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mammoth",
        description = "Event store, application commands and queries, admin and operations of a mammoth server. Every error is {code, message} JSON."
    ),
    paths(ops::metrics),
    tags(
        (name = "events", description = "The event store: streams, the global log, live subscriptions"),
        (name = "app", description = "The registered application's commands and queries"),
        (name = "admin", description = "Projections, sagas, dead letters, bus"),
        (name = "ops", description = "Health, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

async fn no_route() -> ApiError {
    ApiError::not_found(
        "no_route",
        "no route here; GET /openapi.json lists every route",
    )
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; GET /openapi.json lists the methods of every route",
    )
}

/// Turns any error response that is not JSON yet (axum's own rejections, the timeout's bare
/// 408) into `{code, message}` JSON, so every error a client sees has the same shape.
async fn json_errors(response: axum::response::Response) -> axum::response::Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let (code, message) = match status {
        StatusCode::REQUEST_TIMEOUT => (
            "timeout",
            "the request took longer than http.request_timeout; retry, or raise it in mammoth.tsk"
                .to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "body_too_large",
            "the body is over http.body_limit; send less, or raise it in mammoth.tsk".to_owned(),
        ),
        _ if status.is_server_error() => ("internal", text),
        _ => ("bad_request", text),
    };
    ApiError::new(status, code, message).into_response()
}

pub(crate) fn build(
    state: AppState,
    config: &ServerConfig,
) -> Result<(Router, utoipa::openapi::OpenApi), ServerError> {
    let (router, mut document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(events::append, events::read_stream))
        .routes(routes!(events::read_all))
        .routes(routes!(events::subscribe))
        .routes(routes!(app::list_commands))
        .routes(routes!(app::run_command))
        .routes(routes!(app::list_queries))
        .routes(routes!(app::run_query))
        .routes(routes!(admin::list_projections))
        .routes(routes!(admin::pause_projection))
        .routes(routes!(admin::resume_projection))
        .routes(routes!(admin::rebuild_projection))
        .routes(routes!(admin::verify_projection))
        .routes(routes!(admin::list_dead_letters))
        .routes(routes!(admin::show_dead_letter, admin::discard_dead_letter))
        .routes(routes!(admin::replay_dead_letter))
        .routes(routes!(admin::bus_stats))
        .routes(routes!(sagas::list_sagas))
        .routes(routes!(sagas::show_saga))
        .routes(routes!(ops::health))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::openapi))
        .split_for_parts();
    let metrics_item = document.paths.paths.remove("/metrics");
    let mut router = router;
    if state.0.metrics_enabled {
        let path = &config.metrics_path;
        if !path.starts_with('/') || document.paths.paths.contains_key(path) {
            return Err(ServerError::MetricsPath(path.clone()));
        }
        if let Some(item) = metrics_item {
            document.paths.paths.insert(path.clone(), item);
        }
        router = router.route(path, get(ops::metrics));
    }
    let json = serde_json::to_value(&document).unwrap_or_default();
    let router = router
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(Extension(Document(std::sync::Arc::new(json))))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state);
    Ok((router, document))
}
