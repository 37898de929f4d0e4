//! [`ReadModelAdmin`]: what `mammoth projections` does to a read-model file from any process —
//! status, pause and resume requests, reset for a replay, the blue-green switch, dropping an
//! old version, the dead letters, and the diff of a shadow against the live tables.

use std::path::Path;

use mammoth_core::{Position, ProjectionError, ProjectionState};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, TransactionBehavior, params};

use super::{
    DeadLetter, ReadModelStatus, SHADOW_VERSION, TableDiff, Tables, VerifyReport, fail, schema,
};

/// Administration of a read-model file.
#[derive(Debug)]
pub struct ReadModelAdmin {
    conn: Connection,
}

impl ReadModelAdmin {
    /// Opens the read-model file at `path` (creating the bookkeeping tables if needed).
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`] when it cannot be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ProjectionError> {
        Ok(Self {
            conn: schema::open(path.as_ref(), "*")?,
        })
    }

    /// Every version of every projection in the file.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub fn status(&self) -> Result<Vec<ReadModelStatus>, ProjectionError> {
        let query = "SELECT p.name, p.version, COALESCE(c.active_version = p.version, 0),
                            p.checkpoint, p.state, p.failed_position, p.error, p.attempts,
                            COALESCE(c.paused, 0), p.updated_at
                     FROM mammoth_projections p
                     LEFT JOIN mammoth_projection_control c ON c.name = p.name
                     ORDER BY p.name, p.version";
        let read = |row: &rusqlite::Row<'_>| {
            let state: String = row.get(4)?;
            let state = match state.as_str() {
                "running" => ProjectionState::Running,
                "paused" => ProjectionState::Paused,
                "rebuilding" => ProjectionState::Rebuilding,
                "failed" => ProjectionState::Failed {
                    position: row.get::<_, Option<u64>>(5)?.unwrap_or(0),
                    error: row.get::<_, Option<String>>(6)?.unwrap_or_default(),
                    attempts: row.get(7)?,
                },
                _ => ProjectionState::Stopped,
            };
            Ok(ReadModelStatus {
                name: row.get(0)?,
                version: row.get(1)?,
                active: row.get::<_, i64>(2)? != 0,
                checkpoint: row.get::<_, u64>(3)?,
                state,
                pause_requested: row.get::<_, i64>(8)? != 0,
                updated_at_micros: row.get(9)?,
            })
        };
        let rows = self
            .conn
            .prepare(query)
            .and_then(|mut statement| statement.query_map([], read)?.collect());
        rows.map_err(fail("*", "reading projection status"))
    }

    /// The active version's status of `name`, if it has one.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub fn active(&self, name: &str) -> Result<Option<ReadModelStatus>, ProjectionError> {
        Ok(self
            .status()?
            .into_iter()
            .find(|status| status.name == name && status.active))
    }

    /// Asks every runner of `name` to pause after its current batch.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub fn pause(&self, name: &str) -> Result<(), ProjectionError> {
        self.conn
            .execute(
                "INSERT INTO mammoth_projection_control (name, paused) VALUES (?1, 1)
                 ON CONFLICT (name) DO UPDATE SET paused = 1",
                [name],
            )
            .map(drop)
            .map_err(fail(name, "requesting a pause"))
    }

    /// Clears a pause request and asks a failed runner of `name` to retry.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub fn resume(&self, name: &str) -> Result<(), ProjectionError> {
        self.conn
            .execute(
                "INSERT INTO mammoth_projection_control (name, resumes) VALUES (?1, 1)
                 ON CONFLICT (name) DO UPDATE SET paused = 0, resumes = resumes + 1",
                [name],
            )
            .map(drop)
            .map_err(fail(name, "requesting a resume"))
    }

    /// Empties the active version's tables and sets its checkpoint to 0, in one transaction
    /// (a replay from zero in place; a running runner sees the checkpoint move and follows).
    /// A recorded failure is cleared too: it described the rows just emptied, and a replay that
    /// fails again records it again.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub fn reset(&mut self, name: &str, tables: &[&str]) -> Result<(), ProjectionError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail(name, "starting a reset"))?;
        let Some(version) = schema::active_version(&tx, name).map_err(fail(name, "reset"))? else {
            return Ok(());
        };
        let physical = Tables::new(version);
        for base in tables {
            tx.execute_batch(&format!("DELETE FROM \"{}\";", physical.name(base)))
                .map_err(fail(name, "emptying a table"))?;
        }
        schema::save_checkpoint(&tx, name, version, 0).map_err(fail(name, "reset"))?;
        schema::record_state(&tx, name, version, &ProjectionState::Stopped)
            .map_err(fail(name, "reset"))?;
        tx.commit().map_err(fail(name, "committing a reset"))
    }

    /// Makes `version` of `name` active if its checkpoint has reached the active version's:
    /// one transaction re-points the views. False (nothing changed) when it is still behind.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub fn switch(
        &mut self,
        name: &str,
        tables: &[&str],
        version: u32,
    ) -> Result<bool, ProjectionError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail(name, "starting the switch"))?;
        let active = schema::active_version(&tx, name).map_err(fail(name, "switch"))?;
        let behind = match active {
            Some(active) => schema::checkpoint(&tx, name, active).map_err(fail(name, "switch"))?,
            None => None,
        };
        let ours = schema::checkpoint(&tx, name, version).map_err(fail(name, "switch"))?;
        if ours.is_none() || ours < behind {
            return Ok(false);
        }
        schema::activate(&tx, name, tables, version)
            .map_err(fail(name, "re-pointing the views"))?;
        tx.commit().map_err(fail(name, "committing the switch"))?;
        Ok(true)
    }

    /// Drops an inactive version's tables (an old version kept after a rebuild, a shadow).
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`], also when `version` is the active one.
    pub fn drop_version(
        &self,
        name: &str,
        tables: &[&str],
        version: u32,
    ) -> Result<(), ProjectionError> {
        if schema::active_version(&self.conn, name).map_err(fail(name, "drop"))? == Some(version) {
            return Err(ProjectionError::ReadModel {
                projection: name.to_owned(),
                action: "dropping a version",
                message: format!("version {version} is active; rebuild to a new version first"),
            });
        }
        schema::drop_version(&self.conn, name, tables, version)
            .map_err(fail(name, "dropping a version"))
    }

    /// The parked events of `name`, oldest first.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>, ProjectionError> {
        let rows = self
            .conn
            .prepare(
                "SELECT name, position, event_id, stream_id, event_type, error, attempts
             FROM projection_dead_letters WHERE name = ?1 ORDER BY id",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([name], |row| {
                        Ok(DeadLetter {
                            name: row.get(0)?,
                            position: row.get(1)?,
                            event_id: row.get(2)?,
                            stream_id: row.get(3)?,
                            event_type: row.get(4)?,
                            error: row.get(5)?,
                            attempts: row.get(6)?,
                        })
                    })?
                    .collect()
            });
        rows.map_err(fail(name, "listing dead letters"))
    }

    /// The live checkpoint of `name` (its active version), 0 if it has none.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub fn live_checkpoint(&self, name: &str) -> Result<Position, ProjectionError> {
        Ok(self.active(name)?.map_or(0, |status| status.checkpoint))
    }

    /// Compares the shadow of `name` with its live tables, inside one read transaction. `None`
    /// when the two checkpoints differ (the live one moved on): catch the shadow up and ask
    /// again.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub fn diff_shadow(
        &mut self,
        name: &str,
        tables: &[&str],
    ) -> Result<Option<VerifyReport>, ProjectionError> {
        let tx = self
            .conn
            .transaction()
            .map_err(fail(name, "starting the diff"))?;
        let Some(version) = schema::active_version(&tx, name).map_err(fail(name, "diff"))? else {
            return Ok(None);
        };
        let live = schema::checkpoint(&tx, name, version).map_err(fail(name, "diff"))?;
        let shadow = schema::checkpoint(&tx, name, SHADOW_VERSION).map_err(fail(name, "diff"))?;
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
            let mut diff = TableDiff {
                table: (*base).to_owned(),
                ..TableDiff::default()
            };
            for (from, minus, label) in [(&a, &b, "live only"), (&b, &a, "shadow only")] {
                let rows = except(&tx, from, minus).map_err(fail(name, "diffing a table"))?;
                let count = u64::try_from(rows.len()).unwrap_or(u64::MAX);
                if label == "live only" {
                    diff.only_live = count;
                } else {
                    diff.only_shadow = count;
                }
                diff.examples.extend(
                    rows.into_iter()
                        .take(20)
                        .map(|row| format!("{label}: {row}")),
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
    pub fn drop_shadow(&self, name: &str, tables: &[&str]) -> Result<(), ProjectionError> {
        schema::drop_version(&self.conn, name, tables, SHADOW_VERSION)
            .map_err(fail(name, "dropping the shadow"))
    }

    /// Sets the checkpoint of `name`'s active version, for tests that need a corrupt state.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`].
    pub fn execute(&self, sql: &str) -> Result<(), ProjectionError> {
        self.conn
            .execute_batch(sql)
            .map_err(fail("*", "running a statement"))
    }
}

/// Rows of `from` not in `minus`, each printed as `(a, b, ...)`.
fn except(conn: &Connection, from: &str, minus: &str) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare(&format!(
        "SELECT * FROM \"{from}\" EXCEPT SELECT * FROM \"{minus}\""
    ))?;
    let columns = statement.column_count();
    let rows = statement.query_map(params![], |row| {
        let mut cells = Vec::with_capacity(columns);
        for index in 0..columns {
            cells.push(match row.get_ref(index)? {
                ValueRef::Null => "NULL".to_owned(),
                ValueRef::Integer(value) => value.to_string(),
                ValueRef::Real(value) => value.to_string(),
                ValueRef::Text(text) => format!("{:?}", String::from_utf8_lossy(text)),
                ValueRef::Blob(blob) => format!("<{} bytes>", blob.len()),
            });
        }
        Ok(format!("({})", cells.join(", ")))
    })?;
    rows.collect()
}
