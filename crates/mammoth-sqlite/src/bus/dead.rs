//! The embedded bus's dead-letter queue: moving a failed message in (`bury`), listing,
//! replaying to the group that failed it, and discarding.

use mammoth_core::bus::{BusError, ConsumerGroup, DeadLetter, DeadLetterFilter};
use rusqlite::types::Value;
use rusqlite::{Transaction, params, params_from_iter};

use super::schema::{MESSAGE_COLUMNS, failed, message_from_row, to_i64};

/// Moves pending message `seq` of `group` into the dead-letter queue with `error` as its last
/// error, and returns the dead letter's id.
pub(crate) fn bury(
    tx: &Transaction<'_>,
    group: i64,
    seq: i64,
    error: &str,
    now: i64,
) -> Result<i64, BusError> {
    let run = || -> rusqlite::Result<i64> {
        let id = tx
            .prepare_cached(
                "INSERT INTO bus_dead_letters (group_id, topic, group_name, seq, message_id,
                     msg_key, payload, headers, published_at, attempts, last_error,
                     first_failed_at, last_failed_at)
                 SELECT p.group_id, m.topic, g.name, m.seq, m.message_id, m.msg_key, m.payload,
                        m.headers, m.published_at, p.attempts, ?3,
                        COALESCE(p.first_failed_at, ?4), ?4
                 FROM bus_pending p
                 JOIN bus_messages m ON m.seq = p.seq
                 JOIN bus_groups g ON g.group_id = p.group_id
                 WHERE p.group_id = ?1 AND p.seq = ?2
                 RETURNING id",
            )?
            .query_row(params![group, seq, error, now], |row| row.get(0))?;
        tx.prepare_cached("DELETE FROM bus_pending WHERE group_id = ?1 AND seq = ?2")?
            .execute(params![group, seq])?;
        Ok(id)
    };
    run().map_err(failed("dead-lettering a message"))
}

/// The `WHERE` clause and parameters selecting the dead letters `filter` passes.
fn selection(filter: &DeadLetterFilter) -> (String, Vec<Value>) {
    let mut clauses = vec!["1 = 1".to_owned()];
    let mut values = Vec::new();
    if let Some(id) = &filter.id {
        // Ids are row numbers; anything else names no dead letter.
        values.push(Value::Integer(id.trim().parse().unwrap_or(-1)));
        clauses.push(format!("id = ?{}", values.len()));
    }
    if let Some(topic) = &filter.topic {
        values.push(Value::Text(topic.as_str().to_owned()));
        clauses.push(format!("topic = ?{}", values.len()));
    }
    if let Some(group) = &filter.group {
        values.push(Value::Text(group.as_str().to_owned()));
        clauses.push(format!("group_name = ?{}", values.len()));
    }
    if let Some(text) = &filter.error_contains {
        values.push(Value::Text(text.clone()));
        clauses.push(format!("instr(last_error, ?{}) > 0", values.len()));
    }
    (clauses.join(" AND "), values)
}

/// Up to `limit` dead letters passing `filter`, oldest first.
pub(crate) fn list(
    tx: &Transaction<'_>,
    filter: &DeadLetterFilter,
    limit: usize,
) -> Result<Vec<DeadLetter>, BusError> {
    let (clause, mut values) = selection(filter);
    values.push(Value::Integer(to_i64(limit as u64)));
    let sql = format!(
        "SELECT id, group_name, attempts, last_error, first_failed_at, last_failed_at,
                {MESSAGE_COLUMNS}
         FROM bus_dead_letters WHERE {clause} ORDER BY id LIMIT ?{}",
        values.len()
    );
    let run = || -> rusqlite::Result<Vec<DeadLetter>> {
        tx.prepare(&sql)?
            .query_map(params_from_iter(values.iter()), |row| {
                let group: String = row.get(1)?;
                Ok(DeadLetter {
                    id: row.get::<_, i64>(0)?.to_string(),
                    group: ConsumerGroup::new(group).map_err(|error| {
                        rusqlite::Error::FromSqlConversionFailure(
                            1,
                            rusqlite::types::Type::Text,
                            error.into(),
                        )
                    })?,
                    attempts: row.get(2)?,
                    last_error: row.get(3)?,
                    first_failed_at_micros: row.get(4)?,
                    last_failed_at_micros: row.get(5)?,
                    message: message_from_row(row, 6)?,
                })
            })?
            .collect()
    };
    run().map_err(failed("listing dead letters"))
}

/// Delivers every dead letter passing `filter` to its group again, as a new message only that
/// group sees, with a fresh attempt count; removes it from the queue.
pub(crate) fn replay(tx: &Transaction<'_>, filter: &DeadLetterFilter) -> Result<u64, BusError> {
    let (clause, values) = selection(filter);
    let run = || -> rusqlite::Result<u64> {
        let ids: Vec<i64> = tx
            .prepare(&format!(
                "SELECT id FROM bus_dead_letters WHERE {clause} ORDER BY id"
            ))?
            .query_map(params_from_iter(values.iter()), |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for id in &ids {
            tx.prepare_cached(
                "INSERT INTO bus_messages (topic, message_id, msg_key, payload, headers,
                     published_at, only_group)
                 SELECT topic, message_id, msg_key, payload, headers, published_at, group_id
                 FROM bus_dead_letters WHERE id = ?1",
            )?
            .execute([id])?;
            let seq = tx.last_insert_rowid();
            tx.prepare_cached(
                "INSERT INTO bus_pending (group_id, seq, msg_key, attempts, visible_at, in_flight)
                 SELECT group_id, ?2, msg_key, 0, 0, 0 FROM bus_dead_letters WHERE id = ?1",
            )?
            .execute(params![id, seq])?;
            tx.prepare_cached("DELETE FROM bus_dead_letters WHERE id = ?1")?
                .execute([id])?;
        }
        Ok(ids.len() as u64)
    };
    run().map_err(failed("replaying dead letters"))
}

/// Deletes every dead letter passing `filter`.
pub(crate) fn discard(tx: &Transaction<'_>, filter: &DeadLetterFilter) -> Result<u64, BusError> {
    let (clause, values) = selection(filter);
    tx.execute(
        &format!("DELETE FROM bus_dead_letters WHERE {clause}"),
        params_from_iter(values.iter()),
    )
    .map(|deleted| deleted as u64)
    .map_err(failed("discarding dead letters"))
}
