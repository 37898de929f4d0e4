//! [`MysqlReadModelAdmin`]: what `mammoth projections` does to the read models of a
//! MySQL/MariaDB database from any process — status, pause and resume requests, reset for a
//! replay, the blue-green switch, dropping an old version, the dead letters, and the diff of a
//! shadow against the live tables.

use mammoth_core::{Position, ProjectionError, ProjectionState};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, TxOpts, Value};

use super::{
    DeadLetter, ReadModelDatabase, ReadModelStatus, SHADOW_VERSION, TableDiff, Tables,
    VerifyReport, fail, schema, versions,
};

/// How many differing rows of each side a [`TableDiff`] shows.
const EXAMPLES: usize = 20;

/// Administration of the read models in one database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MysqlReadModelAdmin {
    db: ReadModelDatabase,
}

/// One row of `mammoth_projections` joined with its control row, as `status` reads it.
type StatusRow = (
    String,
    u32,
    i64,
    i64,
    String,
    Option<i64>,
    Option<String>,
    u32,
    i64,
    i64,
);

impl MysqlReadModelAdmin {
    /// Administration of the read models in `db` (creating the database and the bookkeeping
    /// tables if needed).
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`] when the database cannot be reached.
    pub async fn open(db: &ReadModelDatabase) -> Result<Self, ProjectionError> {
        schema::prepare(db, "*", &[]).await?;
        Ok(Self { db: db.clone() })
    }

    async fn conn(&self) -> Result<Conn, ProjectionError> {
        self.db.conn().await
    }

    /// Every version of every projection in the database.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn status(&self) -> Result<Vec<ReadModelStatus>, ProjectionError> {
        let query = "SELECT p.name, p.version, COALESCE(c.active_version = p.version, 0),
                            p.checkpoint, p.state, p.failed_position, p.error, p.attempts,
                            COALESCE(c.paused, 0), p.updated_at
                     FROM mammoth_projections p
                     LEFT JOIN mammoth_projection_control c ON c.name = p.name
                     ORDER BY p.name, p.version";
        let mut conn = self.conn().await?;
        let rows: Vec<StatusRow> = conn
            .query(query)
            .await
            .map_err(fail("*", "reading projection status"))?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    name,
                    version,
                    active,
                    checkpoint,
                    state,
                    failed,
                    error,
                    attempts,
                    paused,
                    at,
                )| {
                    let state = match state.as_str() {
                        "running" => ProjectionState::Running,
                        "paused" => ProjectionState::Paused,
                        "rebuilding" => ProjectionState::Rebuilding,
                        "failed" => ProjectionState::Failed {
                            position: failed.map_or(0, to_position),
                            error: error.unwrap_or_default(),
                            attempts,
                        },
                        _ => ProjectionState::Stopped,
                    };
                    ReadModelStatus {
                        name,
                        version,
                        active: active != 0,
                        checkpoint: to_position(checkpoint),
                        state,
                        pause_requested: paused != 0,
                        updated_at_micros: at,
                    }
                },
            )
            .collect())
    }

    /// The active version's status of `name`, if it has one.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn active(&self, name: &str) -> Result<Option<ReadModelStatus>, ProjectionError> {
        Ok(self
            .status()
            .await?
            .into_iter()
            .find(|status| status.name == name && status.active))
    }

    /// Asks every runner of `name` to pause after its current batch.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn pause(&self, name: &str) -> Result<(), ProjectionError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            "INSERT INTO mammoth_projection_control (name, paused) VALUES (?, 1)
             ON DUPLICATE KEY UPDATE paused = 1",
            (name,),
        )
        .await
        .map_err(fail(name, "requesting a pause"))
    }

    /// Clears a pause request and asks a failed runner of `name` to retry.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn resume(&self, name: &str) -> Result<(), ProjectionError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            "INSERT INTO mammoth_projection_control (name, resumes) VALUES (?, 1)
             ON DUPLICATE KEY UPDATE paused = 0, resumes = resumes + 1",
            (name,),
        )
        .await
        .map_err(fail(name, "requesting a resume"))
    }

    /// Empties the active version's tables and sets its checkpoint to 0, in one transaction
    /// (a replay from zero in place; a running runner sees the checkpoint move and follows).
    /// A recorded failure is cleared too. The tables are emptied with `DELETE`, not
    /// `TRUNCATE`, which MySQL would commit on its own.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn reset(&self, name: &str, tables: &[&str]) -> Result<(), ProjectionError> {
        let mut conn = self.conn().await?;
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(fail(name, "starting a reset"))?;
        let reset = async {
            let Some(version) = schema::lock_control(&mut tx, name).await? else {
                return Ok(());
            };
            schema::lock_checkpoint(&mut tx, name, version).await?;
            let physical = Tables::new(version);
            for base in tables {
                tx.query_drop(format!("DELETE FROM `{}`", physical.name(base)))
                    .await?;
            }
            schema::save_checkpoint(&mut tx, name, version, 0).await?;
            schema::record_state(&mut tx, name, version, &ProjectionState::Stopped).await
        };
        match reset.await {
            Ok(()) => tx.commit().await.map_err(fail(name, "committing a reset")),
            Err(error) => {
                let _ = tx.rollback().await;
                Err(fail(name, "resetting")(error))
            }
        }
    }

    /// Makes `version` of `name` active if its checkpoint has reached the active version's,
    /// and re-points the views at it in one `RENAME TABLE`. False (nothing changed) when it
    /// is still behind. Calling it again for the active version re-points the views (the
    /// repair after a crash between the two steps).
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn switch(
        &self,
        name: &str,
        tables: &[&str],
        version: u32,
    ) -> Result<bool, ProjectionError> {
        let mut conn = self.conn().await?;
        versions::lock(&mut conn, name)
            .await
            .map_err(fail(name, "taking the switch lock"))?;
        let switched = switch_locked(&mut conn, name, tables, version).await;
        let released = versions::unlock(&mut conn, name).await;
        let switched = switched.map_err(fail(name, "switching versions"))?;
        released.map_err(fail(name, "releasing the switch lock"))?;
        Ok(switched)
    }

    /// Drops an inactive version's tables (an old version kept after a rebuild, a shadow).
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`], also when `version` is the active one.
    pub async fn drop_version(
        &self,
        name: &str,
        tables: &[&str],
        version: u32,
    ) -> Result<(), ProjectionError> {
        let mut conn = self.conn().await?;
        let active = schema::active_version(&mut conn, name)
            .await
            .map_err(fail(name, "drop"))?;
        if active == Some(version) {
            return Err(ProjectionError::ReadModel {
                projection: name.to_owned(),
                action: "dropping a version",
                message: format!("version {version} is active; rebuild to a new version first"),
            });
        }
        versions::drop_version(&mut conn, name, tables, version)
            .await
            .map_err(fail(name, "dropping a version"))
    }

    /// The parked events of `name`, oldest first.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>, ProjectionError> {
        let mut conn = self.conn().await?;
        let rows: Vec<(String, i64, String, String, String, String, u32)> = conn
            .exec(
                "SELECT name, position, event_id, stream_id, event_type, error, attempts
                 FROM projection_dead_letters WHERE name = ? ORDER BY id",
                (name,),
            )
            .await
            .map_err(fail(name, "listing dead letters"))?;
        Ok(rows
            .into_iter()
            .map(
                |(name, position, event_id, stream_id, event_type, error, attempts)| DeadLetter {
                    name,
                    position: to_position(position),
                    event_id,
                    stream_id,
                    event_type,
                    error,
                    attempts,
                },
            )
            .collect())
    }

    /// The live checkpoint of `name` (its active version), 0 if it has none.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn live_checkpoint(&self, name: &str) -> Result<Position, ProjectionError> {
        let mut conn = self.conn().await?;
        let checkpoint = async {
            match schema::active_version(&mut conn, name).await? {
                Some(version) => schema::checkpoint(&mut conn, name, version).await,
                None => Ok(None),
            }
        };
        Ok(checkpoint
            .await
            .map_err(fail(name, "reading the live checkpoint"))?
            .unwrap_or(0))
    }

    /// Compares the shadow of `name` with its live tables, inside one consistent-snapshot
    /// read transaction. `None` when the two checkpoints differ (the live one moved on): catch
    /// the shadow up and ask again. Rows are compared column by column with `<=>` (NULLs
    /// equal), which every MySQL and MariaDB version runs.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn diff_shadow(
        &self,
        name: &str,
        tables: &[&str],
    ) -> Result<Option<VerifyReport>, ProjectionError> {
        let mut conn = self.conn().await?;
        let mut options = TxOpts::default();
        options.with_consistent_snapshot(true).with_readonly(true);
        let mut tx = conn
            .start_transaction(options)
            .await
            .map_err(fail(name, "starting the diff"))?;
        let report = diff_in(&mut tx, name, tables).await;
        let _ = tx.rollback().await;
        report.map_err(fail(name, "diffing the shadow"))
    }

    /// Drops the shadow of `name`.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn drop_shadow(&self, name: &str, tables: &[&str]) -> Result<(), ProjectionError> {
        let mut conn = self.conn().await?;
        versions::drop_version(&mut conn, name, tables, SHADOW_VERSION)
            .await
            .map_err(fail(name, "dropping the shadow"))
    }

    /// Runs `sql` (one or more statements) in the read-model database, for tests that need a
    /// corrupt state and for tooling.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn execute(&self, sql: &str) -> Result<(), ProjectionError> {
        let mut conn = self.conn().await?;
        conn.query_drop(sql)
            .await
            .map_err(fail("*", "running a statement"))
    }
}

