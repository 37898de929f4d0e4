//! The bus conformance suite against PostgreSQL, plus races the suite does not force: many
//! publishers against a moving cursor, consumers of one group on separate handles (as
//! separate processes would be), and two relays of one name. Every bus lives in a schema of its
//! own, dropped with its last handle. Needs MAMMOTH_TEST_POSTGRES_URL (skips with a note
//! without it, fails under CI=true).

// The event store tests' factory: this binary uses only part of it.
#[allow(dead_code)]
#[path = "postgres/common.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mammoth_core::Position;
use mammoth_core::bus::{
    BusConsumer, BusError, ConsumerGroup, DeadLetter, DeadLetterFilter, Delivery, MessageBus,
    OutgoingMessage, Published, RelayTarget, SubscribeOptions, Topic, TopicStats,
};
use mammoth_postgres::bus::{PgBus, PgBusOptions, PgConsumer};
use mammoth_testkit::{BusFactory, StoreFactory};

use common::{PgFactory, TestStore, factory, options};

/// A bus and the event store (with its schema guard) whose pool and schema it shares.
pub struct TestBus {
    bus: PgBus,
    events: TestStore,
}

impl BusFactory for PgFactory {
    type Bus = TestBus;

    async fn fresh(&self) -> TestBus {
        let events = StoreFactory::fresh(self).await;
        let bus = PgBus::new(&events.store, PgBusOptions::default());
        TestBus { bus, events }
    }

    async fn reopen(&self, bus: TestBus) -> Option<TestBus> {
        let TestBus { bus, events } = bus;
        drop(bus);
        let events = StoreFactory::reopen(self, events)
            .await
            .expect("a PostgreSQL store reopens");
        let bus = PgBus::new(&events.store, PgBusOptions::default());
        Some(TestBus { bus, events })
    }
}

impl MessageBus for TestBus {
    type Consumer = PgConsumer;

    async fn publish(
        &self,
        topic: &Topic,
        messages: Vec<OutgoingMessage>,
    ) -> Result<Vec<Published>, BusError> {
        self.bus.publish(topic, messages).await
    }

    async fn subscribe(
        &self,
        topic: &Topic,
        group: &ConsumerGroup,
        options: SubscribeOptions,
    ) -> Result<PgConsumer, BusError> {
        self.bus.subscribe(topic, group, options).await
    }

    async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        self.bus.dead_letters(filter, limit).await
    }

    async fn replay_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, BusError> {
        self.bus.replay_dead_letters(filter).await
    }

    async fn discard_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, BusError> {
        self.bus.discard_dead_letters(filter).await
    }

    async fn stats(&self) -> Result<Vec<TopicStats>, BusError> {
        self.bus.stats().await
    }
}

mammoth_testkit::bus_conformance_tests!({
    match factory() {
        Some(factory) => factory,
        None => return,
    }
});

/// Another handle on `first`'s schema, with a pool of its own: what another process sharing
/// the database would have.
async fn another_process(factory: &PgFactory, first: &TestBus) -> TestBus {
    let events = factory.open_again(&first.events, options("unused")).await;
    let bus = PgBus::new(&events.store, PgBusOptions::default());
    TestBus { bus, events }
}

fn topic(name: &str) -> Topic {
    Topic::new(name).expect("valid topic")
}

fn group(name: &str) -> ConsumerGroup {
    ConsumerGroup::new(name).expect("valid group")
}

/// Long leases: within these tests nothing is redelivered, so any second delivery is a bug.
fn patient() -> SubscribeOptions {
    SubscribeOptions {
        visibility_timeout: Duration::from_secs(60),
        ..SubscribeOptions::default()
    }
}

/// Receives and acks until `want` distinct payloads came or `within` passed; returns every
/// delivery's payload (duplicates kept).
async fn drain_until(consumer: &PgConsumer, want: usize, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut distinct = BTreeSet::new();
    while distinct.len() < want && Instant::now() < deadline {
        let batch: Vec<Delivery> = consumer
            .receive(16, Duration::from_millis(100))
            .await
            .expect("receive");
        consumer.ack(&batch).await.expect("ack");
        for delivery in &batch {
            distinct.insert(delivery.message.payload_text());
            got.push(delivery.message.payload_text());
        }
    }
    got
}

