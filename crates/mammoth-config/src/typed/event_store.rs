//! `[event_store]`: the backend, its DSN, and the limits every backend enforces.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use super::dsn::{merge_credentials, normalize_dsn, scheme_of};
use crate::error::{ConfigError, Diagnostic, ErrorCode};
use crate::secret::Secret;

/// Where the embedded store lives when no DSN says otherwise.
pub const DEFAULT_SQLITE_PATH: &str = "./mammoth-data/mammoth.db";

/// The event store backend, chosen by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStoreBackend {
    /// Embedded SQLite (the default).
    #[default]
    Sqlite,
    /// PostgreSQL (also written `"postgresql"`).
    #[serde(alias = "postgresql")]
    Postgres,
    /// MySQL (also written `"mariadb"`).
    #[serde(alias = "mariadb")]
    Mysql,
    /// In memory, lost at exit: tests and demos.
    Memory,
}

impl EventStoreBackend {
    /// The name as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::Memory => "memory",
        }
    }
}

/// SQLite's durability trade (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    /// Every commit is on disk before it is acknowledged (the default).
    #[default]
    Full,
    /// Faster; a power loss may drop the last commits (never corrupts).
    Normal,
}

/// `[event_store]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventStoreConfig {
    /// The backend (default sqlite).
    pub backend: EventStoreBackend,
    /// Where the data lives: a URL (`postgres://…`, `mysql://…`, `sqlite://path?mode=rwc`),
    /// `sqlite:path`, a plain path (SQLite), or a PDO DSN (`mysql:host=…;dbname=…`).
    pub dsn: Option<Secret<String>>,
    /// User name merged into the URL when the DSN has none.
    pub username: Option<String>,
    /// Password merged into the URL when the DSN has none.
    pub password: Option<Secret<String>>,
    /// Connections in the pool (default 10, at least 1).
    pub pool_size: u32,
    /// Database schema for the tables (PostgreSQL).
    pub schema: Option<String>,
    /// SQLite durability (default full).
    pub synchronous: Synchronous,
    /// Largest accepted event payload in bytes (default 1 MiB; written `"1MiB"` or a number).
    #[serde(with = "crate::units::byte_size")]
    pub max_event_size: u64,
    /// Most events one append may carry (default 4096, at least 1).
    pub max_events_per_append: u32,
}

impl Default for EventStoreConfig {
    fn default() -> Self {
        Self {
            backend: EventStoreBackend::Sqlite,
            dsn: None,
            username: None,
            password: None,
            pool_size: 10,
            schema: None,
            synchronous: Synchronous::Full,
            max_event_size: 1 << 20,
            max_events_per_append: 4096,
        }
    }
}

/// A DSN problem: the key to point at, the message, the fix.
pub(crate) struct DsnProblem {
    pub(crate) key: &'static str,
    pub(crate) message: String,
    pub(crate) help: String,
}

impl EventStoreConfig {
    /// The SQLite database file: from `dsn` (`sqlite://path?…`, `sqlite:path` or a plain path),
    /// else [`DEFAULT_SQLITE_PATH`]. Relative paths are relative to the working directory.
    pub fn sqlite_path(&self) -> PathBuf {
        let written = self
            .dsn
            .as_ref()
            .map(|d| d.expose().trim())
            .unwrap_or_default();
        let path = match normalize_dsn(written) {
            Ok(url) if scheme_of(&url) == "sqlite" => {
                let rest = url.get("sqlite://".len()..).unwrap_or("");
                rest.split('?').next().unwrap_or("").to_owned()
            }
            _ => String::new(),
        };
        if path.is_empty() {
            PathBuf::from(DEFAULT_SQLITE_PATH)
        } else {
            PathBuf::from(path)
        }
    }

    /// The connection URL with `username` and `password` merged in: `postgres://…` or
    /// `mysql://…` (PDO DSNs translated), `sqlite://PATH?mode=rwc`, or `memory://`.
    ///
    /// # Errors
    /// E018 when a network backend has no DSN, the DSN cannot be read, or its scheme names
    /// another database than `backend`.
    pub fn connection_url(&self) -> Result<Secret<String>, ConfigError> {
        self.url().map_err(|problem| {
            let message = format!("`event_store.{}`: {}", problem.key, problem.message);
            ConfigError::new(
                Diagnostic::new(ErrorCode::InvalidValue, message).with_help(problem.help),
            )
        })
    }

    pub(crate) fn url(&self) -> Result<Secret<String>, DsnProblem> {
        let expected: &[&str] = match self.backend {
            EventStoreBackend::Memory => return Ok(Secret::new("memory://".to_owned())),
            EventStoreBackend::Sqlite => &["sqlite"],
            EventStoreBackend::Postgres => &["postgres", "postgresql"],
            EventStoreBackend::Mysql => &["mysql", "mariadb"],
        };
        let backend = self.backend.as_str();
        let dsn = match (&self.dsn, self.backend) {
            (Some(dsn), _) => dsn.expose().as_str(),
            (None, EventStoreBackend::Sqlite) => "",
            (None, _) => {
                return Err(DsnProblem {
                    key: "backend",
                    message: format!("backend `{backend}` needs `event_store.dsn`"),
                    help: format!(
                        "add `dsn: @env.secure(\"EVENT_STORE_DSN\")` with a {backend}:// URL"
                    ),
                });
            }
        };
        let problem = |message: String, help: String| DsnProblem {
            key: "dsn",
            message,
            help,
        };
        let mut url = if dsn.trim().is_empty() && self.backend == EventStoreBackend::Sqlite {
            format!("sqlite://{DEFAULT_SQLITE_PATH}")
        } else {
            normalize_dsn(dsn)
                .map_err(|m| problem(m, "write a URL such as `postgres://host/db`".into()))?
        };
        let scheme = scheme_of(&url);
        if !expected.contains(&scheme.as_str()) {
            url.zeroize();
            return Err(problem(
                format!("the DSN is a `{scheme}` address but `backend` is `{backend}`"),
                "make `backend` and the DSN name the same database".to_owned(),
            ));
        }
        if self.backend == EventStoreBackend::Sqlite {
            url.zeroize();
            return Ok(Secret::new(format!(
                "sqlite://{}?mode=rwc",
                self.sqlite_path().display()
            )));
        }
        let password = self.password.as_ref().map(|p| p.expose().as_str());
        let merged = merge_credentials(&url, self.username.as_deref(), password);
        url.zeroize();
        Ok(Secret::new(merged))
    }
}
