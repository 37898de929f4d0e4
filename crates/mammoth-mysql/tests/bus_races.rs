//! The MySQL bus under races the conformance suite does not force: publishers in several
//! "processes" (store handles with pools of their own) against a live consumer, several
//! consumers of one group in several processes, and two relays of one name. Plus an ad-hoc
//! timing of 2,000 messages (printed, never asserted). Needs MAMMOTH_TEST_MYSQL_URL (skips
//! with a note without it, fails under CI=true).

// The event store tests' factory: this binary uses only part of it.
#[allow(dead_code)]
#[path = "mysql/common.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mammoth_core::bus::{
    BusConsumer, ConsumerGroup, Delivery, MessageBus, OutgoingMessage, RelayTarget,
    SubscribeOptions, Topic,
};
use mammoth_mysql::MysqlOptions;
use mammoth_mysql::bus::{MysqlBus, MysqlBusOptions, MysqlConsumer};

use common::{MyFactory, TestStore, factory, options};

fn topic(name: &str) -> Topic {
    Topic::new(name).expect("valid topic")
}

fn group(name: &str) -> ConsumerGroup {
    ConsumerGroup::new(name).expect("valid group")
}

/// Options for a store handle standing in for one process.
fn process() -> MysqlOptions {
    MysqlOptions {
        pool_size: 4,
        ..options("unused")
    }
}

/// A bus on a new store handle of `store`'s database: another process's view.
async fn other_process(factory: &MyFactory, store: &TestStore) -> (MysqlBus, TestStore) {
    let handle = factory.open_again(store, process()).await;
    let bus = MysqlBus::new(&handle.store, MysqlBusOptions::default());
    (bus, handle)
}

async fn subscribe(bus: &MysqlBus, topic_name: &str, group_name: &str) -> MysqlConsumer {
    bus.subscribe(
        &topic(topic_name),
        &group(group_name),
        SubscribeOptions::default(),
    )
    .await
    .expect("subscribe")
}

/// Receives and acks until nothing came for `quiet`.
async fn drain(consumer: &MysqlConsumer, quiet: Duration) -> Vec<Delivery> {
    let mut got = Vec::new();
    loop {
        let batch = consumer.receive(256, quiet).await.expect("receive");
        if batch.is_empty() {
            return got;
        }
        consumer.ack(&batch).await.expect("ack");
        got.extend(batch);
    }
}

/// Regression guard for gap safety. Sequence numbers are taken at publish; if two publishers'
/// transactions could commit out of sequence order, a consumer pulling between the two commits
/// would move its group cursor past the later-committing, smaller sequence number and never
/// deliver that message. Six processes publish one message per transaction while a seventh
/// consumes as fast as it can; every message must arrive, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn racing_publishers_never_let_a_group_cursor_skip_a_message() {
    let Some(factory) = factory() else { return };
    let store = factory.fresh_with(process()).await;
    let (consumer_bus, _consumer_handle) = other_process(&factory, &store).await;
    let consumer = subscribe(&consumer_bus, "orders", "billing").await;
    let publishing = Arc::new(AtomicBool::new(true));
    let reader = {
        let (consumer, publishing) = (consumer.clone(), publishing.clone());
        tokio::spawn(async move {
            let mut got = Vec::new();
            while publishing.load(Ordering::SeqCst) {
                let batch = consumer
                    .receive(8, Duration::from_millis(20))
                    .await
                    .expect("receive");
                consumer.ack(&batch).await.expect("ack");
                got.extend(batch);
            }
            got
        })
    };
    let mut publishers = Vec::new();
    let mut handles = Vec::new();
    for p in 0..6 {
        let (bus, handle) = other_process(&factory, &store).await;
        handles.push(handle);
        publishers.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for n in 0..120 {
                let text = format!("p{p}-{n}");
                bus.publish(&topic("orders"), vec![OutgoingMessage::new(text.clone())])
                    .await
                    .expect("publish");
                sent.push(text);
            }
            sent
        }));
    }
    let mut sent = BTreeSet::new();
    for publisher in publishers {
        sent.extend(publisher.await.expect("publisher"));
    }
    publishing.store(false, Ordering::SeqCst);
    let mut got = reader.await.expect("reader");
    got.extend(drain(&consumer, Duration::from_millis(500)).await);
    let texts: Vec<String> = got.iter().map(|d| d.message.payload_text()).collect();
    let received: BTreeSet<String> = texts.iter().cloned().collect();
    let lost: Vec<_> = sent.difference(&received).take(10).collect();
    assert!(lost.is_empty(), "never delivered: {lost:?}");
    assert_eq!(texts.len(), sent.len(), "some message was delivered twice");
}

