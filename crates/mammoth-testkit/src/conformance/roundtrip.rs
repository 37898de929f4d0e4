//! What goes in comes out: metadata, schema versions, caller-given ids, data bytes, stream ids
//! at their limits, store-assigned ids and commit times.

use mammoth_core::{
    Direction, EventFilter, EventStore, ExpectedVersion, Metadata, NewEvent, RecordedEvent,
    StreamId, now_micros,
};
use serde_json::json;
use uuid::Uuid;

use crate::StoreFactory;
use crate::support::{append_ok, event, read_log, read_whole, sid};

/// Reads `stream` through `read_stream` and the global log and checks both agree.
async fn read_both_ways<S: EventStore>(store: &S, stream: &StreamId) -> Vec<RecordedEvent> {
    let by_stream = read_whole(store, stream).await;
    let by_log: Vec<RecordedEvent> = read_log(store)
        .await
        .into_iter()
        .filter(|e| &e.stream_id == stream)
        .collect();
    assert_eq!(
        by_stream, by_log,
        "stream {stream:?} reads differently through read_stream and read_all"
    );
    by_stream
}

/// Metadata — correlation and causation ids, actor, tenant, trace context and free fields
/// (nested, unicode, numbers, booleans, null) — comes back equal, per event of a batch, and
/// empty metadata comes back empty.
pub async fn metadata_round_trips<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    let mut full = Metadata {
        correlation_id: Some(Uuid::new_v4()),
        causation_id: Some(Uuid::now_v7()),
        actor: Some("alice@example.com".to_owned()),
        tenant: Some("acme \"west\"".to_owned()),
        trace_context: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
        ..Metadata::default()
    };
    full.extra.insert("ip".to_owned(), json!("10.0.0.1"));
    full.extra.insert(
        "nested".to_owned(),
        json!({ "a": [1, 2, { "b": null }], "c": { "d": "e" } }),
    );
    full.extra
        .insert("unicode".to_owned(), json!("ü € 😀 \u{7f}"));
    full.extra.insert("count".to_owned(), json!(-42));
    full.extra.insert("ratio".to_owned(), json!(0.25));
    full.extra.insert("flag".to_owned(), json!(true));
    full.extra.insert("nothing".to_owned(), json!(null));
    let causation_only = Metadata {
        causation_id: Some(Uuid::new_v4()),
        ..Metadata::default()
    };
    let extra_only = Metadata {
        extra: [("source".to_owned(), json!("import"))]
            .into_iter()
            .collect(),
        ..Metadata::default()
    };
    let given = [full, Metadata::default(), causation_only, extra_only];
    let batch = given
        .iter()
        .enumerate()
        .map(|(n, m)| event("A", n as u64).with_metadata(m.clone()))
        .collect();
    append_ok(
        &store,
        &stream,
        ExpectedVersion::NoStream,
        batch,
        "appending events with metadata",
    )
    .await;
    let read = read_both_ways(&store, &stream).await;
    assert_eq!(read.len(), given.len(), "events read back");
    for (n, (event, metadata)) in read.iter().zip(&given).enumerate() {
        assert_eq!(
            &event.metadata, metadata,
            "event {n}: metadata must round-trip unchanged"
        );
    }
}

/// Schema versions (1, 2 and `u32::MAX`) and caller-given ids (v4, v7, the max UUID) come back
/// as given; ids the store assigns are fresh UUID v7s.
pub async fn schema_version_and_caller_ids_round_trip<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    let given: [(Option<Uuid>, u32); 5] = [
        (Some(Uuid::new_v4()), 1),
        (Some(Uuid::now_v7()), 2),
        (Some(Uuid::max()), u32::MAX),
        (None, 7),
        (None, 1),
    ];
    let batch = given
        .iter()
        .enumerate()
        .map(|(n, (id, schema))| {
            let event = event("A", n as u64).with_schema_version(*schema);
            match id {
                Some(id) => event.with_id(*id),
                None => event,
            }
        })
        .collect();
    append_ok(
        &store,
        &stream,
        ExpectedVersion::NoStream,
        batch,
        "appending events with ids and schema versions",
    )
    .await;
    let read = read_both_ways(&store, &stream).await;
    assert_eq!(read.len(), given.len(), "events read back");
    for (n, (event, (id, schema))) in read.iter().zip(&given).enumerate() {
        assert_eq!(
            event.schema_version, *schema,
            "event {n}: schema version must round-trip"
        );
        match id {
            Some(id) => assert_eq!(event.id, *id, "event {n}: the caller's id must be kept"),
            None => assert_eq!(
                event.id.get_version_num(),
                7,
                "event {n}: an id the store assigns must be a UUID v7, got {}",
                event.id
            ),
        }
    }
    assert_ne!(
        read[3].id, read[4].id,
        "store-assigned ids must be distinct"
    );
}

