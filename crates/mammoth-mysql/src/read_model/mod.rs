//! SQL read models in MySQL/MariaDB: [`MysqlProjection`] is what a read model implements
//! (create its tables, apply a batch of events inside a transaction); [`MysqlReadModel`] is the
//! [`ProjectionTarget`] the runner drives, committing each batch and the checkpoint in one
//! InnoDB transaction, so every event is applied exactly once even across crashes, and several
//! processes can share the read models of one database.
//!
//! Read models live in a database of their own ([`ReadModelDatabase`], `mammoth_read` by
//! default), apart from the event store's. Each projection's tables are versioned
//! (`orders_v1`, `orders_v2`, ...) and a view with the plain name (`orders`) points at the
//! active version: a blue-green rebuild fills version N+1 while N serves, and the switch
//! re-points every view in one `RENAME TABLE` (MySQL runs DDL outside transactions, and a
//! multi-table rename is its one atomic DDL). Version 0 is the shadow that `verify` builds and
//! diffs.
//!
//! Bookkeeping tables in the same database: `mammoth_projections` (one row per name and
//! version: checkpoint, state, failure), `mammoth_projection_control` (active version, pause
//! and resume requests from other processes) and `projection_dead_letters` (parked events).
//! Every batch locks the projection's control row (shared) and then its checkpoint row
//! (exclusive), in that order, so a switch or a reset from another process waits for the batch
//! in flight and the batch that follows sees the change.

mod admin;
mod database;
mod schema;
mod versions;

use mammoth_core::{
    ApplyFailure, EventFilter, Position, ProjectionError, ProjectionState, ProjectionTarget,
    RecordedEvent, Requested,
};
use mysql_async::{Conn, Transaction, TxOpts};

pub use admin::MysqlReadModelAdmin;
pub use database::ReadModelDatabase;
pub use mammoth_core::read_model::{
    DeadLetter, EventFailure, ReadModelStatus, SHADOW_VERSION, TableDiff, Tables, VerifyReport,
};

/// The database read models live in unless told otherwise.
pub const DEFAULT_READ_MODEL_DATABASE: &str = "mammoth_read";

/// A read model kept in MySQL/MariaDB tables. Its writes happen inside the runner's
/// transaction, so `apply` must not commit, and must be deterministic (take times from the
/// events, never the clock) so that a replay builds the same rows — `verify` relies on it.
///
/// Statements run with the read-model database selected (`USE`), so the plain names
/// [`Tables::name`] gives resolve to it.
pub trait MysqlProjection: Send + 'static {
    /// The projection's name, unique in the read-model database (at most
    /// [`MAX_PROJECTION_NAME_BYTES`] bytes).
    fn name(&self) -> &str;

    /// Which events it receives.
    fn filter(&self) -> EventFilter;

    /// The base names of its tables (a view of each name points at the active version).
    fn tables(&self) -> &'static [&'static str];

    /// Creates its tables under the names `tables` gives. DDL commits on its own in MySQL, so
    /// this runs outside any transaction; leftovers of an interrupted earlier attempt are
    /// dropped before it is called.
    ///
    /// # Errors
    /// MySQL errors.
    fn create(
        &self,
        conn: &mut Conn,
        tables: &Tables,
    ) -> impl Future<Output = mysql_async::Result<()>> + Send;

    /// Applies `events` in order inside `tx`.
    ///
    /// # Errors
    /// The first event that fails; the runner rolls the batch back and retries.
    fn apply(
        &mut self,
        tx: &mut Transaction<'_>,
        tables: &Tables,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<(), EventFailure>> + Send;
}

/// The longest projection name the bookkeeping tables hold.
pub const MAX_PROJECTION_NAME_BYTES: usize = 190;

/// Which version of the tables a target writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The active version, whichever it is (it changes when a rebuild switches).
    Active,
    /// One fixed version: a blue-green build, or the shadow.
    Fixed(u32),
}

/// A [`MysqlProjection`] as a [`ProjectionTarget`]: see the module documentation.
pub struct MysqlReadModel<P> {
    db: ReadModelDatabase,
    projection: P,
    name: String,
    filter: EventFilter,
    mode: Mode,
    version: u32,
    checkpoint: Position,
    /// The runner reloads the checkpoint on every poll; the views are looked at on the first.
    views_checked: bool,
}

