//! The bus's statements with the store's schema filled in, the mapping of PostgreSQL failures
//! onto [`BusError`], and the row helpers the other bus modules share.

use std::collections::BTreeMap;

use mammoth_core::bus::{BusError, Message, Topic};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use crate::error::{BACKEND, is_transient};
use crate::schema::stable_hash;

/// A PostgreSQL failure as a [`BusError`] source: the SQLSTATE (when the server sent one) and
/// the message, so the retry loop can tell a deadlock from the rest.
#[derive(Debug)]
pub(crate) struct PgFailure {
    code: Option<SqlState>,
    message: String,
}

impl std::fmt::Display for PgFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{}: {}", code.code(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for PgFailure {}

/// Maps a tokio-postgres error to a [`BusError`] for `action`, flagging connection loss,
/// deadlocks and serialization failures as transient.
pub(crate) fn failed(action: &'static str) -> impl Fn(tokio_postgres::Error) -> BusError {
    move |error| {
        let transient = is_transient(&error);
        let failure = match error.as_db_error() {
            Some(db) => PgFailure {
                code: Some(db.code().clone()),
                message: db.message().to_owned(),
            },
            None => PgFailure {
                code: None,
                message: error.to_string(),
            },
        };
        BusError::backend(BACKEND, action, failure, transient)
    }
}

/// Maps a pool failure: a closed pool (the event store was closed) is [`BusError::Closed`],
/// anything else a transient backend error.
pub(crate) fn pool_failed(
    action: &'static str,
) -> impl Fn(deadpool_postgres::PoolError) -> BusError {
    move |error| match error {
        deadpool_postgres::PoolError::Closed => BusError::Closed,
        error => BusError::backend(BACKEND, action, error, true),
    }
}

/// True when `error` is a deadlock or serialization failure: the transaction was rolled back
/// whole and running it again is safe.
pub(crate) fn is_conflict(error: &BusError) -> bool {
    let BusError::Backend { source, .. } = error else {
        return false;
    };
    source
        .downcast_ref::<PgFailure>()
        .and_then(|failure| failure.code.as_ref())
        .is_some_and(|code| {
            *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
        })
}

