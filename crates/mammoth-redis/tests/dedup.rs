//! De-duplication by message id through the per-window slot hashes: a repeat inside one batch,
//! a repeat that crosses a slot boundary, and the window's end. Runs against
//! `MAMMOTH_TEST_REDIS_URL` (skipped without it, failing under `CI=true`), under a key prefix
//! of its own.

use std::time::Duration;

use mammoth_core::bus::{MessageBus, OutgoingMessage, Topic};
use mammoth_redis::{RedisBus, RedisBusOptions};
use uuid::Uuid;

async fn bus(window: Duration) -> Option<RedisBus> {
    let url = match std::env::var("MAMMOTH_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                !std::env::var("CI").is_ok_and(|ci| ci == "true"),
                "CI=true but MAMMOTH_TEST_REDIS_URL is not set"
            );
            eprintln!("skipped: set MAMMOTH_TEST_REDIS_URL to run the Redis de-duplication test");
            return None;
        }
    };
    let options = RedisBusOptions {
        key_prefix: format!("mammoth-test:{}:", Uuid::new_v4().simple()),
        dedup_window: window,
        ..RedisBusOptions::default()
    };
    Some(RedisBus::connect(&url, options).await.expect("connect"))
}

fn message(id: Uuid, text: &str) -> OutgoingMessage {
    OutgoingMessage::with_id(id, text.as_bytes().to_vec())
}

#[tokio::test]
async fn an_id_repeated_inside_one_batch_is_stored_once_and_answers_the_first_sequence() {
    let Some(bus) = bus(Duration::from_secs(120)).await else {
        return;
    };
    let topic = Topic::new("orders").expect("topic");
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let published = bus
        .publish(
            &topic,
            vec![message(a, "a"), message(b, "b"), message(a, "a again")],
        )
        .await
        .expect("publish");
    assert!(!published[0].duplicate && !published[1].duplicate);
    assert!(
        published[2].duplicate,
        "the repeat inside the batch was stored"
    );
    assert_eq!(published[2].sequence, published[0].sequence);
    let again = bus
        .publish(&topic, vec![message(b, "b later")])
        .await
        .expect("publish");
    assert!(again[0].duplicate, "the repeat in a later batch was stored");
    assert_eq!(again[0].sequence, published[1].sequence);
}

#[tokio::test]
async fn a_repeat_within_the_window_is_dropped_across_slot_boundaries_and_stored_after_two_windows()
{
    let window = Duration::from_millis(400);
    let Some(bus) = bus(window).await else { return };
    let topic = Topic::new("orders").expect("topic");
    // Four back-to-back pairs, each repeating its id 0.6 windows later: together they span
    // 2.4 windows, so some pair straddles the boundary between two slots.
    for n in 0..4 {
        let id = Uuid::now_v7();
        let first = bus
            .publish(&topic, vec![message(id, "first")])
            .await
            .expect("publish");
        tokio::time::sleep(window.mul_f64(0.6)).await;
        let repeat = bus
            .publish(&topic, vec![message(id, "repeat")])
            .await
            .expect("publish");
        assert!(
            repeat[0].duplicate,
            "pair {n}: a repeat 0.6 windows later was stored"
        );
        assert_eq!(repeat[0].sequence, first[0].sequence);
    }
    // Two windows later the id is forgotten: the publish stores it again.
    let id = Uuid::now_v7();
    let first = bus
        .publish(&topic, vec![message(id, "first")])
        .await
        .expect("publish");
    tokio::time::sleep(window * 2 + Duration::from_millis(50)).await;
    let late = bus
        .publish(&topic, vec![message(id, "late")])
        .await
        .expect("publish");
    assert!(!late[0].duplicate, "an id was remembered past two windows");
    assert!(late[0].sequence > first[0].sequence);
}
