//! The event store shares its file with the embedded bus (and checkpoint or snapshot stores):
//! their commits must never make an append fail.

use mammoth_core::bus::{MessageBus, OutgoingMessage, Topic};
use mammoth_core::{EventStore, ExpectedVersion, NewEvent, StreamId};
use mammoth_sqlite::{SqliteBus, SqliteBusOptions, SqliteEventStore, SqliteOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_never_fail_while_the_bus_commits_to_the_same_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mammoth.db");
    let store = SqliteEventStore::open(&path, SqliteOptions::default()).expect("open the store");
    let bus = SqliteBus::open(&path, SqliteBusOptions::default()).expect("open the bus");
    let topic = Topic::new("shared.file").expect("topic");

    let publisher = tokio::spawn(async move {
        for n in 0..2000u32 {
            let message =
                OutgoingMessage::new(serde_json::json!({ "n": n }).to_string().into_bytes())
                    .keyed(format!("k{}", n % 7));
            bus.publish(&topic, vec![message]).await.expect("publish");
        }
        bus
    });
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..50u64 {
                // A new stream each time: the writer reads its head inside the transaction
                // before writing, the case a deferred transaction gets wrong.
                let stream = StreamId::new(format!("shared-{w}x{n}")).expect("stream id");
                let event =
                    NewEvent::json("Counted", serde_json::json!({ "n": n })).expect("object");
                store
                    .append(&stream, ExpectedVersion::NoStream, vec![event])
                    .await
                    .expect("an append beside the bus's commits must not fail");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer task");
    }
    let bus = publisher.await.expect("publisher task");
    assert_eq!(store.head_position().await.expect("head"), 400);
    let stats = bus.stats().await.expect("stats");
    let stored = stats
        .iter()
        .filter(|s| s.group.is_none())
        .map(|s| s.messages)
        .sum::<u64>();
    assert_eq!(stored, 2000, "every publish is stored: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_waits_for_another_connection_that_holds_the_write_lock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mammoth.db");
    let store = SqliteEventStore::open(&path, SqliteOptions::default()).expect("open the store");
    let mut other = rusqlite::Connection::open(&path).expect("a second connection");
    other
        .execute_batch("CREATE TABLE IF NOT EXISTS neighbour (n INTEGER)")
        .expect("a neighbour's table");
    // The neighbour (a bus, a checkpoint store) holds the write lock and commits while the
    // append is waiting: the append must wait and then succeed, not fail on a stale snapshot.
    let tx = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("take the write lock");
    tx.execute("INSERT INTO neighbour VALUES (1)", [])
        .expect("write");
    let append = tokio::spawn({
        let store = store.clone();
        async move {
            let stream = StreamId::new("waiting-1").expect("stream id");
            let event = NewEvent::json("Waited", serde_json::json!({})).expect("object");
            store
                .append(&stream, ExpectedVersion::NoStream, vec![event])
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tx.commit().expect("the neighbour commits");
    let written = append.await.expect("append task");
    assert!(
        written.is_ok(),
        "the append waited for the lock: {written:?}"
    );
    assert_eq!(store.head_position().await.expect("head"), 1);
}
