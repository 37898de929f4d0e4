//! Cross-process wake-ups of the PostgreSQL bus: a publish NOTIFYs the schema's bus channel,
//! and a handle (`PgBus::new`, or `PgBus::with_listener` for another URL) wakes its waiting
//! consumers on it instead of waiting for the next poll; `PgBus::polling` only polls. Two
//! handles on one schema, each with its own store and pool, stand for two processes. Needs MAMMOTH_TEST_POSTGRES_URL (skips with a note without it,
//! fails under CI=true).

// The event store tests' factory: this binary uses only part of it.
#[allow(dead_code)]
#[path = "postgres/common.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mammoth_core::bus::{
    BusConsumer, ConsumerGroup, MessageBus, OutgoingMessage, SubscribeOptions, Topic,
};
use mammoth_postgres::bus::{PgBus, PgBusOptions, PgConsumer};

use common::{PgFactory, TestStore, factory, options};

fn topic(name: &str) -> Topic {
    Topic::new(name).expect("valid topic")
}

fn group(name: &str) -> ConsumerGroup {
    ConsumerGroup::new(name).expect("valid group")
}

/// Two stores on one schema: the publisher's and the consumer's "process".
async fn two_processes(factory: &PgFactory) -> (TestStore, TestStore) {
    let first = factory.fresh_with(options("unused")).await;
    let second = factory.open_again(&first, options("unused")).await;
    (first, second)
}

/// A poll interval no test waits out: a delivery within a test's wait came from a wake-up.
fn slow_polling() -> PgBusOptions {
    PgBusOptions {
        poll_interval: Duration::from_secs(10),
        ..PgBusOptions::default()
    }
}

/// Publishes `payload` on `bus` after `after`, from a task of its own.
fn publish_later(bus: PgBus, orders: Topic, payload: &'static str, after: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        bus.publish(
            &orders,
            vec![OutgoingMessage::new(payload.as_bytes().to_vec())],
        )
        .await
        .expect("publish");
    });
}

/// The consumer polls only every 10 s, yet a publish on another handle reaches its waiting
/// receive within 5 s: the publish's NOTIFY woke it through the handle's listener. Without the
/// notification (or the listener) the receive, asked to wait 8 s, would claim again only at
/// its deadline, after the 5 s this test allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_on_another_handle_is_woken_long_before_its_poll_interval() {
    let Some(factory) = factory() else { return };
    let (publisher, consumer_store) = two_processes(&factory).await;
    let orders = topic("orders");
    let publishing = PgBus::new(&publisher.store, PgBusOptions::default());
    let consuming = PgBus::new(&consumer_store.store, slow_polling());
    let consumer = listening_consumer(&consuming, &orders, "billing").await;

    publish_later(
        publishing.clone(),
        orders.clone(),
        "o-1",
        Duration::from_millis(200),
    );
    let got = tokio::time::timeout(
        Duration::from_secs(5),
        consumer.receive(1, Duration::from_secs(8)),
    )
    .await
    .expect(
        "the publish on the other handle must wake the waiting consumer well before its 10 s poll",
    )
    .expect("receive");
    let payloads: Vec<&[u8]> = got.iter().map(|d| d.message.payload.as_slice()).collect();
    assert_eq!(
        payloads,
        vec![b"o-1".as_slice()],
        "the publish on the other handle must wake the waiting consumer well before its 10 s poll"
    );
    consumer.ack(&got).await.expect("ack");
}

/// The control for the test above: a handle without a listener, polling every 10 s, is not
/// woken by another handle's publish; its receive, asked to wait 3 s, is still waiting after
/// 1 s (it would find the message at its deadline or next poll).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_without_a_listener_waits_for_its_poll() {
    let Some(factory) = factory() else { return };
    let (publisher, consumer_store) = two_processes(&factory).await;
    let orders = topic("orders");
    let publishing = PgBus::new(&publisher.store, PgBusOptions::default());
    let consuming = PgBus::polling(&consumer_store.store, slow_polling());
    let consumer = consuming
        .subscribe(&orders, &group("billing"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    // Warm the pool up, so the receive below has claimed (and found nothing) before the
    // publish commits.
    consumer.receive(1, Duration::ZERO).await.expect("receive");
    publish_later(publishing, orders, "o-1", Duration::from_millis(200));
    let waited = tokio::time::timeout(
        Duration::from_secs(1),
        consumer.receive(1, Duration::from_secs(3)),
    )
    .await;
    assert!(
        waited.is_err(),
        "without a listener only a poll finds another handle's publish, got {waited:?}"
    );
    // The message is there all the same: the next claim finds it.
    let got = consumer.receive(1, Duration::ZERO).await.expect("receive");
    assert_eq!(got.len(), 1, "the message was stored");
}

/// The bus channel of `schema`, as the driver names it (FNV-1a of the schema name).
fn bus_channel(schema: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in schema.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("mammoth_bus_{hash:016x}")
}

/// Ends the server sessions listening on `schema`'s bus channel; returns how many.
async fn terminate_listeners(url: &str, schema: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    let driver = tokio::spawn(connection);
    let listen = format!("LISTEN {}", bus_channel(schema));
    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = $1",
            &[&listen],
        )
        .await
        .expect("terminate the listeners")
        .get(0);
    drop(client);
    let _ = driver.await;
    killed
}

