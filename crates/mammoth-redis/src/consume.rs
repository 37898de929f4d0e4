//! [`RedisConsumer`]: one consumer (a Redis consumer name) of a group. A receive runs one
//! script: due retries join the group's own stream, entries idle past the visibility timeout
//! are taken over with `XAUTOCLAIM` (or dead-lettered when that was their last attempt), then
//! new entries are read with `XREADGROUP >`. Ack, nack and extend are scripts too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mammoth_core::bus::{
    BusConsumer, BusError, ConsumerGroup, Delivery, Failure, Message, NackAction, NackOutcome,
    Receipt, SubscribeOptions, Topic,
};
use redis::ScriptInvocation;
use uuid::Uuid;

use crate::bus::{RedisBus, corrupt, failed, key_tag, millis};

/// Acks between two trims of the topic's stream.
const TRIM_EVERY: u64 = 8192;

/// One delivery as the receive script returns it: stream kind (`m` the topic's stream, `r`
/// the group's own), entry id, delivery count, attempt, entry fields.
type RawDelivery = (String, String, u32, u32, Vec<Vec<u8>>);

/// A consumer of one group of a [`RedisBus`]. Cheap to clone: clones are the same Redis
/// consumer, so any of them may ack what another received.
#[derive(Clone, Debug)]
pub struct RedisConsumer {
    bus: RedisBus,
    topic: Topic,
    group: ConsumerGroup,
    name: Arc<str>,
    stream: Arc<str>,
    options: Arc<SubscribeOptions>,
    acks: Arc<AtomicU64>,
}

/// Where a receipt points: `kind:entry id:delivery count`.
pub(crate) struct Entry<'a> {
    pub(crate) kind: &'a str,
    pub(crate) id: &'a str,
    pub(crate) count: &'a str,
}

pub(crate) fn entry(receipt: &Receipt) -> Result<Entry<'_>, BusError> {
    let mut parts = receipt.as_str().splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(kind @ ("m" | "r")), Some(id), Some(count)) => Ok(Entry { kind, id, count }),
        _ => Err(BusError::InvalidInput(format!(
            "receipt {:?} is not from the Redis bus",
            receipt.as_str()
        ))),
    }
}

impl RedisConsumer {
    pub(crate) fn new(
        bus: RedisBus,
        topic: Topic,
        group: ConsumerGroup,
        options: SubscribeOptions,
    ) -> Self {
        let stream = bus.stream_key(topic.as_str());
        Self {
            bus,
            topic,
            group,
            name: Arc::from(format!("c-{}", Uuid::new_v4().simple())),
            stream: Arc::from(stream),
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

    /// This consumer's name in the Redis group.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A script invocation with the group context every consumer script reads first.
    fn invocation<'a>(&self, script: &'a redis::Script) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation
            .arg(&*self.stream)
            .arg(self.group.as_str())
            .arg(&*self.name)
            .arg(self.topic.as_str())
            .arg(self.bus.dead_key());
        invocation
    }

    fn min_idle(&self) -> u64 {
        min_idle(self.options.visibility_timeout)
    }

    async fn claim(&self, max: usize) -> Result<Vec<Delivery>, BusError> {
        let error = format!(
            "visibility timeout of {:?} expired before an ack (the consumer died or its handler ran too long)",
            self.options.visibility_timeout
        );
        let mut invocation = self.invocation(&self.bus.shared.scripts.receive);
        invocation
            .arg(max)
            .arg(self.min_idle())
            .arg(self.options.retry.max_attempts.max(1))
            .arg(if self.options.ordered_by_key {
                "1"
            } else {
                "0"
            })
            .arg(error);
        let raw: Vec<RawDelivery> = invocation
            .invoke_async(&mut self.bus.conn())
            .await
            .map_err(failed("receiving"))?;
        raw.into_iter()
            .map(|(kind, id, count, attempt, fields)| {
                Ok(Delivery {
                    message: message(&self.topic, fields)?,
                    group: self.group.clone(),
                    attempt,
                    receipt: Receipt::new(format!("{kind}:{id}:{count}")),
                })
            })
            .collect()
    }
}

/// The idle time after which a delivery is taken over: the visibility timeout, rounded up to
/// a whole millisecond plus one (Redis counts idle time in milliseconds, and a delivery must
/// not come back before its timeout).
pub(crate) fn min_idle(timeout: Duration) -> u64 {
    let whole = millis(timeout);
    let rounded = whole + u64::from(Duration::from_millis(whole) < timeout);
    rounded.saturating_add(1)
}

/// A message from a stream entry's fields.
pub(crate) fn message(topic: &Topic, fields: Vec<Vec<u8>>) -> Result<Message, BusError> {
    let mut map: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        map.insert(name, value);
    }
    message_from_map(topic.clone(), &mut map)
}

