//! The tables, their versioned migrations, and the SQL text of every statement the driver
//! runs, with the configured schema name filled in.
//!
//! Layout: `events` is the log, keyed by global position, with unique indexes on
//! `(stream_id, version)` and `event_id` as the cross-process safety net; `log_head` is a
//! one-row table holding the last assigned position. Every append transaction updates that
//! row first, so position assignment is serialized across all writers of the database and
//! commits become visible in position order (see `docs/architecture.md`, "PostgreSQL and
//! MySQL drivers"). `snapshots`, `checkpoints` and `saga_timers` hold the side stores that
//! share the event store's pool; the `bus_*` tables hold the embedded message bus
//! (`crate::bus`). `mammoth_meta` records the schema version; [`MIGRATIONS`] lists the steps
//! from an empty schema to the current one, applied in order under an advisory lock.

use mammoth_core::StoreError;
use tokio_postgres::Client;

use crate::error::{BACKEND, on};

/// The schema version this build writes: the number of [`MIGRATIONS`].
pub const SCHEMA_VERSION: i64 = 4;

/// Each migration, in order: (version it produces, DDL with `{s}` for the quoted schema).
pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE {s}.log_head (
            only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
            position bigint NOT NULL
        ) WITH (fillfactor = 10);
        INSERT INTO {s}.log_head (position) VALUES (0);
        CREATE TABLE {s}.events (
            position       bigint PRIMARY KEY,
            stream_id      text NOT NULL,
            version        bigint NOT NULL,
            event_id       uuid NOT NULL,
            event_type     text NOT NULL,
            schema_version bigint NOT NULL,
            data           text NOT NULL,
            metadata       text NOT NULL,
            recorded_at    bigint NOT NULL
        );
        CREATE UNIQUE INDEX events_by_stream ON {s}.events (stream_id, version);
        CREATE UNIQUE INDEX events_by_id ON {s}.events (event_id);",
    ),
    (
        2,
        "CREATE TABLE {s}.snapshots (
            stream_id      text PRIMARY KEY,
            version        bigint NOT NULL,
            schema_version bigint NOT NULL,
            state          text NOT NULL,
            taken_at       bigint NOT NULL
        );",
    ),
    (
        // Checkpoint names sort bytewise ("C"), as `String` does, whatever the database's
        // default collation.
        3,
        "CREATE TABLE {s}.checkpoints (
            name       text COLLATE \"C\" PRIMARY KEY,
            position   bigint NOT NULL,
            updated_at bigint NOT NULL
        );
        CREATE TABLE {s}.saga_timers (
            id         uuid PRIMARY KEY,
            saga_type  text NOT NULL,
            saga_id    text NOT NULL,
            name       text NOT NULL,
            due_micros bigint NOT NULL
        );
        CREATE INDEX saga_timers_due ON {s}.saga_timers (saga_type, due_micros);",
    ),
    (
        // The embedded message bus (`crate::bus`). `bus_topics` holds each topic's last
        // sequence number; every publish updates its topic's row first, so publishes to one
        // topic serialize and commit in sequence order (as `log_head` does for events), and a
        // group cursor never passes a message that has yet to commit.
        4,
        "CREATE TABLE {s}.bus_topics (
            topic    text COLLATE \"C\" PRIMARY KEY,
            last_seq bigint NOT NULL
        ) WITH (fillfactor = 50);
        CREATE TABLE {s}.bus_messages (
            topic         text COLLATE \"C\" NOT NULL,
            seq           bigint NOT NULL,
            message_id    uuid NOT NULL,
            msg_key       text,
            payload       bytea NOT NULL,
            header_names  text[] NOT NULL,
            header_values text[] NOT NULL,
            published_at  bigint NOT NULL,
            only_group    bigint,
            PRIMARY KEY (topic, seq)
        );
        CREATE TABLE {s}.bus_dedup (
            topic        text COLLATE \"C\" NOT NULL,
            message_id   uuid NOT NULL,
            seq          bigint NOT NULL,
            published_at bigint NOT NULL,
            PRIMARY KEY (topic, message_id)
        );
        CREATE INDEX bus_dedup_by_age ON {s}.bus_dedup (published_at);
        CREATE TABLE {s}.bus_groups (
            group_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            topic    text COLLATE \"C\" NOT NULL,
            name     text COLLATE \"C\" NOT NULL,
            next_seq bigint NOT NULL,
            UNIQUE (topic, name)
        ) WITH (fillfactor = 50);
        CREATE TABLE {s}.bus_pending (
            group_id        bigint NOT NULL,
            seq             bigint NOT NULL,
            msg_key         text,
            attempts        integer NOT NULL,
            visible_at      bigint NOT NULL,
            in_flight       boolean NOT NULL,
            first_failed_at bigint,
            last_failed_at  bigint,
            last_error      text,
            PRIMARY KEY (group_id, seq)
        );
        CREATE INDEX bus_pending_due ON {s}.bus_pending (group_id, visible_at);
        CREATE INDEX bus_pending_by_key ON {s}.bus_pending (group_id, msg_key, seq);
        CREATE TABLE {s}.bus_dead_letters (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            group_id        bigint NOT NULL,
            topic           text COLLATE \"C\" NOT NULL,
            group_name      text COLLATE \"C\" NOT NULL,
            seq             bigint NOT NULL,
            message_id      uuid NOT NULL,
            msg_key         text,
            payload         bytea NOT NULL,
            header_names    text[] NOT NULL,
            header_values   text[] NOT NULL,
            published_at    bigint NOT NULL,
            attempts        integer NOT NULL,
            last_error      text NOT NULL,
            first_failed_at bigint NOT NULL,
            last_failed_at  bigint NOT NULL
        );
        CREATE TABLE {s}.bus_relays (
            name       text COLLATE \"C\" PRIMARY KEY,
            position   bigint NOT NULL,
            updated_at bigint NOT NULL
        );",
    ),
];

