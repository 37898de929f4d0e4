//! Read queries: one stream (stream index plus the unindexed tail) and the global log.

use mammoth_core::{
    Direction, EventFilter, Metadata, Position, RecordedEvent, StoreError, StreamId, Version,
};
use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, ToSql};
use uuid::Uuid;

use crate::error::on;
use crate::tail::SharedTail;

const EVENT_COLUMNS: &str = "e.position, e.version, e.event_id, e.event_type, e.schema_version, \
     e.data, e.metadata, e.recorded_at";

fn event_from_row(row: &Row<'_>, stream: &StreamId) -> rusqlite::Result<RecordedEvent> {
    let id: [u8; 16] = row.get(2)?;
    let metadata: String = row.get(6)?;
    let metadata = Metadata::from_json(&metadata).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, Box::new(error))
    })?;
    Ok(RecordedEvent {
        position: row.get::<_, i64>(0)? as Position,
        version: row.get::<_, i64>(1)? as Version,
        id: Uuid::from_bytes(id),
        event_type: row.get(3)?,
        schema_version: row.get(4)?,
        data: row.get(5)?,
        metadata,
        recorded_at_micros: row.get(7)?,
        stream_id: stream.clone(),
    })
}

/// Reads up to `limit` events of `stream` from version `from` in `direction`.
///
/// `tail` is the writer's in-memory list of unindexed entries when this process is the
/// writer; a read-only handle (`None`) finds them by scanning the log after `indexed_through`
/// instead, inside the same read transaction as the index query.
pub(crate) fn stream(
    conn: &Connection,
    tail: Option<&SharedTail>,
    stream: &StreamId,
    direction: Direction,
    from: Option<Version>,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let action = "reading a stream";
    let key: Option<i64> = conn
        .prepare_cached("SELECT stream_key FROM streams WHERE stream_id = ?1")
        .and_then(|mut statement| {
            statement
                .query_row([stream.as_str()], |row| row.get(0))
                .optional()
        })
        .map_err(on(action))?;
    let Some(key) = key else {
        return Ok(Vec::new());
    };
    // One snapshot for every query below.
    let snapshot = conn.unchecked_transaction().map_err(on(action))?;
    let unindexed = match tail {
        // Copy the tail before querying the index: see tail.rs for why this order finds everything.
        Some(tail) => tail.entries(key),
        None => unindexed_from_log(conn, key).map_err(on(action))?,
    };
    let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut by_position = conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.position = ?1"
        ))
        .map_err(on(action))?;
    let mut fetch_tail = |entries: &mut dyn Iterator<Item = &(Version, Position)>,
                          out: &mut Vec<RecordedEvent>|
     -> Result<(), StoreError> {
        for (_, position) in entries {
            if out.len() >= limit {
                break;
            }
            let event = by_position
                .query_row([*position as i64], |row| event_from_row(row, stream))
                .map_err(on(action))?;
            out.push(event);
        }
        Ok(())
    };
    let mut out = Vec::new();
    match direction {
        Direction::Forward => {
            let from = from.unwrap_or(1).max(1);
            let mut indexed = conn
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM stream_index i JOIN events e ON e.position = i.position
                     WHERE i.stream_key = ?1 AND i.version >= ?2 ORDER BY i.version LIMIT ?3"
                ))
                .map_err(on(action))?;
            let rows = indexed
                .query_map((key, from as i64, limit_sql), |row| {
                    event_from_row(row, stream)
                })
                .map_err(on(action))?;
            for row in rows {
                out.push(row.map_err(on(action))?);
            }
            let after = out
                .last()
                .map_or(from.saturating_sub(1), |event| event.version);
            fetch_tail(&mut unindexed.iter().filter(|(v, _)| *v > after), &mut out)?;
        }
        Direction::Backward => {
            let from = from.unwrap_or(Version::MAX);
            fetch_tail(
                &mut unindexed.iter().rev().filter(|(v, _)| *v <= from),
                &mut out,
            )?;
            if out.len() < limit {
                // Entries in the copied tail may also be in the index already: stop below them.
                let below = unindexed
                    .first()
                    .map_or(from, |(v, _)| from.min(v.saturating_sub(1)));
                let mut indexed = conn
                    .prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM stream_index i JOIN events e ON e.position = i.position
                         WHERE i.stream_key = ?1 AND i.version <= ?2 ORDER BY i.version DESC LIMIT ?3"
                    ))
                    .map_err(on(action))?;
                let remaining = i64::try_from(limit - out.len()).unwrap_or(i64::MAX);
                let below = i64::try_from(below).unwrap_or(i64::MAX);
                let rows = indexed
                    .query_map((key, below, remaining), |row| event_from_row(row, stream))
                    .map_err(on(action))?;
                for row in rows {
                    out.push(row.map_err(on(action))?);
                }
            }
        }
    }
    drop(snapshot);
    Ok(out)
}