/// A message from the named fields of a stream entry (`id`, `k`, `p`, `h`, `at`, `s`).
pub(crate) fn message_from_map(
    topic: Topic,
    map: &mut BTreeMap<Vec<u8>, Vec<u8>>,
) -> Result<Message, BusError> {
    const ACTION: &str = "decoding a stored message";
    let text = |map: &BTreeMap<Vec<u8>, Vec<u8>>, name: &str| -> Result<String, BusError> {
        let value = map
            .get(name.as_bytes())
            .ok_or_else(|| corrupt(ACTION, format!("the entry has no {name:?} field")))?;
        String::from_utf8(value.clone())
            .map_err(|_| corrupt(ACTION, format!("field {name:?} is not UTF-8")))
    };
    let id = text(map, "id")?;
    let id = Uuid::parse_str(&id).map_err(|_| corrupt(ACTION, format!("bad message id {id:?}")))?;
    let headers = text(map, "h")?;
    let headers: BTreeMap<String, String> = serde_json::from_str(&headers)
        .map_err(|error| corrupt(ACTION, format!("bad headers: {error}")))?;
    let number = |name: &str| -> Result<i64, BusError> {
        let value = text(map, name)?;
        value
            .parse()
            .map_err(|_| corrupt(ACTION, format!("field {name:?} is not a number: {value:?}")))
    };
    let published_at_micros = number("at")?;
    let sequence = u64::try_from(number("s")?).unwrap_or(0);
    let key = match map.contains_key(b"k".as_slice()) {
        true => Some(text(map, "k")?),
        false => None,
    };
    let payload = map.remove(b"p".as_slice()).unwrap_or_default();
    Ok(Message {
        topic,
        id,
        key,
        payload,
        headers,
        sequence,
        published_at_micros,
    })
}

impl BusConsumer for RedisConsumer {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        if max == 0 {
            return Err(BusError::InvalidInput(
                "receive needs max of at least 1".to_owned(),
            ));
        }
        let deadline = Instant::now() + wait;
        loop {
            let deliveries = self.claim(max).await?;
            let now = Instant::now();
            if !deliveries.is_empty() || now >= deadline {
                return Ok(deliveries);
            }
            let sleep = (deadline - now).min(self.bus.shared.options.poll_interval);
            tokio::time::sleep(sleep).await;
        }
    }

    async fn ack(&self, deliveries: &[Delivery]) -> Result<(), BusError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let mut invocation = self.invocation(&self.bus.shared.scripts.ack);
        for delivery in deliveries {
            let entry = entry(&delivery.receipt)?;
            let key = self
                .options
                .ordered_by_key
                .then_some(delivery.message.key.as_deref())
                .flatten();
            invocation
                .arg(entry.kind)
                .arg(entry.id)
                .arg(delivery.message.id.to_string())
                .arg(key_tag(key));
        }
        let _: i64 = invocation
            .invoke_async(&mut self.bus.conn())
            .await
            .map_err(failed("acknowledging"))?;
        let count = deliveries.len() as u64;
        let before = self.acks.fetch_add(count, Ordering::Relaxed);
        if before / TRIM_EVERY != (before + count) / TRIM_EVERY {
            self.bus.collect_garbage(&self.topic).await?;
        }
        Ok(())
    }

    async fn nack(&self, delivery: &Delivery, failure: Failure) -> Result<NackOutcome, BusError> {
        let entry = entry(&delivery.receipt)?;
        let retry = self.options.retry;
        let attempt = delivery.attempt;
        let delay = match failure.action {
            NackAction::DeadLetter => None,
            _ if retry.exhausted(attempt) => None,
            NackAction::RetryAfter(delay) => Some(delay),
            NackAction::Retry => Some(retry.delay(attempt)),
        };
        let mut invocation = self.invocation(&self.bus.shared.scripts.nack);
        invocation
            .arg(entry.kind)
            .arg(entry.id)
            .arg(entry.count)
            .arg(if delay.is_some() { "retry" } else { "dead" })
            .arg(delay.map_or(0, |delay| {
                // Whole milliseconds, rounded up: a retry never comes early.
                let whole = millis(delay);
                whole + u64::from(Duration::from_millis(whole) < delay)
            }))
            .arg(&failure.error)
            .arg(attempt);
        let reply: Vec<String> = invocation
            .invoke_async(&mut self.bus.conn())
            .await
            .map_err(failed("failing a delivery"))?;
        match (reply.first().map(String::as_str), delay) {
            (Some("stale"), _) => Ok(NackOutcome::Stale),
            (Some("retry"), Some(delay)) => Ok(NackOutcome::Retrying {
                next_attempt: attempt + 1,
                delay,
            }),
            (Some("dead"), _) => Ok(NackOutcome::DeadLettered {
                id: reply.get(1).cloned().unwrap_or_default(),
            }),
            _ => Err(corrupt(
                "failing a delivery",
                format!("unexpected script reply {reply:?}"),
            )),
        }
    }

    /// Resets the delivery's idle time, so it stays this consumer's for the visibility
    /// timeout from now; `by` shorter than the timeout sets the idle time so that it expires
    /// `by` from now. Redis cannot make a lease longer than the group's visibility timeout:
    /// a handler slower than that extends again before it runs out.
    async fn extend(&self, delivery: &Delivery, by: Duration) -> Result<bool, BusError> {
        let entry = entry(&delivery.receipt)?;
        let idle = self.min_idle().saturating_sub(millis(by));
        let mut invocation = self.invocation(&self.bus.shared.scripts.extend);
        invocation
            .arg(entry.kind)
            .arg(entry.id)
            .arg(entry.count)
            .arg(idle);
        let extended: i64 = invocation
            .invoke_async(&mut self.bus.conn())
            .await
            .map_err(failed("extending a lease"))?;
        Ok(extended == 1)
    }
}
