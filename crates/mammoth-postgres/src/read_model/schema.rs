//! The read-model schema's bookkeeping tables and the small statements on them. Every
//! statement names the schema, so the pooled connections carry no per-session state.

use mammoth_core::{Position, ProjectionState, RecordedEvent, Requested};
use tokio_postgres::{GenericClient, Transaction};

use super::{PgProjection, Tables};

/// The bookkeeping tables, created by whichever process gets there first.
fn create_sql(schema: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
CREATE TABLE IF NOT EXISTS \"{schema}\".mammoth_projections (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    checkpoint BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'stopped',
    failed_position BIGINT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS \"{schema}\".mammoth_projection_control (
    name TEXT PRIMARY KEY NOT NULL,
    active_version INTEGER,
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    resumes BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS \"{schema}\".projection_dead_letters (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    position BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    parked_at BIGINT NOT NULL
);"
    )
}

/// A transaction-scoped advisory lock key for `what` in `schema`: concurrent `CREATE ... IF
/// NOT EXISTS` and version choices from several processes would otherwise race.
fn lock_key(schema: &str, what: &str) -> i64 {
    crate::schema::stable_hash(&format!("mammoth read model {schema}/{what}"))
}

/// Takes the advisory lock on `what` until the transaction ends.
pub(super) async fn lock(
    tx: &Transaction<'_>,
    schema: &str,
    what: &str,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&lock_key(schema, what)],
    )
    .await
    .map(drop)
}

/// Creates the schema and the bookkeeping tables if missing.
pub(super) async fn bootstrap(
    tx: &Transaction<'_>,
    schema: &str,
) -> Result<(), tokio_postgres::Error> {
    lock(tx, schema, "*").await?;
    tx.batch_execute(&create_sql(schema)).await
}

/// A version as the `INTEGER` column stores it.
pub(super) fn db_version(version: u32) -> i32 {
    i32::try_from(version).unwrap_or(i32::MAX)
}

/// A position as the `BIGINT` column stores it.
pub(super) fn db_position(position: Position) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

fn to_position(value: i64) -> Position {
    Position::try_from(value).unwrap_or(0)
}

/// A row lock a read takes, held until the transaction ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RowLock {
    /// A plain read.
    None,
    /// `FOR SHARE`: batches of the active version take it on the control row, so a switch
    /// (which takes `FOR UPDATE`) waits for the batches in flight and they wait for it.
    Share,
    /// `FOR UPDATE`: one writer at a time.
    Update,
}

impl RowLock {
    fn sql(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Share => " FOR SHARE",
            Self::Update => " FOR UPDATE",
        }
    }
}

/// The active version of `name`.
pub(super) async fn active_version(
    client: &impl GenericClient,
    schema: &str,
    name: &str,
    lock: RowLock,
) -> Result<Option<u32>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "SELECT active_version FROM \"{schema}\".mammoth_projection_control WHERE name = $1{}",
                lock.sql()
            ),
            &[&name],
        )
        .await?;
    Ok(row
        .and_then(|row| row.get::<_, Option<i32>>(0))
        .map(|version| u32::try_from(version).unwrap_or(0)))
}

/// The checkpoint of `(name, version)`. A batch reads it `FOR UPDATE`, so two runners of the
/// same version never both apply the same batch.
pub(super) async fn checkpoint(
    client: &impl GenericClient,
    schema: &str,
    name: &str,
    version: u32,
    lock: RowLock,
) -> Result<Option<Position>, tokio_postgres::Error> {
    let suffix = lock.sql();
    let row = client
        .query_opt(
            &format!(
                "SELECT checkpoint FROM \"{schema}\".mammoth_projections WHERE name = $1 AND version = $2{suffix}"
            ),
            &[&name, &db_version(version)],
        )
        .await?;
    Ok(row.map(|row| to_position(row.get(0))))
}

