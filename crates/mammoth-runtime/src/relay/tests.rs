//! [`Relay::run`] against a target whose broker is down for longer than the relay's bounded
//! retry policy.
//!
//! Regression: the live relay used to give up after its policy's attempts (about 6 s of
//! backoff), so a broker that took longer to restart stopped the relay for good and every
//! command committed after it stayed in the outbox. A transient error now only delays it.

use std::sync::{Arc, Mutex};

use mammoth_core::bus::{OutgoingMessage, Topic};
use mammoth_core::{
    AppendResult, Direction, ExpectedVersion, InMemoryEventStore, NewEvent, RecordedEvent,
    StreamId, Version,
};
use serde_json::json;
use tokio::sync::watch;

use super::*;

/// The in-memory store, shared by the test and the relay (the relay needs `Clone`).
#[derive(Clone, Default)]
struct SharedStore(Arc<InMemoryEventStore>);

impl EventStore for SharedStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.0.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: Option<Version>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.0.read_stream(stream, direction, from, limit).await
    }

    async fn read_all(
        &self,
        from: Position,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.0.read_all(from, filter, limit).await
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        self.0.head_position().await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version, StoreError> {
        self.0.stream_version(stream).await
    }

    async fn wait_for_append(&self, after: Position) -> Result<(), StoreError> {
        self.0.wait_for_append(after).await
    }
}

#[derive(Default)]
struct Broker {
    failures_left: u32,
    calls: u32,
    published: Vec<Position>,
    checkpoint: Position,
}

/// A relay target that is down for `failures_left` calls, then keeps what it is sent.
#[derive(Clone, Default)]
struct FlakyTarget(Arc<Mutex<Broker>>);

impl FlakyTarget {
    fn broker(&self) -> std::sync::MutexGuard<'_, Broker> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl RelayTarget for FlakyTarget {
    async fn relay_checkpoint(&self, _name: &str) -> Result<Position, BusError> {
        Ok(self.broker().checkpoint)
    }

    async fn relay_publish(
        &self,
        _name: &str,
        batch: Vec<(Position, Topic, OutgoingMessage)>,
        through: Position,
    ) -> Result<(), BusError> {
        let mut broker = self.broker();
        broker.calls += 1;
        if broker.failures_left > 0 {
            broker.failures_left -= 1;
            return Err(BusError::backend(
                "test",
                "publishing",
                "connection refused",
                true,
            ));
        }
        broker
            .published
            .extend(batch.iter().map(|(position, ..)| *position));
        broker.checkpoint = through;
        Ok(())
    }
}

async fn store_with(events: usize) -> SharedStore {
    let store = SharedStore::default();
    let stream = StreamId::new("order-1").expect("stream id");
    let batch = (0..events)
        .map(|n| NewEvent::json("OrderNoted", json!({ "n": n })).expect("event"))
        .collect();
    store
        .append(&stream, ExpectedVersion::Any, batch)
        .await
        .expect("append");
    store
}

#[tokio::test]
async fn the_live_relay_outlasts_an_outage_longer_than_its_retry_policy_and_publishes_everything() {
    let store = store_with(10).await;
    let target = FlakyTarget::default();
    // Three times the policy's attempts: the old relay gave up after the second.
    target.broker().failures_left = 6;
    let relay = Relay::new(
        "outbox",
        store.clone(),
        target.clone(),
        TopicMap::all_to(Topic::new("events").expect("topic")),
    )
    .with_batch(4)
    .with_retry(RetryPolicy {
        max_attempts: 2,
        base: Duration::from_millis(1),
        factor: 2,
        cap: Duration::from_millis(2),
    });
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(async move {
        let mut stopped = stopped;
        relay
            .run(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    });
    let head = store.head_position().await.expect("head");
    for _ in 0..2_000 {
        if target.broker().checkpoint == head {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send_replace(true);
    running
        .await
        .expect("the relay did not panic")
        .expect("a transient outage never stops the live relay");
    let broker = target.broker();
    assert_eq!(broker.checkpoint, head, "the checkpoint reached the head");
    assert_eq!(
        broker.published,
        (1..=head).collect::<Vec<_>>(),
        "every event published once, in order: the checkpoint never moved past a failed batch"
    );
    assert!(broker.calls > 6, "the outage was retried through");
}

#[tokio::test]
async fn a_shutdown_during_an_outage_ends_the_live_relay_without_moving_the_checkpoint() {
    let store = store_with(3).await;
    let target = FlakyTarget::default();
    target.broker().failures_left = u32::MAX;
    let relay = Relay::new(
        "outbox",
        store,
        target.clone(),
        TopicMap::all_to(Topic::new("events").expect("topic")),
    )
    .with_retry(RetryPolicy {
        max_attempts: 2,
        base: Duration::from_millis(1),
        factor: 2,
        cap: Duration::from_millis(2),
    });
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(async move {
        let mut stopped = stopped;
        relay
            .run(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    });
    for _ in 0..2_000 {
        if target.broker().calls > 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send_replace(true);
    running
        .await
        .expect("the relay did not panic")
        .expect("a shutdown is not an error");
    let broker = target.broker();
    assert_eq!(broker.checkpoint, 0);
    assert!(broker.published.is_empty());
}
