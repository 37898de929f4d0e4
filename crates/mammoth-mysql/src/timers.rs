//! [`MysqlTimerStore`]: durable saga deadlines in the `saga_timers` table of the event store's
//! database, so a deadline scheduled before a crash fires after the restart.

use std::collections::BTreeMap;

use mammoth_core::StoreError;
use mammoth_core::saga::{Timer, TimerStore};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use uuid::Uuid;

use crate::MysqlEventStore;
use crate::error::{BACKEND, my, on};
use crate::schema::MAX_SAGA_TYPE_BYTES;

/// Rows per statement (five placeholders each, far below the 65 535 limit).
const ROWS_PER_STATEMENT: usize = 256;

/// How often an upsert or delete chosen as a deadlock victim is run again: each is
/// idempotent, and InnoDB may pick one when many writers upsert the same ids at once.
const DEADLOCK_RETRIES: usize = 5;

/// ER_LOCK_DEADLOCK and ER_LOCK_WAIT_TIMEOUT: the transaction was rolled back whole.
fn rolled_back(error: &mysql_async::Error) -> bool {
    matches!(error, mysql_async::Error::Server(server) if matches!(server.code, 1213 | 1205))
}

type TimerRow = (Vec<u8>, Vec<u8>, String, String, i64);

/// Durable saga timers beside a [`MysqlEventStore`]'s events, sharing its pool. Cheap to
/// clone.
///
/// An upsert is one transaction: every timer in it is written, or none. Rows are written in id
/// order, and a deadlock victim is retried, so concurrent upserts of the same ids succeed.
/// Saga types hold at most [`MAX_SAGA_TYPE_BYTES`] bytes.
#[derive(Clone)]
pub struct MysqlTimerStore {
    store: MysqlEventStore,
}

impl std::fmt::Debug for MysqlTimerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlTimerStore")
            .field("database", &self.store.database())
            .finish_non_exhaustive()
    }
}

impl MysqlTimerStore {
    /// Timers kept beside `store`'s events (the table is created by its migrations).
    pub fn new(store: &MysqlEventStore) -> Self {
        Self {
            store: store.clone(),
        }
    }

    /// Runs `statements` (SQL and parameters) in one transaction, again when it was rolled
    /// back by a deadlock.
    async fn run_in_transaction(
        &self,
        action: &'static str,
        statements: &[(String, Vec<Value>)],
    ) -> Result<(), StoreError> {
        let mut conn = self.store.conn().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match transaction(&mut conn, statements).await {
                Ok(()) => return Ok(()),
                Err(error) if rolled_back(&error) && attempt < DEADLOCK_RETRIES => {
                    tracing::debug!(%error, attempt, "{action}: retrying after a deadlock");
                }
                Err(error) => {
                    // Leave no transaction open on a pooled connection.
                    let _ = conn.query_drop("ROLLBACK").await;
                    return Err(my(action, error));
                }
            }
        }
    }
}

async fn transaction(
    conn: &mut Conn,
    statements: &[(String, Vec<Value>)],
) -> Result<(), mysql_async::Error> {
    conn.query_drop("START TRANSACTION").await?;
    for (sql, params) in statements {
        if let Err(error) = conn.exec_drop(sql.as_str(), params.clone()).await {
            let _ = conn.query_drop("ROLLBACK").await;
            return Err(error);
        }
    }
    conn.query_drop("COMMIT").await
}

fn corrupt(message: String) -> StoreError {
    StoreError::backend(
        BACKEND,
        "decoding a saga timer",
        format!("{message}; the row was not written by mammoth, delete it"),
        false,
    )
}

fn read_timer((id, saga_type, saga_id, name, due_micros): TimerRow) -> Result<Timer, StoreError> {
    Ok(Timer {
        id: Uuid::from_slice(&id).map_err(|error| corrupt(format!("a timer id: {error}")))?,
        saga_type: String::from_utf8(saga_type)
            .map_err(|_| corrupt("a timer's saga type is not UTF-8".to_owned()))?,
        saga_id,
        name,
        due_micros,
    })
}

impl TimerStore for MysqlTimerStore {
    async fn upsert(&self, timers: &[Timer]) -> Result<(), StoreError> {
        let action = "storing saga timers";
        if let Some(long) = timers
            .iter()
            .find(|timer| timer.saga_type.len() > MAX_SAGA_TYPE_BYTES)
        {
            return Err(StoreError::backend(
                BACKEND,
                action,
                format!(
                    "saga type {:?}... is {} bytes; the MySQL driver stores saga types of at most {MAX_SAGA_TYPE_BYTES} bytes, so use a shorter name; nothing was written",
                    long.saga_type.chars().take(40).collect::<String>(),
                    long.saga_type.len()
                ),
                false,
            ));
        }
        // One row per id, the last given winning, in id order (a fixed lock order).
        let unique: BTreeMap<Uuid, &Timer> = timers.iter().map(|timer| (timer.id, timer)).collect();
        let unique: Vec<&Timer> = unique.into_values().collect();
        let statements: Vec<(String, Vec<Value>)> = unique
            .chunks(ROWS_PER_STATEMENT)
            .map(|chunk| {
                let mut params = Vec::with_capacity(chunk.len() * 5);
                for timer in chunk {
                    params.push(Value::from(timer.id.as_bytes().as_slice()));
                    params.push(Value::from(timer.saga_type.as_bytes()));
                    params.push(Value::from(timer.saga_id.as_str()));
                    params.push(Value::from(timer.name.as_str()));
                    params.push(Value::from(timer.due_micros));
                }
                (self.store.sql().upsert_timers(chunk.len()), params)
            })
            .collect();
        if statements.is_empty() {
            return Ok(());
        }
        self.run_in_transaction(action, &statements).await
    }

    async fn delete(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let statements: Vec<(String, Vec<Value>)> = ids
            .chunks(ROWS_PER_STATEMENT)
            .map(|chunk| {
                let params = chunk
                    .iter()
                    .map(|id| Value::from(id.as_bytes().as_slice()))
                    .collect();
                (self.store.sql().delete_timers(chunk.len()), params)
            })
            .collect();
        if statements.is_empty() {
            return Ok(());
        }
        self.run_in_transaction("deleting saga timers", &statements)
            .await
    }

    async fn due(
        &self,
        saga_type: &str,
        now_micros: i64,
        limit: usize,
    ) -> Result<Vec<Timer>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut conn = self.store.conn().await?;
        let rows: Vec<TimerRow> = conn
            .exec(
                self.store.sql().due_timers.as_str(),
                (saga_type.as_bytes(), now_micros, limit),
            )
            .await
            .map_err(on("reading due saga timers"))?;
        rows.into_iter().map(read_timer).collect()
    }

    async fn pending(&self) -> Result<Vec<Timer>, StoreError> {
        let mut conn = self.store.conn().await?;
        let rows: Vec<TimerRow> = conn
            .exec(self.store.sql().pending_timers.as_str(), ())
            .await
            .map_err(on("listing saga timers"))?;
        rows.into_iter().map(read_timer).collect()
    }
}
