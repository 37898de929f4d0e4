//! The event store API: append to a stream, read a stream, read the global log, and follow
//! the global log (or some categories and types of it) live over Server-Sent Events.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::{Stream, StreamExt as _, stream};
use mammoth_core::{
    AppendResult, Direction, EventFilter, EventStore as _, ExpectedVersion, Metadata, NewEvent,
    Position, RecordedEvent, StreamId, Subscription,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The most events one read returns.
pub const MAX_READ_LIMIT: usize = 1_000;
/// Events per read when the client names no limit.
pub const DEFAULT_READ_LIMIT: usize = 100;
/// The header that may carry an append's expected version.
pub const EXPECTED_VERSION_HEADER: &str = "expected-version";

/// One event to append.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// The event's id; give one to make a retried append idempotent. A UUID v7 is assigned
    /// when it is missing.
    pub id: Option<Uuid>,
    /// The event type, such as `OrderCreated`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The payload: a JSON object.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// The payload's schema version (default 1).
    pub schema_version: Option<u32>,
    /// Correlation id, causation id, actor, tenant, trace context and free fields.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// The body of an append.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendRequest {
    /// `"any"`, `"no_stream"`, `"stream_exists"` or a version number. May be given instead
    /// as the `Expected-Version` header; default `"any"`.
    #[schema(value_type = Option<Object>)]
    pub expected_version: Option<serde_json::Value>,
    /// The events, appended atomically: all or none.
    pub events: Vec<EventInput>,
}

/// What an append wrote.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AppendResponse {
    /// The stream appended to.
    pub stream_id: String,
    /// The stream version of the first event written.
    pub first_version: u64,
    /// The stream's version after the append.
    pub last_version: u64,
    /// The global position of the first event written.
    pub first_position: u64,
    /// The global position of the last event written: pass it as `min_position` to a query
    /// to read your own write.
    pub last_position: u64,
}

/// An event as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// The event's id.
    pub id: Uuid,
    /// Its stream.
    pub stream_id: String,
    /// Its version in the stream (first is 1).
    pub version: u64,
    /// Its position in the global log (first is 1).
    pub position: u64,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The payload's schema version.
    pub schema_version: u32,
    /// The payload, as stored.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// The metadata.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// The commit time, RFC 3339.
    pub recorded_at: String,
}

impl From<RecordedEvent> for EventView {
    fn from(event: RecordedEvent) -> Self {
        let recorded_at = event.recorded_at_rfc3339();
        let metadata = serde_json::to_value(&event.metadata).unwrap_or_default();
        let data = RawValue::from_string(event.data).unwrap_or_else(|_| {
            // A store hands out what it checked on the way in; this is corruption, shown
            // rather than hidden.
            RawValue::from_string("{\"error\":\"stored data is not JSON\"}".to_owned())
                .unwrap_or_default()
        });
        Self {
            id: event.id,
            stream_id: event.stream_id.to_string(),
            version: event.version,
            position: event.position,
            event_type: event.event_type,
            schema_version: event.schema_version,
            data,
            metadata,
            recorded_at,
        }
    }
}

/// A page of one stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamPage {
    /// The stream.
    pub stream_id: String,
    /// The events, in the direction asked for.
    pub events: Vec<EventView>,
    /// The `from` of the next page, when this page was full.
    pub next: Option<u64>,
}

/// A page of the global log.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogPage {
    /// The events, in position order.
    pub events: Vec<EventView>,
    /// The `from` of the next page, when this page was full.
    pub next: Option<u64>,
    /// The head of the log when the page was read.
    pub head: u64,
}

/// How to read a stream.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// `forward` (default) or `backward`.
    pub direction: Option<String>,
    /// The first version to return (default: the first, or the last backward).
    pub from: Option<u64>,
    /// At most this many events (default 100, at most 1,000).
    pub limit: Option<usize>,
}

/// How to read or follow the global log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// The first position to return (default 1).
    pub from: Option<u64>,
    /// Only these event types, comma-separated.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_types: Option<String>,
    /// Only streams of these categories (text before the first `-`), comma-separated.
    #[serde(rename = "category")]
    #[param(rename = "category")]
    pub categories: Option<String>,
    /// At most this many events (default 100, at most 1,000); ignored by the subscription.
    pub limit: Option<usize>,
}

fn stream_id(raw: &str) -> Result<StreamId, ApiError> {
    Ok(StreamId::new(raw)?)
}

