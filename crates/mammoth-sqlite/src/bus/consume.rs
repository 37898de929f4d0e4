//! [`SqliteConsumer`]: one consumer of a group of the embedded bus. A receive leases due
//! pending messages (retries and expired leases first, by sequence), pulling new ones from the
//! topic into the group's pending list when there are not enough; ack deletes the pending row;
//! nack schedules a retry or moves the message to the dead-letter queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mammoth_core::bus::{
    BusConsumer, BusError, ConsumerGroup, Delivery, Failure, NackAction, NackOutcome, Receipt,
    StartFrom, SubscribeOptions, Topic,
};
use mammoth_core::now_micros;
use rusqlite::{OptionalExtension, Transaction, params};

use super::schema::{MESSAGE_COLUMNS, failed, message_from_row, to_i64};
use super::{SqliteBus, Sync, dead};

/// Acks between two garbage collections.
const GC_EVERY: u64 = 8192;

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// The group's id, creating the group at `start` if it does not exist.
pub(crate) fn group_id(
    tx: &Transaction<'_>,
    topic: &Topic,
    group: &ConsumerGroup,
    start: StartFrom,
) -> Result<i64, BusError> {
    let run = || -> rusqlite::Result<i64> {
        let existing = tx
            .prepare_cached("SELECT group_id FROM bus_groups WHERE topic = ?1 AND name = ?2")?
            .query_row(params![topic.as_str(), group.as_str()], |row| row.get(0))
            .optional()?;
        if let Some(id) = existing {
            return Ok(id);
        }
        let next_seq: i64 = match start {
            StartFrom::Earliest => 0,
            // The sequence counter, not MAX(seq): deleted messages never come back.
            StartFrom::Latest => tx
                .query_row(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'bus_messages'",
                    [],
                    |row| row.get::<_, i64>(0),
                )
                .optional()?
                .map_or(0, |seq| seq + 1),
        };
        tx.prepare_cached("INSERT INTO bus_groups (topic, name, next_seq) VALUES (?1, ?2, ?3)")?
            .execute(params![topic.as_str(), group.as_str(), next_seq])?;
        Ok(tx.last_insert_rowid())
    };
    run().map_err(failed("creating a consumer group"))
}

/// A consumer of one group of the embedded bus. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqliteConsumer {
    bus: SqliteBus,
    topic: Topic,
    group: ConsumerGroup,
    group_id: i64,
    options: Arc<SubscribeOptions>,
    acks: Arc<AtomicU64>,
}

impl SqliteConsumer {
    pub(crate) fn new(
        bus: SqliteBus,
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
        let this = self.clone();
        self.bus
            .transaction(Sync::Normal, "receiving", move |tx| {
                Claim {
                    consumer: &this,
                    tx,
                    now: now_micros(),
                }
                .run(max)
            })
            .await
    }
}

struct Claim<'a, 'b> {
    consumer: &'a SqliteConsumer,
    tx: &'a Transaction<'b>,
    now: i64,
}

impl Claim<'_, '_> {
    fn run(&self, max: usize) -> Result<(Vec<Delivery>, Option<i64>), BusError> {
        self.expire()?;
        let mut deliveries = self.lease(max)?;
        if deliveries.len() < max {
            self.pull(max - deliveries.len())
                .map_err(failed("receiving"))?;
            deliveries.extend(self.lease(max - deliveries.len())?);
        }
        let next_due: Option<i64> = self
            .tx
            .prepare_cached("SELECT MIN(visible_at) FROM bus_pending WHERE group_id = ?1")
            .and_then(|mut s| s.query_row([self.consumer.group_id], |row| row.get(0)))
            .map_err(failed("receiving"))?;
        Ok((deliveries, next_due))
    }

    /// Leases that expired become failures; those on their last attempt are dead-lettered.
    fn expire(&self) -> Result<(), BusError> {
        let options = &self.consumer.options;
        let error = format!(
            "visibility timeout of {:?} expired before an ack (the consumer died or its handler ran too long)",
            options.visibility_timeout
        );
        let group = self.consumer.group_id;
        self.tx
            .prepare_cached(
                "UPDATE bus_pending SET in_flight = 0, last_error = ?3, last_failed_at = ?2,
                        first_failed_at = COALESCE(first_failed_at, ?2)
                 WHERE group_id = ?1 AND in_flight = 1 AND visible_at <= ?2",
            )
            .and_then(|mut s| s.execute(params![group, self.now, error]))
            .map_err(failed("receiving"))?;
        let exhausted: Vec<(i64, String)> = self
            .tx
            .prepare_cached(
                "SELECT seq, COALESCE(last_error, '') FROM bus_pending
                 WHERE group_id = ?1 AND in_flight = 0 AND visible_at <= ?2 AND attempts >= ?3",
            )
            .and_then(|mut s| {
                s.query_map(
                    params![group, self.now, options.retry.max_attempts.max(1)],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )?
                .collect()
            })
            .map_err(failed("receiving"))?;
        for (seq, error) in exhausted {
            dead::bury(self.tx, group, seq, &error, self.now)?;
        }
        Ok(())
    }

