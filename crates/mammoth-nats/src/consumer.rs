//! [`NatsConsumer`]: one consumer of a group, a durable pull consumer. Receive asks for what
//! is there now (`no_wait` pull requests, polled until its wait is over: see `pull.rs` for why
//! never an expiring request); ack, nack (`AckNak` with a delay, or the
//! dead-letter stream and `AckTerm`) and extend (`AckProgress`) answer on the delivery's
//! reply subject.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, AckKind, consumer};
use bytes::Bytes;
use mammoth_core::bus::{
    BusConsumer, BusError, ConsumerGroup, Delivery, Failure, Message, NackAction, NackOutcome,
    Receipt, SubscribeOptions, Topic,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::bus::{NatsBus, nats, user_headers};
use crate::names::{self, HEADER_ID, HEADER_KEY, HEADER_REPLAY_GROUP};
use crate::order::{Gate, HOLD_CAP};
use crate::pull::Puller;

/// The first pause between two pull requests of a receive that found nothing; it doubles up
/// to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(2);

/// The longest pause between two pull requests of a waiting receive.
const POLL_MAX: Duration = Duration::from_millis(25);

/// How long to wait for the server to confirm a nak, term or progress.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// What the failures bucket keeps for a message waiting for a retry.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct FailureRecord {
    /// The first failure, in microseconds since the Unix epoch.
    pub(crate) first_failed_at_micros: i64,
    /// When the retry is due.
    pub(crate) due_at_micros: i64,
}

/// Now, in microseconds since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A consumer of one group on one topic. Clones share the consumer.
#[derive(Clone)]
pub struct NatsConsumer(Arc<Inner>);

struct Inner {
    bus: NatsBus,
    name: String,
    topic: Topic,
    group: ConsumerGroup,
    options: SubscribeOptions,
    /// The subject pull requests go to.
    next_subject: String,
    /// The pull requests' inbox, opened by the first receive.
    puller: tokio::sync::Mutex<Option<Puller>>,
}

impl std::fmt::Debug for NatsConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConsumer")
            .field("consumer", &self.0.name)
            .finish_non_exhaustive()
    }
}

/// What a receipt holds: the stream sequence, the delivery count and the reply subject.
struct Handle<'a> {
    sequence: u64,
    delivered: u32,
    reply: &'a str,
}

fn parse_receipt(receipt: &Receipt) -> Result<Handle<'_>, BusError> {
    let mut parts = receipt.as_str().splitn(3, ' ');
    let parsed = (|| {
        let sequence = parts.next()?.parse().ok()?;
        let delivered = parts.next()?.parse().ok()?;
        let reply = parts.next()?;
        Some(Handle {
            sequence,
            delivered,
            reply,
        })
    })();
    parsed.ok_or_else(|| {
        BusError::InvalidInput(format!(
            "receipt {:?} is not from the NATS bus",
            receipt.as_str()
        ))
    })
}

impl NatsConsumer {
    pub(crate) fn new(
        bus: NatsBus,
        consumer: consumer::PullConsumer,
        name: String,
        topic: Topic,
        group: ConsumerGroup,
        options: SubscribeOptions,
    ) -> Self {
        let next_subject = format!(
            "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
            consumer.cached_info().stream_name,
            name
        );
        Self(Arc::new(Inner {
            bus,
            name,
            topic,
            group,
            options,
            next_subject,
            puller: tokio::sync::Mutex::new(None),
        }))
    }

    /// Fetches up to `max` messages available now. Messages that come for a request after
    /// its receive stopped waiting are returned by a later call (see `pull.rs`), never
    /// dropped.
    async fn fetch(&self, max: usize) -> Result<Vec<jetstream::Message>, BusError> {
        let shared = &self.0.bus.shared;
        let mut puller = self.0.puller.lock().await;
        let puller = match &mut *puller {
            Some(puller) => puller,
            empty => empty.insert(Puller::open(&shared.client).await?),
        };
        let messages = puller
            .pull(
                &shared.client,
                &self.0.next_subject,
                max,
                self.0.options.visibility_timeout,
            )
            .await?;
        Ok(messages
            .into_iter()
            .map(|message| jetstream::Message {
                message,
                context: shared.js.clone(),
            })
            .collect())
    }

    /// Gives fetched messages a receive could not turn into deliveries back to the puller,
    /// for the next receive.
    async fn keep(&self, messages: impl IntoIterator<Item = jetstream::Message>) {
        if let Some(puller) = &mut *self.0.puller.lock().await {
            puller.keep(messages.into_iter().map(|message| message.message));
        }
    }

