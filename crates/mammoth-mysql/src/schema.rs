//! The tables, their versioned migrations, and the SQL text of every statement the driver
//! runs, with the configured database name filled in.
//!
//! The layout mirrors the PostgreSQL driver's: `events` keyed by global position with unique
//! `(stream_id, version)` and `event_id` indexes as the cross-process safety net, and the
//! one-row `log_head`, updated first in every append transaction: its InnoDB row lock
//! serializes position assignment across all writers until commit, and InnoDB makes a
//! transaction visible before it releases its locks, so commits become visible in position
//! order. Stream ids are `VARBINARY` (byte-exact, case-sensitive), payloads `LONGTEXT` in
//! utf8mb4 with a binary collation (stored as given). `snapshots`, `checkpoints` and
//! `saga_timers` hold the side stores that share the event store's pool.

use mammoth_core::StoreError;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::error::{BACKEND, on};

/// The schema version this build writes: the number of [`MIGRATIONS`].
pub const SCHEMA_VERSION: i64 = 4;

/// Each migration, in order: (version it produces, statements with `{d}` for the quoted
/// database).
pub const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE IF NOT EXISTS {d}.log_head (
                only_row TINYINT NOT NULL PRIMARY KEY,
                position BIGINT NOT NULL
            ) ENGINE = InnoDB",
            "INSERT IGNORE INTO {d}.log_head (only_row, position) VALUES (1, 0)",
            "CREATE TABLE IF NOT EXISTS {d}.events (
                position       BIGINT NOT NULL PRIMARY KEY,
                stream_id      VARBINARY(255) NOT NULL,
                version        BIGINT NOT NULL,
                event_id       BINARY(16) NOT NULL,
                event_type     VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
                schema_version BIGINT NOT NULL,
                data           LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                metadata       LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                recorded_at    BIGINT NOT NULL,
                UNIQUE KEY events_by_stream (stream_id, version),
                UNIQUE KEY events_by_id (event_id)
            ) ENGINE = InnoDB",
        ],
    ),
    (
        2,
        &["CREATE TABLE IF NOT EXISTS {d}.snapshots (
                stream_id      VARBINARY(255) NOT NULL PRIMARY KEY,
                version        BIGINT NOT NULL,
                schema_version BIGINT NOT NULL,
                state          LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                taken_at       BIGINT NOT NULL
            ) ENGINE = InnoDB"],
    ),
    (
        // Names and saga types are VARBINARY: compared and sorted bytewise, trailing spaces
        // and case significant, as `String` does.
        3,
        &[
            "CREATE TABLE IF NOT EXISTS {d}.checkpoints (
                name       VARBINARY(512) NOT NULL PRIMARY KEY,
                position   BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            ) ENGINE = InnoDB",
            "CREATE TABLE IF NOT EXISTS {d}.saga_timers (
                id         BINARY(16) NOT NULL PRIMARY KEY,
                saga_type  VARBINARY(255) NOT NULL,
                saga_id    LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                name       LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                due_micros BIGINT NOT NULL,
                KEY saga_timers_due (saga_type, due_micros)
            ) ENGINE = InnoDB",
        ],
    ),
    (
        // The embedded message bus (`bus/`). `bus_topics` is each topic's head: locked first
        // in every transaction that assigns sequence numbers in the topic, so they commit in
        // order and a group cursor never passes a message still being written. Sequence
        // numbers count per topic. `bus_pending.key_hash` is MD5 of the message key (keys
        // have no length limit, index columns do); a collision only holds two keys in one
        // order, never breaks one key's.
        4,
        &[
            "CREATE TABLE IF NOT EXISTS {d}.bus_topics (
                topic    VARBINARY(128) NOT NULL PRIMARY KEY,
                last_seq BIGINT NOT NULL
            ) ENGINE = InnoDB",
            "CREATE TABLE IF NOT EXISTS {d}.bus_messages (
                topic        VARBINARY(128) NOT NULL,
                seq          BIGINT NOT NULL,
                message_id   BINARY(16) NOT NULL,
                msg_key      LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
                payload      LONGBLOB NOT NULL,
                headers      LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                published_at BIGINT NOT NULL,
                only_group   BIGINT NULL,
                PRIMARY KEY (topic, seq)
            ) ENGINE = InnoDB",
            "CREATE TABLE IF NOT EXISTS {d}.bus_dedup (
                topic        VARBINARY(128) NOT NULL,
                message_id   BINARY(16) NOT NULL,
                seq          BIGINT NOT NULL,
                published_at BIGINT NOT NULL,
                PRIMARY KEY (topic, message_id),
                KEY bus_dedup_by_age (published_at)
            ) ENGINE = InnoDB",
            "CREATE TABLE IF NOT EXISTS {d}.bus_groups (
                group_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                topic    VARBINARY(128) NOT NULL,
                name     VARBINARY(64) NOT NULL,
                next_seq BIGINT NOT NULL,
                UNIQUE KEY bus_groups_by_name (topic, name)
            ) ENGINE = InnoDB",
            "CREATE TABLE IF NOT EXISTS {d}.bus_pending (
                group_id        BIGINT NOT NULL,
                seq             BIGINT NOT NULL,
                key_hash        BINARY(16) NULL,
                attempts        INT NOT NULL,
                visible_at      BIGINT NOT NULL,
                in_flight       TINYINT NOT NULL,
                first_failed_at BIGINT NULL,
                last_failed_at  BIGINT NULL,
                last_error      LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
                PRIMARY KEY (group_id, seq),
                KEY bus_pending_due (group_id, visible_at),
                KEY bus_pending_by_key (group_id, key_hash, seq)
            ) ENGINE = InnoDB",
            "CREATE TABLE IF NOT EXISTS {d}.bus_dead_letters (
                id              BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                group_id        BIGINT NOT NULL,
                topic           VARBINARY(128) NOT NULL,
                group_name      VARBINARY(64) NOT NULL,
                seq             BIGINT NOT NULL,
                message_id      BINARY(16) NOT NULL,
                msg_key         LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
                payload         LONGBLOB NOT NULL,
                headers         LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                published_at    BIGINT NOT NULL,
                attempts        INT NOT NULL,
                last_error      LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                first_failed_at BIGINT NOT NULL,
                last_failed_at  BIGINT NOT NULL,
                KEY bus_dead_letters_by_group (topic, group_name)
            ) ENGINE = InnoDB",
            "CREATE TABLE IF NOT EXISTS {d}.bus_relays (
                name       VARBINARY(512) NOT NULL PRIMARY KEY,
                position   BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            ) ENGINE = InnoDB",
        ],
    ),
];

