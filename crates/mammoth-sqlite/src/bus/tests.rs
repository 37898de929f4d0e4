//! The outbox relay on the embedded bus: routing, exact resumption, and two relays of one
//! name racing (the in-transaction checkpoint check keeps every event published once).

use std::time::Duration;

use mammoth_core::bus::{
    BusConsumer, ConsumerGroup, HEADER_EVENT_TYPE, MessageBus, SubscribeOptions, Topic, TopicMap,
};
use mammoth_core::{EventStore, ExpectedVersion, NewEvent, StreamId};
use mammoth_runtime::Relay;

use crate::{SqliteBus, SqliteEventStore, SqliteOptions};

fn topic(name: &str) -> Topic {
    Topic::new(name).unwrap()
}

async fn append(store: &SqliteEventStore, stream: &str, types: &[&str]) {
    let events = types
        .iter()
        .map(|t| NewEvent::json(*t, serde_json::json!({})).unwrap())
        .collect();
    store
        .append(
            &StreamId::new(stream).unwrap(),
            ExpectedVersion::Any,
            events,
        )
        .await
        .unwrap();
}

async fn received(bus: &SqliteBus, topic_name: &str) -> Vec<String> {
    let consumer = bus
        .subscribe(
            &topic(topic_name),
            &ConsumerGroup::new("check").unwrap(),
            SubscribeOptions::default(),
        )
        .await
        .unwrap();
    let mut types = Vec::new();
    loop {
        let batch = consumer
            .receive(100, Duration::from_millis(100))
            .await
            .unwrap();
        if batch.is_empty() {
            return types;
        }
        consumer.ack(&batch).await.unwrap();
        types.extend(
            batch
                .iter()
                .map(|d| d.message.headers[HEADER_EVENT_TYPE].clone()),
        );
    }
}

#[tokio::test]
async fn the_relay_routes_by_type_then_category_and_resumes_exactly_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mammoth.db");
    let store = SqliteEventStore::open(&path, SqliteOptions::default()).unwrap();
    let bus = SqliteBus::open_default(&path).unwrap();
    let map = TopicMap::default()
        .category("order", topic("orders"))
        .event_type("PaymentFailed", topic("payments"));
    append(&store, "order-1", &["OrderCreated", "PaymentFailed"]).await;
    append(&store, "user-1", &["UserJoined"]).await;
    let relay = Relay::new("outbox", store.clone(), bus.clone(), map.clone());
    let first = relay.catch_up().await.unwrap();
    assert_eq!((first.events, first.published, first.checkpoint), (3, 2, 3));
    // A new relay of the same name (a restart) starts after the checkpoint.
    append(&store, "order-2", &["OrderCreated"]).await;
    let restarted = Relay::new("outbox", store.clone(), bus.clone(), map);
    let second = restarted.catch_up().await.unwrap();
    assert_eq!(
        (second.events, second.published, second.checkpoint),
        (1, 1, 4)
    );
    assert_eq!(restarted.catch_up().await.unwrap().events, 0);
    assert_eq!(
        received(&bus, "orders").await,
        ["OrderCreated", "OrderCreated"]
    );
    assert_eq!(received(&bus, "payments").await, ["PaymentFailed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_of_one_name_racing_publish_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mammoth.db");
    let store = SqliteEventStore::open(&path, SqliteOptions::default()).unwrap();
    for n in 0..200 {
        append(&store, &format!("order-{}", n % 5), &["Step"]).await;
    }
    let map = TopicMap::all_to(topic("events"));
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let bus = SqliteBus::open_default(&path).unwrap();
            let relay = Relay::new("outbox", store.clone(), bus, map.clone()).with_batch(7);
            tokio::spawn(async move { relay.catch_up().await.unwrap() })
        })
        .collect();
    for racer in racers {
        racer.await.unwrap();
    }
    let bus = SqliteBus::open_default(&path).unwrap();
    assert_eq!(received(&bus, "events").await.len(), 200);
}