/// Event data is stored byte for byte, as the contract says: whitespace, key order, escapes
/// (including `\u0000`), unicode, number spellings and duplicate keys come back unchanged.
pub async fn event_data_is_stored_byte_for_byte<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    let texts = [
        "{}",
        "{ \"b\" : 1,\n\t\"a\" : [ 1.0, 2e3, -0, 1E-7 ] }",
        "{\"s\":\"\\u00fc ü \\\"q\\\" \\n \\u0000 \\ud83d\\ude00 😀\"}",
        "{\"big\":123456789012345678901234567890,\"exact\":0.1000000000000000055511151231257827}",
        "{\"dup\":1,\"dup\":2}",
        "{\"nested\":{\"deep\":[[[{\"x\":null}]]]},\"t\":true,\"f\":false}",
    ];
    let batch = texts
        .iter()
        .map(|text| NewEvent::from_json_text("A", *text))
        .collect();
    append_ok(
        &store,
        &stream,
        ExpectedVersion::NoStream,
        batch,
        "appending events with unusual JSON",
    )
    .await;
    let read = read_both_ways(&store, &stream).await;
    assert_eq!(read.len(), texts.len(), "events read back");
    for (event, text) in read.iter().zip(texts) {
        assert_eq!(
            event.data, text,
            "event {}: data must be stored byte for byte (a store that re-encodes JSON, e.g. as jsonb, breaks this)",
            event.version
        );
    }
}

/// Stream ids at the limits round-trip and keep their category: 255 ASCII bytes, 255 bytes of
/// 3-byte characters, quotes, SQL wildcards, non-ASCII letters and reserved `$` ids.
pub async fn stream_ids_at_the_limits_round_trip<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let ids = [
        format!("long-{}", "x".repeat(250)),
        "€".repeat(85),
        "quote\"d-'1'; --".to_owned(),
        "100%_off-1".to_owned(),
        "ünï-cödé".to_owned(),
        "$saga-order-1".to_owned(),
        "a".to_owned(),
    ];
    for (n, id) in ids.iter().enumerate() {
        assert!(id.len() <= 255, "test data: {id:?} is too long");
        let stream = sid(id);
        append_ok(
            &store,
            &stream,
            ExpectedVersion::NoStream,
            vec![event("A", n as u64)],
            &format!("appending to {id:?}"),
        )
        .await;
    }
    for (n, id) in ids.iter().enumerate() {
        let stream = sid(id);
        let read = read_both_ways(&store, &stream).await;
        assert_eq!(read.len(), 1, "stream {id:?}: events read back");
        assert_eq!(
            read[0].stream_id.as_str(),
            id,
            "stream {id:?}: the id must round-trip"
        );
        assert_eq!(
            read[0].data,
            json!({ "n": n }).to_string(),
            "stream {id:?}: another stream's event came back"
        );
        let filter = EventFilter::all().with_categories([stream.category()]);
        let in_category = store
            .read_all(0, &filter, 100)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "read_all of category {:?} failed: {error}",
                    stream.category()
                )
            });
        assert!(
            in_category.iter().any(|e| e.stream_id == stream),
            "stream {id:?} is missing from a read of its category {:?}",
            stream.category()
        );
        let backward = store
            .read_stream(&stream, Direction::Backward, None, 10)
            .await;
        assert_eq!(
            backward.map(|events| events.len()).ok(),
            Some(1),
            "stream {id:?}: backward read"
        );
    }
}

/// Recorded events carry their commit time (microseconds since the epoch, within a minute of
/// the append, allowing for a database clock), the same for every read path.
pub async fn recorded_events_carry_their_commit_time<F: StoreFactory>(factory: &F) {
    const SLACK_MICROS: i64 = 60_000_000;
    let store = factory.fresh().await;
    let stream = sid("order-1");
    let before = now_micros();
    append_ok(
        &store,
        &stream,
        ExpectedVersion::NoStream,
        vec![event("A", 1), event("A", 2)],
        "appending",
    )
    .await;
    let after = now_micros();
    for event in read_both_ways(&store, &stream).await {
        let at = event.recorded_at_micros;
        assert!(
            at >= before - SLACK_MICROS && at <= after + SLACK_MICROS,
            "event {}: recorded_at_micros {at} is not near the append ({before}..{after}); it must be microseconds since the Unix epoch",
            event.version
        );
    }
}