pub(super) async fn save_checkpoint(
    client: &impl GenericClient,
    schema: &str,
    name: &str,
    version: u32,
    through: Position,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            &format!(
                "UPDATE \"{schema}\".mammoth_projections SET checkpoint = $3, updated_at = $4
                 WHERE name = $1 AND version = $2"
            ),
            &[
                &name,
                &db_version(version),
                &db_position(through),
                &mammoth_core::now_micros(),
            ],
        )
        .await
        .map(drop)
}

/// Creates `version`'s tables and row if missing (inside `tx`, which holds the name's lock
/// and has the read-model schema first on its search path).
async fn ensure_version_in<P: PgProjection>(
    tx: &Transaction<'_>,
    schema: &str,
    name: &str,
    projection: &P,
    version: u32,
) -> Result<(), tokio_postgres::Error> {
    if checkpoint(tx, schema, name, version, RowLock::None)
        .await?
        .is_some()
    {
        return Ok(());
    }
    projection.create(tx, &Tables::new(version)).await?;
    tx.execute(
        &format!(
            "INSERT INTO \"{schema}\".mammoth_projections (name, version, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING"
        ),
        &[&name, &db_version(version), &mammoth_core::now_micros()],
    )
    .await?;
    tx.execute(
        &format!(
            "INSERT INTO \"{schema}\".mammoth_projection_control (name) VALUES ($1) ON CONFLICT DO NOTHING"
        ),
        &[&name],
    )
    .await
    .map(drop)
}

/// Starts a transaction on the name's lock with the read-model schema first on the search
/// path (for the projection's `create`, which names its tables unqualified).
async fn locked<'c>(
    client: &'c mut deadpool_postgres::Client,
    schema: &str,
    name: &str,
) -> Result<deadpool_postgres::Transaction<'c>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    lock(&tx, schema, name).await?;
    set_search_path(&tx, schema).await?;
    Ok(tx)
}

/// Puts the read-model schema first on the search path until the transaction ends.
pub(super) async fn set_search_path(
    tx: &Transaction<'_>,
    schema: &str,
) -> Result<(), tokio_postgres::Error> {
    tx.batch_execute(&format!("SET LOCAL search_path TO \"{schema}\", public"))
        .await
}

/// Creates `version`'s tables and row if missing, in a transaction of its own.
pub(super) async fn ensure_version<P: PgProjection>(
    client: &mut deadpool_postgres::Client,
    schema: &str,
    name: &str,
    projection: &P,
    version: u32,
) -> Result<(), tokio_postgres::Error> {
    let tx = locked(client, schema, name).await?;
    ensure_version_in(&tx, schema, name, projection, version).await?;
    tx.commit().await
}

/// The active version, making version 1 active when there is none.
pub(super) async fn ensure_active<P: PgProjection>(
    client: &mut deadpool_postgres::Client,
    schema: &str,
    name: &str,
    projection: &P,
) -> Result<u32, tokio_postgres::Error> {
    let tx = locked(client, schema, name).await?;
    let version = match active_version(&*tx, schema, name, RowLock::None).await? {
        Some(version) => {
            ensure_version_in(&tx, schema, name, projection, version).await?;
            version
        }
        None => {
            let version = next_version(&*tx, schema, name).await?;
            ensure_version_in(&tx, schema, name, projection, version).await?;
            activate(&tx, schema, name, projection.tables(), version).await?;
            version
        }
    };
    tx.commit().await?;
    Ok(version)
}

/// Reserves the next version of `name` (one above every version so far, 1 for the first) by
/// inserting its row, so two builds never pick the same number.
pub(super) async fn reserve_next_version<P: PgProjection>(
    client: &mut deadpool_postgres::Client,
    schema: &str,
    name: &str,
    projection: &P,
) -> Result<u32, tokio_postgres::Error> {
    let tx = locked(client, schema, name).await?;
    let version = next_version(&*tx, schema, name).await?;
    ensure_version_in(&tx, schema, name, projection, version).await?;
    tx.commit().await?;
    Ok(version)
}