/// Checks a schema name: 1 to 63 ASCII letters, digits or `_`, not starting with a digit.
///
/// # Errors
/// [`StoreError::Backend`] (not transient) naming the rule.
pub fn check_schema_name(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::backend(
            BACKEND,
            "checking the configuration",
            format!(
                "schema name {name:?} is not valid; use 1 to 63 ASCII letters, digits or `_`, not starting with a digit (e.g. \"mammoth\")"
            ),
            false,
        ))
    }
}

/// A stable 64-bit FNV-1a hash, for advisory lock keys and channel names shared by every
/// process that uses the same schema.
pub(crate) fn stable_hash(text: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

/// Every statement the driver runs, with the schema filled in.
#[derive(Debug)]
pub(crate) struct Sql {
    pub schema: String,
    /// The LISTEN/NOTIFY channel of this schema.
    pub channel: String,
    /// One statement per group commit: take the position range (this row lock serializes
    /// writers until commit), insert the rows, notify listeners; returns the range's base.
    pub append: String,
    pub head: String,
    pub stream_heads: String,
    pub find_ids: String,
    pub read_forward: String,
    pub read_backward: String,
    pub read_all: String,
    pub read_all_filtered: String,
    pub stream_version: String,
    pub load_snapshot: String,
    pub save_snapshot: String,
    pub load_checkpoint: String,
    pub save_checkpoint: String,
    pub list_checkpoints: String,
    /// Upserts rows given as five parallel arrays (id, saga type, saga id, name, due).
    pub upsert_timers: String,
    pub delete_timers: String,
    pub due_timers: String,
    pub pending_timers: String,
}

const TIMER_COLUMNS: &str = "id, saga_type, saga_id, name, due_micros";

const COLUMNS: &str = "position, stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at";

impl Sql {
    pub fn new(schema: &str) -> Self {
        let s = format!("\"{schema}\"");
        let channel = format!("mammoth_{:016x}", stable_hash(schema) as u64);
        Self {
            append: format!(
                "WITH head AS (
                    UPDATE {s}.log_head SET position = position + $1 RETURNING position - $1 AS base
                 ), rows AS (
                    INSERT INTO {s}.events ({COLUMNS})
                    SELECT head.base + e.n, e.stream_id, e.version, e.event_id, e.event_type,
                           e.schema_version, e.data, e.metadata, $9
                    FROM head, unnest($2::text[], $3::int8[], $4::uuid[], $5::text[], $6::int8[],
                                      $7::text[], $8::text[])
                         WITH ORDINALITY AS e(stream_id, version, event_id, event_type,
                                              schema_version, data, metadata, n)
                    RETURNING 1
                 ), notified AS (
                    SELECT pg_notify('{channel}', (head.base + $1)::text) FROM head
                 )
                 SELECT head.base, (SELECT count(*) FROM rows), (SELECT count(*) FROM notified)
                 FROM head"
            ),
            head: format!("SELECT position FROM {s}.log_head"),
            stream_heads: format!(
                "SELECT stream_id, max(version) FROM {s}.events WHERE stream_id = ANY($1) GROUP BY stream_id"
            ),
            find_ids: format!(
                "SELECT event_id, stream_id, version, position FROM {s}.events WHERE event_id = ANY($1)"
            ),
            read_forward: format!(
                "SELECT {COLUMNS} FROM {s}.events WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3"
            ),
            read_backward: format!(
                "SELECT {COLUMNS} FROM {s}.events WHERE stream_id = $1 AND version <= $2 ORDER BY version DESC LIMIT $3"
            ),
            read_all: format!(
                "SELECT {COLUMNS} FROM {s}.events WHERE position >= $1 ORDER BY position LIMIT $2"
            ),
            read_all_filtered: format!(
                "SELECT {COLUMNS} FROM {s}.events WHERE position >= $1
                   AND (cardinality($3::text[]) = 0 OR event_type = ANY($3))
                   AND (cardinality($4::text[]) = 0 OR split_part(stream_id, '-', 1) = ANY($4))
                 ORDER BY position LIMIT $2"
            ),
            stream_version: format!(
                "SELECT coalesce(max(version), 0) FROM {s}.events WHERE stream_id = $1"
            ),
            load_snapshot: format!(
                "SELECT version, schema_version, state, taken_at FROM {s}.snapshots WHERE stream_id = $1"
            ),
            save_snapshot: format!(
                "INSERT INTO {s}.snapshots (stream_id, version, schema_version, state, taken_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version,
                    schema_version = EXCLUDED.schema_version, state = EXCLUDED.state,
                    taken_at = EXCLUDED.taken_at
                 WHERE {s}.snapshots.version < EXCLUDED.version"
            ),
            load_checkpoint: format!("SELECT position FROM {s}.checkpoints WHERE name = $1"),
            save_checkpoint: format!(
                "INSERT INTO {s}.checkpoints (name, position, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position,
                    updated_at = EXCLUDED.updated_at"
            ),
            list_checkpoints: format!("SELECT name, position FROM {s}.checkpoints ORDER BY name"),
            upsert_timers: format!(
                "INSERT INTO {s}.saga_timers ({TIMER_COLUMNS})
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int8[])
                 ON CONFLICT (id) DO UPDATE SET saga_type = EXCLUDED.saga_type,
                    saga_id = EXCLUDED.saga_id, name = EXCLUDED.name,
                    due_micros = EXCLUDED.due_micros"
            ),
            delete_timers: format!("DELETE FROM {s}.saga_timers WHERE id = ANY($1)"),
            due_timers: format!(
                "SELECT {TIMER_COLUMNS} FROM {s}.saga_timers
                 WHERE saga_type = $1 AND due_micros <= $2 ORDER BY due_micros, id LIMIT $3"
            ),
            pending_timers: format!(
                "SELECT {TIMER_COLUMNS} FROM {s}.saga_timers ORDER BY due_micros, id"
            ),
            schema: schema.to_owned(),
            channel,
        }
    }

    /// The schema name, quoted for SQL.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.schema)
    }
}

