//! Bus scenarios about failure: retries at the policy's delays, the dead-letter queue, replay,
//! statistics, and durability across a reopen.

use std::time::{Duration, Instant};

use mammoth_core::bus::{
    BusConsumer, DeadLetterFilter, Failure, MessageBus, NackAction, NackOutcome, RetryPolicy,
    SubscribeOptions,
};

use super::BusFactory;
use super::support::{VISIBILITY, drain, fast, group, publish, receive_n, texts, topic};

const WAIT: Duration = Duration::from_secs(5);

fn fail(error: &str, action: NackAction) -> Failure {
    Failure {
        error: error.to_owned(),
        action,
    }
}

/// A nack asking for a delay brings the message back as the next attempt, not sooner. The
/// delay counts from when the nack was sent: a bus (or a broker) can only start it while
/// handling the nack, which may be a commit's flush before the call returns.
pub async fn a_nack_with_a_delay_redelivers_no_sooner_than_the_delay<F: BusFactory>(factory: &F) {
    let bus = factory.fresh().await;
    let orders = topic("orders");
    let consumer = bus
        .subscribe(&orders, &group("billing"), fast())
        .await
        .expect("subscribe");
    publish(&bus, &orders, &["a"]).await;
    let got = receive_n(&consumer, 1, WAIT).await;
    let delay = Duration::from_millis(300);
    let nacked_at = Instant::now();
    let outcome = consumer
        .nack(&got[0], fail("later", NackAction::RetryAfter(delay)))
        .await
        .expect("nack");
    assert_eq!(
        outcome,
        NackOutcome::Retrying {
            next_attempt: 2,
            delay
        }
    );
    let early = consumer.receive(1, delay / 2).await.expect("receive");
    assert!(early.is_empty(), "redelivered before its delay");
    let again = receive_n(&consumer, 1, WAIT).await;
    assert!(
        nacked_at.elapsed() >= delay,
        "redelivered after {:?}",
        nacked_at.elapsed()
    );
    assert_eq!(again[0].attempt, 2);
    consumer.ack(&again).await.expect("ack");
}

/// Failures are retried after base, then base*factor (milliseconds, not seconds, and the
/// reverse), and the last failed attempt puts the message in the dead-letter queue with its
/// error, attempt count and first and last failure times.
pub async fn retries_follow_the_policy_then_the_message_is_dead_lettered<F: BusFactory>(
    factory: &F,
) {
    let bus = factory.fresh().await;
    let orders = topic("orders");
    let options = SubscribeOptions {
        retry: RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(100),
            factor: 2.0,
            cap: Duration::from_secs(10),
            jitter: false,
        },
        ..fast()
    };
    let consumer = bus
        .subscribe(&orders, &group("billing"), options)
        .await
        .expect("subscribe");
    publish(&bus, &orders, &["poison"]).await;
    let mut gaps = Vec::new();
    let mut failed_at = Instant::now();
    for attempt in 1..=3u32 {
        let got = receive_n(&consumer, 1, WAIT).await;
        assert_eq!(got.len(), 1, "attempt {attempt} never came");
        assert_eq!(got[0].attempt, attempt);
        if attempt > 1 {
            gaps.push(failed_at.elapsed());
        }
        // The retry's due time is set while nack runs, so timing from just before the call
        // gives a lower bound that a slow reply cannot shorten.
        failed_at = Instant::now();
        let outcome = consumer
            .nack(&got[0], fail(&format!("boom {attempt}"), NackAction::Retry))
            .await
            .expect("nack");
        match (attempt, outcome) {
            (3, NackOutcome::DeadLettered { .. }) => {}
            (
                n,
                NackOutcome::Retrying {
                    next_attempt,
                    delay,
                },
            ) if n < 3 => {
                assert_eq!(next_attempt, n + 1);
                assert_eq!(delay, Duration::from_millis(100 * 2u64.pow(n - 1)));
            }
            (n, other) => panic!("attempt {n}: unexpected {other:?}"),
        }
    }
    assert!(
        gaps[0] >= Duration::from_millis(100),
        "first retry after {:?}",
        gaps[0]
    );
    assert!(
        gaps[1] >= Duration::from_millis(200),
        "second retry after {:?}",
        gaps[1]
    );
    assert!(
        gaps[1] < Duration::from_secs(3),
        "the retry waited seconds: {:?}",
        gaps[1]
    );
    let after = consumer
        .receive(1, Duration::from_millis(400))
        .await
        .expect("receive");
    assert!(
        after.is_empty(),
        "a dead-lettered message was delivered again"
    );
    let letters = bus
        .dead_letters(&DeadLetterFilter::all(), 10)
        .await
        .expect("list");
    assert_eq!(letters.len(), 1, "the message is in the dead-letter queue");
    let letter = &letters[0];
    assert_eq!(letter.message.payload_text(), "poison");
    assert_eq!(letter.attempts, 3);
    assert_eq!(letter.last_error, "boom 3");
    assert_eq!(letter.group, group("billing"));
    let span = letter.last_failed_at_micros - letter.first_failed_at_micros;
    assert!(span >= 300_000, "first and last failure {span} us apart");
}

