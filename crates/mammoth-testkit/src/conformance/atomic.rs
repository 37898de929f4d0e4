//! Atomic appends: a failing batch writes none of its events; versions start at 1 and are
//! contiguous; positions strictly increase; an append's result describes what it wrote.

use mammoth_core::{EventStore, ExpectedVersion, Limits, Metadata, NewEvent, StoreError, Version};
use serde_json::json;
use uuid::Uuid;

use crate::StoreFactory;
use crate::support::{
    append_err, append_ok, assert_nothing_written, assert_positions_increase, event, events,
    read_log, read_whole, sid, snapshot,
};

/// A batch of good events with one bad event among them (bad type, schema version 0,
/// non-object data, oversize, an id repeated in the batch, an id already used by another
/// stream) fails whole: no event of it is in the stream, in the global log, or in the head.
pub async fn a_batch_with_one_bad_event_writes_nothing<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    let other = sid("invoice-1");
    let taken = Uuid::now_v7();
    append_ok(
        &store,
        &stream,
        ExpectedVersion::NoStream,
        events("A", 1, 2),
        "seeding the stream",
    )
    .await;
    append_ok(
        &store,
        &other,
        ExpectedVersion::NoStream,
        vec![event("A", 1).with_id(taken)],
        "seeding another stream",
    )
    .await;
    let repeated = Uuid::now_v7();
    let oversize = "x".repeat(Limits::default().max_event_bytes);
    let bad_events: Vec<(&str, NewEvent)> = vec![
        ("an invalid event type", event("not valid!", 0)),
        ("schema version 0", event("A", 0).with_schema_version(0)),
        ("array data", NewEvent::from_json_text("A", "[1, 2]")),
        (
            "an oversize event",
            NewEvent::json("A", json!({ "pad": oversize })).expect("oversize event builds"),
        ),
        ("an id used in another stream", event("A", 0).with_id(taken)),
        (
            "an id repeated in the batch",
            event("A", 0).with_id(repeated),
        ),
    ];
    for (label, bad) in bad_events {
        let what = format!("a batch of 4 with {label} third");
        let mut batch = vec![
            event("A", 10).with_id(repeated),
            event("A", 11),
            bad,
            event("A", 12),
        ];
        if label != "an id repeated in the batch" {
            batch[0].id = None;
        }
        let before = snapshot(&store).await;
        let error = append_err(&store, &stream, ExpectedVersion::Any, batch, &what).await;
        assert!(
            error.is_bad_input(),
            "{what}: expected a bad-input error, got {error:?}"
        );
        assert_nothing_written(&store, &before, &stream, &what).await;
    }
}

/// A batch whose expected version does not match writes none of its events.
pub async fn a_conflicting_batch_writes_nothing<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    append_ok(
        &store,
        &stream,
        ExpectedVersion::NoStream,
        events("A", 1, 2),
        "seeding the stream",
    )
    .await;
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(1),
        ExpectedVersion::Exact(5),
    ] {
        let what = format!("a batch of 5 expecting {expected:?} on a stream at version 2");
        let before = snapshot(&store).await;
        let error = append_err(&store, &stream, expected, events("A", 3, 5), &what).await;
        assert!(
            error.is_conflict(),
            "{what}: expected a conflict, got {error:?}"
        );
        assert_nothing_written(&store, &before, &stream, &what).await;
    }
    let fresh = sid("order-2");
    let what = "a batch of 5 expecting StreamExists on a new stream";
    let before = snapshot(&store).await;
    let error = append_err(
        &store,
        &fresh,
        ExpectedVersion::StreamExists,
        events("A", 1, 5),
        what,
    )
    .await;
    assert!(
        error.is_conflict(),
        "{what}: expected a conflict, got {error:?}"
    );
    assert_nothing_written(&store, &before, &fresh, what).await;
}

