//! Crash tests for the embedded bus and the outbox relay, with real SIGKILLs of a child
//! process (this test binary, re-run as the child):
//!
//! - A consumer killed mid-handler loses its delivery only for the visibility timeout: the
//!   message comes back to the group's next consumer as attempt 2.
//! - A process that appends and relays is killed at random moments, again and again; after
//!   the last restart every committed event is in the bus exactly once, in log order.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mammoth_core::bus::{
    BusConsumer, ConsumerGroup, MessageBus, OutgoingMessage, SubscribeOptions, Topic, TopicMap,
};
use mammoth_core::{EventFilter, EventStore, ExpectedVersion, NewEvent, StreamId};
use mammoth_runtime::Relay;
use mammoth_sqlite::{SqliteBus, SqliteBusOptions, SqliteEventStore, SqliteOptions};

const CHILD_ENV: &str = "MAMMOTH_BUS_CRASH_DB";
const VISIBILITY: Duration = Duration::from_millis(700);

fn child(test: &str, path: &std::path::Path) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child")
}

/// Waits for the child to print `wanted` (libtest prints its own lines first).
fn wait_for_line(child: &mut Child, wanted: &str) {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let found = lines.any(|line| line.is_ok_and(|line| line.trim().ends_with(wanted)));
    assert!(found, "the child never printed {wanted:?}");
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
}

fn options() -> SubscribeOptions {
    SubscribeOptions {
        visibility_timeout: VISIBILITY,
        ..SubscribeOptions::default()
    }
}

/// Runs only as the child of `a_consumer_killed_mid_handler_loses_its_message_only_until_the_visibility_timeout`.
#[tokio::test]
#[ignore = "runs as the child process of the crash test"]
async fn crash_child_receives_and_hangs_in_its_handler() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let bus = SqliteBus::open(&path, SqliteBusOptions::default()).expect("open");
    let topic = Topic::new("orders").expect("topic");
    let group = ConsumerGroup::new("billing").expect("group");
    let consumer = bus
        .subscribe(&topic, &group, options())
        .await
        .expect("subscribe");
    let got = consumer
        .receive(1, Duration::from_secs(10))
        .await
        .expect("receive");
    println!("handling {}", got[0].message.payload_text());
    // The handler never finishes: the parent kills this process here.
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test]
async fn a_consumer_killed_mid_handler_loses_its_message_only_until_the_visibility_timeout() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("mammoth.db");
    let bus = SqliteBus::open(&path, SqliteBusOptions::default()).expect("open");
    let topic = Topic::new("orders").expect("topic");
    let group = ConsumerGroup::new("billing").expect("group");
    bus.publish(&topic, vec![OutgoingMessage::new(b"order-1".to_vec())])
        .await
        .expect("publish");
    let mut worker = child("crash_child_receives_and_hangs_in_its_handler", &path);
    wait_for_line(&mut worker, "handling order-1");
    worker.kill().expect("SIGKILL");
    worker.wait().expect("reap");
    let killed_at = Instant::now();
    let consumer = bus
        .subscribe(&topic, &group, options())
        .await
        .expect("subscribe");
    let again = consumer
        .receive(1, Duration::from_secs(10))
        .await
        .expect("receive");
    assert_eq!(again.len(), 1, "the message was lost with its consumer");
    assert_eq!(again[0].message.payload_text(), "order-1");
    assert_eq!(again[0].attempt, 2);
    assert!(killed_at.elapsed() <= VISIBILITY + Duration::from_secs(1));
    consumer.ack(&again).await.expect("ack");
    let later = consumer.receive(1, VISIBILITY * 2).await.expect("receive");
    assert!(later.is_empty(), "an acked message came back");
}

/// Runs only as the child of `a_relay_killed_at_random_moments_publishes_every_event_once`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs as the child process of the crash test"]
async fn crash_child_appends_and_relays_until_killed() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = SqliteEventStore::open(&path, SqliteOptions::default()).expect("open store");
    let bus = SqliteBus::open(&path, SqliteBusOptions::default()).expect("open bus");
    let topics = TopicMap::all_to(Topic::new("events").expect("topic"));
    let relay = Relay::new("outbox", store.clone(), bus, topics).with_batch(64);
    let relaying = tokio::spawn(async move { relay.run(std::future::pending()).await });
    println!("started");
    let mut n = 0u64;
    loop {
        n += 1;
        let stream = StreamId::new(format!("order-{}", n % 7)).expect("stream");
        let events = (0..1 + n % 3)
            .map(|i| NewEvent::json("Step", serde_json::json!({ "n": n, "i": i })).expect("event"))
            .collect();
        store
            .append(&stream, ExpectedVersion::Any, events)
            .await
            .expect("append");
        if relaying.is_finished() {
            panic!("the relay stopped: {:?}", relaying.await);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_at_random_moments_publishes_every_event_once() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("mammoth.db");
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
        | 1;
    println!("relay crash test seed {seed}");
    let mut rng = seed;
    for _ in 0..10 {
        let mut worker = child("crash_child_appends_and_relays_until_killed", &path);
        wait_for_line(&mut worker, "started");
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(50 + rng % 250));
        worker.kill().expect("SIGKILL");
        worker.wait().expect("reap");
    }
    let store = SqliteEventStore::open(&path, SqliteOptions::default()).expect("reopen store");
    let bus = SqliteBus::open(&path, SqliteBusOptions::default()).expect("reopen bus");
    let topic = Topic::new("events").expect("topic");
    let relay = Relay::new(
        "outbox",
        store.clone(),
        bus.clone(),
        TopicMap::all_to(topic.clone()),
    );
    relay.catch_up().await.expect("final catch-up");
    let head = store.head_position().await.expect("head");
    let events = store
        .read_all(1, &EventFilter::all(), 1_000_000)
        .await
        .expect("read");
    assert!(
        events.len() > 100,
        "the children appended only {} events",
        events.len()
    );
    let consumer = bus
        .subscribe(
            &topic,
            &ConsumerGroup::new("check").expect("group"),
            options(),
        )
        .await
        .expect("subscribe");
    let mut seen = Vec::new();
    loop {
        let batch = consumer
            .receive(1000, Duration::from_millis(200))
            .await
            .expect("receive");
        if batch.is_empty() {
            break;
        }
        consumer.ack(&batch).await.expect("ack");
        seen.extend(batch.into_iter().map(|d| d.message.id));
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an event was published twice");
    let committed: Vec<_> = events.iter().map(|event| event.id).collect();
    assert_eq!(
        seen, committed,
        "published != committed (head {head}), in log order"
    );
}
