//! `mammoth dlq replay` and `mammoth bench bus` take the retry policy and the topic map from
//! `[message_bus]` of the configuration file, not built-in defaults.

mod support;

use std::time::Duration;

use mammoth_core::bus::{
    BusConsumer, ConsumerGroup, Failure, MessageBus, NackAction, OutgoingMessage, SubscribeOptions,
    Topic,
};
use mammoth_sqlite::SqliteBus;
use support::Sandbox;

const STORE: &str = "[event_store]\nbackend: \"sqlite\"\ndsn: \"sqlite://./store/events.db\"\n";

/// Publishes one message to `orders` and dead-letters it in group `billing`.
fn one_dead_letter(sandbox: &Sandbox) {
    let path = sandbox.path().join("store/events.db");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let bus = SqliteBus::open_default(&path).expect("bus");
        let topic = Topic::new("orders").expect("topic");
        let group = ConsumerGroup::new("billing").expect("group");
        let consumer = bus
            .subscribe(&topic, &group, SubscribeOptions::default())
            .await
            .expect("subscribe");
        bus.publish(
            &topic,
            vec![OutgoingMessage::new("card".as_bytes().to_vec())],
        )
        .await
        .expect("publish");
        let got = consumer
            .receive(1, Duration::from_secs(5))
            .await
            .expect("receive");
        let failure = Failure {
            error: "card declined".to_owned(),
            action: NackAction::DeadLetter,
        };
        consumer.nack(&got[0], failure).await.expect("nack");
    });
}

#[test]
fn dlq_replay_states_the_configured_retry_policy_not_the_default() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "mammoth.tsk",
        &format!(
            "{STORE}[message_bus.retry]\nmax_attempts: 7\nbase_delay: \"250ms\"\nmultiplier: 3.0\n"
        ),
    );
    one_dead_letter(&sandbox);
    let replayed = sandbox.run(&["dlq", "replay", "--all", "--json"]).json();
    assert_eq!(replayed["replayed"], 1, "{replayed}");
    assert_eq!(replayed["retry"]["max_attempts"], 7, "{replayed}");
    assert_eq!(replayed["retry"]["factor"], 3.0, "{replayed}");

    let defaults = Sandbox::new();
    one_dead_letter(&defaults);
    let text = defaults.run(&["dlq", "replay", "--all"]);
    assert!(
        text.ok().contains("attempt 1 of 3"),
        "without a [message_bus.retry] section the seed's 3 attempts: {}",
        text.stdout
    );
}

#[test]
fn bench_bus_relays_by_the_configured_topic_map_and_subscribes_with_the_configured_retry() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "mammoth.tsk",
        &format!(
            "{STORE}[message_bus]\nretry.max_attempts: 9\ntopics: {{ default: \"audit\", categories: {{ order: \"orders-out\" }} }}\n"
        ),
    );
    let dir = sandbox.path().to_str().expect("utf-8 path").to_owned();
    let report = sandbox
        .run(&[
            "bench",
            "bus",
            "--quick",
            "--seconds",
            "0.2",
            "--runs",
            "1",
            "--path",
            &dir,
            "--json",
        ])
        .json();
    assert_eq!(
        report["relay_topics"],
        serde_json::json!(["orders-out"]),
        "the bench's order-* events go where [message_bus.topics] sends the category: {report}"
    );
    assert_eq!(report["retry"]["max_attempts"], 9, "{report}");
    assert_eq!(report["runs"].as_array().map(Vec::len), Some(1), "{report}");
}
