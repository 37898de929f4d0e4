//! [`MysqlConsumer`]: one consumer of a group of the MySQL bus. A receive runs claim
//! transactions (`claim.rs`) until one leases something or the wait is over; ack deletes the
//! pending row; nack schedules a retry or moves the message to the dead-letter queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mammoth_core::bus::{
    BusConsumer, BusError, ConsumerGroup, Delivery, Failure, NackAction, NackOutcome,
    SubscribeOptions, Topic,
};
use mammoth_core::now_micros;
use mysql_async::Value;
use mysql_async::prelude::Queryable;

use super::claim::{claim, micros};
use super::rows::{Fail, placeholders, to_i64};
use super::{MysqlBus, dead, transaction};

/// Acks between two garbage collections.
const GC_EVERY: u64 = 8192;

/// A consumer of one group of the MySQL bus. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MysqlConsumer {
    pub(super) bus: MysqlBus,
    pub(super) topic: Topic,
    pub(super) group: ConsumerGroup,
    pub(super) group_id: i64,
    pub(super) options: Arc<SubscribeOptions>,
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
