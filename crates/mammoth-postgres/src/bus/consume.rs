//! [`PgConsumer`]: one consumer of a group of the PostgreSQL bus. A receive leases due pending
//! messages (retries and expired leases first, by sequence), pulling new ones from the topic
//! into the group's pending list when there are not enough; ack deletes the pending row; nack
//! schedules a retry or moves the message to the dead-letter queue.
//!
//! A receive locks its group's `bus_groups` row first, so the receives of one group (in any
//! process) take turns at moving the cursor and leasing; a lease is an `UPDATE ... RETURNING`
//! of rows picked `FOR UPDATE SKIP LOCKED`, so a row an ack or nack is changing is left alone
//! rather than waited for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::Transaction;
use mammoth_core::bus::{
    BusConsumer, BusError, ConsumerGroup, Delivery, Failure, NackAction, NackOutcome, Receipt,
    StartFrom, SubscribeOptions, Topic,
};
use mammoth_core::now_micros;

use super::sql::{failed, message_from_row, micros, pool_failed, to_i64};
use super::{PgBus, Sync, dead, transaction};

/// Acks between two garbage collections.
const GC_EVERY: u64 = 8192;

/// The group's id, creating the group at `start` if it does not exist.
pub(crate) async fn group_id(
    client: &deadpool_postgres::Client,
    bus: &PgBus,
    topic: &Topic,
    group: &ConsumerGroup,
    start: StartFrom,
) -> Result<i64, BusError> {
    let action = "creating a consumer group";
    let sql = bus.sql();
    let statement = client
        .prepare_cached(&sql.create_group)
        .await
        .map_err(failed(action))?;
    let latest = start == StartFrom::Latest;
    let created = client
        .query_opt(&statement, &[&topic.as_str(), &group.as_str(), &latest])
        .await
        .map_err(failed(action))?;
    if let Some(row) = created {
        return Ok(row.get(0));
    }
    let statement = client
        .prepare_cached(&sql.find_group)
        .await
        .map_err(failed(action))?;
    let row = client
        .query_one(&statement, &[&topic.as_str(), &group.as_str()])
        .await
        .map_err(failed(action))?;
    Ok(row.get(0))
}

/// A consumer of one group of the PostgreSQL bus. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PgConsumer {
    bus: PgBus,
    topic: Topic,
    group: ConsumerGroup,
    group_id: i64,
    options: Arc<SubscribeOptions>,
    acks: Arc<AtomicU64>,
}

impl PgConsumer {
    pub(crate) fn new(
        bus: PgBus,
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
        // The clock is read before the connection is taken: a delivery comes due by the
        // time the receive began, so one nacked with a delay never comes back before the
        // delay has passed since the nack returned, however slow its commit was.
        let now = now_micros();
        transaction!(&self.bus, Sync::Lazy, "receiving", |tx| self
            .claim_in(&tx, max, now))
    }

    async fn claim_in(
        &self,
        tx: &Transaction<'_>,
        max: usize,
        now: i64,
    ) -> Result<(Vec<Delivery>, Option<i64>), BusError> {
        let action = "receiving";
        let sql = self.bus.sql();
        let statement = tx
            .prepare_cached(&sql.lock_group)
            .await
            .map_err(failed(action))?;
        let next_seq: i64 = tx
            .query_one(&statement, &[&self.group_id])
            .await
            .map_err(failed(action))?
            .get(0);
        self.expire(tx, now).await?;
        let mut deliveries = self.lease(tx, max, now).await?;
        if deliveries.len() < max {
            let statement = tx.prepare_cached(&sql.pull).await.map_err(failed(action))?;
            let want = to_i64((max - deliveries.len()) as u64);
            tx.execute(
                &statement,
                &[&self.group_id, &self.topic.as_str(), &next_seq, &want],
            )
            .await
            .map_err(failed(action))?;
            deliveries.extend(self.lease(tx, max - deliveries.len(), now).await?);
        }
        let statement = tx
            .prepare_cached(&sql.next_due)
            .await
            .map_err(failed(action))?;
        let next_due: Option<i64> = tx
            .query_one(&statement, &[&self.group_id])
            .await
            .map_err(failed(action))?
            .get(0);
        Ok((deliveries, next_due))
    }

    /// Leases that expired become failures; those on their last attempt are dead-lettered.
    async fn expire(&self, tx: &Transaction<'_>, now: i64) -> Result<(), BusError> {
        let action = "receiving";
        let sql = self.bus.sql();
        let error = format!(
            "visibility timeout of {:?} expired before an ack (the consumer died or its handler ran too long)",
            self.options.visibility_timeout
        );
        let statement = tx
            .prepare_cached(&sql.expire)
            .await
            .map_err(failed(action))?;
        tx.execute(&statement, &[&self.group_id, &now, &error])
            .await
            .map_err(failed(action))?;
        let max_attempts =
            i32::try_from(self.options.retry.max_attempts.max(1)).unwrap_or(i32::MAX);
        let statement = tx
            .prepare_cached(&sql.exhausted)
            .await
            .map_err(failed(action))?;
        let exhausted: Vec<(i64, String)> = tx
            .query(&statement, &[&self.group_id, &now, &max_attempts])
            .await
            .map_err(failed(action))?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        for (seq, error) in exhausted {
            dead::bury(tx, sql, self.group_id, seq, &error, now).await?;
        }
        Ok(())
    }

