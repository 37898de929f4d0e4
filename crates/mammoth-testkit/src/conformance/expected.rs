//! Expected versions: each form succeeding and failing, conflicts carrying the actual version,
//! and exactly one winner among writers racing for the same version.

use std::sync::Arc;

use mammoth_core::{EventStore, ExpectedVersion, StoreError};
use tokio::sync::Barrier;

use crate::StoreFactory;
use crate::support::{
    append_err, append_ok, assert_conflict, assert_nothing_written, event, events, read_whole, sid,
    snapshot, version_of,
};

/// `Any` appends to a stream that does not exist yet and to one that does.
pub async fn any_version_appends_to_new_and_existing_streams<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    let first = append_ok(
        &store,
        &stream,
        ExpectedVersion::Any,
        events("A", 1, 2),
        "Any on a new stream",
    )
    .await;
    assert_eq!(
        (first.first_version, first.last_version),
        (1, 2),
        "Any on a new stream: versions"
    );
    let second = append_ok(
        &store,
        &stream,
        ExpectedVersion::Any,
        events("A", 3, 1),
        "Any on an existing stream",
    )
    .await;
    assert_eq!(
        (second.first_version, second.last_version),
        (3, 3),
        "Any on an existing stream: versions"
    );
    assert_eq!(
        version_of(&store, &stream).await,
        3,
        "stream version after two Any appends"
    );
}

/// `NoStream` creates a stream, and conflicts with the actual version once the stream exists.
pub async fn no_stream_succeeds_on_a_new_stream_and_conflicts_on_an_existing_one<
    F: StoreFactory,
>(
    factory: &F,
) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    let created = append_ok(
        &store,
        &stream,
        ExpectedVersion::NoStream,
        events("A", 1, 2),
        "NoStream on a new stream",
    )
    .await;
    assert_eq!(
        (created.first_version, created.last_version),
        (1, 2),
        "NoStream on a new stream: versions"
    );
    let before = snapshot(&store).await;
    let error = append_err(
        &store,
        &stream,
        ExpectedVersion::NoStream,
        vec![event("A", 3)],
        "NoStream on a stream at version 2",
    )
    .await;
    assert_conflict(
        &error,
        &stream,
        ExpectedVersion::NoStream,
        2,
        "NoStream on a stream at version 2",
    );
    assert_nothing_written(&store, &before, &stream, "NoStream conflict").await;
}

/// `StreamExists` conflicts (actual 0) on a new stream and appends to an existing one.
pub async fn stream_exists_conflicts_on_a_new_stream_and_succeeds_on_an_existing_one<
    F: StoreFactory,
>(
    factory: &F,
) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    let before = snapshot(&store).await;
    let error = append_err(
        &store,
        &stream,
        ExpectedVersion::StreamExists,
        vec![event("A", 1)],
        "StreamExists on a new stream",
    )
    .await;
    assert_conflict(
        &error,
        &stream,
        ExpectedVersion::StreamExists,
        0,
        "StreamExists on a new stream",
    );
    assert_nothing_written(&store, &before, &stream, "StreamExists conflict").await;
    append_ok(
        &store,
        &stream,
        ExpectedVersion::NoStream,
        vec![event("A", 1)],
        "creating the stream",
    )
    .await;
    let result = append_ok(
        &store,
        &stream,
        ExpectedVersion::StreamExists,
        events("A", 2, 2),
        "StreamExists on a stream at version 1",
    )
    .await;
    assert_eq!(
        (result.first_version, result.last_version),
        (2, 3),
        "StreamExists append: versions"
    );
}

/// `Exact(n)` appends when the stream is at version n, again and again.
pub async fn exact_version_matching_the_stream_succeeds<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    let mut version = 0;
    for (round, count) in [1_u64, 3, 1, 2].into_iter().enumerate() {
        let what = format!("append {round} expecting Exact({version})");
        let result = append_ok(
            &store,
            &stream,
            ExpectedVersion::Exact(version),
            events("A", version + 1, count),
            &what,
        )
        .await;
        assert_eq!(
            (result.first_version, result.last_version),
            (version + 1, version + count),
            "{what}: versions"
        );
        version += count;
    }
    assert_eq!(
        version_of(&store, &stream).await,
        version,
        "stream version after Exact appends"
    );
}

/// `Exact(n)` on a stream at another version, lower or higher, is a conflict carrying the
/// actual version, and writes nothing.
pub async fn exact_version_mismatch_is_a_conflict_with_actual_version<F: StoreFactory>(
    factory: &F,
) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    let missing = sid("order-2");
    append_ok(
        &store,
        &stream,
        ExpectedVersion::NoStream,
        events("A", 1, 3),
        "creating the stream",
    )
    .await;
    let before = snapshot(&store).await;
    for expected in [1, 2, 4, 10] {
        let what = format!("Exact({expected}) on a stream at version 3");
        let error = append_err(
            &store,
            &stream,
            ExpectedVersion::Exact(expected),
            vec![event("A", 9)],
            &what,
        )
        .await;
        assert_conflict(&error, &stream, ExpectedVersion::Exact(expected), 3, &what);
        assert_nothing_written(&store, &before, &stream, &what).await;
    }
    let what = "Exact(2) on a stream that does not exist";
    let error = append_err(
        &store,
        &missing,
        ExpectedVersion::Exact(2),
        vec![event("A", 9)],
        what,
    )
    .await;
    assert_conflict(&error, &missing, ExpectedVersion::Exact(2), 0, what);
    assert_nothing_written(&store, &before, &missing, what).await;
}