/// The longest checkpoint name the `checkpoints` table holds, in bytes.
pub const MAX_CHECKPOINT_NAME_BYTES: usize = 512;

/// The longest saga type the `saga_timers` table holds, in bytes.
pub const MAX_SAGA_TYPE_BYTES: usize = 255;

/// Checks a database name: 1 to 64 ASCII letters, digits or `_`, not starting with a digit.
///
/// # Errors
/// [`StoreError::Backend`] (not transient) naming the rule.
pub fn check_database_name(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::backend(
            BACKEND,
            "checking the configuration",
            format!(
                "database name {name:?} is not valid; use 1 to 64 ASCII letters, digits or `_`, not starting with a digit (e.g. \"event_store\")"
            ),
            false,
        ))
    }
}

/// The columns every read selects, in the order `read.rs` decodes them.
pub(crate) const COLUMNS: &str = "position, stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at";

/// Every fixed statement the driver runs, with the database filled in.
#[derive(Debug)]
pub(crate) struct Sql {
    pub database: String,
    pub d: String,
    pub take_positions: String,
    pub head: String,
    pub read_forward: String,
    pub read_backward: String,
    pub stream_version: String,
    pub load_snapshot: String,
    pub save_snapshot: String,
    pub load_checkpoint: String,
    pub save_checkpoint: String,
    pub list_checkpoints: String,
    pub due_timers: String,
    pub pending_timers: String,
}

