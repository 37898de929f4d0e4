//! [`SqliteProjections`]: the [`ProjectionsAdmin`] of SQL read models kept in SQLite files
//! (the `mammoth projections` commands, over HTTP). Pause and resume are requests written to
//! the read-model file, which whatever process runs the projection picks up; rebuild (blue
//! green) and verify (a shadow diffed with the live tables) run in the server.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use mammoth_core::{EventStore, ProjectionError, ProjectionState};
use mammoth_runtime::projection::{self, ProjectionOptions};
use mammoth_sqlite::{ReadModelAdmin, SqliteProjection, SqliteReadModel};

use crate::admin::{AdminError, ProjectionRow, ProjectionsAdmin};
use crate::store::{BoxFuture, SharedStore};

fn failed(error: ProjectionError) -> AdminError {
    AdminError::Failed(error.to_string())
}

trait Build: Send + Sync {
    fn rebuild(
        &self,
        store: SharedStore,
        entry: Arc<SqliteReadModelEntry>,
    ) -> BoxFuture<'static, Result<serde_json::Value, ProjectionError>>;
    fn verify(
        &self,
        store: SharedStore,
        entry: Arc<SqliteReadModelEntry>,
    ) -> BoxFuture<'static, Result<serde_json::Value, ProjectionError>>;
}

struct Maker<F>(F);

impl<P, F> Build for Maker<F>
where
    P: SqliteProjection,
    F: Fn() -> P + Send + Sync,
{
    fn rebuild(
        &self,
        store: SharedStore,
        entry: Arc<SqliteReadModelEntry>,
    ) -> BoxFuture<'static, Result<serde_json::Value, ProjectionError>> {
        let next = SqliteReadModel::next_version(&entry.path, (self.0)());
        Box::pin(async move {
            let next = next?;
            let admin = Mutex::new(ReadModelAdmin::open(&entry.path)?);
            let mut version = 0;
            let reached = projection::rebuild(
                store,
                next,
                entry.options,
                |_, _| {},
                || {
                    let switched = match admin.lock() {
                        Ok(admin) => admin.status().and_then(|all| {
                            version = all
                                .iter()
                                .filter(|s| s.name == entry.name)
                                .map(|s| s.version)
                                .max()
                                .unwrap_or(0);
                            let mut admin = admin;
                            admin.switch(&entry.name, &entry.tables_ref(), version)
                        }),
                        Err(_) => Err(poisoned(&entry.name)),
                    };
                    std::future::ready(switched)
                },
            )
            .await?;
            Ok(serde_json::json!({ "name": entry.name, "version": version, "checkpoint": reached }))
        })
    }

    fn verify(
        &self,
        store: SharedStore,
        entry: Arc<SqliteReadModelEntry>,
    ) -> BoxFuture<'static, Result<serde_json::Value, ProjectionError>> {
        let shadow = SqliteReadModel::shadow(&entry.path, (self.0)());
        Box::pin(async move {
            let shadow = shadow?;
            let admin = Mutex::new(ReadModelAdmin::open(&entry.path)?);
            let tables = entry.tables_ref();
            let report = projection::verify(
                store,
                shadow,
                entry.options,
                || {
                    std::future::ready(match admin.lock() {
                        Ok(admin) => admin.live_checkpoint(&entry.name),
                        Err(_) => Err(poisoned(&entry.name)),
                    })
                },
                || {
                    std::future::ready(match admin.lock() {
                        Ok(mut admin) => admin.diff_shadow(&entry.name, &tables),
                        Err(_) => Err(poisoned(&entry.name)),
                    })
                },
            )
            .await?;
            if let Ok(admin) = admin.lock() {
                admin.drop_shadow(&entry.name, &tables)?;
            }
            let clean = report.is_clean();
            let mut value = serde_json::to_value(&report).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.insert("clean".to_owned(), clean.into());
            }
            Ok(value)
        })
    }
}

fn poisoned(name: &str) -> ProjectionError {
    ProjectionError::ReadModel {
        projection: name.to_owned(),
        action: "locking the read-model admin",
        message: "an earlier operation panicked".to_owned(),
    }
}

/// One SQL read model in a SQLite file.
pub struct SqliteReadModelEntry {
    name: String,
    tables: Vec<String>,
    path: PathBuf,
    options: ProjectionOptions,
    build: Box<dyn Build>,
}

