//! The application API: commands and queries of the registered app, by name. An
//! [`AppRegistry`] maps each name to a JSON handler; the handlers call the app's
//! [`mammoth_runtime::CommandBus`] and [`mammoth_runtime::QueryBus`].
//!
//! `POST /commands/{name}` takes the command as a JSON body and answers where it was written
//! (`position`); `GET /queries/{name}?min_position=P&...` waits until the query's read model
//! has reached `P` (read-your-writes) and answers. Query parameters other than `min_position`
//! and `timeout_ms` are handed to the query as a JSON object of strings.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use mammoth_runtime::{CommandContext, CommandError, Committed, QueryError, QueryOptions};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::store::BoxFuture;

/// The header naming who sends a command (the command context's actor).
pub const ACTOR_HEADER: &str = "x-actor";
/// The header carrying a command's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// The longest wait a query may ask for with `timeout_ms`.
pub const MAX_QUERY_WAIT: Duration = Duration::from_secs(30);

type CommandHandler = Arc<
    dyn Fn(serde_json::Value, CommandContext) -> BoxFuture<'static, Result<Committed, ApiError>>
        + Send
        + Sync,
>;
type QueryHandler = Arc<
    dyn Fn(
            serde_json::Value,
            QueryOptions,
        ) -> BoxFuture<'static, Result<serde_json::Value, ApiError>>
        + Send
        + Sync,
>;

/// The commands and queries an app serves, by name.
#[derive(Clone, Default)]
pub struct AppRegistry {
    commands: BTreeMap<String, CommandHandler>,
    queries: BTreeMap<String, QueryHandler>,
}

impl std::fmt::Debug for AppRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRegistry")
            .field("commands", &self.commands.keys().collect::<Vec<_>>())
            .field("queries", &self.queries.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// True for names the API accepts: 1 to 64 ASCII letters, digits, `_`, `-` or `.`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn checked(kind: &str, name: &str) -> Result<(), ApiError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_name",
            format!(
                "{kind} name {name:?} is not valid; use 1 to 64 letters, digits, `_`, `-` or `.`"
            ),
        ))
    }
}

impl AppRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves command `name`: the JSON body is deserialized into `B` (a 400 naming the field
    /// when it does not fit) and handed to `handler` with the request's context.
    ///
    /// # Panics
    /// When `name` is not a [`valid_name`]: that is a programming error, found at startup.
    pub fn command<B, F, Fut, E>(mut self, name: &str, handler: F) -> Self
    where
        B: DeserializeOwned + Send + 'static,
        F: Fn(B, CommandContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Committed, CommandError<E>>> + Send + 'static,
        E: std::fmt::Display + 'static,
    {
        assert!(
            valid_name(name),
            "command name {name:?} is not a valid name"
        );
        let label = name.to_owned();
        let handler = Arc::new(handler);
        let erased: CommandHandler = Arc::new(move |body, context| {
            let handler = Arc::clone(&handler);
            let label = label.clone();
            Box::pin(async move {
                let body: B = serde_json::from_value(body).map_err(|error| {
                    ApiError::bad_request(
                        "invalid_command",
                        format!("command {label}: {error}; /openapi.json and the app's docs show its fields"),
                    )
                })?;
                Ok(handler(body, context).await?)
            })
        });
        self.commands.insert(name.to_owned(), erased);
        self
    }

    /// Serves query `name`: its parameters (a JSON object of strings) are deserialized into
    /// `P` and handed to `handler`, whose answer is sent as JSON.
    ///
    /// # Panics
    /// When `name` is not a [`valid_name`]: that is a programming error, found at startup.
    pub fn query<P, F, Fut, O>(mut self, name: &str, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        F: Fn(P, QueryOptions) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, QueryError>> + Send + 'static,
        O: Serialize + 'static,
    {
        assert!(valid_name(name), "query name {name:?} is not a valid name");
        let label = name.to_owned();
        let handler = Arc::new(handler);
        let erased: QueryHandler = Arc::new(move |params, options| {
            let handler = Arc::clone(&handler);
            let label = label.clone();
            Box::pin(async move {
                let params: P = serde_json::from_value(params).map_err(|error| {
                    ApiError::bad_request(
                        "invalid_query",
                        format!("query {label}: {error}; pass its parameters in the query string"),
                    )
                })?;
                let answer = handler(params, options).await?;
                serde_json::to_value(answer).map_err(|error| ApiError::internal(error.to_string()))
            })
        });
        self.queries.insert(name.to_owned(), erased);
        self
    }

    /// The command names, sorted.
    pub fn command_names(&self) -> Vec<&str> {
        self.commands.keys().map(String::as_str).collect()
    }

    /// The query names, sorted.
    pub fn query_names(&self) -> Vec<&str> {
        self.queries.keys().map(String::as_str).collect()
    }
}

/// Where a command's write landed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommandResponse {
    /// The aggregate's stream.
    pub stream_id: String,
    /// The stream's version after the command.
    pub version: u64,
    /// The global position of the last event written (0 when none was): pass it as
    /// `min_position` to a query to read your own write.
    pub position: u64,
    /// Events written.
    pub events: usize,
    /// True when an earlier command with the same idempotency key already did this.
    pub replayed: bool,
}

/// Runs a registered command with the JSON body. Headers: `X-Actor` (who), and
/// `Idempotency-Key` (a retry with the same key writes nothing twice).
#[utoipa::path(post, path = "/commands/{name}", tag = "app",
    params(
        ("name" = String, Path, description = "The command, as registered (GET /commands lists them)"),
        ("X-Actor" = Option<String>, Header, description = "Who sends the command"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry write nothing twice"),
    ),
    request_body(content = Object, description = "The command's fields"),
    responses(
        (status = 200, description = "Written", body = CommandResponse),
        (status = 400, description = "Invalid name or body", body = ErrorBody),
        (status = 403, description = "The app's authorization refused it", body = ErrorBody),
        (status = 404, description = "Unknown command", body = ErrorBody),
        (status = 409, description = "Conflict after retries", body = ErrorBody),
        (status = 422, description = "The domain rejected it; nothing was written", body = ErrorBody),
    ))]
