//! `mammoth dlq ...` and `mammoth bus stats` end to end: dead letters made through the
//! embedded bus in the sandbox's database, then listed, shown, replayed and discarded by the
//! built binary.

mod support;

use std::time::Duration;

use mammoth_core::bus::{
    BusConsumer, ConsumerGroup, Failure, MessageBus, NackAction, OutgoingMessage, SubscribeOptions,
    Topic,
};
use mammoth_sqlite::SqliteBus;
use support::Sandbox;

/// Publishes two messages to `orders` and dead-letters both in group `billing`.
fn two_dead_letters(sandbox: &Sandbox) {
    let path = sandbox.path().join("store/events.db");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let bus = SqliteBus::open_default(&path).expect("bus");
        let topic = Topic::new("orders").expect("topic");
        let consumer = bus
            .subscribe(
                &topic,
                &ConsumerGroup::new("billing").expect("group"),
                SubscribeOptions::default(),
            )
            .await
            .expect("subscribe");
        let messages = ["first", "second"]
            .map(|text| OutgoingMessage::new(text.as_bytes().to_vec()))
            .to_vec();
        bus.publish(&topic, messages).await.expect("publish");
        let got = consumer
            .receive(2, Duration::from_secs(5))
            .await
            .expect("receive");
        for (delivery, error) in got.iter().zip(["card declined", "timeout"]) {
            let failure = Failure {
                error: error.to_owned(),
                action: NackAction::DeadLetter,
            };
            consumer.nack(delivery, failure).await.expect("nack");
        }
    });
}

#[test]
fn dead_letters_are_listed_shown_replayed_and_discarded_from_the_command_line() {
    let sandbox = Sandbox::new();
    two_dead_letters(&sandbox);
    let listed = sandbox.run(&["dlq", "list"]);
    let table = listed.ok();
    assert!(
        table.contains("card declined") && table.contains("timeout"),
        "{table}"
    );
    let letters = sandbox
        .run(&["dlq", "list", "--json", "--error", "timeout"])
        .json_lines();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["payload"], "second");
    assert_eq!(letters[0]["attempts"], 1);
    let id = letters[0]["id"].as_str().expect("id").to_owned();
    let shown = sandbox.run(&["dlq", "show", &id, "--json"]).json();
    assert_eq!(shown["group"], "billing");
    let refused = sandbox.run(&["dlq", "discard"]);
    refused.failed_with(2);
    let stats = sandbox.run(&["bus", "stats", "--json"]).json();
    assert_eq!(stats[0]["dead_letters"], 2, "{stats}");
    let replayed = sandbox.run(&["dlq", "replay", &id, "--json"]).json();
    assert_eq!(replayed["replayed"], 1);
    let discarded = sandbox.run(&["dlq", "discard", "--all", "--json"]).json();
    assert_eq!(discarded["discarded"], 1);
    let stats = sandbox.run(&["bus", "stats", "--json"]).json();
    assert_eq!(
        (
            stats[0]["dead_letters"].as_u64(),
            stats[0]["depth"].as_u64()
        ),
        (Some(0), Some(1)),
        "{stats}"
    );
    assert!(
        sandbox
            .run(&["dlq", "list"])
            .ok()
            .contains("no dead letters")
    );
}
