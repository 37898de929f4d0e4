//! Quick end-to-end checks of the SQLite store that do not need the conformance suite.

use mammoth_core::{Direction, EventFilter, EventStore, ExpectedVersion, NewEvent, StreamId};
use mammoth_sqlite::{SqliteEventStore, SqliteOptions};

fn event(n: u64) -> NewEvent {
    NewEvent::json("Counted", serde_json::json!({ "n": n })).expect("object data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_reads_merge_the_indexed_part_and_the_unindexed_tail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.db");
    let store = SqliteEventStore::open(&path, SqliteOptions::default()).expect("open");
    let stream = StreamId::new("counter-1").expect("valid id");
    for n in 1..=20 {
        store
            .append(&stream, ExpectedVersion::Exact(n - 1), vec![event(n)])
            .await
            .expect("append");
    }
    // Closing flushes the stream index; after reopening, new events land in the tail again.
    store.close().await.expect("close");
    let store = SqliteEventStore::open(&path, SqliteOptions::default()).expect("reopen");
    for n in 21..=30 {
        store
            .append(&stream, ExpectedVersion::Exact(n - 1), vec![event(n)])
            .await
            .expect("append");
    }
    let forward = store
        .read_stream(&stream, Direction::Forward, Some(15), 10)
        .await
        .expect("read");
    let versions: Vec<_> = forward.iter().map(|e| e.version).collect();
    assert_eq!(versions, (15..=24).collect::<Vec<_>>());
    let backward = store
        .read_stream(&stream, Direction::Backward, Some(25), 10)
        .await
        .expect("read");
    let versions: Vec<_> = backward.iter().map(|e| e.version).collect();
    assert_eq!(versions, (16..=25).rev().collect::<Vec<_>>());
    assert_eq!(store.stream_version(&stream).await.expect("version"), 30);
    let all = store
        .read_all(1, &EventFilter::all(), 100)
        .await
        .expect("read all");
    assert_eq!(all.len(), 30);
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        (stats.event_count, stats.stream_count, stats.head_position),
        (30, 1, 30)
    );
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_handle_sees_a_writers_unindexed_tail_and_follows_it_live() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.db");
    let writer = SqliteEventStore::open(&path, SqliteOptions::default()).expect("open");
    let stream = StreamId::new("counter-7").expect("valid id");
    for n in 1..=5 {
        writer
            .append(&stream, ExpectedVersion::Exact(n - 1), vec![event(n)])
            .await
            .expect("append");
    }
    // A second process would open it like this, without the writer lock.
    let reader =
        SqliteEventStore::open_read_only(&path, SqliteOptions::default()).expect("read-only");
    let versions: Vec<_> = reader
        .read_stream(&stream, Direction::Forward, None, 100)
        .await
        .expect("read")
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(
        versions,
        vec![1, 2, 3, 4, 5],
        "the unindexed tail must be found in the file"
    );
    assert_eq!(reader.head_position().await.expect("head"), 5);
    let refused = reader
        .append(&stream, ExpectedVersion::Any, vec![event(6)])
        .await;
    assert!(
        matches!(refused, Err(mammoth_core::StoreError::Backend { .. })),
        "{refused:?}"
    );

    let mut live = mammoth_core::Subscription::new(&reader, 6, EventFilter::all());
    let appender = {
        let writer = writer.clone();
        let stream = stream.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            writer
                .append(&stream, ExpectedVersion::Exact(5), vec![event(6)])
                .await
                .expect("append")
        })
    };
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), live.next())
        .await
        .expect("the read-only subscription must see the other handle's append")
        .expect("read");
    assert_eq!((next.position, next.version), (6, 6));
    appender.await.expect("appender");
    writer.close().await.expect("close");
}

#[tokio::test]
async fn a_second_writer_on_the_same_file_gets_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.db");
    let _first = SqliteEventStore::open(&path, SqliteOptions::default()).expect("open");
    let second = SqliteEventStore::open(&path, SqliteOptions::default());
    let message = second.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("is open in another process"), "{message}");
}
