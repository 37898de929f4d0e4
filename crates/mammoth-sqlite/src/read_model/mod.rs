//! SQL read models in SQLite: [`SqliteProjection`] is what a read model implements (create its
//! tables, apply a batch of events inside a transaction); [`SqliteReadModel`] is the
//! [`ProjectionTarget`] the runner drives, committing each batch and the checkpoint in one
//! transaction, so every event is applied exactly once even across crashes.
//!
//! Read models live in their own file by default (`./mammoth-data/read_models.db`), so they
//! never contend with the event store's writer. Each projection's tables are versioned
//! (`orders_v1`, `orders_v2`, ...) and a view with the plain name (`orders`) points at the
//! active version: a blue-green rebuild fills version N+1 while N serves, and the switch is one
//! transaction that re-points the view. Version 0 is the shadow that `verify` builds and diffs.
//!
//! Bookkeeping tables in the same file: `mammoth_projections` (one row per name and version:
//! checkpoint, state, failure), `mammoth_projection_control` (active version, pause and resume
//! requests from other processes) and `projection_dead_letters` (parked events).

mod admin;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mammoth_core::{
    ApplyFailure, EventFilter, Position, ProjectionError, ProjectionState, ProjectionTarget,
    RecordedEvent, Requested,
};
use rusqlite::{Connection, Transaction, TransactionBehavior};

pub use admin::ReadModelAdmin;
pub use mammoth_core::read_model::{
    DeadLetter, EventFailure, ReadModelStatus, SHADOW_VERSION, TableDiff, Tables, VerifyReport,
};

/// The default file for read models, beside the event store's default file.
pub const DEFAULT_READ_MODEL_PATH: &str = "./mammoth-data/read_models.db";

/// A read model kept in SQLite tables. Its writes happen inside the runner's transaction, so
/// `apply` must not commit, and must be deterministic (take times from the events, never the
/// clock) so that a replay builds the same rows — `verify` relies on it.
pub trait SqliteProjection: Send + 'static {
    /// The projection's name, unique in the read-model file.
    fn name(&self) -> &str;

    /// Which events it receives.
    fn filter(&self) -> EventFilter;

    /// The base names of its tables (a view of each name points at the active version).
    fn tables(&self) -> &'static [&'static str];

    /// Creates its tables under the names `tables` gives.
    ///
    /// # Errors
    /// SQLite errors.
    fn create(&self, conn: &Connection, tables: &Tables) -> rusqlite::Result<()>;

    /// Applies `events` in order inside `tx`.
    ///
    /// # Errors
    /// The first event that fails; the runner rolls the batch back and retries.
    fn apply(
        &mut self,
        tx: &Transaction<'_>,
        tables: &Tables,
        events: &[RecordedEvent],
    ) -> Result<(), EventFailure>;
}

/// Which version of the tables a target writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The active version, whichever it is (it changes when a rebuild switches).
    Active,
    /// One fixed version: a blue-green build, or the shadow.
    Fixed(u32),
}

struct Inner<P> {
    conn: Connection,
    projection: P,
}

/// A [`SqliteProjection`] as a [`ProjectionTarget`]: see the module documentation.
pub struct SqliteReadModel<P> {
    inner: Arc<Mutex<Inner<P>>>,
    path: PathBuf,
    name: String,
    filter: EventFilter,
    mode: Mode,
    version: u32,
    checkpoint: Position,
}