/// The columns every timer read selects, in the order `timers.rs` decodes them.
pub(crate) const TIMER_COLUMNS: &str = "id, saga_type, saga_id, name, due_micros";

impl Sql {
    pub fn new(database: &str) -> Self {
        let d = format!("`{database}`");
        Self {
            take_positions: format!(
                "UPDATE {d}.log_head SET position = LAST_INSERT_ID(position + ?) WHERE only_row = 1"
            ),
            head: format!("SELECT position FROM {d}.log_head WHERE only_row = 1"),
            read_forward: format!(
                "SELECT {COLUMNS} FROM {d}.events WHERE stream_id = ? AND version >= ? ORDER BY version LIMIT ?"
            ),
            read_backward: format!(
                "SELECT {COLUMNS} FROM {d}.events WHERE stream_id = ? AND version <= ? ORDER BY version DESC LIMIT ?"
            ),
            stream_version: format!(
                "SELECT COALESCE(MAX(version), 0) FROM {d}.events WHERE stream_id = ?"
            ),
            load_snapshot: format!(
                "SELECT version, schema_version, state, taken_at FROM {d}.snapshots WHERE stream_id = ?"
            ),
            save_snapshot: format!(
                "INSERT INTO {d}.snapshots (stream_id, version, schema_version, state, taken_at)
                 VALUES (?, ?, ?, ?, ?)
                 ON DUPLICATE KEY UPDATE
                    schema_version = IF(VALUES(version) > version, VALUES(schema_version), schema_version),
                    state = IF(VALUES(version) > version, VALUES(state), state),
                    taken_at = IF(VALUES(version) > version, VALUES(taken_at), taken_at),
                    version = GREATEST(version, VALUES(version))"
            ),
            load_checkpoint: format!("SELECT position FROM {d}.checkpoints WHERE name = ?"),
            save_checkpoint: format!(
                "INSERT INTO {d}.checkpoints (name, position, updated_at) VALUES (?, ?, ?)
                 ON DUPLICATE KEY UPDATE position = VALUES(position), updated_at = VALUES(updated_at)"
            ),
            list_checkpoints: format!("SELECT name, position FROM {d}.checkpoints ORDER BY name"),
            due_timers: format!(
                "SELECT {TIMER_COLUMNS} FROM {d}.saga_timers
                 WHERE saga_type = ? AND due_micros <= ? ORDER BY due_micros, id LIMIT ?"
            ),
            pending_timers: format!(
                "SELECT {TIMER_COLUMNS} FROM {d}.saga_timers ORDER BY due_micros, id"
            ),
            database: database.to_owned(),
            d,
        }
    }

    /// `INSERT` of `rows` events.
    pub fn insert(&self, rows: usize) -> String {
        let mut sql = format!("INSERT INTO {}.events ({COLUMNS}) VALUES ", self.d);
        for row in 0..rows {
            if row > 0 {
                sql.push(',');
            }
            sql.push_str("(?,?,?,?,?,?,?,?,?)");
        }
        sql
    }

    /// `INSERT` of `rows` saga timers, replacing those with the same id.
    pub fn upsert_timers(&self, rows: usize) -> String {
        let mut sql = format!(
            "INSERT INTO {}.saga_timers ({TIMER_COLUMNS}) VALUES ",
            self.d
        );
        for row in 0..rows {
            if row > 0 {
                sql.push(',');
            }
            sql.push_str("(?,?,?,?,?)");
        }
        sql.push_str(
            " ON DUPLICATE KEY UPDATE saga_type = VALUES(saga_type), saga_id = VALUES(saga_id),
               name = VALUES(name), due_micros = VALUES(due_micros)",
        );
        sql
    }