impl SqliteReadModelEntry {
    /// The read model `name` with `tables`, in the file at `path`; `make` makes a fresh
    /// projection for rebuilds and verifies.
    pub fn new<P: SqliteProjection, F: Fn() -> P + Send + Sync + 'static>(
        name: impl Into<String>,
        tables: &[&str],
        path: impl Into<PathBuf>,
        options: ProjectionOptions,
        make: F,
    ) -> Self {
        Self {
            name: name.into(),
            tables: tables.iter().map(|table| (*table).to_owned()).collect(),
            path: path.into(),
            options,
            build: Box::new(Maker(make)),
        }
    }

    fn tables_ref(&self) -> Vec<&str> {
        self.tables.iter().map(String::as_str).collect()
    }
}

/// The SQLite read models a server operates.
pub struct SqliteProjections {
    store: SharedStore,
    entries: Vec<Arc<SqliteReadModelEntry>>,
}

impl SqliteProjections {
    /// No read models yet, over `store` (rebuilds and verifies read it).
    pub fn new<S: EventStore + 'static>(store: S) -> Self {
        Self {
            store: SharedStore(Arc::new(store)),
            entries: Vec::new(),
        }
    }

    /// Adds a read model.
    pub fn with(mut self, entry: SqliteReadModelEntry) -> Self {
        self.entries.push(Arc::new(entry));
        self
    }

    fn find(&self, name: &str) -> Result<Arc<SqliteReadModelEntry>, AdminError> {
        self.entries
            .iter()
            .find(|entry| entry.name == name)
            .cloned()
            .ok_or_else(|| AdminError::UnknownProjection {
                name: name.to_owned(),
                known: self
                    .entries
                    .iter()
                    .map(|entry| entry.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn rows(&self, head: u64) -> Result<Vec<ProjectionRow>, ProjectionError> {
        let mut rows = Vec::new();
        for entry in &self.entries {
            let stored = if entry.path.exists() {
                ReadModelAdmin::open(&entry.path)?.status()?
            } else {
                Vec::new()
            };
            let mine: Vec<_> = stored
                .into_iter()
                .filter(|s| s.name == entry.name && s.version != 0)
                .collect();
            if mine.is_empty() {
                rows.push(ProjectionRow {
                    name: entry.name.clone(),
                    version: 0,
                    active: false,
                    state: ProjectionState::Stopped,
                    checkpoint: 0,
                    head,
                    lag: head,
                    pause_requested: false,
                });
            }
            rows.extend(mine.into_iter().map(|s| ProjectionRow {
                name: s.name,
                version: s.version,
                active: s.active,
                state: s.state,
                checkpoint: s.checkpoint,
                head,
                lag: head.saturating_sub(s.checkpoint),
                pause_requested: s.pause_requested,
            }));
        }
        Ok(rows)
    }
}

impl ProjectionsAdmin for SqliteProjections {
    fn list(&self, head: u64) -> BoxFuture<'_, Result<Vec<ProjectionRow>, AdminError>> {
        Box::pin(async move { self.rows(head).map_err(failed) })
    }

    fn pause<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            let entry = self.find(name)?;
            ReadModelAdmin::open(&entry.path)
                .and_then(|admin| admin.pause(&entry.name))
                .map_err(failed)
        })
    }

    fn resume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            let entry = self.find(name)?;
            ReadModelAdmin::open(&entry.path)
                .and_then(|admin| admin.resume(&entry.name))
                .map_err(failed)
        })
    }

    fn rebuild<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<serde_json::Value, AdminError>> {
        Box::pin(async move {
            let entry = self.find(name)?;
            let build = entry.build.rebuild(self.store.clone(), Arc::clone(&entry));
            build.await.map_err(failed)
        })
    }

    fn verify<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<serde_json::Value, AdminError>> {
        Box::pin(async move {
            let entry = self.find(name)?;
            if !entry.path.exists() {
                return Err(AdminError::Failed(format!(
                    "{name} has no read model at {} yet; run it first",
                    entry.path.display()
                )));
            }
            let build = entry.build.verify(self.store.clone(), Arc::clone(&entry));
            build.await.map_err(failed)
        })
    }
}
