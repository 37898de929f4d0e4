//! SQL read models in PostgreSQL: [`PgProjection`] is what a read model implements (create its
//! tables, apply a batch of events inside a transaction); [`PgReadModel`] is the
//! [`ProjectionTarget`] the runner drives, committing each batch and the checkpoint in one
//! transaction, so every event is applied exactly once even across crashes. It mirrors
//! `mammoth_sqlite::read_model`, so several `mammoth serve` processes can share read models in
//! one database.
//!
//! Read models live in a schema of their own ([`DEFAULT_READ_MODEL_SCHEMA`] unless
//! configured), apart from the event store's tables; [`PgReadModelDb`] names it and holds the
//! pool (its own, or the event store's). Each projection's tables are versioned (`orders_v1`,
//! `orders_v2`, ...) and a view with the plain name (`orders`) points at the active version:
//! a blue-green rebuild fills version N+1 while N serves, and the switch is one transaction
//! that re-points the views. Version 0 is the shadow that `verify` builds and diffs.
//!
//! Bookkeeping tables in the same schema, created by whichever process comes first:
//! `mammoth_projections` (one row per name and version: checkpoint, state, failure),
//! `mammoth_projection_control` (active version, pause and resume requests from other
//! processes) and `projection_dead_letters` (parked events).
//!
//! Concurrency: a batch locks its checkpoint row (`FOR UPDATE`) and the control row
//! (`FOR SHARE`) before writing, so two runners of one version never apply the same batch
//! (the second sees the moved checkpoint and gets [`ProjectionError::CheckpointMoved`]), and
//! a switch or reset waits for the batch in flight.
//!
//! ```no_run
//! use mammoth_core::read_model::{EventFailure, Tables};
//! use mammoth_core::{EventFilter, RecordedEvent};
//! use mammoth_postgres::read_model::{PgProjection, PgReadModel, PgReadModelDb};
//! use mammoth_postgres::{PgEventStore, PgOptions};
//! use tokio_postgres::Transaction;
//!
//! /// Events per stream.
//! struct Counts;
//!
//! impl PgProjection for Counts {
//!     fn name(&self) -> &str {
//!         "counts"
//!     }
//!     fn filter(&self) -> EventFilter {
//!         EventFilter::all()
//!     }
//!     fn tables(&self) -> &'static [&'static str] {
//!         &["counts"]
//!     }
//!     async fn create(&self, tx: &Transaction<'_>, tables: &Tables) -> Result<(), tokio_postgres::Error> {
//!         let table = tables.name("counts");
//!         tx.batch_execute(&format!("CREATE TABLE {table} (stream_id TEXT PRIMARY KEY, n BIGINT NOT NULL)"))
//!             .await
//!     }
//!     async fn apply(
//!         &mut self,
//!         tx: &Transaction<'_>,
//!         tables: &Tables,
//!         events: &[RecordedEvent],
//!     ) -> Result<(), EventFailure> {
//!         let table = tables.name("counts");
//!         let upsert = format!(
//!             "INSERT INTO {table} VALUES ($1, 1) ON CONFLICT (stream_id) DO UPDATE SET n = {table}.n + 1"
//!         );
//!         for (index, event) in events.iter().enumerate() {
//!             tx.execute(&upsert, &[&event.stream_id.as_str()])
//!                 .await
//!                 .map_err(|error| EventFailure { index, error: Box::new(error) })?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PgEventStore::open("postgres://postgres@127.0.0.1/app", PgOptions::default()).await?;
//! let db = PgReadModelDb::beside(&store, "mammoth_read").await?;
//! let target = PgReadModel::open(&db, Counts);
//! // Hand `target` to `mammoth_runtime::projection::ProjectionRunner`; the app queries the view:
//! let client = db.pool().get().await?;
//! let rows = client.query(&format!("SELECT stream_id, n FROM {}", db.view("counts")), &[]).await?;
//! # drop((target, rows)); Ok(()) }
//! ```

mod admin;
mod db;
mod schema;

use std::future::Future;

use mammoth_core::{
    ApplyFailure, EventFilter, Position, ProjectionError, ProjectionState, ProjectionTarget,
    RecordedEvent, Requested,
};
use tokio_postgres::Transaction;

use schema::RowLock;

pub use admin::PgReadModelAdmin;
pub use db::PgReadModelDb;
pub use mammoth_core::read_model::{
    DeadLetter, EventFailure, ReadModelStatus, SHADOW_VERSION, TableDiff, Tables, VerifyReport,
};

/// The schema read models go into unless configured otherwise.
pub const DEFAULT_READ_MODEL_SCHEMA: &str = "mammoth_read";

