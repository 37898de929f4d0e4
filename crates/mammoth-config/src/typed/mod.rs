//! The typed configuration: one struct per section, every key with a default.
//!
//! An empty file, or no file at all, gives embedded SQLite at `./mammoth-data/mammoth.db` with
//! the embedded bus. Unknown keys are errors with a "did you mean" hint; values are checked for
//! type (serde, see `de`) and then for range and consistency (`validate`), each error at the
//! key's `file:line:col`.

mod bus_policy;
mod dsn;
mod event_store;
mod message_bus;
mod render;
mod sections;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use bus_policy::BusPolicy;
pub use dsn::{normalize_dsn, percent_encode};
pub use event_store::{DEFAULT_SQLITE_PATH, EventStoreBackend, EventStoreConfig, Synchronous};
pub use message_bus::{
    Backoff, DeadLetterConfig, MessageBusBackend, MessageBusConfig, RetryConfig, TopicsConfig,
};
pub use sections::{
    AppConfig, Checkpoint, CqrsConfig, HttpConfig, MetricsConfig, OnFailure, ProjectionConfig,
    SagaConfig, SecurityConfig, SnapshotConfig, VersioningConfig,
};

use crate::de;
use crate::document::Document;
use crate::env::{Env, ProcessEnv};
use crate::error::ConfigError;

/// The whole configuration, as `mammoth.tsk` describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[app]`: name and environment.
    pub app: AppConfig,
    /// `[event_store]`: backend and connection.
    pub event_store: EventStoreConfig,
    /// `[message_bus]`: backend, retry and dead letters.
    pub message_bus: MessageBusConfig,
    /// `[projections.NAME]`: one entry per projection.
    pub projections: BTreeMap<String, ProjectionConfig>,
    /// `[sagas.NAME]`: one entry per saga.
    pub sagas: BTreeMap<String, SagaConfig>,
    /// `[snapshots]`: how often aggregates are snapshotted.
    pub snapshots: SnapshotConfig,
    /// `[versioning]`: event upcasting.
    pub versioning: VersioningConfig,
    /// `[cqrs]`: handler names and conflict retries.
    pub cqrs: CqrsConfig,
    /// `[security]`: encryption key and API tokens.
    pub security: SecurityConfig,
    /// `[http]`: the server of `mammoth serve`.
    pub http: HttpConfig,
    /// `[metrics]`: the Prometheus endpoint.
    pub metrics: MetricsConfig,
}

impl Config {
    /// Parses and checks `text`, reporting errors against `path` and reading `@env` from the
    /// process environment; relative `@file` paths resolve against `path`'s directory.
    ///
    /// # Errors
    /// Any [`ConfigError`]: syntax, unresolved operator, unknown key, wrong type, bad value.
    pub fn from_str(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::from_str_with_env(text, path, &ProcessEnv)
    }

    /// Like [`Config::from_str`], with the environment given.
    ///
    /// # Errors
    /// As [`Config::from_str`].
    pub fn from_str_with_env(text: &str, path: &Path, env: &dyn Env) -> Result<Self, ConfigError> {
        Self::from_document(&Document::parse(text, path, env)?)
    }

    /// Fills and checks the configuration from a parsed document.
    ///
    /// # Errors
    /// Unknown keys (E016), wrong types (E017) and invalid values (E018), at their positions.
    pub fn from_document(doc: &Document) -> Result<Self, ConfigError> {
        let config: Self = de::from_table(doc.root()).map_err(|e| e.into_config_error(doc))?;
        config.check(doc)?;
        Ok(config)
    }

    /// Checks ranges and consistency of a configuration built in code (errors have no position).
    ///
    /// # Errors
    /// The first invalid value (E018).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check(&Document::empty())
    }

    fn check(&self, doc: &Document) -> Result<(), ConfigError> {
        match validate::violations(self).into_iter().next() {
            Some(violation) => Err(violation.into_error(doc)),
            None => Ok(()),
        }
    }

    /// The resolved configuration as `.tsk` text, secrets shown as `***`; parsing it again
    /// gives the same configuration when it holds no secrets.
    pub fn render(&self) -> String {
        render::render(self)
    }

    /// The resolved configuration as pretty JSON, secrets shown as `"***"`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}