/// The listener's connection is killed by the server; the handle reconnects on its own and
/// a later publish on another handle still wakes the consumer long before its 10 s poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_listener_connection_reconnects_and_wakes_again() {
    let Some(factory) = factory() else { return };
    let (publisher, consumer_store) = two_processes(&factory).await;
    let orders = topic("orders");
    let publishing = PgBus::new(&publisher.store, PgBusOptions::default());
    let consuming = PgBus::with_listener(&consumer_store.store, slow_polling(), &factory.url)
        .expect("the test URL parses");
    let consumer = listening_consumer(&consuming, &orders, "billing").await;
    let killed = terminate_listeners(&factory.url, &consumer_store.guard.schema).await;
    assert_eq!(killed, 1, "the handle had one listening connection");

    publish_later(publishing, orders, "o-1", Duration::from_millis(500));
    let got = tokio::time::timeout(
        Duration::from_secs(5),
        consumer.receive(1, Duration::from_secs(8)),
    )
    .await
    .expect("the reconnected listener must wake the consumer well before its 10 s poll")
    .expect("receive");
    assert_eq!(got.len(), 1);
    consumer.ack(&got).await.expect("ack");
}

/// A consumer of `orders` in group `name` on `bus`, after a first, empty wait that starts the
/// handle's listener (if it has one): a publish after this is announced by its notification,
/// not by the wake-up the listener gives when it starts.
async fn listening_consumer(bus: &PgBus, orders: &Topic, name: &str) -> PgConsumer {
    let consumer = bus
        .subscribe(orders, &group(name), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let nothing = consumer
        .receive(1, Duration::from_millis(300))
        .await
        .expect("receive");
    assert!(
        nothing.is_empty(),
        "nothing was published on {orders:?} yet"
    );
    consumer
}

/// Percentile `p` (0..=100) of sorted `values`.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let index = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted[index]
}

/// Publishes `count` single messages on `publishing`, one after another with a short pause,
/// while a consumer of `consuming` receives them; returns each message's latency from the
/// start of its publish call to its delivery.
async fn delivery_latencies(publishing: &PgBus, consuming: &PgBus, count: usize) -> Vec<Duration> {
    let orders = topic("latency");
    // Start the consumer's listener (if it has one) before measuring.
    let consumer = listening_consumer(consuming, &orders, "timing").await;
    let sent: Arc<Mutex<BTreeMap<usize, Instant>>> = Arc::default();
    let received = tokio::spawn(async move {
        let mut at = BTreeMap::new();
        while at.len() < count {
            let batch = consumer
                .receive(16, Duration::from_secs(5))
                .await
                .expect("receive");
            assert!(!batch.is_empty(), "deliveries stopped at {}", at.len());
            let now = Instant::now();
            for delivery in &batch {
                let n: usize = String::from_utf8_lossy(&delivery.message.payload)
                    .parse()
                    .expect("a numbered payload");
                at.insert(n, now);
            }
            consumer.ack(&batch).await.expect("ack");
        }
        at
    });
    for n in 0..count {
        sent.lock().expect("not poisoned").insert(n, Instant::now());
        publishing
            .publish(
                &orders,
                vec![OutgoingMessage::new(n.to_string().into_bytes())],
            )
            .await
            .expect("publish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let received = received.await.expect("the consumer task");
    let sent = sent.lock().expect("not poisoned");
    let mut latencies: Vec<Duration> = received
        .iter()
        .map(|(n, at)| at.saturating_duration_since(sent[n]))
        .collect();
    latencies.sort();
    latencies
}

/// Not a pass/fail check: the delivery latency of 200 single publishes on one handle to a
/// consumer on another, polling (every 50 ms, the default) against woken by the listener,
/// printed as p50/p99 (timings vary with the machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cross_handle_delivery_latency_timing() {
    let Some(factory) = factory() else { return };
    let count = 200;
    let (publisher, consumer_store) = two_processes(&factory).await;
    let publishing = PgBus::new(&publisher.store, PgBusOptions::default());
    let polling = PgBus::polling(&consumer_store.store, PgBusOptions::default());
    let polled = delivery_latencies(&publishing, &polling, count).await;
    drop(polling);

    let (publisher, consumer_store) = two_processes(&factory).await;
    let publishing = PgBus::new(&publisher.store, PgBusOptions::default());
    let listening =
        PgBus::with_listener(&consumer_store.store, PgBusOptions::default(), &factory.url)
            .expect("the test URL parses");
    let woken = delivery_latencies(&publishing, &listening, count).await;
    assert_eq!((polled.len(), woken.len()), (count, count));
    eprintln!(
        "postgres bus, {count} single publishes, handle A -> consumer on handle B: polling every 50 ms p50 {:?} p99 {:?}; LISTEN/NOTIFY p50 {:?} p99 {:?}",
        percentile(&polled, 50),
        percentile(&polled, 99),
        percentile(&woken, 50),
        percentile(&woken, 99),
    );
}
