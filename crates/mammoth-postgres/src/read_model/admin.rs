//! [`PgReadModelAdmin`]: what `mammoth projections` does to a read-model schema from any
//! process — status, pause and resume requests, reset for a replay, the blue-green switch,
//! dropping an old version, the dead letters, and the diff of a shadow against the live
//! tables. The same semantics and return types as `mammoth_sqlite::ReadModelAdmin`, async.

use mammoth_core::{Position, ProjectionError, ProjectionState};
use tokio_postgres::IsolationLevel;
use tokio_postgres::Row;

use super::schema::{self, RowLock};
use super::{
    DeadLetter, PgReadModelDb, ReadModelStatus, SHADOW_VERSION, TableDiff, Tables, VerifyReport,
    fail,
};

/// How many rows of each side of a table's difference a report shows.
const EXAMPLES: i64 = 20;

/// Administration of the read models in one schema. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PgReadModelAdmin {
    db: PgReadModelDb,
}

impl PgReadModelAdmin {
    /// Administration of the read models in `db` (whose bookkeeping tables exist once it is
    /// opened).
    pub fn new(db: &PgReadModelDb) -> Self {
        Self { db: db.clone() }
    }

    async fn client(
        &self,
        name: &str,
        action: &'static str,
    ) -> Result<deadpool_postgres::Client, ProjectionError> {
        self.db.client(name, action).await
    }

