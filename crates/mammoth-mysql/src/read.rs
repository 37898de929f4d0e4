//! Read queries on pooled connections: one stream, the global log, decoded into
//! [`RecordedEvent`]s.

use mammoth_core::{
    Direction, EventFilter, Metadata, Position, RecordedEvent, StoreError, StreamId, Version,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use uuid::Uuid;

use crate::error::{BACKEND, on};
use crate::schema::{COLUMNS, Sql};

type EventRow = (i64, Vec<u8>, i64, Vec<u8>, String, i64, String, String, i64);

fn corrupt(position: i64, what: String) -> StoreError {
    StoreError::backend(
        BACKEND,
        "decoding an event",
        format!("the event at position {position} is corrupt: {what}"),
        false,
    )
}

/// Decodes a row of [`COLUMNS`], reusing `last` when it belongs to the same stream.
fn event_from_row(row: Row, last: &mut Option<StreamId>) -> Result<RecordedEvent, StoreError> {
    let (position, stream, version, id, event_type, schema_version, data, metadata, recorded_at): EventRow =
        mysql_async::from_row_opt(row).map_err(|error| {
            StoreError::backend(BACKEND, "decoding an event", error, false)
        })?;
    let stream_id = match last.take() {
        Some(known) if known.as_str().as_bytes() == stream.as_slice() => known,
        _ => {
            let text = String::from_utf8(stream)
                .map_err(|_| corrupt(position, "its stream id is not UTF-8".to_owned()))?;
            StreamId::new(text)
                .map_err(|error| corrupt(position, format!("its stream id is invalid: {error}")))?
        }
    };
    let event = RecordedEvent {
        id: Uuid::from_slice(&id).map_err(|error| corrupt(position, error.to_string()))?,
        version: version as Version,
        position: position as Position,
        event_type,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| corrupt(position, format!("schema version {schema_version}")))?,
        data,
        metadata: Metadata::from_json(&metadata)
            .map_err(|error| corrupt(position, error.to_string()))?,
        recorded_at_micros: recorded_at,
        stream_id: stream_id.clone(),
    };
    *last = Some(stream_id);
    Ok(event)
}

fn decode(rows: Vec<Row>) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut last = None;
    rows.into_iter()
        .map(|row| event_from_row(row, &mut last))
        .collect()
}

fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads up to `limit` events of `stream` from version `from` in `direction`.
pub(crate) async fn stream(
    conn: &mut Conn,
    sql: &Sql,
    stream: &StreamId,
    direction: Direction,
    from: Option<Version>,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let (text, from) = match direction {
        Direction::Forward => (&sql.read_forward, from.unwrap_or(1)),
        Direction::Backward => (&sql.read_backward, from.unwrap_or(Version::MAX)),
    };
    let rows: Vec<Row> = conn
        .exec(
            text.as_str(),
            (
                stream.as_str().as_bytes(),
                sql_int(from),
                sql_int(limit as u64),
            ),
        )
        .await
        .map_err(on("reading a stream"))?;
    decode(rows)
}

/// Reads up to `limit` events of the global log from `from` that pass `filter`.
pub(crate) async fn all(
    conn: &mut Conn,
    sql: &Sql,
    from: Position,
    filter: &EventFilter,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut query = format!("SELECT {COLUMNS} FROM {}.events WHERE position >= ?", sql.d);
    let mut params: Vec<Value> = vec![Value::from(sql_int(from))];
    if !filter.event_types.is_empty() {
        query.push_str(&format!(
            " AND event_type IN ({})",
            Sql::placeholders(filter.event_types.len())
        ));
        params.extend(filter.event_types.iter().map(|t| Value::from(t.as_str())));
    }
    if !filter.categories.is_empty() {
        query.push_str(&format!(
            " AND SUBSTRING_INDEX(stream_id, '-', 1) IN ({})",
            Sql::placeholders(filter.categories.len())
        ));
        params.extend(filter.categories.iter().map(|c| Value::from(c.as_bytes())));
    }
    query.push_str(" ORDER BY position LIMIT ?");
    params.push(Value::from(sql_int(limit as u64)));
    let rows: Vec<Row> = conn
        .exec(query, params)
        .await
        .map_err(on("reading the global log"))?;
    decode(rows)
}
