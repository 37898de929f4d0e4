//! [`ApiError`]: every failure a route answers with, as `{code, message}` JSON (plus details
//! a client can act on, such as a conflict's expected and actual versions). A client's mistake
//! is a 4xx that says what to fix; only the server's own failures are 5xx.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mammoth_core::StoreError;
use mammoth_core::bus::BusError;
use mammoth_runtime::{CommandError, QueryError};
use serde::Serialize;
use utoipa::ToSchema;

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `conflict` or `invalid_json`.
    pub code: String,
    /// What went wrong and how to fix it, for a person.
    pub message: String,
    /// Structured facts about the error (a conflict's `expected` and `actual`, the known
    /// names for an unknown one), when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// A failed request: an HTTP status and an [`ErrorBody`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// See [`ErrorBody::code`].
    pub code: &'static str,
    /// See [`ErrorBody::message`].
    pub message: String,
    /// See [`ErrorBody::details`].
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with no details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// A 400 for input the client must change.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A 404 for a name nothing is registered under.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// A 500 for the server's own failure.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// Attaches structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message,
            details: self.details,
        };
        (self.status, Json(body)).into_response()
    }
}

/// `any`, `no_stream`, `stream_exists` or the number, as the API spells expected versions.
pub(crate) fn expected_name(expected: mammoth_core::ExpectedVersion) -> serde_json::Value {
    use mammoth_core::ExpectedVersion::{Any, Exact, NoStream, StreamExists};
    match expected {
        Any => "any".into(),
        NoStream => "no_stream".into(),
        StreamExists => "stream_exists".into(),
        Exact(version) => version.into(),
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let message = error.to_string();
        match error {
            StoreError::Conflict {
                stream,
                expected,
                actual,
            } => Self::new(StatusCode::CONFLICT, "conflict", message).with_details(
                serde_json::json!({ "stream": stream.as_str(), "expected": expected_name(expected), "actual": actual }),
            ),
            StoreError::DuplicateEventId { .. } => {
                Self::new(StatusCode::CONFLICT, "duplicate_event_id", message)
            }
            StoreError::IdempotencyMismatch { .. } => {
                Self::new(StatusCode::CONFLICT, "idempotency_mismatch", message)
            }
            StoreError::EventTooLarge { .. } | StoreError::TooManyEvents { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
            }
            StoreError::InvalidStreamId { .. } => Self::bad_request("invalid_stream_id", message),
            StoreError::InvalidRead { .. } => Self::bad_request("invalid_read", message),
            ref bad if bad.is_bad_input() => Self::bad_request("invalid_event", message),
            StoreError::Closed => Self::new(StatusCode::SERVICE_UNAVAILABLE, "closed", message),
            ref transient if transient.is_transient() => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            _ => Self::internal(message),
        }
    }
}

impl From<BusError> for ApiError {
    fn from(error: BusError) -> Self {
        let message = error.to_string();
        match error {
            BusError::InvalidName { .. } => Self::bad_request("invalid_name", message),
            BusError::InvalidInput(_) => Self::bad_request("invalid_input", message),
            BusError::Closed => Self::new(StatusCode::SERVICE_UNAVAILABLE, "closed", message),
            _ => Self::internal(message),
        }
    }
}

impl<E: std::fmt::Display> From<CommandError<E>> for ApiError {
    fn from(error: CommandError<E>) -> Self {
        let message = error.to_string();
        match error {
            CommandError::Rejected(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected", message)
            }
            CommandError::UnknownCommand { .. } => Self::not_found("unknown_command", message),
            CommandError::Invalid { .. } => Self::bad_request("invalid_command", message),
            CommandError::Unauthorized { .. } => {
                Self::new(StatusCode::FORBIDDEN, "unauthorized", message)
            }
            CommandError::Conflict {
                stream,
                expected,
                actual,
                attempts,
            } => Self::new(StatusCode::CONFLICT, "conflict", message).with_details(
                serde_json::json!({ "stream": stream.as_str(), "expected": expected_name(expected), "actual": actual, "attempts": attempts }),
            ),
            CommandError::IdempotencyKeyReused { .. } => {
                Self::new(StatusCode::CONFLICT, "idempotency_key_reused", message)
            }
            CommandError::Schema(_) => Self::bad_request("schema_violation", message),
            CommandError::Store(store) => store.into(),
            _ => Self::internal(message),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        let message = error.to_string();
        match error {
            QueryError::UnknownQuery { .. } => Self::not_found("unknown_query", message),
            QueryError::Invalid { .. } => Self::bad_request("invalid_query", message),
            QueryError::NotCaughtUp {
                wanted, reached, ..
            } => Self::new(StatusCode::SERVICE_UNAVAILABLE, "not_caught_up", message)
                .with_details(serde_json::json!({ "wanted": wanted, "reached": reached })),
            QueryError::Store(store) => store.into(),
            _ => Self::internal(message),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match rejection {
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            _ => "invalid_json",
        };
        let hint = match code {
            "unsupported_media_type" => "; send the header Content-Type: application/json",
            "body_too_large" => "; send less, or raise http.body_limit in mammoth.tsk",
            _ => "; send a JSON document of the shape /openapi.json describes",
        };
        // A client mistake is never a 500, whatever axum thinks of it.
        let status = if status.is_server_error() {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        Self::new(status, code, format!("{}{hint}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(
            "invalid_query_string",
            format!(
                "{}; see /openapi.json for the parameters",
                rejection.body_text()
            ),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request("invalid_path", rejection.body_text())
    }
}