/// Creates the schema or brings it up to [`SCHEMA_VERSION`], under an advisory lock so that
/// processes starting together migrate once. Returns the version found before migrating.
///
/// # Errors
/// [`StoreError::Backend`] when the database fails or holds a newer schema version.
pub(crate) async fn migrate(client: &mut Client, sql: &Sql) -> Result<i64, StoreError> {
    let action = "migrating the schema";
    let tx = client.transaction().await.map_err(on(action))?;
    match migrate_in(&tx, sql).await {
        Ok(found) => {
            tx.commit().await.map_err(on(action))?;
            Ok(found)
        }
        Err(error) => {
            // Roll back now rather than on drop: the advisory lock and the catalog locks
            // must not outlive this call while the connection waits to be polled.
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

async fn migrate_in(tx: &tokio_postgres::Transaction<'_>, sql: &Sql) -> Result<i64, StoreError> {
    let action = "migrating the schema";
    let s = sql.quoted();
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&stable_hash(&format!("mammoth-migrate:{}", sql.schema))],
    )
    .await
    .map_err(on(action))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.mammoth_meta (key text PRIMARY KEY, value bigint NOT NULL);"
    ))
    .await
    .map_err(on(action))?;
    let found: i64 = tx
        .query_opt(
            &format!("SELECT value FROM {s}.mammoth_meta WHERE key = 'schema_version'"),
            &[],
        )
        .await
        .map_err(on(action))?
        .map_or(0, |row| row.get(0));
    if found > SCHEMA_VERSION {
        return Err(newer_schema(&sql.schema, found));
    }
    for (version, ddl) in MIGRATIONS.iter().filter(|(version, _)| *version > found) {
        tx.batch_execute(&ddl.replace("{s}", &s))
            .await
            .map_err(on(action))?;
        tx.execute(
            &format!(
                "INSERT INTO {s}.mammoth_meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            &[version],
        )
        .await
        .map_err(on(action))?;
    }
    Ok(found)
}

/// The schema version stored in `schema`, 0 when the schema or its tables do not exist.
pub(crate) async fn stored_version(client: &Client, sql: &Sql) -> Result<i64, StoreError> {
    let action = "reading the schema version";
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{}.mammoth_meta", sql.quoted())],
        )
        .await
        .map_err(on(action))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_opt(
            &format!(
                "SELECT value FROM {}.mammoth_meta WHERE key = 'schema_version'",
                sql.quoted()
            ),
            &[],
        )
        .await
        .map_err(on(action))?;
    Ok(row.map_or(0, |row| row.get(0)))
}

pub(crate) fn newer_schema(schema: &str, found: i64) -> StoreError {
    StoreError::backend(
        BACKEND,
        "opening the store",
        format!(
            "schema {schema:?} has schema version {found}, but this mammoth knows only up to {SCHEMA_VERSION}; upgrade mammoth"
        ),
        false,
    )
}
