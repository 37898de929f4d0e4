//! Read queries on pooled connections: one stream, the global log, decoded into
//! [`RecordedEvent`]s.

use mammoth_core::{
    Direction, EventFilter, Metadata, Position, RecordedEvent, StoreError, StreamId, Version,
};
use tokio_postgres::Row;

use crate::error::{BACKEND, on};
use crate::schema::Sql;

fn corrupt(position: i64, what: String) -> StoreError {
    StoreError::backend(
        BACKEND,
        "decoding an event",
        format!("the event at position {position} is corrupt: {what}"),
        false,
    )
}

/// Decodes a row of `position, stream_id, version, event_id, event_type, schema_version, data,
/// metadata, recorded_at`, reusing `last` when the row belongs to the same stream.
pub(crate) fn event_from_row(
    row: &Row,
    last: &mut Option<StreamId>,
) -> Result<RecordedEvent, StoreError> {
    let action = "decoding an event";
    let position: i64 = row.try_get(0).map_err(on(action))?;
    let stream_text: &str = row.try_get(1).map_err(on(action))?;
    let stream_id = match last.take() {
        Some(stream) if stream.as_str() == stream_text => stream,
        _ => StreamId::new(stream_text)
            .map_err(|error| corrupt(position, format!("its stream id is invalid: {error}")))?,
    };
    let schema_version: i64 = row.try_get(5).map_err(on(action))?;
    let metadata: &str = row.try_get(7).map_err(on(action))?;
    let event = RecordedEvent {
        id: row.try_get(3).map_err(on(action))?,
        version: row.try_get::<_, i64>(2).map_err(on(action))? as Version,
        position: position as Position,
        event_type: row.try_get(4).map_err(on(action))?,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| corrupt(position, format!("schema version {schema_version}")))?,
        data: row.try_get(6).map_err(on(action))?,
        metadata: Metadata::from_json(metadata)
            .map_err(|error| corrupt(position, error.to_string()))?,
        recorded_at_micros: row.try_get(8).map_err(on(action))?,
        stream_id: stream_id.clone(),
    };
    *last = Some(stream_id);
    Ok(event)
}

fn decode(rows: &[Row]) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut last = None;
    rows.iter()
        .map(|row| event_from_row(row, &mut last))
        .collect()
}

fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads up to `limit` events of `stream` from version `from` in `direction`.
pub(crate) async fn stream(
    client: &deadpool_postgres::Client,
    sql: &Sql,
    stream: &StreamId,
    direction: Direction,
    from: Option<Version>,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let action = "reading a stream";
    let (text, from) = match direction {
        Direction::Forward => (&sql.read_forward, from.unwrap_or(1)),
        Direction::Backward => (&sql.read_backward, from.unwrap_or(Version::MAX)),
    };
    let statement = client.prepare_cached(text).await.map_err(on(action))?;
    let rows = client
        .query(
            &statement,
            &[&stream.as_str(), &sql_int(from), &sql_int(limit as u64)],
        )
        .await
        .map_err(on(action))?;
    decode(&rows)
}

/// Reads up to `limit` events of the global log from `from` that pass `filter`.
pub(crate) async fn all(
    client: &deadpool_postgres::Client,
    sql: &Sql,
    from: Position,
    filter: &EventFilter,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let action = "reading the global log";
    let (from, limit) = (sql_int(from), sql_int(limit as u64));
    let rows = if filter.is_all() {
        let statement = client
            .prepare_cached(&sql.read_all)
            .await
            .map_err(on(action))?;
        client.query(&statement, &[&from, &limit]).await
    } else {
        let statement = client
            .prepare_cached(&sql.read_all_filtered)
            .await
            .map_err(on(action))?;
        client
            .query(
                &statement,
                &[&from, &limit, &filter.event_types, &filter.categories],
            )
            .await
    }
    .map_err(on(action))?;
    decode(&rows)
}
