//! Durability: what a store acknowledged is there, unchanged, after it is closed and opened
//! again, and the reopened store goes on where it left off (versions, positions, idempotency).

use mammoth_core::{ExpectedVersion, Metadata, StoreError};
use serde_json::json;
use uuid::Uuid;

use crate::StoreFactory;
use crate::support::{
    append_err, append_ok, assert_conflict, assert_positions_increase, event, events, head,
    read_log, sid, version_of,
};

/// Data survives close and reopen: every event (ids, versions, positions, types, schema
/// versions, data, metadata, commit times), the head and stream versions are unchanged;
/// afterwards versions continue, new positions are above the old head, a re-sent batch returns
/// its first result and a conflict reports the right version. Skipped, with a printed note,
/// for factories whose `reopen` returns `None`.
pub async fn data_survives_close_and_reopen<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let (a, b) = (sid("order-1"), sid("invoice-1"));
    let resent = [Uuid::now_v7(), Uuid::now_v7()];
    let metadata = Metadata {
        correlation_id: Some(Uuid::now_v7()),
        actor: Some("alice".to_owned()),
        extra: [("ip".to_owned(), json!("10.0.0.1"))].into_iter().collect(),
        ..Metadata::default()
    };
    append_ok(
        &store,
        &a,
        ExpectedVersion::NoStream,
        events("A", 1, 3),
        "writing order-1",
    )
    .await;
    let batch = vec![
        event("B", 1).with_id(resent[0]).with_metadata(metadata),
        event("B", 2).with_id(resent[1]).with_schema_version(3),
    ];
    let first = append_ok(
        &store,
        &b,
        ExpectedVersion::NoStream,
        batch.clone(),
        "writing invoice-1",
    )
    .await;
    append_ok(
        &store,
        &a,
        ExpectedVersion::Exact(3),
        vec![event("A", 4)],
        "writing order-1 again",
    )
    .await;
    let log = read_log(&store).await;
    let old_head = head(&store).await;

    let Some(store) = factory.reopen(store).await else {
        eprintln!(
            "note: data_survives_close_and_reopen skipped: this store keeps nothing across a reopen"
        );
        return;
    };
    let reopened = read_log(&store).await;
    assert_eq!(
        reopened.len(),
        log.len(),
        "the log holds {} events after reopening, {} before",
        reopened.len(),
        log.len()
    );
    for (after, before) in reopened.iter().zip(&log) {
        assert_eq!(
            after, before,
            "event at position {} changed across close and reopen",
            before.position
        );
    }
    assert_eq!(head(&store).await, old_head, "the head after reopening");
    assert_eq!(
        version_of(&store, &a).await,
        4,
        "order-1's version after reopening"
    );
    assert_eq!(
        version_of(&store, &b).await,
        2,
        "invoice-1's version after reopening"
    );

    let again = append_ok(
        &store,
        &b,
        ExpectedVersion::NoStream,
        batch,
        "re-sending invoice-1's batch after reopening",
    )
    .await;
    assert_eq!(
        again, first,
        "a batch re-sent after reopening must return its first result"
    );
    let error = append_err(
        &store,
        &a,
        ExpectedVersion::Exact(2),
        vec![event("A", 9)],
        "Exact(2) on order-1 after reopening",
    )
    .await;
    assert_conflict(
        &error,
        &a,
        ExpectedVersion::Exact(2),
        4,
        "Exact(2) on order-1 after reopening",
    );
    let error = append_err(
        &store,
        &a,
        ExpectedVersion::Any,
        vec![event("A", 9).with_id(resent[0])],
        "reusing an id of invoice-1 after reopening",
    )
    .await;
    assert!(
        matches!(&error, StoreError::DuplicateEventId { id, .. } if *id == resent[0]),
        "reusing an id of invoice-1 in order-1 after reopening: expected DuplicateEventId, got {error:?}"
    );
    let next = append_ok(
        &store,
        &a,
        ExpectedVersion::Exact(4),
        events("A", 5, 2),
        "appending after reopening",
    )
    .await;
    assert_eq!(
        (next.first_version, next.last_version),
        (5, 6),
        "versions continue after reopening"
    );
    assert!(
        next.first_position > old_head,
        "position {} after reopening is not above the old head {old_head}",
        next.first_position
    );
    let log = read_log(&store).await;
    assert_eq!(log.len(), 8, "the log after reopening and appending");
    assert_positions_increase(&log, "the log after reopening");
}
