//! The bus's dead-letter queue: moving a failed message in ([`bury`]), listing, replaying to
//! the group that failed it, and discarding.

use std::collections::BTreeMap;

use mammoth_core::bus::{ConsumerGroup, DeadLetter, DeadLetterFilter};
use mysql_async::prelude::Queryable;
use mysql_async::{Row, Transaction, Value};

use super::publish::reserve;
use super::rows::{Fail, MESSAGE_COLUMNS, corrupt, message_from_row, take, text, to_i64};

/// Moves pending message `seq` of `group` into the dead-letter queue with `error` as its last
/// error, and returns the dead letter's id (`None` when the message itself was deleted by
/// hand: the pending row is dropped with a warning).
pub(crate) async fn bury(
    tx: &mut Transaction<'_>,
    d: &str,
    group: i64,
    seq: i64,
    error: &str,
    now: i64,
) -> Result<Option<i64>, Fail> {
    tx.exec_drop(
        format!(
            "INSERT INTO {d}.bus_dead_letters (group_id, topic, group_name, seq, message_id,
                 msg_key, payload, headers, published_at, attempts, last_error,
                 first_failed_at, last_failed_at)
             SELECT p.group_id, m.topic, g.name, m.seq, m.message_id, m.msg_key, m.payload,
                    m.headers, m.published_at, p.attempts, ?,
                    COALESCE(p.first_failed_at, ?), ?
             FROM {d}.bus_pending p
             JOIN {d}.bus_groups g ON g.group_id = p.group_id
             JOIN {d}.bus_messages m ON m.topic = g.topic AND m.seq = p.seq
             WHERE p.group_id = ? AND p.seq = ?"
        ),
        (error, now, now, group, seq),
    )
    .await?;
    let id = (tx.affected_rows() == 1)
        .then(|| tx.last_insert_id())
        .flatten()
        .map(|id| i64::try_from(id).unwrap_or(i64::MAX));
    if id.is_none() {
        tracing::warn!(seq, group, "bus message of a pending delivery is missing");
    }
    tx.exec_drop(
        format!("DELETE FROM {d}.bus_pending WHERE group_id = ? AND seq = ?"),
        (group, seq),
    )
    .await?;
    Ok(id)
}

/// The `WHERE` clause and parameters selecting the dead letters `filter` passes.
fn selection(filter: &DeadLetterFilter) -> (String, Vec<Value>) {
    let mut clauses = vec!["1 = 1"];
    let mut values = Vec::new();
    if let Some(id) = &filter.id {
        // Ids are row numbers; anything else names no dead letter.
        values.push(Value::from(id.trim().parse::<i64>().unwrap_or(-1)));
        clauses.push("id = ?");
    }
    if let Some(topic) = &filter.topic {
        values.push(Value::from(topic.as_str().as_bytes()));
        clauses.push("topic = ?");
    }
    if let Some(group) = &filter.group {
        values.push(Value::from(group.as_str().as_bytes()));
        clauses.push("group_name = ?");
    }
    if let Some(text) = &filter.error_contains {
        values.push(Value::from(text.as_str()));
        clauses.push("INSTR(last_error, ?) > 0");
    }
    (clauses.join(" AND "), values)
}

/// Up to `limit` dead letters passing `filter`, oldest first.
pub(crate) async fn list(
    tx: &mut Transaction<'_>,
    d: &str,
    filter: &DeadLetterFilter,
    limit: usize,
) -> Result<Vec<DeadLetter>, Fail> {
    let (clause, mut values) = selection(filter);
    values.push(Value::from(to_i64(limit as u64)));
    let rows: Vec<Row> = tx
        .exec(
            format!(
                "SELECT id, group_name, attempts, last_error, first_failed_at, last_failed_at,
                        {MESSAGE_COLUMNS}
                 FROM {d}.bus_dead_letters WHERE {clause} ORDER BY id LIMIT ?"
            ),
            values,
        )
        .await?;
    rows.into_iter()
        .map(|mut row| {
            let group = text(take(&mut row, 1)?, "group name")?;
            Ok(DeadLetter {
                id: take::<i64>(&mut row, 0)?.to_string(),
                group: ConsumerGroup::new(group).map_err(|error| corrupt(error.to_string()))?,
                attempts: take(&mut row, 2)?,
                last_error: take(&mut row, 3)?,
                first_failed_at_micros: take(&mut row, 4)?,
                last_failed_at_micros: take(&mut row, 5)?,
                message: message_from_row(&mut row, 6)?,
            })
        })
        .collect()
}

/// Delivers every dead letter passing `filter` to its group again, as a new message only that
/// group sees, with a fresh attempt count; removes it from the queue.
pub(crate) async fn replay(
    tx: &mut Transaction<'_>,
    d: &str,
    filter: &DeadLetterFilter,
) -> Result<u64, Fail> {
    let (clause, values) = selection(filter);
    // Locked: a concurrent replay of the same letters waits, then finds them gone.
    let letters: Vec<(i64, Vec<u8>)> = tx
        .exec(
            format!(
                "SELECT id, topic FROM {d}.bus_dead_letters WHERE {clause} ORDER BY id FOR UPDATE"
            ),
            values,
        )
        .await?;
    // Topic heads in name order, as the relay takes them: (letters, then the last sequence
    // number before the reservation). Every letter uses one reserved number, so the heads
    // need no update afterwards.
    let mut heads: BTreeMap<Vec<u8>, (usize, i64)> = BTreeMap::new();
    for (_, topic) in &letters {
        heads.entry(topic.clone()).or_insert((0, 0)).0 += 1;
    }
    for (topic, (count, last)) in &mut heads {
        *last = reserve(tx, d, &text(topic.clone(), "topic")?, *count).await?;
    }
    for (id, topic) in &letters {
        let Some(head) = heads.get_mut(topic) else {
            continue;
        };
        head.1 += 1;
        let seq = head.1;
        tx.exec_drop(
            format!(
                "INSERT INTO {d}.bus_messages (topic, seq, message_id, msg_key, payload, headers,
                     published_at, only_group)
                 SELECT topic, ?, message_id, msg_key, payload, headers, published_at, group_id
                 FROM {d}.bus_dead_letters WHERE id = ?"
            ),
            (seq, id),
        )
        .await?;
        tx.exec_drop(
            format!(
                "INSERT INTO {d}.bus_pending (group_id, seq, key_hash, attempts, visible_at, in_flight)
                 SELECT group_id, ?, UNHEX(MD5(msg_key)), 0, 0, 0 FROM {d}.bus_dead_letters
                 WHERE id = ?"
            ),
            (seq, id),
        )
        .await?;
        tx.exec_drop(
            format!("DELETE FROM {d}.bus_dead_letters WHERE id = ?"),
            (id,),
        )
        .await?;
    }
    Ok(letters.len() as u64)
}

/// Deletes every dead letter passing `filter`.
pub(crate) async fn discard(
    tx: &mut Transaction<'_>,
    d: &str,
    filter: &DeadLetterFilter,
) -> Result<u64, Fail> {
    let (clause, values) = selection(filter);
    tx.exec_drop(
        format!("DELETE FROM {d}.bus_dead_letters WHERE {clause}"),
        values,
    )
    .await?;
    Ok(tx.affected_rows())
}