/// A handler that knows a message cannot succeed dead-letters it on the first attempt.
pub async fn a_handler_can_dead_letter_a_poison_message_at_once<F: BusFactory>(factory: &F) {
    let bus = factory.fresh().await;
    let orders = topic("orders");
    let consumer = bus
        .subscribe(&orders, &group("billing"), fast())
        .await
        .expect("subscribe");
    publish(&bus, &orders, &["not json"]).await;
    let got = receive_n(&consumer, 1, WAIT).await;
    let outcome = consumer
        .nack(&got[0], fail("invalid JSON", NackAction::DeadLetter))
        .await
        .expect("nack");
    assert!(
        matches!(outcome, NackOutcome::DeadLettered { .. }),
        "{outcome:?}"
    );
    let letters = bus
        .dead_letters(&DeadLetterFilter::all(), 10)
        .await
        .expect("list");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, 1);
    assert_eq!(letters[0].last_error, "invalid JSON");
    assert_eq!(
        letters[0].first_failed_at_micros,
        letters[0].last_failed_at_micros
    );
}

/// A consumer that dies holding the last attempt does not make the message vanish: it goes to
/// the dead-letter queue with an error naming the visibility timeout.
pub async fn a_lease_expiring_on_the_last_attempt_is_dead_lettered_not_dropped<F: BusFactory>(
    factory: &F,
) {
    let bus = factory.fresh().await;
    let orders = topic("orders");
    let options = SubscribeOptions {
        retry: RetryPolicy {
            max_attempts: 1,
            ..fast().retry
        },
        ..fast()
    };
    let consumer = bus
        .subscribe(&orders, &group("billing"), options)
        .await
        .expect("subscribe");
    publish(&bus, &orders, &["a"]).await;
    assert_eq!(receive_n(&consumer, 1, WAIT).await.len(), 1);
    let deadline = Instant::now() + WAIT;
    let mut letters = Vec::new();
    while letters.is_empty() && Instant::now() < deadline {
        let again = consumer.receive(1, VISIBILITY).await.expect("receive");
        assert!(again.is_empty(), "delivered past max attempts");
        letters = bus
            .dead_letters(&DeadLetterFilter::all(), 10)
            .await
            .expect("list");
    }
    assert_eq!(letters.len(), 1, "the message vanished");
    assert_eq!(letters[0].attempts, 1);
    assert!(
        letters[0].last_error.contains("visibility timeout"),
        "{}",
        letters[0].last_error
    );
}

/// A nack from a consumer whose lease expired (the message went to another) changes nothing.
pub async fn a_stale_nack_changes_nothing<F: BusFactory>(factory: &F) {
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
    let first = receive_n(&slow, 1, WAIT).await;
    let second = receive_n(&other, 1, WAIT).await;
    assert_eq!(second.len(), 1, "the expired lease was not redelivered");
    let outcome = slow
        .nack(&first[0], fail("late", NackAction::DeadLetter))
        .await
        .expect("nack");
    assert_eq!(outcome, NackOutcome::Stale);
    other.ack(&second).await.expect("ack");
    let letters = bus
        .dead_letters(&DeadLetterFilter::all(), 10)
        .await
        .expect("list");
    assert!(letters.is_empty(), "a stale nack dead-lettered the message");
}

/// Replaying a dead letter delivers it again, as attempt 1, to the group that failed it and to
/// no other; the queue no longer holds it.
pub async fn replaying_a_dead_letter_delivers_it_again_to_its_group_only<F: BusFactory>(
    factory: &F,
) {
    let bus = factory.fresh().await;
    let orders = topic("orders");
    let failing = bus
        .subscribe(&orders, &group("billing"), fast())
        .await
        .expect("subscribe");
    let fine = bus
        .subscribe(&orders, &group("shipping"), fast())
        .await
        .expect("subscribe");
    publish(&bus, &orders, &["a"]).await;
    let got = receive_n(&failing, 1, WAIT).await;
    failing
        .nack(&got[0], fail("down", NackAction::DeadLetter))
        .await
        .expect("nack");
    assert_eq!(
        texts(&drain(&fine, Duration::from_millis(500)).await),
        ["a"]
    );
    let replayed = bus
        .replay_dead_letters(&DeadLetterFilter::all())
        .await
        .expect("replay");
    assert_eq!(replayed, 1);
    let again = receive_n(&failing, 1, WAIT).await;
    assert_eq!(
        texts(&again),
        ["a"],
        "the replayed message did not come back"
    );
    assert_eq!(again[0].attempt, 1);
    assert_eq!(again[0].message.id, got[0].message.id);
    failing.ack(&again).await.expect("ack");
    let other = fine
        .receive(1, Duration::from_millis(400))
        .await
        .expect("receive");
    assert!(
        other.is_empty(),
        "a replay reached a group that had handled the message"
    );
    let left = bus
        .dead_letters(&DeadLetterFilter::all(), 10)
        .await
        .expect("list");
    assert!(left.is_empty(), "a replayed letter stayed in the queue");
}