    /// Leases up to `n` due pending messages (in order per key when asked).
    async fn lease(
        &self,
        tx: &Transaction<'_>,
        n: usize,
        now: i64,
    ) -> Result<Vec<Delivery>, BusError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let action = "receiving";
        let sql = self.bus.sql();
        let text = if self.options.ordered_by_key {
            &sql.lease_ordered
        } else {
            &sql.lease
        };
        let statement = tx.prepare_cached(text).await.map_err(failed(action))?;
        let visible_at = now.saturating_add(micros(self.options.visibility_timeout));
        let rows = tx
            .query(
                &statement,
                &[
                    &self.group_id,
                    &now,
                    &to_i64(n as u64),
                    &visible_at,
                    &self.topic.as_str(),
                ],
            )
            .await
            .map_err(failed(action))?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.get(0);
            let attempt: i32 = row.get(1);
            if row.get::<_, Option<String>>(2).is_none() {
                // Garbage collection keeps every message a pending row points at; only a
                // hand-made deletion gets here, so say so rather than loop on it.
                tracing::warn!(
                    seq,
                    group = self.group_id,
                    "bus message of a pending delivery is missing"
                );
                let statement = tx
                    .prepare_cached(&sql.forget_pending)
                    .await
                    .map_err(failed(action))?;
                tx.execute(&statement, &[&self.group_id, &seq])
                    .await
                    .map_err(failed(action))?;
                continue;
            }
            let attempt = u32::try_from(attempt).unwrap_or(0);
            deliveries.push(Delivery {
                message: message_from_row(&row, 2)?,
                group: self.group.clone(),
                attempt,
                receipt: Receipt::new(format!("{}:{seq}:{attempt}", self.group_id)),
            });
        }
        Ok(deliveries)
    }

    async fn nack_in(
        &self,
        tx: &Transaction<'_>,
        seq: i64,
        attempt: u32,
        failure: &Failure,
    ) -> Result<NackOutcome, BusError> {
        let action = "failing a delivery";
        let sql = self.bus.sql();
        let retry = self.options.retry;
        let statement = tx
            .prepare_cached(&sql.nack_current)
            .await
            .map_err(failed(action))?;
        let current: Option<(i32, bool)> = tx
            .query_opt(&statement, &[&self.group_id, &seq])
            .await
            .map_err(failed(action))?
            .map(|row| (row.get(0), row.get(1)));
        if current != Some((i32::try_from(attempt).unwrap_or(i32::MAX), true)) {
            return Ok(NackOutcome::Stale);
        }
        // Read the clock as late as possible: the delay counts from the nack's return, and
        // every round trip before the update would come off it.
        let now = now_micros();
        let delay = match failure.action {
            NackAction::DeadLetter => None,
            _ if retry.exhausted(attempt) => None,
            NackAction::RetryAfter(delay) => Some(delay),
            NackAction::Retry => Some(retry.delay(attempt)),
        };
        let Some(delay) = delay else {
            let id = dead::bury(tx, sql, self.group_id, seq, &failure.error, now).await?;
            return Ok(NackOutcome::DeadLettered { id: id.to_string() });
        };
        let statement = tx
            .prepare_cached(&sql.nack_retry)
            .await
            .map_err(failed(action))?;
        tx.execute(
            &statement,
            &[
                &self.group_id,
                &seq,
                &now.saturating_add(micros(delay)),
                &failure.error,
                &now,
            ],
        )
        .await
        .map_err(failed(action))?;
        Ok(NackOutcome::Retrying {
            next_attempt: attempt + 1,
            delay,
        })
    }
}

impl BusConsumer for PgConsumer {
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
            self.bus.listen();
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
        let action = "acknowledging";
        let mut seqs: Vec<i64> = deliveries
            .iter()
            .map(|delivery| to_i64(delivery.message.sequence))
            .collect();
        // One lock order for every ack, so two acks of the same rows cannot deadlock.
        seqs.sort_unstable();
        seqs.dedup();
        let count = deliveries.len() as u64;
        transaction!(&self.bus, Sync::Lazy, action, |tx| async {
            let statement = tx
                .prepare_cached(&self.bus.sql().ack)
                .await
                .map_err(failed(action))?;
            tx.execute(&statement, &[&self.group_id, &seqs])
                .await
                .map_err(failed(action))
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
        let seq = to_i64(delivery.message.sequence);
        let attempt = delivery.attempt;
        let outcome = transaction!(&self.bus, Sync::Lazy, "failing a delivery", |tx| self
            .nack_in(&tx, seq, attempt, &failure))?;
        self.bus.wake();
        Ok(outcome)
    }

    async fn extend(&self, delivery: &Delivery, by: Duration) -> Result<bool, BusError> {
        let action = "extending a lease";
        let seq = to_i64(delivery.message.sequence);
        let attempt = i32::try_from(delivery.attempt).unwrap_or(i32::MAX);
        let visible_at = now_micros().saturating_add(micros(by));
        let client = self.bus.pool().get().await.map_err(pool_failed(action))?;
        let statement = client
            .prepare_cached(&self.bus.sql().extend)
            .await
            .map_err(failed(action))?;
        let changed = client
            .execute(&statement, &[&self.group_id, &seq, &attempt, &visible_at])
            .await
            .map_err(failed(action))?;
        Ok(changed == 1)
    }
}
