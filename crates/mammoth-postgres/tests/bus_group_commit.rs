//! Group commit of the PostgreSQL bus's publishes: concurrent publishes through one handle
//! share a transaction, and a bad one among them fails alone while the others are stored,
//! numbered without gaps. Needs MAMMOTH_TEST_POSTGRES_URL (skips with a note without it, fails
//! under CI=true).

// The event store tests' factory: this binary uses only part of it.
#[allow(dead_code)]
#[path = "postgres/common.rs"]
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use mammoth_core::bus::{
    BusConsumer, BusError, ConsumerGroup, MessageBus, OutgoingMessage, Published, SubscribeOptions,
    Topic,
};
use mammoth_postgres::bus::{PgBus, PgBusOptions};
use tokio_postgres::NoTls;

use common::{TestStore, factory, options};

/// Publishers started at once; with one handle, all but the first queue behind a transaction
/// and commit together.
const PUBLISHERS: usize = 16;

fn topic(name: &str) -> Topic {
    Topic::new(name).expect("valid topic")
}

/// Runs `sql` in the test database.
async fn execute(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to the test database");
    let driver = tokio::spawn(connection);
    client.batch_execute(sql).await.expect("test setup SQL");
    drop(client);
    let _ = driver.await;
}

/// Makes the database refuse a message whose payload is `poison`, as a constraint the bus
/// does not check up front would: the failure comes from inside the publish transaction.
async fn poison_payloads(url: &str, store: &TestStore) {
    let schema = &store.guard.schema;
    execute(
        url,
        &format!(
            "CREATE FUNCTION \"{schema}\".refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.payload = 'poison'::bytea THEN
                     RAISE EXCEPTION 'poisoned payload refused by the test trigger';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON \"{schema}\".bus_messages
             FOR EACH ROW EXECUTE FUNCTION \"{schema}\".refuse_poison();"
        ),
    )
    .await;
}