/// A read model kept in PostgreSQL tables. Its writes happen inside the runner's transaction,
/// so `apply` must not commit, and must be deterministic (take times from the events, never
/// the clock) so that a replay builds the same rows — `verify` relies on it.
///
/// `create` and `apply` run with the read-model schema first on the transaction's search
/// path: name tables unqualified, as [`Tables::name`] gives them (`counts_v2`). The
/// projection is shared by reference across awaits, hence `Sync`.
pub trait PgProjection: Send + Sync + 'static {
    /// The projection's name, unique in the read-model schema.
    fn name(&self) -> &str;

    /// Which events it receives.
    fn filter(&self) -> EventFilter;

    /// The base names of its tables (a view of each name points at the active version).
    fn tables(&self) -> &'static [&'static str];

    /// Creates its tables under the names `tables` gives, inside `tx`.
    ///
    /// # Errors
    /// PostgreSQL errors.
    fn create(
        &self,
        tx: &Transaction<'_>,
        tables: &Tables,
    ) -> impl Future<Output = Result<(), tokio_postgres::Error>> + Send;

    /// Applies `events` in order inside `tx`.
    ///
    /// # Errors
    /// The first event that fails; the runner rolls the batch back and retries.
    fn apply(
        &mut self,
        tx: &Transaction<'_>,
        tables: &Tables,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<(), EventFailure>> + Send;
}

/// Which version of the tables a target writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The active version, whichever it is (it changes when a rebuild switches).
    Active,
    /// One fixed version: a blue-green build, or the shadow.
    Fixed(u32),
}

/// A [`PgProjection`] as a [`ProjectionTarget`]: see the module documentation.
pub struct PgReadModel<P> {
    db: PgReadModelDb,
    projection: P,
    name: String,
    filter: EventFilter,
    mode: Mode,
    version: u32,
    checkpoint: Position,
}

impl<P> std::fmt::Debug for PgReadModel<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgReadModel")
            .field("schema", &self.db.schema())
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl<P: PgProjection> PgReadModel<P> {
    /// The active version of `projection` in `db` (created with version 1 when the first
    /// checkpoint is loaded, if it has none yet).
    pub fn open(db: &PgReadModelDb, projection: P) -> Self {
        Self::with_mode(db, projection, Mode::Active)
    }

    /// A new version of `projection` (one above every version it has, reserved at once so
    /// two builds never share it) to build while the active one serves;
    /// [`PgReadModelAdmin::switch`] makes it active once it has caught up.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`] when the tables cannot be created.
    pub async fn next_version(db: &PgReadModelDb, projection: P) -> Result<Self, ProjectionError> {
        let name = projection.name().to_owned();
        let action = "reserving a new version";
        let mut client = db.client(&name, action).await?;
        let version = schema::reserve_next_version(&mut client, db.schema(), &name, &projection)
            .await
            .map_err(fail(&name, action))?;
        Ok(Self::with_mode(db, projection, Mode::Fixed(version)))
    }

    /// The shadow of `projection`, emptied, for `verify` to rebuild and diff.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`] when the old shadow cannot be dropped.
    pub async fn shadow(db: &PgReadModelDb, projection: P) -> Result<Self, ProjectionError> {
        let name = projection.name().to_owned();
        let action = "dropping the old shadow";
        let mut client = db.client(&name, action).await?;
        let tx = client.transaction().await.map_err(fail(&name, action))?;
        schema::drop_version(&tx, db.schema(), &name, projection.tables(), SHADOW_VERSION)
            .await
            .map_err(fail(&name, action))?;
        tx.commit().await.map_err(fail(&name, action))?;
        Ok(Self::with_mode(db, projection, Mode::Fixed(SHADOW_VERSION)))
    }

    fn with_mode(db: &PgReadModelDb, projection: P, mode: Mode) -> Self {
        let name = projection.name().to_owned();
        let filter = projection.filter();
        Self {
            db: db.clone(),
            projection,
            name,
            filter,
            mode,
            version: match mode {
                Mode::Active => 0,
                Mode::Fixed(version) => version,
            },
            checkpoint: 0,
        }
    }

    /// The version of the tables this target writes (for the active version, known after the
    /// first checkpoint load).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Where the read model lives (its pool, for queries, and its schema).
    pub fn db(&self) -> &PgReadModelDb {
        &self.db
    }

    /// The quoted, schema-qualified name of the view `base`: the active version's rows.
    pub fn view(&self, base: &str) -> String {
        self.db.view(base)
    }

    /// The quoted, schema-qualified name of table `base` at the version this target writes.
    pub fn table(&self, base: &str) -> String {
        schema::quoted(self.db.schema(), &Tables::new(self.version).name(base))
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// One transaction that checks the checkpoint, applies `events` (or parks them with
    /// `parked`'s error and attempts) and moves the checkpoint to `through`.
    async fn commit_batch(
        &mut self,
        through: Position,
        events: &[RecordedEvent],
        parked: Option<(&str, u32)>,
    ) -> Result<(), ProjectionError> {
        let (name, version, expected, mode) =
            (self.name.as_str(), self.version, self.checkpoint, self.mode);
        let schema_name: &str = self.db.schema();
        let mut client = self.db.client(name, "applying a batch").await?;
        let tx = client
            .transaction()
            .await
            .map_err(fail(name, "starting a transaction"))?;
        check_checkpoint(&tx, schema_name, name, version, expected, mode).await?;
        match parked {
            None => {
                schema::set_search_path(&tx, schema_name)
                    .await
                    .map_err(fail(name, "setting the search path"))?;
                let tables = Tables::new(version);
                self.projection
                    .apply(&tx, &tables, events)
                    .await
                    .map_err(|failure| {
                        let event = events.get(failure.index);
                        ProjectionError::Handler {
                            projection: name.to_owned(),
                            position: event.map_or(expected + 1, |event| event.position),
                            event_type: event
                                .map_or_else(String::new, |event| event.event_type.clone()),
                            message: failure.error.to_string(),
                        }
                    })?;
            }
            Some((error, attempts)) => {
                for event in events {
                    schema::park(&*tx, schema_name, name, version, event, error, attempts)
                        .await
                        .map_err(fail(name, "parking a dead letter"))?;
                }
            }
        }
        schema::save_checkpoint(&*tx, schema_name, name, version, through)
            .await
            .map_err(fail(name, "saving the checkpoint"))?;
        tx.commit().await.map_err(fail(name, "committing a batch"))
    }
}

/// Wraps a PostgreSQL failure of `name` while doing `action`.
fn fail(name: &str, action: &'static str) -> impl Fn(tokio_postgres::Error) -> ProjectionError {
    let name = name.to_owned();
    move |error| ProjectionError::ReadModel {
        projection: name.clone(),
        action,
        message: match error.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => error.to_string(),
        },
    }
}

