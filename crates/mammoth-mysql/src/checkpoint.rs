//! [`MysqlCheckpointStore`]: named checkpoints in the `checkpoints` table of the event store's
//! database, for consumers of the global log that are not SQL read models (the outbox relay,
//! a saga runner, handlers with side effects elsewhere). They get at-least-once delivery: the
//! handler runs, then the checkpoint is saved here.

use mammoth_core::{CheckpointStore, Position, StoreError};
use mysql_async::prelude::Queryable;

use crate::MysqlEventStore;
use crate::error::{BACKEND, on};
use crate::schema::MAX_CHECKPOINT_NAME_BYTES;

/// Durable named checkpoints beside a [`MysqlEventStore`]'s events, sharing its pool. Cheap to
/// clone.
///
/// `save` is one upsert, committed when it returns; names are compared and sorted bytewise
/// (the column is `VARBINARY`), as the in-memory store does. A name holds at most
/// [`MAX_CHECKPOINT_NAME_BYTES`] bytes.
#[derive(Clone)]
pub struct MysqlCheckpointStore {
    store: MysqlEventStore,
}

impl std::fmt::Debug for MysqlCheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlCheckpointStore")
            .field("database", &self.store.database())
            .finish_non_exhaustive()
    }
}

impl MysqlCheckpointStore {
    /// Checkpoints kept beside `store`'s events (the table is created by its migrations).
    pub fn new(store: &MysqlEventStore) -> Self {
        Self {
            store: store.clone(),
        }
    }
}

fn invalid(action: &'static str, message: String) -> StoreError {
    StoreError::backend(BACKEND, action, message, false)
}

fn check_name(action: &'static str, name: &str) -> Result<(), StoreError> {
    if name.len() > MAX_CHECKPOINT_NAME_BYTES {
        return Err(invalid(
            action,
            format!(
                "checkpoint name {:?}... is {} bytes; the MySQL driver stores names of at most {MAX_CHECKPOINT_NAME_BYTES} bytes, so use a shorter name",
                name.chars().take(40).collect::<String>(),
                name.len()
            ),
        ));
    }
    Ok(())
}

/// A stored position; the column is signed, and `save` never writes a negative one.
fn to_position(value: i64) -> Position {
    Position::try_from(value).unwrap_or(0)
}

impl CheckpointStore for MysqlCheckpointStore {
    async fn load(&self, name: &str) -> Result<Option<Position>, StoreError> {
        let action = "loading a checkpoint";
        if name.len() > MAX_CHECKPOINT_NAME_BYTES {
            // Never saved, since `save` refuses it.
            return Ok(None);
        }
        let mut conn = self.store.conn().await?;
        let position: Option<i64> = conn
            .exec_first(
                self.store.sql().load_checkpoint.as_str(),
                (name.as_bytes(),),
            )
            .await
            .map_err(on(action))?;
        Ok(position.map(to_position))
    }

    async fn save(&self, name: &str, position: Position) -> Result<(), StoreError> {
        let action = "saving a checkpoint";
        check_name(action, name)?;
        let position = i64::try_from(position).map_err(|_| {
            invalid(
                action,
                format!(
                    "checkpoint {name:?}: position {position} is beyond the largest MySQL BIGINT ({})",
                    i64::MAX
                ),
            )
        })?;
        let mut conn = self.store.conn().await?;
        conn.exec_drop(
            self.store.sql().save_checkpoint.as_str(),
            (name.as_bytes(), position, mammoth_core::now_micros()),
        )
        .await
        .map_err(on(action))
    }

    async fn list(&self) -> Result<Vec<(String, Position)>, StoreError> {
        let action = "listing checkpoints";
        let mut conn = self.store.conn().await?;
        let rows: Vec<(Vec<u8>, i64)> = conn
            .exec(self.store.sql().list_checkpoints.as_str(), ())
            .await
            .map_err(on(action))?;
        rows.into_iter()
            .map(|(name, position)| {
                let name = String::from_utf8(name).map_err(|error| {
                    invalid(
                        action,
                        format!(
                            "a checkpoint name is not UTF-8 ({error}); it was not written by mammoth, delete the row"
                        ),
                    )
                })?;
                Ok((name, to_position(position)))
            })
            .collect()
    }
}