    /// Turns a fetched message into a delivery, or handles it here: a replay meant for another
    /// group is acknowledged unseen, and a delivery past the last attempt (its lease expired
    /// on the last attempt) is dead-lettered.
    async fn admit(&self, message: jetstream::Message) -> Result<Option<Delivery>, BusError> {
        let (sequence, delivered, published) = {
            let info = message
                .info()
                .map_err(|error| crate::bus::failed("reading a delivery", false)(error))?;
            let published =
                i64::try_from(info.published.unix_timestamp_nanos() / 1000).unwrap_or_default();
            (
                info.stream_sequence,
                u32::try_from(info.delivered).unwrap_or(u32::MAX),
                published,
            )
        };
        let Some(reply) = message.reply.as_ref().map(ToString::to_string) else {
            return Ok(None);
        };
        let headers = message.headers.as_ref();
        let header = |name: &str| {
            headers
                .and_then(|headers| headers.get(name))
                .map(|value| value.as_str().to_owned())
        };
        if let Some(only) = header(HEADER_REPLAY_GROUP)
            && only != self.0.group.as_str()
        {
            self.send(&reply, AckKind::Ack).await?;
            return Ok(None);
        }
        let id = header(HEADER_ID)
            .or_else(|| header("Nats-Msg-Id"))
            .and_then(|id| Uuid::parse_str(&id).ok())
            .unwrap_or(Uuid::nil());
        let delivery = Delivery {
            message: Message {
                topic: self.0.topic.clone(),
                id,
                key: header(HEADER_KEY),
                payload: message.payload.to_vec(),
                headers: user_headers(headers),
                sequence,
                published_at_micros: published,
            },
            group: self.0.group.clone(),
            attempt: delivered,
            receipt: Receipt::new(format!("{sequence} {delivered} {reply}")),
        };
        self.lease(sequence, Some(delivered));
        let max_attempts = self.0.options.retry.max_attempts.max(1);
        if delivered > max_attempts {
            let error = format!(
                "visibility timeout ({:?}) expired on the last attempt ({max_attempts}) without an ack or a nack",
                self.0.options.visibility_timeout
            );
            let mut letter = delivery;
            letter.attempt = max_attempts;
            self.dead_letter(&letter, &reply, error).await?;
            return Ok(None);
        }
        Ok(Some(delivery))
    }

    /// Records (`Some`) or forgets (`None`) the latest delivery count of `sequence`.
    fn lease(&self, sequence: u64, delivered: Option<u32>) {
        let mut leases = self
            .0
            .bus
            .shared
            .leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (self.0.name.clone(), sequence);
        match delivered {
            Some(count) => {
                leases.insert(key, count);
            }
            None => {
                leases.remove(&key);
            }
        }
    }

    /// Runs `f` on this consumer's ordering gate.
    fn gate<R>(&self, f: impl FnOnce(&mut Gate) -> R) -> R {
        let mut gates = self
            .0
            .bus
            .shared
            .gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(gates.entry(self.0.name.clone()).or_default())
    }

    /// Keeps the leases of held-back deliveries alive.
    async fn extend_held(&self) -> Result<(), BusError> {
        let before = Instant::now()
            .checked_sub(self.0.options.visibility_timeout / 3)
            .unwrap_or_else(Instant::now);
        let receipts = self.gate(|gate| gate.due_for_extension(before));
        for receipt in receipts {
            let receipt = Receipt::new(receipt);
            let handle = parse_receipt(&receipt)?;
            let payload: Bytes = AckKind::Progress.into();
            self.0
                .bus
                .shared
                .client
                .publish(handle.reply.to_owned(), payload)
                .await
                .map_err(nats("extending a held delivery"))?;
        }
        Ok(())
    }

    /// True when `handle` is the latest delivery of its message this bus handed out.
    fn current(&self, handle: &Handle<'_>) -> bool {
        let leases = self
            .0
            .bus
            .shared
            .leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        leases.get(&(self.0.name.clone(), handle.sequence)) == Some(&handle.delivered)
    }

    /// Sends an acknowledgement of `kind`; `Ack` is fire-and-forget (flushed by the caller),
    /// the others wait for the server's confirmation.
    async fn send(&self, reply: &str, kind: AckKind) -> Result<(), BusError> {
        let client = &self.0.bus.shared.client;
        let payload: Bytes = kind.into();
        if matches!(kind, AckKind::Ack) {
            return client
                .publish(reply.to_owned(), payload)
                .await
                .map_err(nats("acknowledging"));
        }
        let request = client.request(reply.to_owned(), payload);
        tokio::time::timeout(CONFIRM_TIMEOUT, request)
            .await
            .map_err(nats("waiting for the server to confirm"))?
            .map_err(nats("waiting for the server to confirm"))?;
        Ok(())
    }

    fn failure_key(&self, sequence: u64) -> String {
        names::failure_key(&self.0.name, sequence)
    }

