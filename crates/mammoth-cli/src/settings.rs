//! The configuration as the CLI uses it. TEMPORARY stub until mammoth-config lands.

use std::path::PathBuf;

use mammoth_core::Limits;

/// The resolved configuration and where it came from.
pub struct Settings {
    /// The file read, `None` for built-in defaults.
    pub file: Option<PathBuf>,
    /// What the store needs.
    pub store: StoreSettings,
}

/// The event store part of the configuration.
pub struct StoreSettings {
    /// `event_store.backend`.
    pub backend: String,
    /// The SQLite database file.
    pub sqlite_path: PathBuf,
    /// Durability of each commit.
    pub synchronous: mammoth_sqlite::Synchronous,
    /// Size limits.
    pub limits: Limits,
}

/// Loads the configuration.
pub fn load(explicit: Option<&std::path::Path>) -> anyhow::Result<Settings> {
    Ok(Settings {
        file: explicit.map(PathBuf::from),
        store: StoreSettings {
            backend: "sqlite".into(),
            sqlite_path: "mammoth-data/mammoth.db".into(),
            synchronous: mammoth_sqlite::Synchronous::Full,
            limits: Limits::default(),
        },
    })
}

impl Settings {
    /// The configuration as text.
    pub fn render(&self) -> String {
        format!("[event_store]\nbackend: {:?}\n", self.store.backend)
    }
}
impl Settings {
    /// The configuration as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"backend": self.store.backend})
    }
}