fn to_position(value: i64) -> Position {
    Position::try_from(value).unwrap_or(0)
}

/// The switch, with the DDL lock held: the version change commits first (under the control
/// row's lock, so no batch of the old version is in flight), then the views follow.
async fn switch_locked(
    conn: &mut Conn,
    name: &str,
    tables: &[&str],
    version: u32,
) -> mysql_async::Result<bool> {
    let mut tx = conn.start_transaction(TxOpts::default()).await?;
    let active = schema::lock_control(&mut tx, name).await?;
    let behind = match active {
        Some(active) => schema::lock_checkpoint(&mut tx, name, active).await?,
        None => None,
    };
    let ours = schema::lock_checkpoint(&mut tx, name, version).await?;
    if ours.is_none() || ours < behind {
        tx.rollback().await?;
        return Ok(false);
    }
    schema::set_active(&mut tx, name, version).await?;
    tx.commit().await?;
    versions::point_views(conn, tables, version).await?;
    Ok(true)
}

async fn diff_in(
    tx: &mut mysql_async::Transaction<'_>,
    name: &str,
    tables: &[&str],
) -> mysql_async::Result<Option<VerifyReport>> {
    let Some(version) = schema::active_version(tx, name).await? else {
        return Ok(None);
    };
    let live = schema::checkpoint(tx, name, version).await?;
    let shadow = schema::checkpoint(tx, name, SHADOW_VERSION).await?;
    if live != shadow || live.is_none() {
        return Ok(None);
    }
    let mut report = VerifyReport {
        name: name.to_owned(),
        checkpoint: live.unwrap_or(0),
        version,
        differences: Vec::new(),
    };
    let (live_tables, shadow_tables) = (Tables::new(version), Tables::new(SHADOW_VERSION));
    for base in tables {
        let (a, b) = (live_tables.name(base), shadow_tables.name(base));
        let columns: Vec<String> = tx
            .exec(
                "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (a.as_str(),),
            )
            .await?;
        let mut diff = TableDiff {
            table: (*base).to_owned(),
            ..TableDiff::default()
        };
        for (from, minus, label) in [(&a, &b, "live only"), (&b, &a, "shadow only")] {
            let matches = columns
                .iter()
                .map(|column| format!("m.`{column}` <=> f.`{column}`"))
                .collect::<Vec<_>>()
                .join(" AND ");
            let matches = if matches.is_empty() {
                "TRUE".to_owned()
            } else {
                matches
            };
            let missing = format!(
                "FROM `{from}` f WHERE NOT EXISTS (SELECT 1 FROM `{minus}` m WHERE {matches})"
            );
            let count: Option<i64> = tx.query_first(format!("SELECT COUNT(*) {missing}")).await?;
            let count = count.map_or(0, |count| u64::try_from(count).unwrap_or(0));
            let rows: Vec<Row> = tx
                // The binary protocol keeps the values' types (the text one sends strings).
                .exec(format!("SELECT f.* {missing} LIMIT {EXAMPLES}"), ())
                .await?;
            if label == "live only" {
                diff.only_live = count;
            } else {
                diff.only_shadow = count;
            }
            diff.examples.extend(
                rows.into_iter()
                    .map(|row| format!("{label}: {}", print(row))),
            );
        }
        if diff.only_live + diff.only_shadow > 0 {
            report.differences.push(diff);
        }
    }
    Ok(Some(report))
}

/// A row printed as `(a, b, ...)`: text quoted, numbers bare, binary as its length.
fn print(row: Row) -> String {
    let cells: Vec<String> = row
        .unwrap()
        .into_iter()
        .map(|value| match value {
            Value::NULL => "NULL".to_owned(),
            Value::Int(value) => value.to_string(),
            Value::UInt(value) => value.to_string(),
            Value::Float(value) => value.to_string(),
            Value::Double(value) => value.to_string(),
            Value::Bytes(bytes) => match String::from_utf8(bytes) {
                Ok(text) => format!("{text:?}"),
                Err(error) => format!("<{} bytes>", error.into_bytes().len()),
            },
            other => other.as_sql(true),
        })
        .collect();
    format!("({})", cells.join(", "))
}