/// A stored non-negative number as the unsigned number of the API.
pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// An unsigned number as a PostgreSQL bigint, saturating.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A duration in microseconds, saturating.
pub(crate) fn micros(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Headers as stored: two parallel arrays of names and values.
pub(crate) fn headers_to_arrays(headers: &BTreeMap<String, String>) -> (Vec<&str>, Vec<&str>) {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .unzip()
}

/// The columns [`message_from_row`] reads, in order, from `bus_messages` (or the same columns
/// of `bus_dead_letters`).
pub(crate) const MESSAGE_COLUMNS: &str =
    "topic, message_id, msg_key, payload, header_names, header_values, seq, published_at";

/// A [`Message`] from the [`MESSAGE_COLUMNS`] starting at column `at`.
pub(crate) fn message_from_row(row: &Row, at: usize) -> Result<Message, BusError> {
    let topic: String = row.get(at);
    let names: Vec<String> = row.get(at + 4);
    let values: Vec<String> = row.get(at + 5);
    Ok(Message {
        // Only checked names are ever written, so a failure here means a hand-edited row.
        topic: Topic::new(topic)?,
        id: row.get(at + 1),
        key: row.get(at + 2),
        payload: row.get(at + 3),
        headers: names.into_iter().zip(values).collect(),
        sequence: to_u64(row.get(at + 6)),
        published_at_micros: row.get(at + 7),
    })
}

/// Selects the dead letters a filter passes; `$1` id (-1 names none), `$2` topic, `$3` group,
/// `$4` text the last error contains; a null parameter matches every row.
const DEAD_FILTER: &str = "($1::int8 IS NULL OR id = $1)
    AND ($2::text IS NULL OR topic = $2)
    AND ($3::text IS NULL OR group_name = $3)
    AND ($4::text IS NULL OR strpos(last_error, $4) > 0)";

/// Every statement the bus runs, with the schema filled in.
#[derive(Debug)]
pub(crate) struct BusSql {
    /// The LISTEN/NOTIFY channel of the schema's bus (the payload of a notification is the
    /// topic); apart from the event store's channel, so neither wakes the other's waiters.
    pub channel: String,
    /// Locks the topic's head row (creating it) and returns its last sequence number.
    pub lock_topic: String,
    /// Moves the topic's head to `$2` and notifies channel `$3` (delivered on commit).
    pub set_topic_head: String,
    pub find_duplicates: String,
    /// Inserts rows from parallel arrays (headers are slices `lo..=hi` of two flat arrays),
    /// remembers their ids, moves the topic's head to `$11` and notifies channel `$12` (delivered
    /// on commit), in one statement.
    pub insert_messages: String,
    /// Locks the relay's row (creating it at 0) and returns its position.
    pub lock_relay: String,
    pub relay_checkpoint: String,
    pub save_relay: String,
    pub find_group: String,
    pub create_group: String,
    pub lock_group: String,
    pub expire: String,
    pub exhausted: String,
    /// Moves new messages into the pending list and the cursor past them.
    pub pull: String,
    pub lease: String,
    pub lease_ordered: String,
    pub forget_pending: String,
    pub next_due: String,
    pub ack: String,
    pub nack_current: String,
    pub nack_retry: String,
    pub extend: String,
    pub bury: String,
    pub list_dead: String,
    pub lock_dead: String,
    pub replay_one: String,
    pub discard_dead: String,
    pub count_messages: String,
    pub count_dead: String,
    pub group_stats: String,
    pub forget_ids: String,
    pub floors: String,
    pub delete_done: String,
}

/// The lease statement, with `eligible` narrowing which due rows may go out.
fn lease(s: &str, eligible: &str) -> String {
    format!(
        "WITH due AS (
            SELECT p.seq FROM {s}.bus_pending p
            WHERE p.group_id = $1 AND p.visible_at <= $2 {eligible}
            ORDER BY p.seq LIMIT $3
            FOR UPDATE OF p SKIP LOCKED
         ), leased AS (
            UPDATE {s}.bus_pending p SET attempts = p.attempts + 1, in_flight = true,
                   visible_at = $4
            FROM due WHERE p.group_id = $1 AND p.seq = due.seq
            RETURNING p.seq, p.attempts
         )
         SELECT l.seq, l.attempts, m.topic, m.message_id, m.msg_key, m.payload, m.header_names,
                m.header_values, m.seq, m.published_at
         FROM leased l LEFT JOIN {s}.bus_messages m ON m.topic = $5 AND m.seq = l.seq
         ORDER BY l.seq"
    )
}