/// Wraps a pool failure (no connection could be had) of `name` while doing `action`.
fn pool_fail(
    name: &str,
    action: &'static str,
) -> impl Fn(deadpool_postgres::PoolError) -> ProjectionError {
    let name = name.to_owned();
    move |error| ProjectionError::ReadModel {
        projection: name.clone(),
        action,
        message: format!("no database connection: {error}"),
    }
}

/// Checks inside `tx` that `(name, version)` is still at `expected` (and still active when the
/// target follows the active version), locking both rows until the transaction ends.
async fn check_checkpoint(
    tx: &Transaction<'_>,
    schema_name: &str,
    name: &str,
    version: u32,
    expected: Position,
    mode: Mode,
) -> Result<(), ProjectionError> {
    let active = match mode {
        Mode::Active => schema::active_version(tx, schema_name, name, RowLock::Share)
            .await
            .map_err(fail(name, "reading the version"))?,
        Mode::Fixed(_) => Some(version),
    };
    let stored = schema::checkpoint(tx, schema_name, name, version, RowLock::Update)
        .await
        .map_err(fail(name, "reading the checkpoint"))?;
    if stored != Some(expected) || active != Some(version) {
        return Err(ProjectionError::CheckpointMoved {
            projection: name.to_owned(),
        });
    }
    Ok(())
}

impl<P: PgProjection> ProjectionTarget for PgReadModel<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn filter(&self) -> EventFilter {
        self.filter.clone()
    }

    async fn checkpoint(&mut self) -> Result<Position, ProjectionError> {
        let action = "loading the checkpoint";
        let (name, schema_name) = (self.name.as_str(), self.db.schema());
        let mut client = self.db.client(name, action).await?;
        let version = match self.mode {
            Mode::Active => {
                schema::ensure_active(&mut client, schema_name, name, &self.projection).await
            }
            Mode::Fixed(version) => {
                schema::ensure_version(&mut client, schema_name, name, &self.projection, version)
                    .await
                    .map(|()| version)
            }
        }
        .map_err(fail(name, action))?;
        let checkpoint = schema::checkpoint(&**client, schema_name, name, version, RowLock::None)
            .await
            .map_err(fail(name, action))?
            .unwrap_or(0);
        self.version = version;
        self.checkpoint = checkpoint;
        Ok(checkpoint)
    }

    async fn apply(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<(), ApplyFailure> {
        match self.commit_batch(through, events, None).await {
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
        self.commit_batch(
            event.position,
            std::slice::from_ref(event),
            Some((error, attempts)),
        )
        .await?;
        self.checkpoint = event.position;
        Ok(())
    }

    async fn record_state(&mut self, state: &ProjectionState) -> Result<(), ProjectionError> {
        let action = "recording the state";
        if self.mode == Mode::Active && self.version == SHADOW_VERSION {
            // Not loaded yet: which version is active is unknown, and version 0 is the shadow's.
            return Ok(());
        }
        let client = self.db.client(&self.name, action).await?;
        schema::record_state(&**client, self.db.schema(), &self.name, self.version, state)
            .await
            .map_err(fail(&self.name, action))
    }

    async fn requested(&mut self) -> Result<Requested, ProjectionError> {
        let action = "reading requests";
        let client = self.db.client(&self.name, action).await?;
        schema::requested(&**client, self.db.schema(), &self.name)
            .await
            .map_err(fail(&self.name, action))
    }
}