impl<P> std::fmt::Debug for MysqlReadModel<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlReadModel")
            .field("database", &self.db.database())
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl<P: MysqlProjection> MysqlReadModel<P> {
    /// The active version of `projection` in `db` (created with version 1 when the first
    /// checkpoint is loaded, if it has none yet). Creates the database and the bookkeeping
    /// tables if missing.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`] when the database cannot be reached or the projection's
    /// name or table names cannot be stored.
    pub async fn open(db: &ReadModelDatabase, projection: P) -> Result<Self, ProjectionError> {
        schema::prepare(db, projection.name(), projection.tables()).await?;
        Ok(Self::build(db, projection, Mode::Active))
    }

    /// A new version of `projection` (one above every version the database has) to build
    /// while the active one serves; [`MysqlReadModelAdmin::switch`] makes it active once it
    /// has caught up.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`] when the database cannot be reached.
    pub async fn next_version(
        db: &ReadModelDatabase,
        mut projection: P,
    ) -> Result<Self, ProjectionError> {
        let name = projection.name().to_owned();
        schema::prepare(db, &name, projection.tables()).await?;
        let mut conn = db.conn().await?;
        let version = versions::create_next_version(&mut conn, &name, &mut projection)
            .await
            .map_err(fail(&name, "creating the next version"))?;
        drop(conn);
        Ok(Self::build(db, projection, Mode::Fixed(version)))
    }

    /// The shadow of `projection`, emptied, for `verify` to rebuild and diff.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`] when the database cannot be reached.
    pub async fn shadow(db: &ReadModelDatabase, projection: P) -> Result<Self, ProjectionError> {
        let name = projection.name().to_owned();
        schema::prepare(db, &name, projection.tables()).await?;
        let mut conn = db.conn().await?;
        versions::drop_version(&mut conn, &name, projection.tables(), SHADOW_VERSION)
            .await
            .map_err(fail(&name, "dropping the old shadow"))?;
        drop(conn);
        Ok(Self::build(db, projection, Mode::Fixed(SHADOW_VERSION)))
    }

    fn build(db: &ReadModelDatabase, projection: P, mode: Mode) -> Self {
        Self {
            db: db.clone(),
            name: projection.name().to_owned(),
            filter: projection.filter(),
            projection,
            mode,
            version: 0,
            checkpoint: 0,
            views_checked: false,
        }
    }

    /// The version of the tables this target writes (known after the first checkpoint load).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Where the read model lives: its pool and database, for the app's queries.
    pub fn database(&self) -> &ReadModelDatabase {
        &self.db
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The qualified name of the view on the active version of table `base`, for queries:
    /// `` `mammoth_read`.`orders` ``.
    pub fn view(&self, base: &str) -> String {
        self.db.qualified(base)
    }

    /// The qualified name of table `base` at the version this target writes:
    /// `` `mammoth_read`.`orders_v2` `` (known after the first checkpoint load).
    pub fn physical(&self, base: &str) -> String {
        self.db.qualified(&Tables::new(self.version).name(base))
    }

    /// Checks, applies and moves the checkpoint inside `tx`; the caller commits or rolls back.
    async fn apply_in(
        &mut self,
        tx: &mut Transaction<'_>,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<(), ProjectionError> {
        let (version, expected) = (self.version, self.checkpoint);
        check_checkpoint(tx, &self.name, version, expected, self.mode).await?;
        let tables = Tables::new(version);
        self.projection
            .apply(tx, &tables, events)
            .await
            .map_err(|failure| {
                let event = events.get(failure.index);
                ProjectionError::Handler {
                    projection: self.name.clone(),
                    position: event.map_or(expected + 1, |event| event.position),
                    event_type: event.map_or_else(String::new, |event| event.event_type.clone()),
                    message: failure.error.to_string(),
                }
            })?;
        schema::save_checkpoint(tx, &self.name, version, to_i64(through))
            .await
            .map_err(fail(&self.name, "saving the checkpoint"))
    }

    async fn park_in(
        &mut self,
        tx: &mut Transaction<'_>,
        event: &RecordedEvent,
        error: &str,
        attempts: u32,
    ) -> Result<(), ProjectionError> {
        let (name, version) = (self.name.as_str(), self.version);
        check_checkpoint(tx, name, version, self.checkpoint, self.mode).await?;
        schema::park(tx, name, version, event, error, attempts)
            .await
            .map_err(fail(name, "parking a dead letter"))?;
        schema::save_checkpoint(tx, name, version, to_i64(event.position))
            .await
            .map_err(fail(name, "saving the checkpoint"))
    }
}

fn fail(name: &str, action: &'static str) -> impl Fn(mysql_async::Error) -> ProjectionError {
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
/// target follows the active version), locking the control row and then the checkpoint row.
async fn check_checkpoint(
    tx: &mut Transaction<'_>,
    name: &str,
    version: u32,
    expected: Position,
    mode: Mode,
) -> Result<(), ProjectionError> {
    let active = match mode {
        Mode::Active => schema::lock_active_version(tx, name)
            .await
            .map_err(fail(name, "reading the version"))?,
        Mode::Fixed(_) => Some(version),
    };
    let stored = schema::lock_checkpoint(tx, name, version)
        .await
        .map_err(fail(name, "reading the checkpoint"))?;
    if stored != Some(expected) || active != Some(version) {
        return Err(ProjectionError::CheckpointMoved {
            projection: name.to_owned(),
        });
    }
    Ok(())
}

impl<P: MysqlProjection> ProjectionTarget for MysqlReadModel<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn filter(&self) -> EventFilter {
        self.filter.clone()
    }

    async fn checkpoint(&mut self) -> Result<Position, ProjectionError> {
        let mut conn = self.db.conn().await?;
        let version = match self.mode {
            Mode::Active => {
                let check_views = !self.views_checked;
                versions::ensure_active(&mut conn, &self.name, &mut self.projection, check_views)
                    .await
            }
            Mode::Fixed(version) => {
                versions::ensure_version(&mut conn, &self.name, &mut self.projection, version)
                    .await
                    .map(|()| version)
            }
        }
        .map_err(fail(&self.name, "preparing the tables"))?;
        let checkpoint = schema::checkpoint(&mut conn, &self.name, version)
            .await
            .map_err(fail(&self.name, "loading the checkpoint"))?
            .unwrap_or(0);
        self.version = version;
        self.checkpoint = checkpoint;
        self.views_checked = true;
        Ok(checkpoint)
    }

    async fn apply(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<(), ApplyFailure> {
        let result = async {
            let mut conn = self.db.conn().await?;
            let mut tx = conn
                .start_transaction(TxOpts::default())
                .await
                .map_err(fail(&self.name, "starting a transaction"))?;
            match self.apply_in(&mut tx, events, through).await {
                Ok(()) => tx
                    .commit()
                    .await
                    .map_err(fail(&self.name, "committing a batch")),
                Err(error) => {
                    // Best effort: a connection that lost its transaction rolls back anyway.
                    let _ = tx.rollback().await;
                    Err(error)
                }
            }
        }
        .await;
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
        let mut conn = self.db.conn().await?;
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(fail(&self.name, "starting a transaction"))?;
        match self.park_in(&mut tx, event, error, attempts).await {
            Ok(()) => tx
                .commit()
                .await
                .map_err(fail(&self.name, "committing a dead letter"))?,
            Err(error) => {
                let _ = tx.rollback().await;
                return Err(error);
            }
        }
        self.checkpoint = event.position;
        Ok(())
    }

    async fn record_state(&mut self, state: &ProjectionState) -> Result<(), ProjectionError> {
        let mut conn = self.db.conn().await?;
        schema::record_state(&mut conn, &self.name, self.version, state)
            .await
            .map_err(fail(&self.name, "recording the state"))
    }

    async fn requested(&mut self) -> Result<Requested, ProjectionError> {
        let mut conn = self.db.conn().await?;
        schema::requested(&mut conn, &self.name)
            .await
            .map_err(fail(&self.name, "reading requests"))
    }
}