    async fn failure_record(&self, sequence: u64) -> Result<Option<FailureRecord>, BusError> {
        let value = self
            .0
            .bus
            .shared
            .failures
            .get(&self.failure_key(sequence))
            .await?;
        Ok(value.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    async fn forget_failure(&self, sequence: u64) -> Result<(), BusError> {
        self.0
            .bus
            .shared
            .failures
            .delete(&self.failure_key(sequence))
            .await
    }

    /// Publishes `delivery` to the dead-letter stream, then terminates it.
    async fn dead_letter(
        &self,
        delivery: &Delivery,
        reply: &str,
        error: String,
    ) -> Result<NackOutcome, BusError> {
        let now = now_micros();
        let sequence = delivery.message.sequence;
        let record = if delivery.attempt > 1 {
            self.failure_record(sequence).await?
        } else {
            None
        };
        let id = self
            .0
            .bus
            .publish_dead_letter(
                delivery,
                &self.0.name,
                error,
                record.map_or(now, |record| record.first_failed_at_micros),
                now,
            )
            .await?;
        self.send(reply, AckKind::Term).await?;
        self.lease(sequence, None);
        if self.0.options.ordered_by_key {
            self.gate(|gate| gate.done(delivery.message.key.as_deref(), sequence));
        }
        if record.is_some() {
            self.forget_failure(sequence).await?;
        }
        Ok(NackOutcome::DeadLettered { id })
    }
}

impl BusConsumer for NatsConsumer {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        if max == 0 {
            return Err(BusError::InvalidInput(
                "receive at least one message (max 0)".to_owned(),
            ));
        }
        let ordered = self.0.options.ordered_by_key;
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        let mut pause = POLL_FIRST;
        loop {
            if ordered {
                let room = max - out.len();
                out.extend(self.gate(|gate| gate.release(room)));
            }
            if out.len() >= max {
                break;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if ordered && self.gate(|gate| gate.held()) >= HOLD_CAP {
                // Enough held back: wait for a key to be freed instead of fetching more.
                if !out.is_empty() || left.is_zero() {
                    break;
                }
                tokio::time::sleep(left.min(Duration::from_millis(20))).await;
                continue;
            }
            let fetched = self.fetch(max - out.len()).await?;
            if fetched.is_empty() {
                if !out.is_empty() || left.is_zero() {
                    break;
                }
                // Nothing yet: ask again after a pause (the last time at the deadline).
                tokio::time::sleep(left.min(pause)).await;
                pause = (pause * 2).min(POLL_MAX);
                continue;
            }
            let mut fetched = fetched.into_iter();
            while let Some(message) = fetched.next() {
                let admitted = match self.admit(message).await {
                    Ok(admitted) => admitted,
                    Err(error) => {
                        // Hand back what is already leased rather than leave it in flight.
                        self.keep(fetched).await;
                        if out.is_empty() {
                            return Err(error);
                        }
                        return Ok(out);
                    }
                };
                let Some(delivery) = admitted else {
                    continue;
                };
                let delivery = if ordered {
                    self.gate(|gate| gate.admit(delivery))
                } else {
                    Some(delivery)
                };
                out.extend(delivery);
            }
            if out.len() >= max {
                break;
            }
        }
        if ordered {
            self.extend_held().await?;
        }
        Ok(out)
    }

    async fn ack(&self, deliveries: &[Delivery]) -> Result<(), BusError> {
        for delivery in deliveries {
            let handle = parse_receipt(&delivery.receipt)?;
            self.send(handle.reply, AckKind::Ack).await?;
            if self.current(&handle) {
                self.lease(handle.sequence, None);
            }
            if self.0.options.ordered_by_key {
                let key = delivery.message.key.as_deref();
                self.gate(|gate| gate.done(key, handle.sequence));
            }
            if handle.delivered > 1 {
                self.forget_failure(handle.sequence).await?;
            }
        }
        self.0
            .bus
            .shared
            .client
            .flush()
            .await
            .map_err(nats("acknowledging"))
    }

    async fn nack(&self, delivery: &Delivery, failure: Failure) -> Result<NackOutcome, BusError> {
        let handle = parse_receipt(&delivery.receipt)?;
        if !self.current(&handle) {
            return Ok(NackOutcome::Stale);
        }
        let policy = &self.0.options.retry;
        let delay = match failure.action {
            NackAction::DeadLetter => None,
            _ if policy.exhausted(delivery.attempt) => None,
            NackAction::Retry => Some(policy.delay(delivery.attempt)),
            NackAction::RetryAfter(delay) => Some(delay),
        };
        let Some(delay) = delay else {
            return self
                .dead_letter(delivery, handle.reply, failure.error)
                .await;
        };
        let now = now_micros();
        let first = match self.failure_record(handle.sequence).await? {
            Some(record) => record.first_failed_at_micros,
            None => now,
        };
        let record = FailureRecord {
            first_failed_at_micros: first,
            due_at_micros: now.saturating_add(i64::try_from(delay.as_micros()).unwrap_or(i64::MAX)),
        };
        let value = serde_json::to_vec(&record).unwrap_or_default();
        self.0
            .bus
            .shared
            .failures
            .put(&self.failure_key(handle.sequence), value.into())
            .await?;
        self.send(handle.reply, AckKind::Nak(Some(delay))).await?;
        Ok(NackOutcome::Retrying {
            next_attempt: delivery.attempt.saturating_add(1),
            delay,
        })
    }

    async fn extend(&self, delivery: &Delivery, _by: Duration) -> Result<bool, BusError> {
        let handle = parse_receipt(&delivery.receipt)?;
        if !self.current(&handle) {
            return Ok(false);
        }
        self.send(handle.reply, AckKind::Progress).await?;
        Ok(true)
    }
}
