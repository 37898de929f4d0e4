//! The configuration as the binary uses it: loaded once per command through mammoth-config
//! (which owns the lookup order: --config, $MAMMOTH_CONFIG, ./mammoth.tsk, defaults), and the
//! event store part translated into what [`crate::store::AnyStore`] opens.

use std::path::{Path, PathBuf};

use mammoth_config::{Config, EventStoreBackend};
use mammoth_core::Limits;

/// The resolved configuration and where it came from.
pub struct Settings {
    /// The file read, `None` for built-in defaults.
    pub file: Option<PathBuf>,
    /// The whole typed configuration.
    pub config: Config,
    /// What the event store needs.
    pub store: StoreSettings,
}

/// The event store part of the configuration.
pub struct StoreSettings {
    /// `event_store.backend`.
    pub backend: EventStoreBackend,
    /// The SQLite database file (from `event_store.dsn`, or the default path).
    pub sqlite_path: PathBuf,
    /// `event_store.synchronous`.
    pub synchronous: mammoth_sqlite::Synchronous,
    /// `event_store.max_event_size` and `event_store.max_events_per_append`.
    pub limits: Limits,
    /// The whole `[event_store]` section: the PostgreSQL and MySQL drivers read their DSN,
    /// credentials, schema and pool size from it.
    pub event_store: mammoth_config::EventStoreConfig,
}

/// Loads the configuration from `explicit`, or wherever mammoth looks by default.
///
/// # Errors
/// A [`mammoth_config::ConfigError`] naming file:line:col (exit code 2).
pub fn load(explicit: Option<&Path>) -> anyhow::Result<Settings> {
    let (config, file) = Config::load(explicit)?;
    let event_store = &config.event_store;
    let store = StoreSettings {
        backend: event_store.backend,
        sqlite_path: event_store.sqlite_path(),
        synchronous: match event_store.synchronous {
            mammoth_config::Synchronous::Normal => mammoth_sqlite::Synchronous::Normal,
            // The durable setting is also the answer for any level added later.
            _ => mammoth_sqlite::Synchronous::Full,
        },
        limits: Limits {
            max_event_bytes: usize::try_from(event_store.max_event_size).unwrap_or(usize::MAX),
            max_events_per_append: usize::try_from(event_store.max_events_per_append)
                .unwrap_or(usize::MAX),
        },
        event_store: event_store.clone(),
    };
    Ok(Settings {
        file,
        config,
        store,
    })
}
