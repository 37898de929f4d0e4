//! Bus scenarios about delivery: what arrives, to whom, how often, in which order.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use mammoth_core::bus::{
    BusConsumer, BusError, MessageBus, OutgoingMessage, StartFrom, SubscribeOptions, Topic,
};

use super::BusFactory;
use super::support::{VISIBILITY, drain, fast, group, message, publish, receive_n, texts, topic};

const WAIT: Duration = Duration::from_secs(5);

/// A published message arrives with its id, key, payload, headers and topic, as attempt 1.
pub async fn a_published_message_reaches_a_subscriber_whole<F: BusFactory>(factory: &F) {
    let bus = factory.fresh().await;
    let orders = topic("orders");
    let consumer = bus
        .subscribe(&orders, &group("billing"), fast())
        .await
        .expect("subscribe");
    let sent = OutgoingMessage::new(br#"{"total":30}"#.to_vec())
        .keyed("order-1")
        .header("mammoth-event-type", "OrderCreated");
    let published = bus
        .publish(&orders, vec![sent.clone()])
        .await
        .expect("publish");
    assert_eq!(published.len(), 1);
    assert!(
        !published[0].duplicate,
        "a first publish is not a duplicate"
    );
    let got = receive_n(&consumer, 1, WAIT).await;
    assert_eq!(got.len(), 1, "the message arrives");
    let delivery = &got[0];
    assert_eq!(delivery.attempt, 1);
    assert_eq!(delivery.message.topic, orders);
    assert_eq!(delivery.message.id, sent.id);
    assert_eq!(delivery.message.key, sent.key);
    assert_eq!(delivery.message.payload, sent.payload);
    assert_eq!(delivery.message.headers, sent.headers);
    assert_eq!(delivery.group, group("billing"));
    consumer.ack(&got).await.expect("ack");
}

/// Two groups each get every message; two consumers of one group split them, none twice.
pub async fn every_group_gets_every_message_and_a_group_shares_them<F: BusFactory>(factory: &F) {
    let bus = factory.fresh().await;
    let orders = topic("orders");
    // Leases long enough that nothing is redelivered within the scenario.
    let patient = SubscribeOptions {
        visibility_timeout: Duration::from_secs(30),
        ..fast()
    };
    let billing_a = bus
        .subscribe(&orders, &group("billing"), patient.clone())
        .await
        .expect("subscribe");
    let billing_b = bus
        .subscribe(&orders, &group("billing"), patient)
        .await
        .expect("subscribe");
    let shipping = bus
        .subscribe(&orders, &group("shipping"), fast())
        .await
        .expect("subscribe");
    let sent: Vec<String> = (0..20).map(|n| format!("m{n}")).collect();
    let refs: Vec<&str> = sent.iter().map(String::as_str).collect();
    publish(&bus, &orders, &refs).await;
    // a holds five in flight while b drains the rest; then a acks and finds nothing more.
    let a = receive_n(&billing_a, 5, WAIT).await;
    assert_eq!(a.len(), 5);
    let b = drain(&billing_b, Duration::from_millis(600)).await;
    billing_a.ack(&a).await.expect("ack");
    let a_more = drain(&billing_a, Duration::from_millis(300)).await;
    let mut billing: Vec<String> = [texts(&a), texts(&b), texts(&a_more)].concat();
    billing.sort();
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(
        billing, expected,
        "the group got every message exactly once"
    );
    let shipped = texts(&drain(&shipping, Duration::from_secs(1)).await);
    assert_eq!(
        shipped, sent,
        "the other group got every message, in publish order"
    );
}

/// Publishing the same id again (as the relay does after a crash) stores nothing new.
pub async fn a_republished_id_within_the_dedup_window_is_stored_once<F: BusFactory>(factory: &F) {
    let bus = factory.fresh().await;
    let orders = topic("orders");
    let consumer = bus
        .subscribe(&orders, &group("billing"), fast())
        .await
        .expect("subscribe");
    let once = message("once");
    let first = bus
        .publish(&orders, vec![once.clone()])
        .await
        .expect("publish");
    let again = bus
        .publish(&orders, vec![once.clone(), message("other")])
        .await
        .expect("publish again");
    assert!(!first[0].duplicate);
    assert!(
        again[0].duplicate,
        "the second publish of an id is a duplicate"
    );
    assert!(!again[1].duplicate);
    let got = texts(&drain(&consumer, Duration::from_secs(1)).await);
    assert_eq!(got, ["once", "other"], "the duplicate was delivered once");
}

/// An acknowledged message never comes back, even after the visibility timeout.
pub async fn an_acked_message_is_not_delivered_again<F: BusFactory>(factory: &F) {
    let bus = factory.fresh().await;
    let orders = topic("orders");
    let consumer = bus
        .subscribe(&orders, &group("billing"), fast())
        .await
        .expect("subscribe");
    publish(&bus, &orders, &["a"]).await;
    let got = receive_n(&consumer, 1, WAIT).await;
    consumer.ack(&got).await.expect("ack");
    let later = consumer.receive(10, VISIBILITY * 3).await.expect("receive");
    assert!(
        later.is_empty(),
        "acked message came back: {:?}",
        texts(&later)
    );
}

/// A delivery nobody acks (its consumer died) goes to another consumer of the group after the
/// visibility timeout, as attempt 2, and not before.
pub async fn an_unacked_delivery_comes_back_after_the_visibility_timeout<F: BusFactory>(
    factory: &F,
) {
    let bus = factory.fresh().await;
    let orders = topic("orders");
    let dead = bus
        .subscribe(&orders, &group("billing"), fast())
        .await
        .expect("subscribe");
    let alive = bus
        .subscribe(&orders, &group("billing"), fast())
        .await
        .expect("subscribe");
    publish(&bus, &orders, &["a"]).await;
    // The lease cannot start before the receive that takes it is called, so any redelivery
    // seen less than the visibility timeout after this instant came too early. (Timing from
    // when the receive returned would blame the bus for a slow return on a loaded machine.)
    let leased_from = Instant::now();
    let first = receive_n(&dead, 1, WAIT).await;
    assert_eq!(first.len(), 1);
    drop(dead);
    let early = alive.receive(1, VISIBILITY / 2).await.expect("receive");
    assert!(
        early.is_empty() || leased_from.elapsed() >= VISIBILITY,
        "redelivered before the visibility timeout"
    );
    let again = if early.is_empty() {
        receive_n(&alive, 1, WAIT).await
    } else {
        early
    };
    assert_eq!(texts(&again), ["a"], "the message came back");
    assert!(leased_from.elapsed() >= VISIBILITY, "too early");
    assert_eq!(again[0].attempt, 2);
    assert_eq!(again[0].message.id, first[0].message.id);
    alive.ack(&again).await.expect("ack");
}

/// A slow handler that extends its lease keeps the message from the group's other consumers.
pub async fn extending_a_lease_keeps_a_delivery_from_the_group<F: BusFactory>(factory: &F) {
    let bus = factory.fresh().await;
    let orders = topic("orders");
    let slow = bus
        .subscribe(&orders, &group("billing"), fast())
        .await
        .expect("subscribe");
    let other = bus
        .subscribe(&orders, &group("billing"), fast())
        .await
        .expect("subscribe");
    publish(&bus, &orders, &["a"]).await;
    let got = receive_n(&slow, 1, WAIT).await;
    for _ in 0..3 {
        tokio::time::sleep(VISIBILITY / 2).await;
        assert!(slow.extend(&got[0], VISIBILITY).await.expect("extend"));
    }
    let stolen = other.receive(1, VISIBILITY / 2).await.expect("receive");
    assert!(
        stolen.is_empty(),
        "an extended lease was handed to another consumer"
    );
    slow.ack(&got).await.expect("ack");
}

/// With ordering asked for, a key's next message waits until the previous one is acked (or
/// dead-lettered), even across a retry; other keys are not held back.
pub async fn an_ordered_group_gets_one_message_per_key_at_a_time_in_order<F: BusFactory>(
    factory: &F,
) {
    let bus = factory.fresh().await;
    let orders = topic("orders");
    let options = SubscribeOptions {
        ordered_by_key: true,
        ..fast()
    };
    let consumer = bus
        .subscribe(&orders, &group("billing"), options)
        .await
        .expect("subscribe");
    let messages = ["a1", "a2", "b1", "a3", "b2"]
        .iter()
        .map(|text| message(text).keyed(&text[..1]))
        .collect();
    bus.publish(&orders, messages).await.expect("publish");
    let first = receive_n(&consumer, 2, WAIT).await;
    assert_eq!(texts(&first), ["a1", "b1"], "one message per key");
    let more = consumer
        .receive(10, Duration::from_millis(200))
        .await
        .expect("receive");
    assert!(
        more.is_empty(),
        "a key's next message came before its previous was done"
    );
    // a1 fails once: a2 must still wait for its retry.
    let failure = mammoth_core::bus::Failure::retry("boom");
    consumer.nack(&first[0], failure).await.expect("nack");
    consumer.ack(&first[1..]).await.expect("ack");
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let deadline = Instant::now() + WAIT;
    while seen.values().map(Vec::len).sum::<usize>() < 5 && Instant::now() < deadline {
        let batch = consumer
            .receive(10, Duration::from_millis(200))
            .await
            .expect("receive");
        let keys: BTreeSet<_> = batch.iter().map(|d| d.message.key.clone()).collect();
        assert_eq!(
            keys.len(),
            batch.len(),
            "two messages of one key in flight at once"
        );
        for delivery in &batch {
            let key = delivery.message.key.clone().unwrap_or_default();
            seen.entry(key)
                .or_default()
                .push(delivery.message.payload_text());
        }
        consumer.ack(&batch).await.expect("ack");
    }
    assert_eq!(seen["a"], ["a1", "a2", "a3"], "key a out of order");
    assert_eq!(seen["b"], ["b2"]);
}

/// A group created at `Latest` sees only later messages; one at `Earliest` sees the earlier
/// ones too; an existing group keeps its place whatever a later subscribe asks.
pub async fn a_latest_group_skips_earlier_messages_and_an_earliest_group_sees_them<
    F: BusFactory,
>(
    factory: &F,
) {
    let bus = factory.fresh().await;
    let orders = topic("orders");
    publish(&bus, &orders, &["before"]).await;
    let latest_options = SubscribeOptions {
        start: StartFrom::Latest,
        ..fast()
    };
    let latest = bus
        .subscribe(&orders, &group("late"), latest_options)
        .await
        .expect("subscribe");
    let earliest = bus
        .subscribe(&orders, &group("early"), fast())
        .await
        .expect("subscribe");
    publish(&bus, &orders, &["after"]).await;
    assert_eq!(
        texts(&drain(&latest, Duration::from_secs(1)).await),
        ["after"]
    );
    assert_eq!(
        texts(&drain(&earliest, Duration::from_secs(1)).await),
        ["before", "after"]
    );
    let rejoined = bus
        .subscribe(&orders, &group("early"), fast())
        .await
        .expect("subscribe");
    let again = rejoined
        .receive(10, Duration::from_millis(300))
        .await
        .expect("receive");
    assert!(again.is_empty(), "a rejoining group started over");
}

/// Bad names, an empty publish and a zero receive are typed errors; nothing is stored.
pub async fn invalid_input_is_rejected_and_stores_nothing<F: BusFactory>(factory: &F) {
    let bus = factory.fresh().await;
    for bad in ["", "has space", "a..b", ".a", "a*", "a>"] {
        assert!(
            matches!(Topic::new(bad), Err(BusError::InvalidName { .. })),
            "topic {bad:?} accepted"
        );
    }
    assert!(mammoth_core::bus::ConsumerGroup::new("a.b").is_err());
    let orders = topic("orders");
    let empty = bus.publish(&orders, Vec::new()).await;
    assert!(matches!(empty, Err(BusError::InvalidInput(_))), "{empty:?}");
    let consumer = bus
        .subscribe(&orders, &group("billing"), fast())
        .await
        .expect("subscribe");
    let zero = consumer.receive(0, Duration::ZERO).await;
    assert!(matches!(zero, Err(BusError::InvalidInput(_))), "{zero:?}");
    let none = consumer
        .receive(10, Duration::from_millis(100))
        .await
        .expect("receive");
    assert!(none.is_empty());
}

/// 4 publishers and 4 consumers of one group: every message is handled, none is lost.
pub async fn concurrent_publishers_and_consumers_lose_nothing<F: BusFactory>(factory: &F) {
    let bus = std::sync::Arc::new(factory.fresh().await);
    let orders = topic("orders");
    let (publishers, per_publisher) = (4, 100);
    let mut consumers = Vec::new();
    for _ in 0..4 {
        let consumer = bus
            .subscribe(&orders, &group("billing"), fast())
            .await
            .expect("subscribe");
        consumers.push(tokio::spawn(async move {
            drain(&consumer, Duration::from_secs(4)).await
        }));
    }
    let mut sent = BTreeSet::new();
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let (bus, orders) = (bus.clone(), orders.clone());
        let texts: Vec<String> = (0..per_publisher).map(|n| format!("p{p}-{n}")).collect();
        sent.extend(texts.clone());
        tasks.push(tokio::spawn(async move {
            for chunk in texts.chunks(10) {
                let batch = chunk.iter().map(|text| message(text)).collect();
                bus.publish(&orders, batch).await.expect("publish");
            }
        }));
    }
    for task in tasks {
        task.await.expect("publisher");
    }
    let mut got = Vec::new();
    for consumer in consumers {
        got.extend(texts(&consumer.await.expect("consumer")));
    }
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(unique, sent, "messages lost");
    assert_eq!(
        got.len(),
        sent.len(),
        "messages handled twice without a failure"
    );
}
