//! A receive's claim transaction, and group creation: the group's row is locked first, so
//! claims of one group take turns across every process; then expired leases become failures
//! (dead-lettered on their last attempt), due pending rows are leased, and new messages are
//! pulled from the topic into the group's pending list when there are not enough.

use std::time::Duration;

use mammoth_core::bus::{BusError, ConsumerGroup, Delivery, Receipt, StartFrom, Topic};
use mysql_async::prelude::Queryable;
use mysql_async::{Row, Transaction, Value};

use super::consume::MysqlConsumer;
use super::dead;
use super::rows::{Fail, MESSAGE_COLUMNS, message_from_row, placeholders, to_i64};

/// A duration in microseconds, saturating.
pub(crate) fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// The group's id, creating the group at `start` if it does not exist.
pub(crate) async fn group_id(
    tx: &mut Transaction<'_>,
    d: &str,
    topic: &Topic,
    group: &ConsumerGroup,
    start: StartFrom,
) -> Result<i64, Fail> {
    let existing: Option<i64> = tx
        .exec_first(
            format!("SELECT group_id FROM {d}.bus_groups WHERE topic = ? AND name = ?"),
            (topic.as_str().as_bytes(), group.as_str().as_bytes()),
        )
        .await?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let next_seq = match start {
        StartFrom::Earliest => 0,
        // The topic head, not MAX(seq): deleted messages never come back.
        StartFrom::Latest => {
            let last: Option<i64> = tx
                .exec_first(
                    format!("SELECT last_seq FROM {d}.bus_topics WHERE topic = ?"),
                    (topic.as_str().as_bytes(),),
                )
                .await?;
            last.unwrap_or(0) + 1
        }
    };
    // A group created meanwhile by another process keeps its place; either way
    // LAST_INSERT_ID() is the group's id.
    tx.exec_drop(
        format!(
            "INSERT INTO {d}.bus_groups (topic, name, next_seq) VALUES (?, ?, ?)
             ON DUPLICATE KEY UPDATE group_id = LAST_INSERT_ID(group_id)"
        ),
        (
            topic.as_str().as_bytes(),
            group.as_str().as_bytes(),
            next_seq,
        ),
    )
    .await?;
    let id = tx.last_insert_id().unwrap_or(0);
    Ok(i64::try_from(id).unwrap_or(i64::MAX))
}

pub(crate) async fn claim(
    tx: &mut Transaction<'_>,
    consumer: &MysqlConsumer,
    max: usize,
    now: i64,
) -> Result<(Vec<Delivery>, Option<i64>), Fail> {
    let d = consumer.bus.d();
    // The group's claims take turns, across every process: one lease per due delivery.
    let next: Option<i64> = tx
        .exec_first(
            format!("SELECT next_seq FROM {d}.bus_groups WHERE group_id = ? FOR UPDATE"),
            (consumer.group_id,),
        )
        .await?;
    let Some(next) = next else {
        return Err(Fail::Bus(BusError::backend(
            super::rows::BACKEND,
            "receiving",
            format!(
                "consumer group {:?} of topic {:?} no longer exists; subscribe again",
                consumer.group.as_str(),
                consumer.topic.as_str()
            ),
            false,
        )));
    };
    expire(tx, consumer, now).await?;
    let mut deliveries = lease(tx, consumer, max, now).await?;
    if deliveries.len() < max && pull(tx, consumer, next, max - deliveries.len()).await? {
        deliveries.extend(lease(tx, consumer, max - deliveries.len(), now).await?);
    }
    let next_due: Option<Option<i64>> = tx
        .exec_first(
            format!("SELECT MIN(visible_at) FROM {d}.bus_pending WHERE group_id = ?"),
            (consumer.group_id,),
        )
        .await?;
    Ok((deliveries, next_due.flatten()))
}

/// Leases that expired become failures; those on their last attempt are dead-lettered.
async fn expire(tx: &mut Transaction<'_>, consumer: &MysqlConsumer, now: i64) -> Result<(), Fail> {
    let d = consumer.bus.d();
    let options = &consumer.options;
    let error = format!(
        "visibility timeout of {:?} expired before an ack (the consumer died or its handler ran too long)",
        options.visibility_timeout
    );
    let group = consumer.group_id;
    tx.exec_drop(
        format!(
            "UPDATE {d}.bus_pending SET in_flight = 0, last_error = ?, last_failed_at = ?,
                    first_failed_at = COALESCE(first_failed_at, ?)
             WHERE group_id = ? AND in_flight = 1 AND visible_at <= ?"
        ),
        (&error, now, now, group, now),
    )
    .await?;
    let exhausted: Vec<(i64, String)> = tx
        .exec(
            format!(
                "SELECT seq, COALESCE(last_error, '') FROM {d}.bus_pending
                 WHERE group_id = ? AND in_flight = 0 AND visible_at <= ? AND attempts >= ?
                 ORDER BY seq"
            ),
            (group, now, options.retry.max_attempts.max(1)),
        )
        .await?;
    for (seq, error) in exhausted {
        dead::bury(tx, d, group, seq, &error, now).await?;
    }
    Ok(())
}

