//! The smaller sections: app, projections, sagas, snapshots, versioning, cqrs, security, http,
//! metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// `[app]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    /// The application's name, used in logs and metrics (default `"mammoth"`).
    pub name: String,
    /// A free-form environment name (default `"development"`).
    pub environment: String,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            name: "mammoth".to_owned(),
            environment: "development".to_owned(),
        }
    }
}

/// Where a non-SQL projection handler keeps its checkpoint. A SQL read model always keeps its
/// checkpoint in its own database, in the same transaction as its rows (that is what makes it
/// exactly-once), whatever this says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Checkpoint {
    /// In the event store's database, next to the events (the default).
    #[default]
    EventStore,
    /// In the read model's own database, in the same transaction as the read model.
    ReadModel,
}

/// What a projection does with an event that still fails after its retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Stop as failed at that event until resumed; nothing after it is applied (the default).
    #[default]
    Stop,
    /// Park the event as a dead letter (with its error and attempts) and go on.
    Park,
}

/// `[projections.NAME]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectionConfig {
    /// Event types the projection handles (empty: all).
    pub event_types: Vec<String>,
    /// Stream categories the projection reads (empty: all).
    pub categories: Vec<String>,
    /// Where a non-SQL handler's checkpoint lives (default `event_store`); SQL read models
    /// ignore it and always keep theirs in the read model's transaction.
    pub checkpoint: Checkpoint,
    /// What an event that still fails after the retries does (default `stop`).
    pub on_failure: OnFailure,
    /// Events per batch (default 1,000, as the runner's own default; at least 1).
    pub batch_size: u32,
    /// The read model's database, a URL or PDO DSN (may carry a password, so it is a secret).
    pub read_dsn: Option<Secret<String>>,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        Self {
            event_types: Vec::new(),
            categories: Vec::new(),
            checkpoint: Checkpoint::EventStore,
            on_failure: OnFailure::Stop,
            batch_size: 1_000,
            read_dsn: None,
        }
    }
}

/// `[sagas.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SagaConfig {
    /// The event type that starts a saga instance.
    pub start_on: Option<String>,
    /// Event types the saga reacts to.
    pub event_types: Vec<String>,
    /// Deadline for the whole saga.
    #[serde(with = "crate::units::opt_duration")]
    pub timeout: Option<Duration>,
    /// Deadline for each step.
    #[serde(with = "crate::units::opt_duration")]
    pub step_timeout: Option<Duration>,
}

/// `[snapshots]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    /// Snapshot an aggregate every this many events (default 100; 0 disables snapshots).
    pub every: u64,
    /// Per aggregate type overrides of `every`.
    pub per_aggregate: BTreeMap<String, u64>,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            every: 100,
            per_aggregate: BTreeMap::new(),
        }
    }
}

/// `[versioning]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VersioningConfig {
    /// Run registered upcasters on read (default true).
    pub upcasters: bool,
}

impl Default for VersioningConfig {
    fn default() -> Self {
        Self { upcasters: true }
    }
}

/// `[cqrs]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CqrsConfig {
    /// Command name to handler name.
    pub command_handlers: BTreeMap<String, String>,
    /// Query name to handler name.
    pub query_handlers: BTreeMap<String, String>,
    /// Times a command is re-loaded and re-decided after a version conflict (default 9, so 10
    /// attempts: enough for dozens of writers contending on one aggregate).
    pub max_conflict_retries: u32,
}

impl Default for CqrsConfig {
    fn default() -> Self {
        Self {
            command_handlers: BTreeMap::new(),
            query_handlers: BTreeMap::new(),
            max_conflict_retries: 9,
        }
    }
}

/// `[security]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// The key that encrypts event payloads (none: no encryption).
    pub encryption_key: Option<Secret<String>>,
    /// Bearer tokens accepted by the HTTP API (empty: authentication off).
    pub api_tokens: Vec<Secret<String>>,
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` to listen on (default `127.0.0.1:8080`).
    pub listen: String,
    /// Largest accepted request body in bytes (default 1 MiB; written `"1MiB"` or a number).
    #[serde(with = "crate::units::byte_size")]
    pub body_limit: u64,
    /// How long a request may take before it is answered 408 (default `"30s"`; a live
    /// subscription streams past it, only the time to its first byte counts).
    #[serde(with = "crate::units::duration")]
    pub request_timeout: Duration,
    /// How long `mammoth serve` waits for in-flight requests after SIGTERM or Ctrl-C before it
    /// drops them (default `"30s"`).
    #[serde(with = "crate::units::duration")]
    pub shutdown_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            body_limit: 1 << 20,
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve metrics (default true).
    pub enabled: bool,
    /// The path they are served at (default `/metrics`).
    pub path: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/metrics".to_owned(),
        }
    }
}