/// `Exact(0)` means the same as `NoStream`: it creates a stream and conflicts with an existing
/// one (the conflict carries `Exact(0)` as given and reads "expected no stream").
pub async fn exact_zero_means_no_stream<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    let created = append_ok(
        &store,
        &stream,
        ExpectedVersion::Exact(0),
        events("A", 1, 2),
        "Exact(0) on a new stream",
    )
    .await;
    assert_eq!(
        (created.first_version, created.last_version),
        (1, 2),
        "Exact(0) on a new stream: versions"
    );
    let before = snapshot(&store).await;
    let what = "Exact(0) on a stream at version 2";
    let error = append_err(
        &store,
        &stream,
        ExpectedVersion::Exact(0),
        vec![event("A", 3)],
        what,
    )
    .await;
    assert_conflict(&error, &stream, ExpectedVersion::Exact(0), 2, what);
    assert!(
        error.to_string().contains("expected no stream"),
        "{what}: message {:?} should say \"expected no stream\"",
        error.to_string()
    );
    assert_nothing_written(&store, &before, &stream, what).await;
}

/// A conflict's message names the stream, what was expected and what was found, and the error
/// says it is a conflict (not transient, not bad input).
pub async fn conflict_message_names_stream_expected_and_actual<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    append_ok(
        &store,
        &stream,
        ExpectedVersion::Any,
        events("A", 1, 5),
        "creating the stream",
    )
    .await;
    let error = append_err(
        &store,
        &stream,
        ExpectedVersion::Exact(3),
        vec![event("A", 6)],
        "Exact(3) on version 5",
    )
    .await;
    assert_eq!(
        error.to_string(),
        "stream \"order-1\": expected version 3, found version 5",
        "conflict message"
    );
    assert!(
        error.is_conflict() && !error.is_transient() && !error.is_bad_input(),
        "a conflict must be classified as a conflict only: {error:?}"
    );
    let missing = sid("order-2");
    let error = append_err(
        &store,
        &missing,
        ExpectedVersion::StreamExists,
        vec![event("A", 1)],
        "StreamExists on a new stream",
    )
    .await;
    assert_eq!(
        error.to_string(),
        "stream \"order-2\": expected an existing stream, found no stream",
        "conflict message for a missing stream"
    );
}

/// Writers released together, all expecting the same version: exactly one wins each round, and
/// every loser gets a conflict carrying the version the winner left.
pub async fn two_writers_expecting_the_same_version_exactly_one_wins<F: StoreFactory>(factory: &F) {
    const CONTENDERS: usize = 8;
    const ROUNDS: u64 = 10;
    let store = Arc::new(factory.fresh().await);
    let stream = sid("contest-1");
    let mut version = 0;
    for round in 0..ROUNDS {
        // Round 0 expects NoStream, round 1 Exact(0) on a second stream, later rounds Exact(n).
        let (target, expected) = match round {
            0 => (stream.clone(), ExpectedVersion::NoStream),
            1 => (sid("contest-2"), ExpectedVersion::Exact(0)),
            _ => (stream.clone(), ExpectedVersion::Exact(version)),
        };
        let start = version_of(&*store, &target).await;
        let barrier = Arc::new(Barrier::new(CONTENDERS));
        let mut tasks = Vec::new();
        for contender in 0..CONTENDERS {
            let (store, barrier, target) = (store.clone(), barrier.clone(), target.clone());
            let count = 1 + (contender as u64 % 2);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let result = store
                    .append(&target, expected, events("Bid", contender as u64, count))
                    .await;
                (count, result)
            }));
        }
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for task in tasks {
            let (count, result) = task.await.expect("a contender task panicked");
            match result {
                Ok(result) => winners.push((count, result)),
                Err(error) => losers.push(error),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} of {CONTENDERS} writers expecting {expected:?} succeeded, exactly one must: {winners:?}",
            winners.len()
        );
        let (count, won) = winners[0];
        assert_eq!(
            (won.first_version, won.last_version),
            (start + 1, start + count),
            "round {round}: the winner's versions"
        );
        for error in &losers {
            let what = format!("round {round}: a losing writer expecting {expected:?}");
            assert_conflict(error, &target, expected, start + count, &what);
        }
        let stored = read_whole(&*store, &target).await;
        assert_eq!(
            stored.len() as u64,
            start + count,
            "round {round}: stream {target:?} holds {} events, expected only the winner's {count} on top of {start}",
            stored.len()
        );
        if target == stream {
            version = start + count;
        }
    }
    let error = store
        .append(&stream, ExpectedVersion::Exact(0), vec![event("Late", 0)])
        .await;
    assert!(
        matches!(error, Err(StoreError::Conflict { .. })),
        "a late Exact(0) on the contested stream must conflict: {error:?}"
    );
}