    /// Moves up to `n` new messages of the topic into the group's pending list.
    fn pull(&self, n: usize) -> rusqlite::Result<()> {
        let group = self.consumer.group_id;
        let next: i64 = self
            .tx
            .prepare_cached("SELECT next_seq FROM bus_groups WHERE group_id = ?1")?
            .query_row([group], |row| row.get(0))?;
        let fresh: Vec<(i64, Option<String>)> = self
            .tx
            .prepare_cached(
                "SELECT seq, msg_key FROM bus_messages
                 WHERE topic = ?1 AND seq >= ?2 AND only_group IS NULL ORDER BY seq LIMIT ?3",
            )?
            .query_map(
                params![self.consumer.topic.as_str(), next, to_i64(n as u64)],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?
            .collect::<rusqlite::Result<_>>()?;
        let Some(&(last, _)) = fresh.last() else {
            return Ok(());
        };
        let mut insert = self.tx.prepare_cached(
            "INSERT OR IGNORE INTO bus_pending (group_id, seq, msg_key, attempts, visible_at, in_flight)
             VALUES (?1, ?2, ?3, 0, 0, 0)",
        )?;
        for (seq, key) in &fresh {
            insert.execute(params![group, seq, key])?;
        }
        self.tx
            .prepare_cached("UPDATE bus_groups SET next_seq = ?2 WHERE group_id = ?1")?
            .execute(params![group, last + 1])?;
        Ok(())
    }

    /// Leases up to `n` due pending messages (in order per key when asked).
    fn lease(&self, n: usize) -> Result<Vec<Delivery>, BusError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let consumer = self.consumer;
        let group = consumer.group_id;
        let sql = if consumer.options.ordered_by_key {
            "SELECT p.seq FROM bus_pending p WHERE p.group_id = ?1 AND p.visible_at <= ?2
               AND NOT EXISTS (SELECT 1 FROM bus_pending q WHERE q.group_id = p.group_id
                               AND q.msg_key = p.msg_key AND q.seq < p.seq)
             ORDER BY p.seq LIMIT ?3"
        } else {
            "SELECT p.seq FROM bus_pending p WHERE p.group_id = ?1 AND p.visible_at <= ?2
             ORDER BY p.seq LIMIT ?3"
        };
        let run = || -> rusqlite::Result<Vec<Delivery>> {
            let seqs: Vec<i64> = self
                .tx
                .prepare_cached(sql)?
                .query_map(params![group, self.now, to_i64(n as u64)], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let visible_at = self
                .now
                .saturating_add(micros(consumer.options.visibility_timeout));
            let mut deliveries = Vec::with_capacity(seqs.len());
            for seq in seqs {
                let attempt: i64 = self
                    .tx
                    .prepare_cached(
                        "UPDATE bus_pending SET attempts = attempts + 1, in_flight = 1,
                                visible_at = ?3
                         WHERE group_id = ?1 AND seq = ?2 RETURNING attempts",
                    )?
                    .query_row(params![group, seq, visible_at], |row| row.get(0))?;
                let message = self
                    .tx
                    .prepare_cached(&format!(
                        "SELECT {MESSAGE_COLUMNS} FROM bus_messages WHERE seq = ?1"
                    ))?
                    .query_row([seq], |row| message_from_row(row, 0))
                    .optional()?;
                let Some(message) = message else {
                    // Garbage collection keeps every message a pending row points at; only a
                    // hand-made deletion gets here, so say so rather than loop on it.
                    tracing::warn!(seq, group, "bus message of a pending delivery is missing");
                    self.tx
                        .prepare_cached("DELETE FROM bus_pending WHERE group_id = ?1 AND seq = ?2")?
                        .execute(params![group, seq])?;
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
        };
        run().map_err(failed("receiving"))
    }
}

impl BusConsumer for SqliteConsumer {
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
        let seqs: Vec<i64> = deliveries
            .iter()
            .map(|delivery| to_i64(delivery.message.sequence))
            .collect();
        let count = seqs.len() as u64;
        self.bus
            .transaction(Sync::Normal, "acknowledging", move |tx| {
                let mut delete = tx
                    .prepare_cached("DELETE FROM bus_pending WHERE group_id = ?1 AND seq = ?2")
                    .map_err(failed("acknowledging"))?;
                for seq in &seqs {
                    delete
                        .execute(params![group, seq])
                        .map_err(failed("acknowledging"))?;
                }
                Ok(())
            })
            .await?;
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
        let outcome = self
            .bus
            .transaction(Sync::Normal, "failing a delivery", move |tx| {
                let now = now_micros();
                let current: Option<(u32, bool)> = tx
                    .prepare_cached(
                        "SELECT attempts, in_flight FROM bus_pending WHERE group_id = ?1 AND seq = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![group, seq], |row| Ok((row.get(0)?, row.get(1)?)))
                            .optional()
                    })
                    .map_err(failed("failing a delivery"))?;
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
                    let id = dead::bury(tx, group, seq, &failure.error, now)?;
                    return Ok(NackOutcome::DeadLettered { id: id.to_string() });
                };
                tx.prepare_cached(
                    "UPDATE bus_pending SET in_flight = 0, visible_at = ?3, last_error = ?4,
                            last_failed_at = ?5, first_failed_at = COALESCE(first_failed_at, ?5)
                     WHERE group_id = ?1 AND seq = ?2",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        group,
                        seq,
                        now.saturating_add(micros(delay)),
                        failure.error,
                        now
                    ])
                })
                .map_err(failed("failing a delivery"))?;
                Ok(NackOutcome::Retrying {
                    next_attempt: attempt + 1,
                    delay,
                })
            })
            .await?;
        self.bus.wake();
        Ok(outcome)
    }

    async fn extend(&self, delivery: &Delivery, by: Duration) -> Result<bool, BusError> {
        let group = self.group_id;
        let seq = to_i64(delivery.message.sequence);
        let attempt = delivery.attempt;
        self.bus
            .transaction(Sync::Normal, "extending a lease", move |tx| {
                tx.prepare_cached(
                    "UPDATE bus_pending SET visible_at = ?4
                     WHERE group_id = ?1 AND seq = ?2 AND attempts = ?3 AND in_flight = 1",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        group,
                        seq,
                        attempt,
                        now_micros().saturating_add(micros(by))
                    ])
                })
                .map(|changed| changed == 1)
                .map_err(failed("extending a lease"))
            })
            .await
    }
}