/// Publishes one message per payload, all at once from tasks of their own; returns each
/// publish's outcome in payload order.
async fn publish_at_once(
    bus: &PgBus,
    orders: &Topic,
    messages: Vec<OutgoingMessage>,
) -> Vec<Result<Vec<Published>, BusError>> {
    let tasks: Vec<_> = messages
        .into_iter()
        .map(|message| {
            let (bus, orders) = (bus.clone(), orders.clone());
            tokio::spawn(async move { bus.publish(&orders, vec![message]).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("publisher task"));
    }
    outcomes
}

/// Every payload a fresh group of `orders` receives, with the sequence numbers delivered.
async fn stored(bus: &PgBus, orders: &Topic) -> (Vec<String>, Vec<u64>) {
    let consumer = bus
        .subscribe(
            orders,
            &ConsumerGroup::new("audit").expect("valid group"),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    let (mut payloads, mut sequences) = (Vec::new(), Vec::new());
    loop {
        let batch = consumer
            .receive(100, Duration::ZERO)
            .await
            .expect("receive");
        if batch.is_empty() {
            return (payloads, sequences);
        }
        for delivery in &batch {
            payloads.push(String::from_utf8_lossy(&delivery.message.payload).into_owned());
            sequences.push(delivery.message.sequence);
        }
        consumer.ack(&batch).await.expect("ack");
    }
}

/// Three rounds of 16 concurrent publishes, one of each round refused by the database inside
/// the transaction. The group holding it rolls back whole and runs again one publish per
/// transaction: only the poisoned publish fails, with the database's reason, and every other
/// message is stored once, numbered 1..=45 with no gap left by the rolled-back group.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publish_the_database_refuses_fails_alone_and_its_group_is_stored() {
    let Some(factory) = factory() else { return };
    let store = factory.fresh_with(options("unused")).await;
    poison_payloads(&factory.url, &store).await;
    let bus = PgBus::new(&store.store, PgBusOptions::default());
    let orders = topic("orders");
    let mut want = BTreeSet::new();
    for round in 0..3 {
        let poisoned = 5 + round;
        let messages = (0..PUBLISHERS)
            .map(|n| {
                let payload = if n == poisoned {
                    "poison".to_owned()
                } else {
                    format!("r{round}-m{n}")
                };
                OutgoingMessage::new(payload.into_bytes())
            })
            .collect();
        let outcomes = publish_at_once(&bus, &orders, messages).await;
        for (n, outcome) in outcomes.into_iter().enumerate() {
            if n == poisoned {
                let error = outcome.expect_err("the poisoned publish fails");
                assert!(
                    format!("{error}").contains("poisoned payload refused"),
                    "the error carries the database's reason: {error}"
                );
            } else {
                let published = outcome.unwrap_or_else(|error| {
                    panic!("publish {n} of round {round} failed with its group: {error}")
                });
                assert_eq!(published.len(), 1);
                assert!(!published[0].duplicate);
                want.insert(format!("r{round}-m{n}"));
            }
        }
    }
    let (payloads, sequences) = stored(&bus, &orders).await;
    let got: BTreeSet<String> = payloads.iter().cloned().collect();
    assert_eq!(payloads.len(), got.len(), "no message stored twice");
    assert_eq!(
        got, want,
        "every good message stored, the poisoned ones not"
    );
    let expected: Vec<u64> = (1..=want.len() as u64).collect();
    assert_eq!(sequences, expected, "sequence numbers without gaps");
}

/// A NUL in a key is refused before the publish joins a group: that publish fails with the
/// field named, and the 15 publishing beside it are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nul_in_one_concurrent_publish_fails_it_alone() {
    let Some(factory) = factory() else { return };
    let store = factory.fresh_with(options("unused")).await;
    let bus = PgBus::new(&store.store, PgBusOptions::default());
    let orders = topic("orders");
    let messages = (0..PUBLISHERS)
        .map(|n| {
            let message = OutgoingMessage::new(format!("m{n}").into_bytes());
            if n == 7 {
                message.keyed("bad\0key")
            } else {
                message
            }
        })
        .collect();
    let outcomes = publish_at_once(&bus, &orders, messages).await;
    for (n, outcome) in outcomes.into_iter().enumerate() {
        if n == 7 {
            let error = outcome.expect_err("the NUL publish fails");
            assert!(
                matches!(&error, BusError::InvalidInput(text) if text.contains("its key")),
                "the error names the key: {error}"
            );
        } else {
            outcome.unwrap_or_else(|error| panic!("publish {n} failed: {error}"));
        }
    }
    let (payloads, sequences) = stored(&bus, &orders).await;
    let got: BTreeSet<String> = payloads.into_iter().collect();
    let want: BTreeSet<String> = (0..PUBLISHERS)
        .filter(|n| *n != 7)
        .map(|n| format!("m{n}"))
        .collect();
    assert_eq!(got, want);
    assert_eq!(sequences, (1..=15).collect::<Vec<u64>>());
}

/// Concurrent publishes of one message id (a retried publish racing its first attempt) may
/// land in one group: the id is stored once, and every other publish reports the duplicate
/// with the stored sequence number.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishes_of_one_id_store_it_once() {
    let Some(factory) = factory() else { return };
    let store = factory.fresh_with(options("unused")).await;
    let bus = PgBus::new(&store.store, PgBusOptions::default());
    let orders = topic("orders");
    let first = OutgoingMessage::new(b"once".to_vec());
    let messages = (0..PUBLISHERS).map(|_| first.clone()).collect();
    let outcomes = publish_at_once(&bus, &orders, messages).await;
    let published: Vec<Published> = outcomes
        .into_iter()
        .map(|outcome| outcome.expect("publish").remove(0))
        .collect();
    let fresh = published.iter().filter(|p| !p.duplicate).count();
    assert_eq!(
        fresh, 1,
        "exactly one publish stored the message: {published:?}"
    );
    assert!(
        published.iter().all(|p| p.sequence == 1),
        "every publish reports the stored sequence: {published:?}"
    );
    let (payloads, _) = stored(&bus, &orders).await;
    assert_eq!(payloads, vec!["once".to_owned()]);
}