fn limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit.unwrap_or(DEFAULT_READ_LIMIT) {
        0 => Err(ApiError::bad_request(
            "invalid_read",
            "limit must be at least 1",
        )),
        n if n > MAX_READ_LIMIT => Err(ApiError::bad_request(
            "invalid_read",
            format!("limit {n} is over the maximum of {MAX_READ_LIMIT}; page with `next`"),
        )),
        n => Ok(n),
    }
}

fn parse_expected(value: &serde_json::Value) -> Result<ExpectedVersion, ApiError> {
    let text = match value {
        serde_json::Value::Number(number) => number.to_string(),
        serde_json::Value::String(text) => text.clone(),
        _ => String::new(),
    };
    text.parse::<ExpectedVersion>().map_err(|_| {
        ApiError::bad_request(
            "invalid_expected_version",
            format!(
                "expected version {value} is not valid; use \"any\", \"no_stream\", \"stream_exists\" or a version number"
            ),
        )
    })
}

fn expected_version(
    headers: &HeaderMap,
    body: Option<&serde_json::Value>,
) -> Result<ExpectedVersion, ApiError> {
    let header = match headers.get(EXPECTED_VERSION_HEADER) {
        None => None,
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                ApiError::bad_request(
                    "invalid_expected_version",
                    "the Expected-Version header is not text",
                )
            })?;
            Some(parse_expected(&serde_json::Value::String(
                text.trim().to_owned(),
            ))?)
        }
    };
    let field = body.map(parse_expected).transpose()?;
    match (header, field) {
        (Some(header), Some(field)) if header != field => Err(ApiError::bad_request(
            "invalid_expected_version",
            "the Expected-Version header and the expected_version field disagree; give one",
        )),
        (header, field) => Ok(header.or(field).unwrap_or(ExpectedVersion::Any)),
    }
}

fn new_event(index: usize, input: EventInput) -> Result<NewEvent, ApiError> {
    let metadata = match input.metadata {
        None => Metadata::default(),
        Some(value) => serde_json::from_value(value).map_err(|error| {
            ApiError::bad_request(
                "invalid_event",
                format!("events[{index}].metadata: {error}; metadata must be a JSON object"),
            )
        })?,
    };
    let mut event = NewEvent::from_json_text(input.event_type, input.data.get().to_owned())
        .with_schema_version(input.schema_version.unwrap_or(1))
        .with_metadata(metadata);
    event.id = input.id;
    Ok(event)
}

/// Appends events to a stream, atomically, if it is at the expected version.
#[utoipa::path(
    post,
    path = "/streams/{stream}",
    tag = "events",
    params(
        ("stream" = String, Path, description = "The stream id, such as order-42"),
        ("Expected-Version" = Option<String>, Header, description = "any, no_stream, stream_exists or a version number"),
    ),
    request_body = AppendRequest,
    responses(
        (status = 201, description = "Appended", body = AppendResponse),
        (status = 400, description = "Invalid input; nothing was written", body = ErrorBody),
        (status = 409, description = "The stream was not at the expected version; nothing was written", body = ErrorBody),
        (status = 413, description = "Too large; nothing was written", body = ErrorBody),
    )
)]
pub async fn append(
    State(state): State<AppState>,
    Path(stream): Path<String>,
    headers: HeaderMap,
    body: Result<Json<AppendRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<AppendResponse>), ApiError> {
    let Json(body) = body?;
    let stream = stream_id(&stream)?;
    if stream.is_reserved() {
        return Err(ApiError::bad_request(
            "reserved_stream",
            format!(
                "stream ids starting with `$` are mammoth's own; \"{stream}\" cannot be appended to over the API"
            ),
        ));
    }
    let expected = expected_version(&headers, body.expected_version.as_ref())?;
    let events = body
        .events
        .into_iter()
        .enumerate()
        .map(|(index, input)| new_event(index, input))
        .collect::<Result<Vec<_>, _>>()?;
    let count = events.len() as u64;
    let started = Instant::now();
    let written: AppendResult = state.store().append(&stream, expected, events).await?;
    state
        .metrics()
        .appended(state.backend(), count, started.elapsed());
    Ok((
        StatusCode::CREATED,
        Json(AppendResponse {
            stream_id: stream.to_string(),
            first_version: written.first_version,
            last_version: written.last_version,
            first_position: written.first_position,
            last_position: written.last_position,
        }),
    ))
}

