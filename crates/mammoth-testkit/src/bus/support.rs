//! Helpers the bus scenarios share: names, messages, fast options, and receive loops with
//! deadlines so a broken driver fails a scenario instead of hanging it.

use std::time::{Duration, Instant};

use mammoth_core::bus::{
    BusConsumer, ConsumerGroup, Delivery, MessageBus, OutgoingMessage, RetryPolicy,
    SubscribeOptions, Topic,
};

/// A topic name the scenario owns.
pub(crate) fn topic(name: &str) -> Topic {
    Topic::new(name).expect("valid topic")
}

/// A group name.
pub(crate) fn group(name: &str) -> ConsumerGroup {
    ConsumerGroup::new(name).expect("valid group")
}

/// A message with a fresh id and `text` as payload.
pub(crate) fn message(text: &str) -> OutgoingMessage {
    OutgoingMessage::new(text.as_bytes().to_vec())
}

/// The visibility timeout of the fast options.
pub(crate) const VISIBILITY: Duration = Duration::from_millis(400);

/// Options for scenarios: 400 ms visibility, 3 attempts 30 ms apart (no jitter).
pub(crate) fn fast() -> SubscribeOptions {
    SubscribeOptions {
        visibility_timeout: VISIBILITY,
        retry: RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(30),
            factor: 2.0,
            cap: Duration::from_secs(1),
            jitter: false,
        },
        ..SubscribeOptions::default()
    }
}

/// Publishes one message per text, in order; panics on failure.
pub(crate) async fn publish<B: MessageBus>(bus: &B, topic: &Topic, texts: &[&str]) {
    let messages = texts.iter().map(|text| message(text)).collect();
    bus.publish(topic, messages).await.expect("publish");
}

/// Receives until `n` deliveries arrived or `within` passed.
pub(crate) async fn receive_n<C: BusConsumer>(
    consumer: &C,
    n: usize,
    within: Duration,
) -> Vec<Delivery> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let batch = consumer
            .receive(n - got.len(), left.min(Duration::from_millis(200)))
            .await
            .expect("receive");
        got.extend(batch);
    }
    got
}

/// Receives and acks everything that comes within `within`; returns what came.
pub(crate) async fn drain<C: BusConsumer>(consumer: &C, within: Duration) -> Vec<Delivery> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return got;
        }
        let batch = consumer
            .receive(64, left.min(Duration::from_millis(100)))
            .await
            .expect("receive");
        consumer.ack(&batch).await.expect("ack");
        got.extend(batch);
    }
}

/// The payloads of `deliveries` as text, in order.
pub(crate) fn texts(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|delivery| delivery.message.payload_text())
        .collect()
}