pub async fn run_command(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<CommandResponse>, ApiError> {
    checked("command", &name)?;
    let Some(handler) = state.registry().commands.get(&name).cloned() else {
        let known = state.registry().command_names().join(", ");
        return Err(ApiError::not_found(
            "unknown_command",
            format!("no command named {name:?}; known: {known}"),
        )
        .with_details(serde_json::json!({ "known": state.registry().command_names() })));
    };
    let Json(body) = body?;
    let mut context = CommandContext::new();
    if let Some(actor) = header(&headers, ACTOR_HEADER)? {
        context = context.with_actor(actor);
    }
    if let Some(key) = header(&headers, IDEMPOTENCY_HEADER)? {
        context = context.with_idempotency_key(key);
    }
    let started = Instant::now();
    let outcome = handler(body, context).await;
    let label = match &outcome {
        Ok(_) => "ok",
        Err(error) => error.code,
    };
    state.metrics().command(&name, label, started.elapsed());
    let committed = outcome?;
    Ok(Json(CommandResponse {
        stream_id: committed.stream_id.to_string(),
        version: committed.version,
        position: committed.position,
        events: committed.events,
        replayed: committed.replayed,
    }))
}

fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    headers
        .get(name)
        .map(|value| {
            value.to_str().map(str::to_owned).map_err(|_| {
                ApiError::bad_request("invalid_header", format!("header {name} is not text"))
            })
        })
        .transpose()
}

/// Answers a registered query. `min_position` (a command's `position`) makes it wait until
/// the read model has caught up with that write, up to `timeout_ms` (default 5,000).
#[utoipa::path(get, path = "/queries/{name}", tag = "app",
    params(
        ("name" = String, Path, description = "The query, as registered (GET /queries lists them)"),
        ("min_position" = Option<u64>, Query, description = "Wait until the read model has reached this position"),
        ("timeout_ms" = Option<u64>, Query, description = "How long to wait for it (default 5000, at most 30000)"),
    ),
    responses(
        (status = 200, description = "The query's answer", body = Object),
        (status = 400, description = "Invalid name or parameters", body = ErrorBody),
        (status = 404, description = "Unknown query", body = ErrorBody),
        (status = 503, description = "The read model did not catch up in time", body = ErrorBody),
    ))]
pub async fn run_query(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    checked("query", &name)?;
    let Query(mut params) = params?;
    let Some(handler) = state.registry().queries.get(&name).cloned() else {
        let known = state.registry().query_names().join(", ");
        return Err(ApiError::not_found(
            "unknown_query",
            format!("no query named {name:?}; known: {known}"),
        )
        .with_details(serde_json::json!({ "known": state.registry().query_names() })));
    };
    let number = |params: &mut BTreeMap<String, String>, key: &str| {
        params
            .remove(key)
            .map(|text| {
                text.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_query_string",
                        format!("{key} must be a whole number, got {text:?}"),
                    )
                })
            })
            .transpose()
    };
    let min_position = number(&mut params, "min_position")?;
    let timeout = number(&mut params, "timeout_ms")?
        .map(Duration::from_millis)
        .unwrap_or(QueryOptions::default().timeout)
        .min(MAX_QUERY_WAIT);
    let options = QueryOptions {
        min_position,
        timeout,
    };
    let params = serde_json::Value::Object(
        params
            .into_iter()
            .map(|(key, value)| (key, serde_json::Value::String(value)))
            .collect(),
    );
    let started = Instant::now();
    let outcome = handler(params, options).await;
    let label = match &outcome {
        Ok(_) => "ok",
        Err(error) => error.code,
    };
    state.metrics().query(&name, label, started.elapsed());
    Ok(Json(outcome?))
}

/// The registered command and query names.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Names {
    /// The names, sorted.
    pub names: Vec<String>,
}

/// Lists the registered commands.
#[utoipa::path(get, path = "/commands", tag = "app",
    responses((status = 200, description = "The command names", body = Names)))]
pub async fn list_commands(State(state): State<AppState>) -> Json<Names> {
    Json(Names {
        names: state.registry().commands.keys().cloned().collect(),
    })
}

/// Lists the registered queries.
#[utoipa::path(get, path = "/queries", tag = "app",
    responses((status = 200, description = "The query names", body = Names)))]
pub async fn list_queries(State(state): State<AppState>) -> Json<Names> {
    Json(Names {
        names: state.registry().queries.keys().cloned().collect(),
    })
}