impl<P> std::fmt::Debug for SqliteReadModel<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReadModel")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl<P: SqliteProjection> SqliteReadModel<P> {
    /// The active version of `projection` in the file at `path` (created with version 1 if it
    /// has none yet).
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`] when the file cannot be opened.
    pub fn open(path: impl AsRef<Path>, projection: P) -> Result<Self, ProjectionError> {
        Self::with_mode(path.as_ref(), projection, Mode::Active)
    }

    /// A new version of `projection` (one above every version the file has) to build while
    /// the active one serves; [`ReadModelAdmin::switch`] makes it active once it has caught up.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`] when the file cannot be opened.
    pub fn next_version(path: impl AsRef<Path>, projection: P) -> Result<Self, ProjectionError> {
        let path = path.as_ref();
        let name = projection.name().to_owned();
        let conn = schema::open(path, &name)?;
        let version =
            schema::next_version(&conn, &name).map_err(fail(&name, "choosing a version"))?;
        drop(conn);
        Self::with_mode(path, projection, Mode::Fixed(version))
    }

    /// The shadow of `projection`, emptied, for `verify` to rebuild and diff.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`] when the file cannot be opened.
    pub fn shadow(path: impl AsRef<Path>, projection: P) -> Result<Self, ProjectionError> {
        let path = path.as_ref();
        let name = projection.name().to_owned();
        let conn = schema::open(path, &name)?;
        schema::drop_version(&conn, &name, projection.tables(), SHADOW_VERSION)
            .map_err(fail(&name, "dropping the old shadow"))?;
        drop(conn);
        Self::with_mode(path, projection, Mode::Fixed(SHADOW_VERSION))
    }

    fn with_mode(path: &Path, projection: P, mode: Mode) -> Result<Self, ProjectionError> {
        let name = projection.name().to_owned();
        let filter = projection.filter();
        let conn = schema::open(path, &name)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner { conn, projection })),
            path: path.to_path_buf(),
            name,
            filter,
            mode,
            version: 0,
            checkpoint: 0,
        })
    }

    /// The version of the tables this target writes (known after the first checkpoint load).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The read-model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the projection and its connection on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Inner<P>) -> T + Send + 'static,
    ) -> Result<T, ProjectionError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut inner = inner
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut inner)
        })
        .await
        .map_err(|error| ProjectionError::ReadModel {
            projection: self.name.clone(),
            action: "running a read-model task",
            message: error.to_string(),
        })
    }

    /// Runs a read-only closure on the connection (for queries in tests and examples).
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`] when the task cannot run.
    pub async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> T + Send + 'static,
    ) -> Result<T, ProjectionError> {
        self.blocking(move |inner| work(&inner.conn)).await
    }
}

fn fail(name: &str, action: &'static str) -> impl Fn(rusqlite::Error) -> ProjectionError {
    let name = name.to_owned();
    move |error| ProjectionError::ReadModel {
        projection: name.clone(),
        action,
        message: error.to_string(),
    }
}

fn to_i64(position: Position) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

/// Checks inside `tx` that `(name, version)` is still at `expected` (and still active when the
/// target follows the active version).
fn check_checkpoint(
    tx: &Transaction<'_>,
    name: &str,
    version: u32,
    expected: Position,
    mode: Mode,
) -> Result<(), ProjectionError> {
    let stored =
        schema::checkpoint(tx, name, version).map_err(fail(name, "reading the checkpoint"))?;
    let active = match mode {
        Mode::Active => {
            schema::active_version(tx, name).map_err(fail(name, "reading the version"))?
        }
        Mode::Fixed(_) => Some(version),
    };
    if stored != Some(expected) || active != Some(version) {
        return Err(ProjectionError::CheckpointMoved {
            projection: name.to_owned(),
        });
    }
    Ok(())
}

impl<P: SqliteProjection> ProjectionTarget for SqliteReadModel<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn filter(&self) -> EventFilter {
        self.filter.clone()
    }

    async fn checkpoint(&mut self) -> Result<Position, ProjectionError> {
        let mode = self.mode;
        let name = self.name.clone();
        let (version, checkpoint) = self
            .blocking(move |inner| {
                let version = match mode {
                    Mode::Active => schema::ensure_active(&inner.conn, &name, &inner.projection)?,
                    Mode::Fixed(version) => {
                        schema::ensure_version(&inner.conn, &name, &inner.projection, version)?;
                        version
                    }
                };
                let checkpoint = schema::checkpoint(&inner.conn, &name, version)?.unwrap_or(0);
                Ok((version, checkpoint))
            })
            .await?
            .map_err(fail(&self.name, "loading the checkpoint"))?;
        self.version = version;
        self.checkpoint = checkpoint;
        Ok(checkpoint)
    }

    async fn apply(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<(), ApplyFailure> {
        let (name, version, expected, mode) =
            (self.name.clone(), self.version, self.checkpoint, self.mode);
        // The batch moves to the blocking thread and back: no copy of the events.
        let batch = events.to_vec();
        let result = self
            .blocking(move |inner| -> Result<(), ProjectionError> {
                let Inner { conn, projection } = inner;
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(fail(&name, "starting a transaction"))?;
                check_checkpoint(&tx, &name, version, expected, mode)?;
                let tables = Tables::new(version);
                projection.apply(&tx, &tables, &batch).map_err(|failure| {
                    let event = batch.get(failure.index);
                    ProjectionError::Handler {
                        projection: name.clone(),
                        position: event.map_or(expected + 1, |event| event.position),
                        event_type: event
                            .map_or_else(String::new, |event| event.event_type.clone()),
                        message: failure.error.to_string(),
                    }
                })?;
                schema::save_checkpoint(&tx, &name, version, to_i64(through))
                    .map_err(fail(&name, "saving the checkpoint"))?;
                tx.commit().map_err(fail(&name, "committing a batch"))
            })
            .await
            .and_then(|result| result);
        match result {
            Ok(()) => {
                self.checkpoint = through;
                Ok(())
            }
            Err(error) => Err(ApplyFailure {
                checkpoint: self.checkpoint,
                error,
            }),
        }
    }

    async fn park(
        &mut self,
        event: &RecordedEvent,
        error: &str,
        attempts: u32,
    ) -> Result<(), ProjectionError> {
        let (name, version, expected, mode) =
            (self.name.clone(), self.version, self.checkpoint, self.mode);
        let (event, error) = (event.clone(), error.to_owned());
        let position = event.position;
        self.blocking(move |inner| -> Result<(), ProjectionError> {
            let tx = inner
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(fail(&name, "starting a transaction"))?;
            check_checkpoint(&tx, &name, version, expected, mode)?;
            schema::park(&tx, &name, version, &event, &error, attempts)
                .and_then(|()| schema::save_checkpoint(&tx, &name, version, to_i64(event.position)))
                .and_then(|()| tx.commit())
                .map_err(fail(&name, "parking a dead letter"))
        })
        .await??;
        self.checkpoint = position;
        Ok(())
    }

    async fn record_state(&mut self, state: &ProjectionState) -> Result<(), ProjectionError> {
        let (name, version, state) = (self.name.clone(), self.version, state.clone());
        self.blocking(move |inner| schema::record_state(&inner.conn, &name, version, &state))
            .await?
            .map_err(fail(&self.name, "recording the state"))
    }

    async fn requested(&mut self) -> Result<Requested, ProjectionError> {
        let name = self.name.clone();
        self.blocking(move |inner| schema::requested(&inner.conn, &name))
            .await?
            .map_err(fail(&self.name, "reading requests"))
    }
}