/// Reads a page of one stream, forward or backward.
#[utoipa::path(
    get,
    path = "/streams/{stream}",
    tag = "events",
    params(("stream" = String, Path, description = "The stream id"), StreamParams),
    responses(
        (status = 200, description = "A page of the stream (empty for a stream with no events)", body = StreamPage),
        (status = 400, description = "Invalid stream id or parameters", body = ErrorBody),
    )
)]
pub async fn read_stream(
    State(state): State<AppState>,
    Path(stream): Path<String>,
    params: Result<Query<StreamParams>, QueryRejection>,
) -> Result<Json<StreamPage>, ApiError> {
    let Query(params) = params?;
    let stream = stream_id(&stream)?;
    let direction = match params.direction.as_deref() {
        None | Some("forward") => Direction::Forward,
        Some("backward") => Direction::Backward,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_read",
                format!("direction {other:?} is not valid; use forward or backward"),
            ));
        }
    };
    let limit = limit(params.limit)?;
    let events = state
        .store()
        .read_stream(&stream, direction, params.from, limit)
        .await?;
    state.metrics().read(state.backend(), events.len() as u64);
    let next = match (events.len() == limit, events.last(), direction) {
        (true, Some(last), Direction::Forward) => Some(last.version + 1),
        (true, Some(last), Direction::Backward) if last.version > 1 => Some(last.version - 1),
        _ => None,
    };
    Ok(Json(StreamPage {
        stream_id: stream.to_string(),
        events: events.into_iter().map(EventView::from).collect(),
        next,
    }))
}

fn filter(params: &LogParams) -> EventFilter {
    let split = |text: &Option<String>| -> Vec<String> {
        text.as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect()
    };
    EventFilter::all()
        .with_types(split(&params.event_types))
        .with_categories(split(&params.categories))
}

/// Reads a page of the global log, optionally filtered by event types and categories.
#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    params(LogParams),
    responses(
        (status = 200, description = "A page of the global log", body = LogPage),
        (status = 400, description = "Invalid parameters", body = ErrorBody),
    )
)]
pub async fn read_all(
    State(state): State<AppState>,
    params: Result<Query<LogParams>, QueryRejection>,
) -> Result<Json<LogPage>, ApiError> {
    let Query(params) = params?;
    let limit = limit(params.limit)?;
    let filter = filter(&params);
    let head = state.store().head_position().await?;
    let events = state
        .store()
        .read_all(params.from.unwrap_or(1).max(1), &filter, limit)
        .await?;
    state.metrics().read(state.backend(), events.len() as u64);
    let next = match events.last() {
        Some(last) if events.len() == limit => Some(last.position + 1),
        _ => None,
    };
    Ok(Json(LogPage {
        events: events.into_iter().map(EventView::from).collect(),
        next,
        head,
    }))
}

/// Where a subscription starts: after the `Last-Event-ID` the client saw, else at `from`.
fn start(headers: &HeaderMap, from: Option<Position>) -> Result<Position, ApiError> {
    match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<Position>().ok())
            .map(|seen| seen + 1)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_last_event_id",
                    "Last-Event-ID must be the global position (the `id:` of the last event received)",
                )
            }),
        None => Ok(from.unwrap_or(1).max(1)),
    }
}

/// Follows the global log live over Server-Sent Events: first the events from `from` (or
/// after `Last-Event-ID`), then each new one as it is committed. Every SSE `id:` is the
/// event's global position, so a client that reconnects with `Last-Event-ID` resumes with no
/// gap and no duplicate.
#[utoipa::path(
    get,
    path = "/events/subscribe",
    tag = "events",
    params(
        LogParams,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this global position"),
    ),
    responses(
        (status = 200, description = "An endless text/event-stream; each event's data is an EventView", content_type = "text/event-stream", body = EventView),
        (status = 400, description = "Invalid parameters", body = ErrorBody),
    )
)]
pub async fn subscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<LogParams>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(params) = params?;
    let from = start(&headers, params.from)?;
    let subscription = Subscription::new(state.shared_store(), from, filter(&params));
    let shutdown = state.shutdown_signal();
    let metrics_state = state.clone();
    let events = stream::unfold(Some(subscription), move |subscription| {
        let state = metrics_state.clone();
        async move {
            let mut subscription = subscription?;
            match subscription.next().await {
                Ok(event) => {
                    state.metrics().read(state.backend(), 1);
                    let id = event.position.to_string();
                    let view = EventView::from(event);
                    let sse = SseEvent::default()
                        .id(id)
                        .json_data(&view)
                        .unwrap_or_else(|_| SseEvent::default().comment("unserializable event"));
                    Some((Ok(sse), Some(subscription)))
                }
                Err(error) => {
                    let body = serde_json::json!({ "code": "subscription_failed", "message": error.to_string() });
                    let sse = SseEvent::default().event("error").data(body.to_string());
                    // One error event, then the stream ends; the client resumes with
                    // Last-Event-ID.
                    Some((Ok(sse), None))
                }
            }
        }
    })
    .take_until(shutdown);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
