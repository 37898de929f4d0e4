//! Idempotent appends: re-sending the same ids to the same stream returns the first result and
//! writes nothing; ids used elsewhere, partly matching re-sends and repeats within one batch
//! are typed errors.

use mammoth_core::{ExpectedVersion, NewEvent, StoreError};
use uuid::Uuid;

use crate::StoreFactory;
use crate::support::{append_err, append_ok, assert_nothing_written, event, sid, snapshot};

fn with_ids(ids: &[Uuid]) -> Vec<NewEvent> {
    ids.iter()
        .enumerate()
        .map(|(n, id)| event("A", n as u64).with_id(*id))
        .collect()
}

/// Re-sending a batch with the same ids to the same stream returns the first append's result
/// and writes nothing, even with the same (now stale) expected version and after the stream
/// has moved on.
pub async fn resending_the_same_ids_to_the_same_stream_returns_the_first_result<F: StoreFactory>(
    factory: &F,
) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    let single = [Uuid::now_v7()];
    let triple = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    let first_single = append_ok(
        &store,
        &stream,
        ExpectedVersion::NoStream,
        with_ids(&single),
        "first append of a single event",
    )
    .await;
    let first_triple = append_ok(
        &store,
        &stream,
        ExpectedVersion::Exact(1),
        with_ids(&triple),
        "first append of three events",
    )
    .await;
    for (label, expected, ids, first) in [
        (
            "the single event",
            ExpectedVersion::NoStream,
            &single[..],
            first_single,
        ),
        (
            "the three events",
            ExpectedVersion::Exact(1),
            &triple[..],
            first_triple,
        ),
        (
            "the three events expecting Any",
            ExpectedVersion::Any,
            &triple[..],
            first_triple,
        ),
    ] {
        let what = format!("re-sending {label}");
        let before = snapshot(&store).await;
        let again = append_ok(&store, &stream, expected, with_ids(ids), &what).await;
        assert_eq!(
            again, first,
            "{what}: must return the first append's result"
        );
        assert_nothing_written(&store, &before, &stream, &what).await;
    }
    append_ok(
        &store,
        &stream,
        ExpectedVersion::Exact(4),
        vec![event("B", 9)],
        "moving the stream on",
    )
    .await;
    let what = "re-sending the three events after the stream moved on";
    let before = snapshot(&store).await;
    let again = append_ok(
        &store,
        &stream,
        ExpectedVersion::Exact(1),
        with_ids(&triple),
        what,
    )
    .await;
    assert_eq!(
        again, first_triple,
        "{what}: must return the first append's result"
    );
    assert_nothing_written(&store, &before, &stream, what).await;
}

/// An event id already stored in one stream, appended to another, is
/// [`StoreError::DuplicateEventId`] naming the id and the stream that holds it; nothing written.
pub async fn an_event_id_used_in_another_stream_is_a_duplicate_event_id<F: StoreFactory>(
    factory: &F,
) {
    let store = factory.fresh().await;
    let holder = sid("order-1");
    let other = sid("order-2");
    let id = Uuid::now_v7();
    append_ok(
        &store,
        &holder,
        ExpectedVersion::NoStream,
        with_ids(&[id]),
        "first use of the id",
    )
    .await;
    for (label, batch) in [
        ("alone", with_ids(&[id])),
        (
            "after a new event",
            vec![event("A", 1), event("A", 2).with_id(id)],
        ),
    ] {
        let what = format!("appending the id of an event of {holder:?} to {other:?} {label}");
        let before = snapshot(&store).await;
        let error = append_err(&store, &other, ExpectedVersion::Any, batch, &what).await;
        match &error {
            StoreError::DuplicateEventId {
                id: got,
                existing_stream,
            } => {
                assert_eq!(*got, id, "{what}: the error names the wrong id");
                assert_eq!(
                    existing_stream,
                    holder.as_str(),
                    "{what}: the error names the wrong stream"
                );
            }
            other => panic!("{what}: expected DuplicateEventId, got {other:?}"),
        }
        let text = error.to_string();
        assert!(
            text.contains(&id.to_string()) && text.contains(holder.as_str()),
            "{what}: message {text:?} must name the id and the stream holding it"
        );
        assert_nothing_written(&store, &before, &other, &what).await;
    }
}

/// A re-send whose ids only partly match an earlier append to the same stream (an old id with
/// a new one, or the old ids in another order) is [`StoreError::IdempotencyMismatch`]; nothing
/// is written. The error names an id of the batch (which one is the driver's choice).
pub async fn a_partly_matching_resend_is_an_idempotency_mismatch<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let fresh = Uuid::now_v7();
    append_ok(
        &store,
        &stream,
        ExpectedVersion::NoStream,
        with_ids(&[a, b]),
        "first append",
    )
    .await;
    for (label, ids) in [
        ("the first id followed by a new one", vec![a, fresh]),
        ("a new id followed by the first", vec![fresh, a]),
        ("the two ids reversed", vec![b, a]),
    ] {
        let what = format!("re-sending {label}");
        let before = snapshot(&store).await;
        let error = append_err(&store, &stream, ExpectedVersion::Any, with_ids(&ids), &what).await;
        match &error {
            StoreError::IdempotencyMismatch {
                stream: got_stream,
                id,
            } => {
                assert_eq!(
                    got_stream, &stream,
                    "{what}: the error names the wrong stream"
                );
                assert!(
                    ids.contains(id),
                    "{what}: the error names {id}, which is not in the batch"
                );
            }
            other => panic!("{what}: expected IdempotencyMismatch, got {other:?}"),
        }
        assert_nothing_written(&store, &before, &stream, &what).await;
    }
    let what = "a new event without an id after the partial re-send";
    append_ok(
        &store,
        &stream,
        ExpectedVersion::Exact(2),
        vec![event("A", 3)],
        what,
    )
    .await;
}

/// The same id twice in one batch is [`StoreError::DuplicateEventId`] naming the appended
/// stream; nothing is written.
pub async fn the_same_id_twice_in_one_batch_is_rejected<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    append_ok(
        &store,
        &stream,
        ExpectedVersion::NoStream,
        vec![event("A", 0)],
        "seeding the stream",
    )
    .await;
    let id = Uuid::now_v7();
    for (label, ids) in [
        ("adjacent", vec![id, id]),
        ("apart", vec![id, Uuid::now_v7(), id]),
    ] {
        let what = format!("a batch with one id twice, {label}");
        let before = snapshot(&store).await;
        let error = append_err(&store, &stream, ExpectedVersion::Any, with_ids(&ids), &what).await;
        match &error {
            StoreError::DuplicateEventId {
                id: got,
                existing_stream,
            } => {
                assert_eq!(*got, id, "{what}: the error names the wrong id");
                assert_eq!(
                    existing_stream,
                    stream.as_str(),
                    "{what}: the error names the wrong stream"
                );
            }
            other => panic!("{what}: expected DuplicateEventId, got {other:?}"),
        }
        assert_nothing_written(&store, &before, &stream, &what).await;
    }
}