/// Moves up to `n` new messages of the topic, from sequence `next` on, into the group's
/// pending list. Returns whether any came.
async fn pull(
    tx: &mut Transaction<'_>,
    consumer: &MysqlConsumer,
    next: i64,
    n: usize,
) -> Result<bool, Fail> {
    let d = consumer.bus.d();
    let group = consumer.group_id;
    // Replayed dead letters (only_group set) were put in their group's pending list directly.
    let fresh: Vec<(i64, Option<Vec<u8>>)> = tx
        .exec(
            format!(
                "SELECT seq, UNHEX(MD5(msg_key)) FROM {d}.bus_messages
                 WHERE topic = ? AND seq >= ? AND only_group IS NULL ORDER BY seq LIMIT ?"
            ),
            (consumer.topic.as_str().as_bytes(), next, to_i64(n as u64)),
        )
        .await?;
    let Some(&(last, _)) = fresh.last() else {
        return Ok(false);
    };
    let mut params = Vec::with_capacity(fresh.len() * 3);
    for (seq, key_hash) in fresh {
        params.push(Value::from(group));
        params.push(Value::from(seq));
        params.push(key_hash.map_or(Value::NULL, Value::from));
    }
    tx.exec_drop(
        format!(
            "INSERT IGNORE INTO {d}.bus_pending (group_id, seq, key_hash, attempts, visible_at, in_flight)
             VALUES {}",
            vec!["(?,?,?,0,0,0)"; params.len() / 3].join(",")
        ),
        params,
    )
    .await?;
    tx.exec_drop(
        format!("UPDATE {d}.bus_groups SET next_seq = ? WHERE group_id = ?"),
        (last + 1, group),
    )
    .await?;
    Ok(true)
}

/// Leases up to `n` due pending messages (in order per key when asked).
async fn lease(
    tx: &mut Transaction<'_>,
    consumer: &MysqlConsumer,
    n: usize,
    now: i64,
) -> Result<Vec<Delivery>, Fail> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let d = consumer.bus.d();
    let group = consumer.group_id;
    let sql = if consumer.options.ordered_by_key {
        format!(
            "SELECT p.seq FROM {d}.bus_pending p WHERE p.group_id = ? AND p.visible_at <= ?
               AND NOT EXISTS (SELECT 1 FROM {d}.bus_pending q WHERE q.group_id = p.group_id
                               AND q.key_hash = p.key_hash AND q.seq < p.seq)
             ORDER BY p.seq LIMIT ?"
        )
    } else {
        format!(
            "SELECT p.seq FROM {d}.bus_pending p WHERE p.group_id = ? AND p.visible_at <= ?
             ORDER BY p.seq LIMIT ?"
        )
    };
    let seqs: Vec<i64> = tx.exec(sql, (group, now, to_i64(n as u64))).await?;
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let visible_at = now.saturating_add(micros(consumer.options.visibility_timeout));
    // Under the group lock only an ack (a delete) can change these rows meanwhile, so the
    // rows still there afterwards are exactly the ones leased here.
    let mut params = vec![Value::from(visible_at), Value::from(group)];
    params.extend(seqs.iter().map(|seq| Value::from(*seq)));
    tx.exec_drop(
        format!(
            "UPDATE {d}.bus_pending SET attempts = attempts + 1, in_flight = 1, visible_at = ?
             WHERE group_id = ? AND seq IN ({})",
            placeholders(seqs.len())
        ),
        params,
    )
    .await?;
    let mut params = vec![Value::from(group)];
    params.extend(seqs.iter().map(|seq| Value::from(*seq)));
    let attempts: Vec<(i64, i64)> = tx
        .exec(
            format!(
                "SELECT seq, attempts FROM {d}.bus_pending WHERE group_id = ? AND seq IN ({})
                 ORDER BY seq",
                placeholders(seqs.len())
            ),
            params.clone(),
        )
        .await?;
    let mut params = vec![Value::from(consumer.topic.as_str().as_bytes())];
    params.extend(attempts.iter().map(|(seq, _)| Value::from(*seq)));
    let rows: Vec<Row> = tx
        .exec(
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM {d}.bus_messages WHERE topic = ? AND seq IN ({})
                 ORDER BY seq",
                placeholders(attempts.len())
            ),
            params,
        )
        .await?;
    let mut messages = rows.into_iter().peekable();
    let mut deliveries = Vec::with_capacity(attempts.len());
    for (seq, attempt) in attempts {
        let message = match messages.peek_mut() {
            Some(row) if row.get::<i64, usize>(5) == Some(seq) => {
                let mut row = messages.next().expect("peeked");
                Some(message_from_row(&mut row, 0)?)
            }
            _ => None,
        };
        let Some(message) = message else {
            // Garbage collection keeps every message a pending row points at; only a
            // hand-made deletion gets here, so say so rather than loop on it.
            tracing::warn!(seq, group, "bus message of a pending delivery is missing");
            tx.exec_drop(
                format!("DELETE FROM {d}.bus_pending WHERE group_id = ? AND seq = ?"),
                (group, seq),
            )
            .await?;
            continue;
        };
        let attempt = u32::try_from(attempt).unwrap_or(u32::MAX);
        deliveries.push(Delivery {
            message,
            group: consumer.group.clone(),
            attempt,
            receipt: Receipt::new(format!("{group}:{seq}:{attempt}")),
        });
    }
    Ok(deliveries)
}