/// Dead letters are selected by id, topic, group and error text; discard removes only the
/// selected ones and replay of the rest delivers them all.
pub async fn dead_letters_are_filtered_replayed_and_discarded_by_filter<F: BusFactory>(
    factory: &F,
) {
    let bus = factory.fresh().await;
    let orders = topic("orders");
    let consumer = bus
        .subscribe(&orders, &group("billing"), fast())
        .await
        .expect("subscribe");
    publish(&bus, &orders, &["a", "b", "c"]).await;
    let got = receive_n(&consumer, 3, WAIT).await;
    for (delivery, error) in got.iter().zip(["timeout x", "bad json", "timeout y"]) {
        consumer
            .nack(delivery, fail(error, NackAction::DeadLetter))
            .await
            .expect("nack");
    }
    let timeouts = DeadLetterFilter {
        error_contains: Some("timeout".to_owned()),
        ..DeadLetterFilter::default()
    };
    let listed = bus.dead_letters(&timeouts, 10).await.expect("list");
    assert_eq!(texts_of(&listed), ["a", "c"]);
    let by_topic = DeadLetterFilter {
        topic: Some(topic("other")),
        ..DeadLetterFilter::default()
    };
    assert!(
        bus.dead_letters(&by_topic, 10)
            .await
            .expect("list")
            .is_empty()
    );
    let one = bus
        .dead_letters(&DeadLetterFilter::id(listed[1].id.clone()), 10)
        .await
        .expect("list");
    assert_eq!(texts_of(&one), ["c"]);
    assert_eq!(
        bus.dead_letters(&DeadLetterFilter::all(), 2)
            .await
            .expect("list")
            .len(),
        2
    );
    let bad = DeadLetterFilter {
        error_contains: Some("bad".to_owned()),
        ..DeadLetterFilter::default()
    };
    assert_eq!(bus.discard_dead_letters(&bad).await.expect("discard"), 1);
    let left = bus
        .dead_letters(&DeadLetterFilter::all(), 10)
        .await
        .expect("list");
    assert_eq!(texts_of(&left), ["a", "c"]);
    assert_eq!(
        bus.replay_dead_letters(&DeadLetterFilter::all())
            .await
            .expect("replay"),
        2
    );
    let mut again = texts(&drain(&consumer, Duration::from_secs(1)).await);
    again.sort();
    assert_eq!(again, ["a", "c"]);
}

fn texts_of(letters: &[mammoth_core::bus::DeadLetter]) -> Vec<String> {
    letters.iter().map(|l| l.message.payload_text()).collect()
}

/// `stats` counts, per topic and group, what waits, what is in flight, what waits for a retry
/// and what is dead.
pub async fn stats_count_depth_in_flight_retrying_and_dead_letters<F: BusFactory>(factory: &F) {
    let bus = factory.fresh().await;
    let orders = topic("orders");
    let consumer = bus
        .subscribe(&orders, &group("billing"), fast())
        .await
        .expect("subscribe");
    publish(&bus, &orders, &["1", "2", "3", "4", "5"]).await;
    let got = receive_n(&consumer, 3, WAIT).await;
    consumer.ack(&got[..1]).await.expect("ack");
    let later = fail("later", NackAction::RetryAfter(Duration::from_secs(60)));
    consumer.nack(&got[1], later).await.expect("nack");
    consumer
        .nack(&got[2], fail("dead", NackAction::DeadLetter))
        .await
        .expect("nack");
    assert_eq!(receive_n(&consumer, 1, WAIT).await.len(), 1);
    let stats = bus.stats().await.expect("stats");
    let row = stats
        .iter()
        .find(|row| row.topic == "orders" && row.group.as_deref() == Some("billing"))
        .expect("a row for orders/billing");
    assert_eq!(
        (row.depth, row.in_flight, row.retrying, row.dead_letters),
        (1, 1, 1, 1),
        "{row:?}"
    );
}

/// Published messages and dead letters are still there after the bus is reopened.
pub async fn published_messages_and_dead_letters_survive_reopen<F: BusFactory>(factory: &F) {
    let bus = factory.fresh().await;
    let orders = topic("orders");
    let consumer = bus
        .subscribe(&orders, &group("billing"), fast())
        .await
        .expect("subscribe");
    publish(&bus, &orders, &["a", "b", "c"]).await;
    let got = receive_n(&consumer, 1, WAIT).await;
    consumer
        .nack(&got[0], fail("dead", NackAction::DeadLetter))
        .await
        .expect("nack");
    drop(consumer);
    let Some(bus) = factory.reopen(bus).await else {
        eprintln!("note: this bus keeps nothing across a reopen; durability scenario skipped");
        return;
    };
    let consumer = bus
        .subscribe(&orders, &group("billing"), fast())
        .await
        .expect("subscribe");
    assert_eq!(
        texts(&drain(&consumer, Duration::from_secs(1)).await),
        ["b", "c"]
    );
    let letters = bus
        .dead_letters(&DeadLetterFilter::all(), 10)
        .await
        .expect("list");
    assert_eq!(texts_of(&letters), ["a"]);
}