/// The (version, position) of a stream's events that the writer has not indexed yet.
fn unindexed_from_log(conn: &Connection, key: i64) -> rusqlite::Result<Vec<(Version, Position)>> {
    let mut statement = conn.prepare_cached(
        "SELECT version, position FROM events
         WHERE position > (SELECT value FROM mammoth_meta WHERE key = 'indexed_through')
           AND stream_key = ?1 ORDER BY position",
    )?;
    let rows = statement.query_map([key], |row| {
        Ok((
            row.get::<_, i64>(0)? as Version,
            row.get::<_, i64>(1)? as Position,
        ))
    })?;
    rows.collect()
}

/// The query of a global read: `?1` the first position, `?2` the limit, then one parameter
/// per event type and one per category.
///
/// Without a category filter there is no join: the reader resolves stream keys to ids
/// through a small map, one lookup per distinct stream rather than one per event. A category
/// filter joins `streams`; an `IN (SELECT ...)` on `events.stream_key` instead made SQLite
/// materialize the key list of every stream in the category on every page (with one stream
/// per order, 8x slower projection catch-up in `mammoth bench projections`; an
/// `EXPLAIN QUERY PLAN` test on an empty database did not show the difference, so the
/// benchmark is the guard).
fn global_sql(filter: &EventFilter) -> String {
    let join = !filter.categories.is_empty();
    let mut sql = format!("SELECT {EVENT_COLUMNS}, e.stream_key FROM events e");
    if join {
        sql.push_str(" JOIN streams s ON s.stream_key = e.stream_key");
    }
    sql.push_str(" WHERE e.position >= ?1");
    let mut next = 3;
    let mut list = |count: usize| {
        let names: Vec<String> = (next..next + count).map(|n| format!("?{n}")).collect();
        next += count;
        names.join(", ")
    };
    if !filter.event_types.is_empty() {
        sql.push_str(&format!(
            " AND e.event_type IN ({})",
            list(filter.event_types.len())
        ));
    }
    if join {
        sql.push_str(&format!(
            " AND s.category IN ({})",
            list(filter.categories.len())
        ));
    }
    sql.push_str(" ORDER BY e.position LIMIT ?2");
    sql
}

/// Reads up to `limit` events of the global log from `from` that pass `filter`.
pub(crate) fn all(
    conn: &Connection,
    from: Position,
    filter: &EventFilter,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let action = "reading the global log";
    let sql = global_sql(filter);
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // The order global_sql numbers its parameters in: from, limit, types, categories.
    let mut args: Vec<&dyn ToSql> = vec![&from, &limit];
    args.extend(filter.event_types.iter().map(|t| t as &dyn ToSql));
    args.extend(filter.categories.iter().map(|c| c as &dyn ToSql));
    let mut statement = conn.prepare_cached(&sql).map_err(on(action))?;
    let mut stream_ids = conn
        .prepare_cached("SELECT stream_id FROM streams WHERE stream_key = ?1")
        .map_err(on(action))?;
    let mut streams: HashMap<i64, StreamId> = HashMap::new();
    let mut rows = statement.query(args.as_slice()).map_err(on(action))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(on(action))? {
        let key: i64 = row.get(8).map_err(on(action))?;
        let stream = match streams.get(&key) {
            Some(stream) => stream,
            None => {
                let id: String = stream_ids
                    .query_row([key], |row| row.get(0))
                    .map_err(on(action))?;
                streams.entry(key).or_insert(StreamId::new(id)?)
            }
        };
        out.push(event_from_row(row, stream).map_err(on(action))?);
    }
    Ok(out)
}