/// Regression guard for the gap hazard: group cursors move by sequence number, so if two
/// publishers' transactions could commit out of sequence order, a consumer pulling between
/// the two commits would move its cursor past the later-committing, lower-numbered message and
/// never deliver it. Eight handles (eight pools) publish small batches to one topic as fast as
/// they can while four groups' consumers pull every millisecond; every group must get every
/// message. (With sequence numbers reserved in a transaction of their own, committed before
/// the messages, this test lost messages when tried.)
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn racing_publishers_never_let_a_cursor_skip_a_message() {
    let Some(factory) = factory() else { return };
    let first = BusFactory::fresh(&factory).await;
    let orders = topic("orders");
    let (publishers, batches, per_batch) = (8, 60, 3);
    let total = publishers * batches * per_batch;
    let mut handles = Vec::new();
    for _ in 0..publishers {
        handles.push(Arc::new(another_process(&factory, &first).await));
    }
    let eager = PgBus::new(
        &first.events.store,
        PgBusOptions {
            poll_interval: Duration::from_millis(1),
            ..PgBusOptions::default()
        },
    );
    let mut receiving = Vec::new();
    for name in ["billing", "shipping", "audit", "mail"] {
        let consumer = eager
            .subscribe(&orders, &group(name), patient())
            .await
            .expect("subscribe");
        receiving.push(tokio::spawn(async move {
            drain_until(&consumer, total, Duration::from_secs(20)).await
        }));
    }
    let mut tasks = Vec::new();
    let mut sent = BTreeSet::new();
    for (p, handle) in handles.iter().enumerate() {
        let handle = handle.clone();
        let texts: Vec<String> = (0..batches * per_batch)
            .map(|n| format!("p{p}-{n}"))
            .collect();
        sent.extend(texts.clone());
        let orders = orders.clone();
        tasks.push(tokio::spawn(async move {
            for chunk in texts.chunks(per_batch) {
                let batch = chunk
                    .iter()
                    .map(|text| OutgoingMessage::new(text.as_bytes().to_vec()))
                    .collect();
                handle.bus.publish(&orders, batch).await.expect("publish");
            }
        }));
    }
    for task in tasks {
        task.await.expect("publisher");
    }
    for consumer in receiving {
        let got = consumer.await.expect("consumer");
        let unique: BTreeSet<String> = got.iter().cloned().collect();
        let lost: Vec<&String> = sent.difference(&unique).collect();
        assert!(lost.is_empty(), "{} messages skipped: {lost:?}", lost.len());
        assert_eq!(got.len(), total, "a message was delivered twice");
    }
}

/// Four consumers of one group, each on its own handle and pool (four processes), receive
/// concurrently: every message is delivered, and none goes to two consumers while its lease
/// holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn consumers_on_separate_handles_never_share_a_delivery() {
    let Some(factory) = factory() else { return };
    let first = BusFactory::fresh(&factory).await;
    let orders = topic("orders");
    let total = 600;
    let texts: Vec<String> = (0..total).map(|n| format!("m{n}")).collect();
    for chunk in texts.chunks(50) {
        let batch = chunk
            .iter()
            .map(|text| OutgoingMessage::new(text.as_bytes().to_vec()))
            .collect();
        first.bus.publish(&orders, batch).await.expect("publish");
    }
    let mut handles = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let handle = another_process(&factory, &first).await;
        let consumer = handle
            .bus
            .subscribe(&orders, &group("billing"), patient())
            .await
            .expect("subscribe");
        handles.push(handle);
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            // Small batches and an idle stop: the four keep competing for the same rows.
            loop {
                let batch = consumer
                    .receive(4, Duration::from_millis(300))
                    .await
                    .expect("receive");
                if batch.is_empty() {
                    return got;
                }
                consumer.ack(&batch).await.expect("ack");
                got.extend(batch.iter().map(|d| d.message.payload_text()));
            }
        }));
    }
    let mut per_consumer = Vec::new();
    let mut all: BTreeMap<String, usize> = BTreeMap::new();
    for task in tasks {
        let got = task.await.expect("consumer");
        per_consumer.push(got.len());
        for text in got {
            *all.entry(text).or_default() += 1;
        }
    }
    let twice: Vec<&String> = all
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(t, _)| t)
        .collect();
    assert!(twice.is_empty(), "delivered to two consumers: {twice:?}");
    let expected: BTreeSet<String> = texts.into_iter().collect();
    let got: BTreeSet<String> = all.into_keys().collect();
    assert_eq!(got, expected, "messages lost");
    eprintln!("deliveries per consumer: {per_consumer:?}");
}

/// One `relay_publish` call's messages, each with the position of its event.
type RelayBatch = Vec<(Position, Topic, OutgoingMessage)>;

