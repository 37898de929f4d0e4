//! One connection to a SQLite file for a small store kept beside the events (checkpoints, saga
//! timers), usually in the event store's own file: created with its table on open, run on a
//! blocking thread, durable (`synchronous=FULL`) on every commit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mammoth_core::StoreError;
use rusqlite::Connection;

use crate::error::on;

/// What a side store says it was doing when opening fails.
pub(crate) struct Actions {
    /// Creating the file's directory.
    pub(crate) directory: &'static str,
    /// Opening the file.
    pub(crate) open: &'static str,
    /// Setting the busy timeout and pragmas.
    pub(crate) configure: &'static str,
    /// Creating the store's table.
    pub(crate) create: &'static str,
}

/// A shared connection; clones share it.
#[derive(Clone)]
pub(crate) struct SideConnection {
    path: Arc<PathBuf>,
    conn: Arc<Mutex<Connection>>,
}

impl SideConnection {
    /// Opens `path` (creating its directory and the file if needed) and runs `create`.
    pub(crate) fn open(path: &Path, actions: &Actions, create: &str) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|error| StoreError::backend("sqlite", actions.directory, error, false))?;
        }
        let conn = Connection::open(path).map_err(on(actions.open))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(on(actions.configure))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(on(actions.configure))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(on(actions.configure))?;
        conn.execute_batch(create).map_err(on(actions.create))?;
        Ok(Self {
            path: Arc::new(path.to_path_buf()),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the connection on a blocking thread; `action` names it in errors.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
        action: &'static str,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while the lock was held leaves the connection usable; take the guard anyway.
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut conn).map_err(on(action))
        })
        .await
        .map_err(|error| StoreError::backend("sqlite", action, error, false))?
    }
}