    /// `DELETE` of the saga timers with `n` ids.
    pub fn delete_timers(&self, n: usize) -> String {
        format!(
            "DELETE FROM {}.saga_timers WHERE id IN ({})",
            self.d,
            Self::placeholders(n)
        )
    }

    /// A `SELECT ... WHERE column IN (?, ...)` list of `n` placeholders.
    pub fn placeholders(n: usize) -> String {
        let mut list = String::with_capacity(n * 2);
        for index in 0..n {
            if index > 0 {
                list.push(',');
            }
            list.push('?');
        }
        list
    }
}

/// Creates the database's tables or brings them up to [`SCHEMA_VERSION`], under a named lock
/// so that processes starting together migrate once. Returns the version found before.
///
/// # Errors
/// [`StoreError::Backend`] when the database fails or holds a newer schema version.
pub(crate) async fn migrate(conn: &mut Conn, sql: &Sql) -> Result<i64, StoreError> {
    let action = "migrating the schema";
    let lock = format!("mammoth-migrate:{}", sql.database);
    let got: Option<i64> = conn
        .exec_first("SELECT GET_LOCK(?, 60)", (&lock,))
        .await
        .map_err(on(action))?;
    if got != Some(1) {
        return Err(StoreError::backend(
            BACKEND,
            action,
            "another process held the migration lock for 60 s",
            true,
        ));
    }
    let result = migrate_locked(conn, sql).await;
    let _ = conn.exec_drop("SELECT RELEASE_LOCK(?)", (&lock,)).await;
    result
}

async fn migrate_locked(conn: &mut Conn, sql: &Sql) -> Result<i64, StoreError> {
    let action = "migrating the schema";
    let d = &sql.d;
    conn.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS {d} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    ))
    .await
    .map_err(on(action))?;
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {d}.mammoth_meta (name VARCHAR(64) NOT NULL PRIMARY KEY, value BIGINT NOT NULL) ENGINE = InnoDB"
    ))
    .await
    .map_err(on(action))?;
    let found: i64 = conn
        .query_first(format!(
            "SELECT value FROM {d}.mammoth_meta WHERE name = 'schema_version'"
        ))
        .await
        .map_err(on(action))?
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(newer_schema(&sql.database, found));
    }
    for (version, statements) in MIGRATIONS.iter().filter(|(version, _)| *version > found) {
        // DDL commits implicitly in MySQL, so every statement is idempotent (IF NOT EXISTS,
        // INSERT IGNORE) and a migration interrupted halfway simply runs again.
        for statement in *statements {
            conn.query_drop(statement.replace("{d}", d))
                .await
                .map_err(on(action))?;
        }
        conn.exec_drop(
            format!(
                "INSERT INTO {d}.mammoth_meta (name, value) VALUES ('schema_version', ?)
                 ON DUPLICATE KEY UPDATE value = VALUES(value)"
            ),
            (version,),
        )
        .await
        .map_err(on(action))?;
    }
    Ok(found)
}

/// The schema version stored in the database, 0 when it or its tables do not exist.
pub(crate) async fn stored_version(conn: &mut Conn, sql: &Sql) -> Result<i64, StoreError> {
    let action = "reading the schema version";
    let exists: Option<i64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'mammoth_meta'",
            (&sql.database,),
        )
        .await
        .map_err(on(action))?;
    if exists.unwrap_or(0) == 0 {
        return Ok(0);
    }
    let version: Option<i64> = conn
        .query_first(format!(
            "SELECT value FROM {}.mammoth_meta WHERE name = 'schema_version'",
            sql.d
        ))
        .await
        .map_err(on(action))?;
    Ok(version.unwrap_or(0))
}

pub(crate) fn newer_schema(database: &str, found: i64) -> StoreError {
    StoreError::backend(
        BACKEND,
        "opening the store",
        format!(
            "database {database:?} has schema version {found}, but this mammoth knows only up to {SCHEMA_VERSION}; upgrade mammoth"
        ),
        false,
    )
}
