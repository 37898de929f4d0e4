//! `[message_bus.dead_letter] destination` on NATS (`MAMMOTH_TEST_NATS_URL`): a bus with its
//! own destination keeps its dead letters in stream `{stream}_DLQ_{destination}`, lists,
//! replays and discards them from there, and never touches the default `{stream}_DLQ`; two
//! buses on one stream with different destinations keep their letters apart.
//!
//! Regression: the NATS bus ignored the destination (Redis honoured it), so every bus wrote
//! to `{stream}_DLQ` whatever the configuration said.

mod support;

use std::time::Duration;

use async_nats::jetstream;
use mammoth_core::bus::{
    BusConsumer, ConsumerGroup, DeadLetterFilter, Failure, MessageBus, NackAction, NackOutcome,
    OutgoingMessage, SubscribeOptions, Topic,
};
use mammoth_nats::{NatsBus, NatsBusOptions};

/// Publishes one message on `bus`, receives it and fails it for good.
async fn dead_letter_one(bus: &NatsBus, payload: &str) {
    let topic = Topic::new("orders").expect("topic");
    let group = ConsumerGroup::new("billing").expect("group");
    let consumer = bus
        .subscribe(&topic, &group, SubscribeOptions::default())
        .await
        .expect("subscribe");
    bus.publish(&topic, vec![OutgoingMessage::new(payload)])
        .await
        .expect("publish");
    let mut deliveries = Vec::new();
    for _ in 0..50 {
        deliveries = consumer
            .receive(1, Duration::from_millis(200))
            .await
            .expect("receive");
        if !deliveries.is_empty() {
            break;
        }
    }
    let delivery = deliveries.pop().expect("the message came");
    let failure = Failure {
        error: "card declined for good".to_owned(),
        action: NackAction::DeadLetter,
    };
    let outcome = consumer.nack(&delivery, failure).await.expect("nack");
    assert!(
        matches!(outcome, NackOutcome::DeadLettered { .. }),
        "{outcome:?}"
    );
}

/// The number of messages in stream `name`, or `None` when it does not exist.
async fn stream_messages(bus: &NatsBus, name: &str) -> Option<u64> {
    let js = jetstream::new(bus.client().clone());
    let mut stream = js.get_stream(name).await.ok()?;
    Some(stream.info().await.ok()?.state.messages)
}

#[tokio::test]
async fn a_dead_letter_destination_keeps_letters_in_its_own_stream_apart_from_the_default() {
    let Some(url) = support::nats_url("the NATS dead-letter destination test") else {
        return;
    };
    let base = support::unique_options();
    let named = NatsBus::connect(
        &url,
        NatsBusOptions {
            dead_letter: "orders_failed".to_owned(),
            ..base.clone()
        },
    )
    .await
    .expect("bus with a destination");
    dead_letter_one(&named, "to the named queue").await;

    let stream = &base.stream;
    assert_eq!(
        stream_messages(&named, &format!("{stream}_DLQ_orders_failed")).await,
        Some(1),
        "the letter is in the destination's stream"
    );
    assert_eq!(
        stream_messages(&named, &format!("{stream}_DLQ")).await,
        None,
        "the default dead-letter stream is not even created"
    );
    let letters = named
        .dead_letters(&DeadLetterFilter::default(), 10)
        .await
        .expect("list");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].message.payload_text(), "to the named queue");
    assert_eq!(letters[0].last_error, "card declined for good");

    // The same stream with the default destination sees none of them, and keeps its own.
    let default = NatsBus::connect(&url, base.clone())
        .await
        .expect("bus with the default destination");
    assert!(
        default
            .dead_letters(&DeadLetterFilter::default(), 10)
            .await
            .expect("list")
            .is_empty(),
        "the default queue holds none of the named queue's letters"
    );
    dead_letter_one(&default, "to the default queue").await;
    assert_eq!(
        stream_messages(&default, &format!("{stream}_DLQ")).await,
        Some(1)
    );
    let named_letters = named
        .dead_letters(&DeadLetterFilter::default(), 10)
        .await
        .expect("list");
    assert_eq!(named_letters.len(), 1, "{named_letters:?}");
    assert_eq!(
        named
            .discard_dead_letters(&DeadLetterFilter::default())
            .await
            .expect("discard"),
        1,
        "discarding on the named queue removes its letter only"
    );
    assert_eq!(
        default
            .dead_letters(&DeadLetterFilter::default(), 10)
            .await
            .expect("list")
            .len(),
        1
    );

    // Clean up every stream both buses made.
    let js = jetstream::new(named.client().clone());
    let _ = js
        .delete_stream(format!("{stream}_DLQ_orders_failed"))
        .await;
    let _ = default.destroy().await;
}

#[tokio::test]
async fn a_destination_that_cannot_name_a_stream_is_refused_before_connecting() {
    let error = NatsBus::connect(
        "nats://127.0.0.1:9",
        NatsBusOptions {
            dead_letter: "dead.letters".to_owned(),
            ..NatsBusOptions::default()
        },
    )
    .await
    .expect_err("a dot cannot be in a stream name");
    assert!(
        error.to_string().contains("dead-letter destination"),
        "{error}"
    );
}