impl BusSql {
    pub fn new(schema: &str) -> Self {
        let s = format!("\"{schema}\"");
        Self {
            // 28 characters: well inside the 63 PostgreSQL keeps of an identifier.
            channel: format!("mammoth_bus_{:016x}", stable_hash(schema) as u64),
            lock_topic: format!(
                "INSERT INTO {s}.bus_topics (topic, last_seq) VALUES ($1, 0)
                 ON CONFLICT (topic) DO UPDATE SET last_seq = {s}.bus_topics.last_seq
                 RETURNING last_seq"
            ),
            set_topic_head: format!(
                "WITH head AS (UPDATE {s}.bus_topics SET last_seq = $2 WHERE topic = $1)
                 SELECT pg_notify($3, $1)"
            ),
            // One index probe per id: with `message_id = ANY($2)` the cached generic plan
            // scanned the topic's whole dedup window (8.9 ms per publish at 50,000 rows).
            find_duplicates: format!(
                "SELECT d.message_id, d.seq, d.published_at
                 FROM unnest($2::uuid[]) AS i(id)
                 JOIN {s}.bus_dedup d ON d.topic = $1 AND d.message_id = i.id"
            ),
            insert_messages: format!(
                "WITH stored AS (
                    INSERT INTO {s}.bus_messages (topic, seq, message_id, msg_key, payload,
                        header_names, header_values, published_at)
                    SELECT $1, m.seq, m.id, m.msg_key, m.payload,
                           coalesce(($6::text[])[m.lo:m.hi], '{{}}'),
                           coalesce(($7::text[])[m.lo:m.hi], '{{}}'), $8
                    FROM unnest($2::int8[], $3::uuid[], $4::text[], $5::bytea[], $9::int4[],
                                $10::int4[]) AS m(seq, id, msg_key, payload, lo, hi)
                    RETURNING 1
                 ), remembered AS (
                    INSERT INTO {s}.bus_dedup (topic, message_id, seq, published_at)
                    SELECT $1, d.id, d.seq, $8 FROM unnest($3::uuid[], $2::int8[]) AS d(id, seq)
                    ON CONFLICT (topic, message_id) DO UPDATE
                    SET seq = EXCLUDED.seq, published_at = EXCLUDED.published_at
                 ), head AS (
                    UPDATE {s}.bus_topics SET last_seq = $11 WHERE topic = $1
                 )
                 SELECT count(*), pg_notify($12, $1) FROM stored"
            ),
            lock_relay: format!(
                "INSERT INTO {s}.bus_relays (name, position, updated_at) VALUES ($1, 0, $2)
                 ON CONFLICT (name) DO UPDATE SET position = {s}.bus_relays.position
                 RETURNING position"
            ),
            relay_checkpoint: format!("SELECT position FROM {s}.bus_relays WHERE name = $1"),
            save_relay: format!(
                "UPDATE {s}.bus_relays SET position = $2, updated_at = $3 WHERE name = $1"
            ),
            find_group: format!(
                "SELECT group_id FROM {s}.bus_groups WHERE topic = $1 AND name = $2"
            ),
            // Latest starts after the topic's sequence counter, not MAX(seq): collected
            // messages never come back.
            create_group: format!(
                "INSERT INTO {s}.bus_groups (topic, name, next_seq)
                 SELECT $1, $2, CASE WHEN $3 THEN coalesce(
                     (SELECT last_seq FROM {s}.bus_topics WHERE topic = $1), 0) + 1 ELSE 0 END
                 ON CONFLICT (topic, name) DO NOTHING
                 RETURNING group_id"
            ),
            lock_group: format!(
                "SELECT next_seq FROM {s}.bus_groups WHERE group_id = $1 FOR UPDATE"
            ),
            expire: format!(
                "UPDATE {s}.bus_pending p SET in_flight = false, last_error = $3,
                        last_failed_at = $2, first_failed_at = coalesce(p.first_failed_at, $2)
                 FROM (SELECT seq FROM {s}.bus_pending
                       WHERE group_id = $1 AND in_flight AND visible_at <= $2
                       FOR UPDATE SKIP LOCKED) e
                 WHERE p.group_id = $1 AND p.seq = e.seq"
            ),
            exhausted: format!(
                "SELECT seq, coalesce(last_error, '') FROM {s}.bus_pending
                 WHERE group_id = $1 AND NOT in_flight AND visible_at <= $2 AND attempts >= $3
                 ORDER BY seq FOR UPDATE SKIP LOCKED"
            ),
            pull: format!(
                "WITH fresh AS (
                    SELECT seq, msg_key FROM {s}.bus_messages
                    WHERE topic = $2 AND seq >= $3 AND only_group IS NULL
                    ORDER BY seq LIMIT $4
                 ), pending AS (
                    INSERT INTO {s}.bus_pending (group_id, seq, msg_key, attempts, visible_at,
                                                 in_flight)
                    SELECT $1, seq, msg_key, 0, 0, false FROM fresh
                    ON CONFLICT DO NOTHING
                 ), moved AS (
                    UPDATE {s}.bus_groups SET next_seq = (SELECT max(seq) + 1 FROM fresh)
                    WHERE group_id = $1 AND EXISTS (SELECT 1 FROM fresh)
                 )
                 SELECT count(*) FROM fresh"
            ),
            lease: lease(&s, ""),
            lease_ordered: lease(
                &s,
                &format!(
                    "AND NOT EXISTS (SELECT 1 FROM {s}.bus_pending q WHERE q.group_id = p.group_id
                                     AND q.msg_key = p.msg_key AND q.seq < p.seq)"
                ),
            ),
            forget_pending: format!("DELETE FROM {s}.bus_pending WHERE group_id = $1 AND seq = $2"),
            next_due: format!("SELECT min(visible_at) FROM {s}.bus_pending WHERE group_id = $1"),
            ack: format!("DELETE FROM {s}.bus_pending WHERE group_id = $1 AND seq = ANY($2)"),
            nack_current: format!(
                "SELECT attempts, in_flight FROM {s}.bus_pending
                 WHERE group_id = $1 AND seq = $2 FOR UPDATE"
            ),
            nack_retry: format!(
                "UPDATE {s}.bus_pending SET in_flight = false, visible_at = $3, last_error = $4,
                        last_failed_at = $5, first_failed_at = coalesce(first_failed_at, $5)
                 WHERE group_id = $1 AND seq = $2"
            ),
            extend: format!(
                "UPDATE {s}.bus_pending SET visible_at = $4
                 WHERE group_id = $1 AND seq = $2 AND attempts = $3 AND in_flight"
            ),
            bury: format!(
                "WITH gone AS (
                    DELETE FROM {s}.bus_pending WHERE group_id = $1 AND seq = $2
                    RETURNING group_id, seq, attempts, first_failed_at
                 )
                 INSERT INTO {s}.bus_dead_letters (group_id, topic, group_name, seq, message_id,
                     msg_key, payload, header_names, header_values, published_at, attempts,
                     last_error, first_failed_at, last_failed_at)
                 SELECT gone.group_id, m.topic, g.name, m.seq, m.message_id, m.msg_key,
                        m.payload, m.header_names, m.header_values, m.published_at,
                        gone.attempts, $3, coalesce(gone.first_failed_at, $4), $4
                 FROM gone
                 JOIN {s}.bus_groups g ON g.group_id = gone.group_id
                 JOIN {s}.bus_messages m ON m.topic = g.topic AND m.seq = gone.seq
                 RETURNING id"
            ),
            list_dead: format!(
                "SELECT id, group_name, attempts, last_error, first_failed_at, last_failed_at,
                        {MESSAGE_COLUMNS}
                 FROM {s}.bus_dead_letters WHERE {DEAD_FILTER} ORDER BY id LIMIT $5"
            ),
            lock_dead: format!(
                "SELECT id, topic FROM {s}.bus_dead_letters WHERE {DEAD_FILTER}
                 ORDER BY id FOR UPDATE"
            ),
            replay_one: format!(
                "WITH letter AS (
                    DELETE FROM {s}.bus_dead_letters WHERE id = $1
                    RETURNING group_id, topic, message_id, msg_key, payload, header_names,
                              header_values, published_at
                 ), message AS (
                    INSERT INTO {s}.bus_messages (topic, seq, message_id, msg_key, payload,
                        header_names, header_values, published_at, only_group)
                    SELECT topic, $2, message_id, msg_key, payload, header_names, header_values,
                           published_at, group_id
                    FROM letter
                 )
                 INSERT INTO {s}.bus_pending (group_id, seq, msg_key, attempts, visible_at,
                                              in_flight)
                 SELECT group_id, $2, msg_key, 0, 0, false FROM letter"
            ),
            discard_dead: format!("DELETE FROM {s}.bus_dead_letters WHERE {DEAD_FILTER}"),
            count_messages: format!("SELECT topic, count(*) FROM {s}.bus_messages GROUP BY topic"),
            count_dead: format!(
                "SELECT topic, group_name, count(*) FROM {s}.bus_dead_letters
                 GROUP BY topic, group_name"
            ),
            group_stats: format!(
                "SELECT g.topic, g.name,
                    (SELECT count(*) FROM {s}.bus_messages m
                     WHERE m.topic = g.topic AND m.seq >= g.next_seq AND m.only_group IS NULL)
                  + (SELECT count(*) FROM {s}.bus_pending p WHERE p.group_id = g.group_id
                     AND NOT p.in_flight AND p.visible_at <= $1),
                    (SELECT count(*) FROM {s}.bus_pending p WHERE p.group_id = g.group_id
                     AND p.in_flight AND p.visible_at > $1),
                    (SELECT count(*) FROM {s}.bus_pending p WHERE p.group_id = g.group_id
                     AND NOT p.in_flight AND p.attempts > 0 AND p.visible_at > $1)
                 FROM {s}.bus_groups g ORDER BY g.topic, g.name"
            ),
            forget_ids: format!("DELETE FROM {s}.bus_dedup WHERE published_at < $1"),
            // Per topic, everything below the lowest group cursor and the lowest pending row
            // is done.
            floors: format!(
                "SELECT g.topic, least(min(g.next_seq), min(p.first_seq))
                 FROM {s}.bus_groups g
                 LEFT JOIN LATERAL (SELECT min(seq) AS first_seq FROM {s}.bus_pending
                                    WHERE group_id = g.group_id) p ON true
                 GROUP BY g.topic"
            ),
            delete_done: format!("DELETE FROM {s}.bus_messages WHERE topic = $1 AND seq < $2"),
        }
    }
}