/// Four processes consume one group at once with a long visibility timeout: the claims of
/// one group take turns on the group's row, so every message is delivered to exactly one of
/// them, on its first attempt, while more are being published.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn consumers_in_several_processes_share_a_group_and_never_get_one_message_twice() {
    let Some(factory) = factory() else { return };
    let store = factory.fresh_with(process()).await;
    const TOTAL: usize = 800;
    let publisher = MysqlBus::new(&store.store, MysqlBusOptions::default());
    // The group exists before anything is published, so no consumer races its creation.
    subscribe(&publisher, "jobs", "workers").await;
    let acked = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..4 {
        let (bus, handle) = other_process(&factory, &store).await;
        handles.push(handle);
        let consumer = subscribe(&bus, "jobs", "workers").await;
        let acked = acked.clone();
        workers.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut got = Vec::new();
            while acked.load(Ordering::SeqCst) < TOTAL && Instant::now() < deadline {
                let batch = consumer
                    .receive(8, Duration::from_millis(50))
                    .await
                    .expect("receive");
                // Hold the deliveries a moment, so leases of the processes overlap.
                tokio::task::yield_now().await;
                consumer.ack(&batch).await.expect("ack");
                acked.fetch_add(batch.len(), Ordering::SeqCst);
                got.extend(batch);
            }
            got
        }));
    }
    for chunk in 0..(TOTAL / 50) {
        let messages = (0..50)
            .map(|n| OutgoingMessage::new(format!("job-{}", chunk * 50 + n)))
            .collect();
        publisher
            .publish(&topic("jobs"), messages)
            .await
            .expect("publish");
    }
    let mut deliveries: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut per_worker = Vec::new();
    for worker in workers {
        let got = worker.await.expect("worker");
        per_worker.push(got.len());
        for delivery in got {
            deliveries
                .entry(delivery.message.payload_text())
                .or_default()
                .push(delivery.attempt);
        }
    }
    assert_eq!(
        deliveries.len(),
        TOTAL,
        "deliveries per worker: {per_worker:?}"
    );
    let twice: Vec<_> = deliveries
        .iter()
        .filter(|(_, attempts)| attempts.as_slice() != [1])
        .take(10)
        .collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    eprintln!("deliveries per consumer process: {per_worker:?}");
}

/// Two relays of one name in two processes race over the same events, each re-reading the
/// checkpoint and publishing overlapping batches with ids of its own (so the de-duplication
/// window cannot hide a double publish): the checkpoint check inside the publishing
/// transaction keeps every position published once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_of_one_name_racing_publish_every_position_once() {
    let Some(factory) = factory() else { return };
    let store = factory.fresh_with(process()).await;
    const LAST: u64 = 300;
    let mut racers = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..2 {
        let (bus, handle) = other_process(&factory, &store).await;
        handles.push(handle);
        racers.push(tokio::spawn(async move {
            loop {
                let done = bus.relay_checkpoint("outbox").await.expect("checkpoint");
                if done >= LAST {
                    return;
                }
                let through = (done + 7).min(LAST);
                let batch = (done + 1..=through)
                    .map(|position| {
                        (
                            position,
                            topic("events"),
                            OutgoingMessage::new(position.to_string()),
                        )
                    })
                    .collect();
                bus.relay_publish("outbox", batch, through)
                    .await
                    .expect("relay publish");
            }
        }));
    }
    for racer in racers {
        racer.await.expect("racer");
    }
    let bus = MysqlBus::new(&store.store, MysqlBusOptions::default());
    assert_eq!(
        bus.relay_checkpoint("outbox").await.expect("checkpoint"),
        LAST
    );
    let consumer = subscribe(&bus, "events", "check").await;
    let got = drain(&consumer, Duration::from_millis(300)).await;
    let mut positions: Vec<u64> = got
        .iter()
        .map(|d| d.message.payload_text().parse().expect("a position"))
        .collect();
    positions.sort_unstable();
    assert_eq!(positions, (1..=LAST).collect::<Vec<_>>());
}

