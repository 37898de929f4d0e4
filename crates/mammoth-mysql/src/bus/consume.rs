//! [`MysqlConsumer`]: one consumer of a group of the MySQL bus. A receive locks the group's
//! row, leases due pending messages (retries and expired leases first, by sequence), and
//! pulls new ones from the topic into the group's pending list when there are not enough;
//! ack deletes the pending row; nack schedules a retry or moves the message to the
//! dead-letter queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mammoth_core::bus::{
    BusConsumer, BusError, ConsumerGroup, Delivery, Failure, NackAction, NackOutcome, Receipt,
    StartFrom, SubscribeOptions, Topic,
};
use mammoth_core::now_micros;
use mysql_async::prelude::Queryable;
use mysql_async::{Row, Transaction, Value};

use super::rows::{Fail, MESSAGE_COLUMNS, message_from_row, placeholders, to_i64};
use super::{MysqlBus, dead, transaction};

/// Acks between two garbage collections.
const GC_EVERY: u64 = 8192;

fn micros(duration: Duration) -> i64 {
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

/// A consumer of one group of the MySQL bus. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MysqlConsumer {
    bus: MysqlBus,
    topic: Topic,
    group: ConsumerGroup,
    group_id: i64,
    options: Arc<SubscribeOptions>,
    acks: Arc<AtomicU64>,
}

impl MysqlConsumer {
    pub(crate) fn new(
        bus: MysqlBus,
        topic: Topic,
        group: ConsumerGroup,
        group_id: i64,
        options: SubscribeOptions,
    ) -> Self {
        Self {
            bus,
            topic,
            group,
            group_id,
            options: Arc::new(options),
            acks: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The topic consumed.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// The group consumed in.
    pub fn group(&self) -> &ConsumerGroup {
        &self.group
    }

    /// One claim transaction: deliveries (possibly none) and when the next pending row comes
    /// due.
    async fn claim(&self, max: usize) -> Result<(Vec<Delivery>, Option<i64>), BusError> {
        transaction!(&self.bus, "receiving", |tx| claim(
            tx,
            self,
            max,
            now_micros()
        ))
    }
}

async fn claim(
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

impl BusConsumer for MysqlConsumer {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        if max == 0 {
            return Err(BusError::InvalidInput(
                "receive needs max of at least 1".to_owned(),
            ));
        }
        let deadline = Instant::now() + wait;
        let mut woken = self.bus.shared.published.subscribe();
        loop {
            woken.borrow_and_update();
            let (deliveries, next_due) = self.claim(max).await?;
            let now = Instant::now();
            if !deliveries.is_empty() || now >= deadline {
                return Ok(deliveries);
            }
            let mut sleep = (deadline - now).min(self.bus.shared.options.poll_interval);
            if let Some(due) = next_due {
                let until = u64::try_from(due.saturating_sub(now_micros())).unwrap_or(0);
                sleep = sleep.min(Duration::from_micros(until));
            }
            tokio::select! {
                _ = woken.changed() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    async fn ack(&self, deliveries: &[Delivery]) -> Result<(), BusError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let group = self.group_id;
        // Ascending, as claims touch rows: concurrent acks and claims lock in one order.
        let mut seqs: Vec<i64> = deliveries
            .iter()
            .map(|delivery| to_i64(delivery.message.sequence))
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        let count = deliveries.len() as u64;
        let d = self.bus.d();
        transaction!(&self.bus, "acknowledging", |tx| async {
            for chunk in seqs.chunks(512) {
                let mut params = vec![Value::from(group)];
                params.extend(chunk.iter().map(|seq| Value::from(*seq)));
                tx.exec_drop(
                    format!(
                        "DELETE FROM {d}.bus_pending WHERE group_id = ? AND seq IN ({})",
                        placeholders(chunk.len())
                    ),
                    params,
                )
                .await?;
            }
            Ok::<_, Fail>(())
        })?;
        // An ack may release the next message of a key to an ordered consumer.
        self.bus.wake();
        let before = self.acks.fetch_add(count, Ordering::Relaxed);
        if before / GC_EVERY != (before + count) / GC_EVERY {
            self.bus.collect_garbage().await?;
        }
        Ok(())
    }

    async fn nack(&self, delivery: &Delivery, failure: Failure) -> Result<NackOutcome, BusError> {
        let group = self.group_id;
        let seq = to_i64(delivery.message.sequence);
        let attempt = delivery.attempt;
        let retry = self.options.retry;
        let d = self.bus.d();
        let outcome = transaction!(&self.bus, "failing a delivery", |tx| async {
            let now = now_micros();
            let current: Option<(u32, bool)> = tx
                .exec_first(
                    format!(
                        "SELECT attempts, in_flight FROM {d}.bus_pending
                         WHERE group_id = ? AND seq = ? FOR UPDATE"
                    ),
                    (group, seq),
                )
                .await?;
            if current != Some((attempt, true)) {
                return Ok(NackOutcome::Stale);
            }
            let delay = match failure.action {
                NackAction::DeadLetter => None,
                _ if retry.exhausted(attempt) => None,
                NackAction::RetryAfter(delay) => Some(delay),
                NackAction::Retry => Some(retry.delay(attempt)),
            };
            let Some(delay) = delay else {
                return Ok(
                    match dead::bury(tx, d, group, seq, &failure.error, now).await? {
                        Some(id) => NackOutcome::DeadLettered { id: id.to_string() },
                        None => NackOutcome::Stale,
                    },
                );
            };
            tx.exec_drop(
                format!(
                    "UPDATE {d}.bus_pending SET in_flight = 0, visible_at = ?, last_error = ?,
                            last_failed_at = ?, first_failed_at = COALESCE(first_failed_at, ?)
                     WHERE group_id = ? AND seq = ?"
                ),
                (
                    now.saturating_add(micros(delay)),
                    &failure.error,
                    now,
                    now,
                    group,
                    seq,
                ),
            )
            .await?;
            Ok::<_, Fail>(NackOutcome::Retrying {
                next_attempt: attempt + 1,
                delay,
            })
        })?;
        self.bus.wake();
        Ok(outcome)
    }

    async fn extend(&self, delivery: &Delivery, by: Duration) -> Result<bool, BusError> {
        let group = self.group_id;
        let seq = to_i64(delivery.message.sequence);
        let attempt = delivery.attempt;
        let d = self.bus.d();
        transaction!(&self.bus, "extending a lease", |tx| async {
            // Looked up first: an UPDATE's count leaves out rows it found already set.
            let mine: Option<i64> = tx
                .exec_first(
                    format!(
                        "SELECT seq FROM {d}.bus_pending
                         WHERE group_id = ? AND seq = ? AND attempts = ? AND in_flight = 1
                         FOR UPDATE"
                    ),
                    (group, seq, attempt),
                )
                .await?;
            if mine.is_none() {
                return Ok(false);
            }
            tx.exec_drop(
                format!("UPDATE {d}.bus_pending SET visible_at = ? WHERE group_id = ? AND seq = ?"),
                (now_micros().saturating_add(micros(by)), group, seq),
            )
            .await?;
            Ok::<_, Fail>(true)
        })
    }
}