async fn next_version(
    client: &impl GenericClient,
    schema: &str,
    name: &str,
) -> Result<u32, tokio_postgres::Error> {
    let row = client
        .query_one(
            &format!(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM \"{schema}\".mammoth_projections WHERE name = $1"
            ),
            &[&name],
        )
        .await?;
    Ok(u32::try_from(row.get::<_, i32>(0)).unwrap_or(1))
}

/// A table name quoted for SQL.
pub(super) fn quoted(schema: &str, table: &str) -> String {
    format!("\"{schema}\".\"{}\"", table.replace('"', "\"\""))
}

/// Points the views at `version` and records it as active (inside the caller's transaction).
pub(super) async fn activate(
    tx: &Transaction<'_>,
    schema: &str,
    name: &str,
    tables: &[&str],
    version: u32,
) -> Result<(), tokio_postgres::Error> {
    let physical = Tables::new(version);
    for base in tables {
        let view = quoted(schema, base);
        tx.batch_execute(&format!(
            "DROP VIEW IF EXISTS {view}; CREATE VIEW {view} AS SELECT * FROM {};",
            quoted(schema, &physical.name(base))
        ))
        .await?;
    }
    tx.execute(
        &format!(
            "INSERT INTO \"{schema}\".mammoth_projection_control (name, active_version) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET active_version = EXCLUDED.active_version"
        ),
        &[&name, &db_version(version)],
    )
    .await
    .map(drop)
}

/// Drops `version`'s tables and row (inside the caller's transaction).
pub(super) async fn drop_version(
    tx: &Transaction<'_>,
    schema: &str,
    name: &str,
    tables: &[&str],
    version: u32,
) -> Result<(), tokio_postgres::Error> {
    let physical = Tables::new(version);
    for base in tables {
        tx.batch_execute(&format!(
            "DROP TABLE IF EXISTS {}",
            quoted(schema, &physical.name(base))
        ))
        .await?;
    }
    tx.execute(
        &format!("DELETE FROM \"{schema}\".mammoth_projections WHERE name = $1 AND version = $2"),
        &[&name, &db_version(version)],
    )
    .await
    .map(drop)
}

pub(super) async fn record_state(
    client: &impl GenericClient,
    schema: &str,
    name: &str,
    version: u32,
    state: &ProjectionState,
) -> Result<(), tokio_postgres::Error> {
    let (position, error, attempts) = match state {
        ProjectionState::Failed {
            position,
            error,
            attempts,
        } => (
            i64::try_from(*position).ok(),
            Some(error.as_str()),
            i32::try_from(*attempts).unwrap_or(i32::MAX),
        ),
        _ => (None, None, 0),
    };
    client
        .execute(
            &format!(
                "UPDATE \"{schema}\".mammoth_projections
                 SET state = $3, failed_position = $4, error = $5, attempts = $6, updated_at = $7
                 WHERE name = $1 AND version = $2"
            ),
            &[
                &name,
                &db_version(version),
                &state.label(),
                &position,
                &error,
                &attempts,
                &mammoth_core::now_micros(),
            ],
        )
        .await
        .map(drop)
}

pub(super) async fn requested(
    client: &impl GenericClient,
    schema: &str,
    name: &str,
) -> Result<Requested, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "SELECT paused, resumes FROM \"{schema}\".mammoth_projection_control WHERE name = $1"
            ),
            &[&name],
        )
        .await?;
    Ok(row
        .map(|row| Requested {
            paused: row.get(0),
            resumes: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
        })
        .unwrap_or_default())
}

pub(super) async fn park(
    client: &impl GenericClient,
    schema: &str,
    name: &str,
    version: u32,
    event: &RecordedEvent,
    error: &str,
    attempts: u32,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            &format!(
                "INSERT INTO \"{schema}\".projection_dead_letters
                 (name, version, position, event_id, stream_id, event_type, error, attempts, parked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            &[
                &name,
                &db_version(version),
                &db_position(event.position),
                &event.id.to_string(),
                &event.stream_id.as_str(),
                &event.event_type,
                &error,
                &i32::try_from(attempts).unwrap_or(i32::MAX),
                &mammoth_core::now_micros(),
            ],
        )
        .await
        .map(drop)
}