/// Not a benchmark: 2,000 messages published by 16 concurrent publishers (one message per
/// publish, as `mammoth bench bus` does) and consumed by one worker acking batches of up to
/// 256, with the rates printed. Asserts only that every message arrived once.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_thousand_messages_are_published_received_and_acked_once() {
    let Some(factory) = factory() else { return };
    let store = factory
        .fresh_with(MysqlOptions {
            pool_size: 20,
            ..options("unused")
        })
        .await;
    const TOTAL: usize = 2_000;
    const PUBLISHERS: usize = 16;
    let bus = MysqlBus::new(&store.store, MysqlBusOptions::default());
    let consumer = subscribe(&bus, "bench", "worker").await;
    let started = Instant::now();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let bus = bus.clone();
            tokio::spawn(async move {
                for n in (p..TOTAL).step_by(PUBLISHERS) {
                    bus.publish(&topic("bench"), vec![OutgoingMessage::new(n.to_string())])
                        .await
                        .expect("publish");
                }
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut deliveries = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < TOTAL && Instant::now() < deadline {
        let batch = consumer
            .receive(256, Duration::from_millis(100))
            .await
            .expect("receive");
        consumer.ack(&batch).await.expect("ack");
        deliveries += batch.len();
        seen.extend(batch.iter().map(|d| d.message.payload_text()));
    }
    let end_to_end = started.elapsed();
    for publisher in publishers {
        publisher.await.expect("publisher");
    }
    assert_eq!((seen.len(), deliveries), (TOTAL, TOTAL));
    // The two halves apart: publishes alone, then one worker draining what they stored.
    let consumer = subscribe(&bus, "alone", "worker").await;
    let publish_started = Instant::now();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let bus = bus.clone();
            tokio::spawn(async move {
                for n in (p..TOTAL).step_by(PUBLISHERS) {
                    bus.publish(&topic("alone"), vec![OutgoingMessage::new(n.to_string())])
                        .await
                        .expect("publish");
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.expect("publisher");
    }
    let publish_alone = publish_started.elapsed();
    let drain_started = Instant::now();
    let drained = drain(&consumer, Duration::from_millis(1)).await.len();
    let drain_alone = drain_started.elapsed();
    assert_eq!(drained, TOTAL);
    let batch_started = Instant::now();
    for chunk in 0..(TOTAL / 100) {
        let messages = (0..100)
            .map(|n| OutgoingMessage::new(format!("b{}", chunk * 100 + n)))
            .collect();
        bus.publish(&topic("batched"), messages)
            .await
            .expect("publish a batch");
    }
    let batched = batch_started.elapsed();
    eprintln!(
        "mysql bus: {TOTAL} messages, {PUBLISHERS} publishers x 1 message per publish, one worker acking up to 256: \
         publish -> receive -> ack {:.0} msgs/s ({end_to_end:?}); publishes alone {:.0} msgs/s ({publish_alone:?}); \
         receive + ack alone {:.0} msgs/s ({drain_alone:?}); publish in batches of 100: {:.0} msgs/s ({batched:?})",
        TOTAL as f64 / end_to_end.as_secs_f64(),
        TOTAL as f64 / publish_alone.as_secs_f64(),
        TOTAL as f64 / drain_alone.as_secs_f64(),
        TOTAL as f64 / batched.as_secs_f64(),
    );
}

/// Publishes that arrive together are committed in one transaction; one that cannot be stored
/// (a payload over the server's `max_allowed_packet`) fails alone, with an error naming the
/// limit and the fix, and the others are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_publish_fails_alone_and_the_publishes_beside_it_are_stored() {
    let Some(factory) = factory() else { return };
    let store = factory.fresh_with(process()).await;
    let bus = MysqlBus::new(&store.store, MysqlBusOptions::default());
    let consumer = subscribe(&bus, "mixed", "check").await;
    // Above MariaDB's and MySQL's default max_allowed_packet (16 MiB and 64 MiB).
    let huge = vec![b'x'; 65 << 20];
    let mut publishes = Vec::new();
    for n in 0..12 {
        let bus = bus.clone();
        let payload = if n == 5 {
            huge.clone()
        } else {
            format!("small-{n}").into_bytes()
        };
        publishes.push(tokio::spawn(async move {
            bus.publish(&topic("mixed"), vec![OutgoingMessage::new(payload)])
                .await
        }));
    }
    let mut failed = 0;
    for publish in publishes {
        if let Err(error) = publish.await.expect("publisher") {
            assert!(error.to_string().contains("max_allowed_packet"), "{error}");
            failed += 1;
        }
    }
    assert_eq!(failed, 1, "only the oversized publish fails");
    let mut got: Vec<String> = drain(&consumer, Duration::from_millis(300))
        .await
        .iter()
        .map(|d| d.message.payload_text())
        .collect();
    got.sort();
    let mut expected: Vec<String> = (0..12)
        .filter(|n| *n != 5)
        .map(|n| format!("small-{n}"))
        .collect();
    expected.sort();
    assert_eq!(got, expected);
}
