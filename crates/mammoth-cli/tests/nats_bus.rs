//! `mammoth bus stats` and `mammoth dlq list|replay` on a configuration with `backend: "nats"`
//! against the NATS server named by `MAMMOTH_TEST_NATS_URL` (skipped with a note without it,
//! failing under `CI=true`), each run on its own stream and subject prefix.

mod support;

use std::time::Duration;

use mammoth_core::bus::{
    BusConsumer, ConsumerGroup, Failure, MessageBus, NackAction, OutgoingMessage, SubscribeOptions,
    Topic,
};
use mammoth_nats::{NatsBus, NatsBusOptions};
use support::Sandbox;

fn nats_url() -> Option<String> {
    match std::env::var("MAMMOTH_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!(
                "CI=true but MAMMOTH_TEST_NATS_URL is not set: NATS tests cannot be skipped in CI"
            )
        }
        _ => {
            eprintln!(
                "skipped: set MAMMOTH_TEST_NATS_URL (such as nats://127.0.0.1:4222) to run the CLI against NATS"
            );
            None
        }
    }
}

#[test]
fn bus_stats_and_dlq_work_unchanged_on_a_nats_bus() {
    let Some(url) = nats_url() else {
        return;
    };
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let options = NatsBusOptions {
        stream: format!("MCLI_{suffix}"),
        subject_prefix: format!("mcli{suffix}"),
        ..NatsBusOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let bus = runtime.block_on(async {
        let bus = NatsBus::connect(&url, options.clone())
            .await
            .expect("nats bus");
        let topic = Topic::new("orders").expect("topic");
        let group = ConsumerGroup::new("billing").expect("group");
        let consumer = bus
            .subscribe(&topic, &group, SubscribeOptions::default())
            .await
            .expect("subscribe");
        let messages = ["card", "cash"]
            .map(|text| OutgoingMessage::new(text.as_bytes().to_vec()))
            .to_vec();
        bus.publish(&topic, messages).await.expect("publish");
        let got = consumer
            .receive(1, Duration::from_secs(5))
            .await
            .expect("receive");
        let failure = Failure {
            error: "card declined".to_owned(),
            action: NackAction::DeadLetter,
        };
        consumer.nack(&got[0], failure).await.expect("nack");
        bus
    });
    let sandbox = Sandbox::new();
    sandbox.write(
        "mammoth.tsk",
        &format!(
            "[message_bus]\nbackend: \"nats\"\nurl: \"{url}\"\nstream: \"{}\"\nsubject_prefix: \"{}\"\n",
            options.stream, options.subject_prefix
        ),
    );

    let stats = sandbox.run(&["bus", "stats", "--json"]).json();
    let rows = stats.as_array().expect("an array of rows");
    let row = rows
        .iter()
        .find(|row| row["topic"] == "orders" && row["group"] == "billing")
        .unwrap_or_else(|| panic!("no orders/billing row: {stats}"));
    assert_eq!(row["messages"], 2, "{row}");
    assert_eq!(row["depth"], 1, "the second message waits: {row}");
    assert_eq!(row["dead_letters"], 1, "{row}");

    let letters = sandbox.run(&["dlq", "list", "--json"]).json_lines();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["last_error"], "card declined");
    assert_eq!(letters[0]["payload"], "card");
    assert_eq!(letters[0]["group"], "billing");

    let text = sandbox.run(&["bus", "stats"]);
    assert!(text.ok().contains("billing"), "{}", text.ok());

    let replayed = sandbox.run(&["dlq", "replay", "--all", "--json"]).json();
    assert_eq!(replayed["replayed"], 1, "{replayed}");
    let left = sandbox.run(&["dlq", "list", "--json"]).json_lines();
    assert!(left.is_empty(), "a replayed letter stayed: {left:?}");

    runtime.block_on(async { bus.destroy().await.expect("clean up") });
}

#[test]
fn an_unreachable_nats_server_is_an_error_naming_it() {
    if nats_url().is_none() {
        return;
    }
    let sandbox = Sandbox::new();
    sandbox.write(
        "mammoth.tsk",
        "[message_bus]\nbackend: \"nats\"\nurl: \"nats://127.0.0.1:9\"\n",
    );
    let run = sandbox.run(&["bus", "stats"]);
    let stderr = run.failed_with(1);
    assert!(stderr.contains("nats at nats://127.0.0.1:9"), "{stderr}");
}