    /// Every version of every projection in the schema.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn status(&self) -> Result<Vec<ReadModelStatus>, ProjectionError> {
        let action = "reading projection status";
        let s = self.db.schema();
        let query = format!(
            "SELECT p.name, p.version, COALESCE(c.active_version = p.version, FALSE),
                    p.checkpoint, p.state, p.failed_position, p.error, p.attempts,
                    COALESCE(c.paused, FALSE), p.updated_at
             FROM \"{s}\".mammoth_projections p
             LEFT JOIN \"{s}\".mammoth_projection_control c ON c.name = p.name
             ORDER BY p.name, p.version"
        );
        let client = self.client("*", action).await?;
        let rows = client.query(&query, &[]).await.map_err(fail("*", action))?;
        Ok(rows.iter().map(status_row).collect())
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
        let action = "requesting a pause";
        let s = self.db.schema();
        let client = self.client(name, action).await?;
        client
            .execute(
                &format!(
                    "INSERT INTO \"{s}\".mammoth_projection_control (name, paused) VALUES ($1, TRUE)
                     ON CONFLICT (name) DO UPDATE SET paused = TRUE"
                ),
                &[&name],
            )
            .await
            .map(drop)
            .map_err(fail(name, action))
    }

    /// Clears a pause request and asks a failed runner of `name` to retry.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn resume(&self, name: &str) -> Result<(), ProjectionError> {
        let action = "requesting a resume";
        let s = self.db.schema();
        let client = self.client(name, action).await?;
        client
            .execute(
                &format!(
                    "INSERT INTO \"{s}\".mammoth_projection_control (name, resumes) VALUES ($1, 1)
                     ON CONFLICT (name) DO UPDATE
                     SET paused = FALSE, resumes = mammoth_projection_control.resumes + 1"
                ),
                &[&name],
            )
            .await
            .map(drop)
            .map_err(fail(name, action))
    }

    /// Empties the active version's tables and sets its checkpoint to 0, in one transaction
    /// (a replay from zero in place; a running runner sees the checkpoint move and follows).
    /// A recorded failure is cleared too: it described the rows just emptied, and a replay that
    /// fails again records it again.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn reset(&self, name: &str, tables: &[&str]) -> Result<(), ProjectionError> {
        let action = "resetting a read model";
        let s = self.db.schema();
        let mut client = self.client(name, action).await?;
        let tx = client.transaction().await.map_err(fail(name, action))?;
        // The same lock order as a batch: control row, then checkpoint row, then tables.
        let Some(version) = schema::active_version(&*tx, s, name, RowLock::Share)
            .await
            .map_err(fail(name, action))?
        else {
            return Ok(());
        };
        schema::checkpoint(&*tx, s, name, version, RowLock::Update)
            .await
            .map_err(fail(name, action))?;
        let physical = Tables::new(version);
        for base in tables {
            tx.batch_execute(&format!(
                "DELETE FROM {}",
                schema::quoted(s, &physical.name(base))
            ))
            .await
            .map_err(fail(name, "emptying a table"))?;
        }
        schema::save_checkpoint(&*tx, s, name, version, 0)
            .await
            .map_err(fail(name, action))?;
        schema::record_state(&*tx, s, name, version, &ProjectionState::Stopped)
            .await
            .map_err(fail(name, action))?;
        tx.commit().await.map_err(fail(name, "committing a reset"))
    }

    /// Makes `version` of `name` active if its checkpoint has reached the active version's:
    /// one transaction re-points the views. False (nothing changed) when it is still behind.
    /// Batches of the active version in flight finish first; later ones see the switch.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn switch(
        &self,
        name: &str,
        tables: &[&str],
        version: u32,
    ) -> Result<bool, ProjectionError> {
        let action = "switching versions";
        let s = self.db.schema();
        let mut client = self.client(name, action).await?;
        let tx = client.transaction().await.map_err(fail(name, action))?;
        schema::lock(&tx, s, name)
            .await
            .map_err(fail(name, action))?;
        let active = schema::active_version(&*tx, s, name, RowLock::Update)
            .await
            .map_err(fail(name, action))?;
        let behind = match active {
            Some(active) => schema::checkpoint(&*tx, s, name, active, RowLock::Update)
                .await
                .map_err(fail(name, action))?,
            None => None,
        };
        let ours = schema::checkpoint(&*tx, s, name, version, RowLock::Update)
            .await
            .map_err(fail(name, action))?;
        if ours.is_none() || ours < behind {
            return Ok(false);
        }
        schema::activate(&tx, s, name, tables, version)
            .await
            .map_err(fail(name, "re-pointing the views"))?;
        tx.commit()
            .await
            .map_err(fail(name, "committing the switch"))?;
        Ok(true)
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
        let action = "dropping a version";
        let s = self.db.schema();
        let mut client = self.client(name, action).await?;
        let tx = client.transaction().await.map_err(fail(name, action))?;
        schema::lock(&tx, s, name)
            .await
            .map_err(fail(name, action))?;
        let active = schema::active_version(&*tx, s, name, RowLock::Share)
            .await
            .map_err(fail(name, action))?;
        if active == Some(version) {
            return Err(ProjectionError::ReadModel {
                projection: name.to_owned(),
                action,
                message: format!("version {version} is active; rebuild to a new version first"),
            });
        }
        schema::drop_version(&tx, s, name, tables, version)
            .await
            .map_err(fail(name, action))?;
        tx.commit().await.map_err(fail(name, action))
    }

    /// The parked events of `name`, oldest first.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>, ProjectionError> {
        let action = "listing dead letters";
        let s = self.db.schema();
        let client = self.client(name, action).await?;
        let rows = client
            .query(
                &format!(
                    "SELECT name, position, event_id, stream_id, event_type, error, attempts
                     FROM \"{s}\".projection_dead_letters WHERE name = $1 ORDER BY id"
                ),
                &[&name],
            )
            .await
            .map_err(fail(name, action))?;
        Ok(rows
            .iter()
            .map(|row| DeadLetter {
                name: row.get(0),
                position: Position::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                event_id: row.get(2),
                stream_id: row.get(3),
                event_type: row.get(4),
                error: row.get(5),
                attempts: u32::try_from(row.get::<_, i32>(6)).unwrap_or(0),
            })
            .collect())
    }

    /// The live checkpoint of `name` (its active version), 0 if it has none.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn live_checkpoint(&self, name: &str) -> Result<Position, ProjectionError> {
        Ok(self
            .active(name)
            .await?
            .map_or(0, |status| status.checkpoint))
    }

    /// Compares the shadow of `name` with its live tables, inside one repeatable-read
    /// transaction (one snapshot of both). `None` when the two checkpoints differ (the live
    /// one moved on): catch the shadow up and ask again.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn diff_shadow(
        &self,
        name: &str,
        tables: &[&str],
    ) -> Result<Option<VerifyReport>, ProjectionError> {
        let action = "diffing the shadow";
        let s = self.db.schema();
        let mut client = self.client(name, action).await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(fail(name, action))?;
        let Some(version) = schema::active_version(&*tx, s, name, RowLock::None)
            .await
            .map_err(fail(name, action))?
        else {
            return Ok(None);
        };
        let live = schema::checkpoint(&*tx, s, name, version, RowLock::None)
            .await
            .map_err(fail(name, action))?;
        let shadow = schema::checkpoint(&*tx, s, name, SHADOW_VERSION, RowLock::None)
            .await
            .map_err(fail(name, action))?;
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
            let a = schema::quoted(s, &live_tables.name(base));
            let b = schema::quoted(s, &shadow_tables.name(base));
            let mut diff = TableDiff {
                table: (*base).to_owned(),
                ..TableDiff::default()
            };
            for (from, minus, label) in [(&a, &b, "live only"), (&b, &a, "shadow only")] {
                // The window count is taken before the limit: the total, with 20 examples.
                let rows = tx
                    .query(
                        &format!(
                            "SELECT d::text, count(*) OVER () FROM
                             (SELECT * FROM {from} EXCEPT SELECT * FROM {minus}) d
                             ORDER BY 1 LIMIT {EXAMPLES}"
                        ),
                        &[],
                    )
                    .await
                    .map_err(fail(name, "diffing a table"))?;
                let count = rows
                    .first()
                    .map_or(0, |row| u64::try_from(row.get::<_, i64>(1)).unwrap_or(0));
                if label == "live only" {
                    diff.only_live = count;
                } else {
                    diff.only_shadow = count;
                }
                diff.examples.extend(
                    rows.iter()
                        .map(|row| format!("{label}: {}", row.get::<_, String>(0))),
                );
            }
            if diff.only_live + diff.only_shadow > 0 {
                report.differences.push(diff);
            }
        }
        Ok(Some(report))
    }

    /// Drops the shadow of `name`.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub async fn drop_shadow(&self, name: &str, tables: &[&str]) -> Result<(), ProjectionError> {
        self.drop_version(name, tables, SHADOW_VERSION).await
    }
}

/// One row of the status query.
fn status_row(row: &Row) -> ReadModelStatus {
    let position =
        |index| Position::try_from(row.get::<_, Option<i64>>(index).unwrap_or(0)).unwrap_or(0);
    let state = match row.get::<_, &str>(4) {
        "running" => ProjectionState::Running,
        "paused" => ProjectionState::Paused,
        "rebuilding" => ProjectionState::Rebuilding,
        "failed" => ProjectionState::Failed {
            position: position(5),
            error: row.get::<_, Option<String>>(6).unwrap_or_default(),
            attempts: u32::try_from(row.get::<_, i32>(7)).unwrap_or(0),
        },
        _ => ProjectionState::Stopped,
    };
    ReadModelStatus {
        name: row.get(0),
        version: u32::try_from(row.get::<_, i32>(1)).unwrap_or(0),
        active: row.get(2),
        checkpoint: position(3),
        state,
        pause_requested: row.get(8),
        updated_at_micros: row.get(9),
    }
}