/// Two relays of one name on separate handles publish overlapping batches at once: the
/// checkpoint check under the relay row's lock keeps every event published exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_of_one_name_publish_every_event_once() {
    let Some(factory) = factory() else { return };
    let first = BusFactory::fresh(&factory).await;
    let second = another_process(&factory, &first).await;
    let (orders, audit) = (topic("orders"), topic("audit"));
    // Events 1..=200; odd ones go to orders, even ones to audit. Ids differ per relay so the
    // de-duplication window cannot hide a double publish.
    let batch = |from: Position| -> RelayBatch {
        (from..from + 20)
            .map(|position| {
                let topic = if position % 2 == 1 { &orders } else { &audit };
                let message = OutgoingMessage::new(format!("e{position}").into_bytes());
                (position, topic.clone(), message)
            })
            .collect()
    };
    let mut work = Vec::new();
    for start in (1..=200).step_by(20) {
        work.push((batch(start), start + 19));
    }
    let run = |bus: PgBus, work: Vec<(RelayBatch, Position)>| {
        tokio::spawn(async move {
            for (batch, through) in work {
                bus.relay_publish("outbox", batch, through)
                    .await
                    .expect("relay_publish");
            }
        })
    };
    let a = run(first.bus.clone(), work.clone());
    let b = run(second.bus.clone(), work);
    a.await.expect("relay a");
    b.await.expect("relay b");
    assert_eq!(
        first
            .bus
            .relay_checkpoint("outbox")
            .await
            .expect("checkpoint"),
        200
    );
    let mut seen = Vec::new();
    for topic in [&orders, &audit] {
        let consumer = first
            .bus
            .subscribe(topic, &group("check"), patient())
            .await
            .expect("subscribe");
        seen.extend(drain_until(&consumer, 100, Duration::from_secs(10)).await);
    }
    seen.sort();
    let mut expected: Vec<String> = (1..=200).map(|p| format!("e{p}")).collect();
    expected.sort();
    assert_eq!(seen, expected, "each event published exactly once");
}

/// Not a pass/fail check: publish, receive and ack 2,000 messages on one handle, and print
/// how long each phase took (for the report; timings vary with the machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publish_receive_ack_two_thousand_messages_timing() {
    let Some(factory) = factory() else { return };
    let bus = BusFactory::fresh(&factory).await;
    let orders = topic("orders");
    let consumer = bus
        .bus
        .subscribe(&orders, &group("billing"), patient())
        .await
        .expect("subscribe");
    let total = 2000;
    let started = Instant::now();
    for n in 0..total {
        bus.bus
            .publish(
                &orders,
                vec![OutgoingMessage::new(format!("m{n}").into_bytes())],
            )
            .await
            .expect("publish");
    }
    let published = started.elapsed();
    let started = Instant::now();
    let mut got = 0;
    while got < total {
        let batch = consumer
            .receive(100, Duration::from_millis(200))
            .await
            .expect("receive");
        assert!(!batch.is_empty(), "messages stopped coming at {got}");
        consumer.ack(&batch).await.expect("ack");
        got += batch.len();
    }
    let consumed = started.elapsed();
    assert_eq!(got, total);
    // The same count again from 16 tasks at once: publishes through one handle are
    // group-committed (one transaction, one topic lock, one flush for those queued), so this
    // shows what grouping gains over taking turns on the topic's head row.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..16 {
        let (bus, orders) = (bus.bus.clone(), orders.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..total / 16 {
                let message = OutgoingMessage::new(format!("c{task}-{n}").into_bytes());
                bus.publish(&orders, vec![message]).await.expect("publish");
            }
        }));
    }
    for task in tasks {
        task.await.expect("publisher");
    }
    let concurrent = started.elapsed();
    let rate = |elapsed: Duration| total as f64 / elapsed.as_secs_f64();
    eprintln!(
        "postgres bus, {total} messages: publish one at a time {published:?} ({:.0}/s); receive 100 + ack {consumed:?} ({:.0}/s); 16 concurrent publishers, one topic {concurrent:?} ({:.0}/s)",
        rate(published),
        rate(consumed),
        rate(concurrent)
    );
}

/// PostgreSQL text cannot hold a NUL character: a key or header with one is refused before
/// anything is written, naming the field, and the rest of the batch is not stored either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_key_or_header_is_refused_and_nothing_is_stored() {
    let Some(factory) = factory() else { return };
    let bus = BusFactory::fresh(&factory).await;
    let orders = topic("orders");
    let fine = OutgoingMessage::new(b"fine\0bytes are fine in a payload".to_vec());
    let bad_key = OutgoingMessage::new(b"x".to_vec()).keyed("order\0-1");
    let error = bus
        .bus
        .publish(&orders, vec![fine.clone(), bad_key])
        .await
        .expect_err("a NUL in a key");
    assert!(
        matches!(&error, BusError::InvalidInput(text) if text.contains("its key")),
        "{error}"
    );
    let bad_header = OutgoingMessage::new(b"x".to_vec()).header("trace", "a\0b");
    let error = bus
        .bus
        .relay_publish("outbox", vec![(1, orders.clone(), bad_header)], 1)
        .await
        .expect_err("a NUL in a header");
    assert!(error.to_string().contains("header \"trace\""), "{error}");
    assert_eq!(
        bus.bus
            .relay_checkpoint("outbox")
            .await
            .expect("checkpoint"),
        0
    );
    assert!(
        bus.bus.stats().await.expect("stats").is_empty(),
        "nothing stored"
    );
    let stored = bus.bus.publish(&orders, vec![fine]).await.expect("publish");
    assert!(!stored[0].duplicate);
}
