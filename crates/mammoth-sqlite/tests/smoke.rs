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
