//! mammoth's configuration: the `mammoth.tsk` reader and the typed configuration.
//!
//! The file format is a strict, safe subset of TuskLang (see `tsk.md` in the project's shared
//! docs): sections, `key: value` entries, arrays and inline objects, and four operators that
//! read the outside world (`@env`, `@env.secure`, `@file`, `@file.secure`). Nothing in a file
//! can run code. Every mistake is a [`ConfigError`] with a code (`E001`…), `file:line:col`, the
//! source line with a caret, and a hint.
//!
//! Two layers:
//! - [`Document`]: the untyped tree of [`Value`]s with their [`Span`]s;
//! - [`Config`]: the typed configuration, filled through serde, every key with a default.
//!
//! ```
//! use std::path::Path;
//! use mammoth_config::{Config, EmptyEnv, EventStoreBackend};
//!
//! let text = "[event_store]\nbackend: \"postgres\"\ndsn: \"postgres://db/es\"\n";
//! let config = Config::from_str_with_env(text, Path::new("mammoth.tsk"), &EmptyEnv)?;
//! assert_eq!(config.event_store.backend, EventStoreBackend::Postgres);
//! assert_eq!(config.event_store.connection_url()?.expose(), "postgres://db/es");
//! # Ok::<(), mammoth_config::ConfigError>(())
//! ```

mod de;
mod document;
mod env;
mod error;
mod load;
mod parse;
mod secret;
mod suggest;
mod typed;
pub mod units;
mod value;

use std::path::{Path, PathBuf};

pub use document::Document;
pub use env::{EmptyEnv, Env, ProcessEnv};
pub use error::{ConfigError, Diagnostic, ErrorCode};
pub use load::{CONFIG_ENV_VAR, DEFAULT_FILE_NAME};
pub use parse::{MAX_DEPTH, MAX_FILE_BYTES};
pub use secret::{REDACTED, Secret};
pub use suggest::edit_distance;
pub use typed::{
    AppConfig, Backoff, BusPolicy, Checkpoint, Config, CqrsConfig, DEFAULT_SQLITE_PATH,
    DeadLetterConfig, EventStoreBackend, EventStoreConfig, HttpConfig, MessageBusBackend,
    MessageBusConfig, MetricsConfig, OnFailure, ProjectionConfig, RetryConfig, SagaConfig,
    SecurityConfig, SnapshotConfig, Synchronous, TopicsConfig, VersioningConfig, normalize_dsn,
    percent_encode,
};
pub use value::{Entry, Span, Table, Value, ValueKind};

/// `@file` reads at most this many bytes.
pub const MAX_INCLUDED_FILE_BYTES: u64 = parse::MAX_INCLUDED_FILE_BYTES;

/// Loads the configuration as `mammoth` does: `explicit`, else `MAMMOTH_CONFIG`, else
/// `./mammoth.tsk` if present, else defaults. Same as [`Config::load`].
///
/// # Errors
/// Any [`ConfigError`].
pub fn load(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
    Config::load(explicit)
}