/// Free metadata fields named like the typed ones (`actor` holding a number, `tenant` given
/// twice) must never half-write a batch. The store may refuse the batch with
/// [`StoreError::InvalidMetadata`] and write nothing, or accept it whole, every event readable;
/// anything in between (some events written, or events that no longer read back) breaks the
/// atomicity contract.
pub async fn metadata_fields_shadowing_typed_fields_never_half_write_a_batch<F: StoreFactory>(
    factory: &F,
) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    let mut numeric_actor = Metadata::default();
    numeric_actor.extra.insert("actor".to_owned(), json!(5));
    let mut twice_tenant = Metadata {
        tenant: Some("acme".to_owned()),
        ..Metadata::default()
    };
    twice_tenant
        .extra
        .insert("tenant".to_owned(), json!("other"));
    for (label, metadata) in [
        ("a numeric `actor` free field", numeric_actor),
        ("`tenant` set twice", twice_tenant),
    ] {
        let what = format!("a batch of 3 whose second event has {label}");
        let batch = vec![
            event("A", 1),
            event("A", 2).with_metadata(metadata),
            event("A", 3),
        ];
        let before = snapshot(&store).await;
        let version_before = read_whole(&store, &stream).await.len() as Version;
        match store.append(&stream, ExpectedVersion::Any, batch).await {
            Err(StoreError::InvalidMetadata { .. }) => {
                assert_nothing_written(&store, &before, &stream, &what).await;
            }
            Err(other) => panic!("{what}: expected InvalidMetadata or success, got {other:?}"),
            Ok(result) => {
                assert_eq!(
                    (result.first_version, result.last_version),
                    (version_before + 1, version_before + 3),
                    "{what}: accepted, so all three events must be written"
                );
                let read = store
                    .read_stream(
                        &stream,
                        mammoth_core::Direction::Forward,
                        Some(version_before + 1),
                        10,
                    )
                    .await;
                let read = read.unwrap_or_else(|error| {
                    panic!("{what}: accepted, but the stream no longer reads back: {error}")
                });
                assert_eq!(
                    read.len(),
                    3,
                    "{what}: accepted, but {} of 3 events read back",
                    read.len()
                );
            }
        }
    }
}

/// The first event of a stream has version 1, each append continues where the stream was, and
/// the result's versions and positions are those of the recorded events.
pub async fn versions_start_at_one_and_are_contiguous<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let a = sid("order-1");
    let b = sid("order-2");
    let mut expected_next = [1 as Version, 1];
    for (round, (index, count)) in [(0, 1), (1, 3), (0, 3), (0, 1), (1, 2), (0, 2)]
        .into_iter()
        .enumerate()
    {
        let stream = if index == 0 { &a } else { &b };
        let what = format!("append {round} of {count} events to {stream:?}");
        let result = append_ok(
            &store,
            stream,
            ExpectedVersion::Any,
            events("A", round as u64 * 10, count),
            &what,
        )
        .await;
        let next = expected_next[index];
        assert_eq!(
            (result.first_version, result.last_version),
            (next, next + count - 1),
            "{what}: versions must continue from the stream's version"
        );
        let written = store
            .read_stream(
                stream,
                mammoth_core::Direction::Forward,
                Some(next),
                count as usize,
            )
            .await
            .unwrap_or_else(|error| panic!("{what}: reading the events back failed: {error}"));
        assert_eq!(written.len() as u64, count, "{what}: events read back");
        assert_eq!(
            written[0].position, result.first_position,
            "{what}: first_position is the first event's position"
        );
        assert_eq!(
            written[written.len() - 1].position,
            result.last_position,
            "{what}: last_position is the last event's position"
        );
        expected_next[index] = next + count;
    }
    for stream in [&a, &b] {
        let versions: Vec<Version> = read_whole(&store, stream)
            .await
            .iter()
            .map(|e| e.version)
            .collect();
        let want: Vec<Version> = (1..=versions.len() as Version).collect();
        assert_eq!(
            versions, want,
            "stream {stream:?}: versions must be 1, 2, 3, ... without gaps"
        );
    }
}

/// Positions strictly increase in commit order, across streams and within a batch, and each
/// append's positions are above everything committed before it.
pub async fn positions_strictly_increase_in_commit_order<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let mut last_position = 0;
    for round in 0..12_u64 {
        let stream = sid(&format!("order-{}", round % 3));
        let count = 1 + round % 3;
        let what = format!("append {round}");
        let result = append_ok(
            &store,
            &stream,
            ExpectedVersion::Any,
            events("A", round * 10, count),
            &what,
        )
        .await;
        assert!(
            result.first_position > last_position,
            "{what}: first position {} is not above {last_position}, the last position committed before",
            result.first_position
        );
        assert!(
            result.last_position >= result.first_position + count - 1,
            "{what}: {count} events cannot fit between positions {} and {}",
            result.first_position,
            result.last_position
        );
        last_position = result.last_position;
    }
    let log = read_log(&store).await;
    assert_eq!(log.len(), 24, "the global log holds every appended event");
    assert!(
        log[0].position >= 1,
        "the first position is at least 1, got {}",
        log[0].position
    );
    assert_positions_increase(&log, "the global log");
}
