//! Trimming a topic's stream (`RedisBus::collect_garbage`) deletes only what every group is
//! done with. Runs against `MAMMOTH_TEST_REDIS_URL` (skipped without it, failing under
//! `CI=true`), under a key prefix of its own.

use std::time::Duration;

use mammoth_core::bus::{
    BusConsumer, ConsumerGroup, MessageBus, OutgoingMessage, SubscribeOptions, Topic,
};
use mammoth_redis::{RedisBus, RedisBusOptions};

async fn bus() -> Option<RedisBus> {
    let url = match std::env::var("MAMMOTH_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                !std::env::var("CI").is_ok_and(|ci| ci == "true"),
                "CI=true but MAMMOTH_TEST_REDIS_URL is not set"
            );
            eprintln!("skipped: set MAMMOTH_TEST_REDIS_URL to run the Redis trim test");
            return None;
        }
    };
    let options = RedisBusOptions {
        key_prefix: format!("mammoth-test:{}:", uuid::Uuid::new_v4().simple()),
        ..RedisBusOptions::default()
    };
    Some(RedisBus::connect(&url, options).await.expect("connect"))
}

#[tokio::test]
async fn trimming_keeps_what_a_slower_group_still_needs_and_drops_what_all_groups_are_done_with() {
    let Some(bus) = bus().await else { return };
    let orders = Topic::new("orders").expect("topic");
    let lonely = Topic::new("lonely").expect("topic");
    let fast = bus
        .subscribe(
            &orders,
            &ConsumerGroup::new("fast").expect("group"),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    let slow = bus
        .subscribe(
            &orders,
            &ConsumerGroup::new("slow").expect("group"),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    let messages: Vec<_> = (0..10)
        .map(|n| OutgoingMessage::new(format!("m{n}").into_bytes()))
        .collect();
    bus.publish(&orders, messages).await.expect("publish");
    bus.publish(&lonely, vec![OutgoingMessage::new(b"x".to_vec())])
        .await
        .expect("publish");

    let all = fast
        .receive(10, Duration::from_secs(2))
        .await
        .expect("receive");
    assert_eq!(all.len(), 10);
    fast.ack(&all).await.expect("ack");
    // The slow group has read five and still holds the fourth and fifth.
    let some = slow
        .receive(5, Duration::from_secs(2))
        .await
        .expect("receive");
    assert_eq!(some.len(), 5);
    slow.ack(&some[..3]).await.expect("ack");

    let trimmed = bus.collect_garbage(&orders).await.expect("trim");
    assert_eq!(trimmed, 3, "only what both groups are done with goes");
    assert_eq!(
        bus.collect_garbage(&lonely).await.expect("trim"),
        0,
        "a topic without groups keeps all"
    );

    slow.ack(&some[3..])
        .await
        .expect("ack pending after the trim");
    let rest = slow
        .receive(10, Duration::from_secs(2))
        .await
        .expect("receive");
    let texts: Vec<String> = rest.iter().map(|d| d.message.payload_text()).collect();
    assert_eq!(
        texts,
        ["m5", "m6", "m7", "m8", "m9"],
        "the slow group still gets the rest"
    );
    slow.ack(&rest).await.expect("ack");
    let stats = bus.stats().await.expect("stats");
    let row = stats
        .iter()
        .find(|row| row.topic == "orders" && row.group.as_deref() == Some("slow"))
        .expect("a row");
    assert_eq!(
        (row.messages, row.depth, row.in_flight),
        (7, 0, 0),
        "{row:?}"
    );
}
