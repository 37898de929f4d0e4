//! Bad input: each kind is refused with its typed error, a message naming what is wrong, and
//! nothing written. The limits are [`Limits::default`]: 1 MiB of data plus metadata per event
//! (metadata `{}` counts 2 bytes) and 4096 events per append.

use futures_util::TryStreamExt;
use mammoth_core::{
    Direction, EventStore, ExpectedVersion, Limits, Metadata, NewEvent, RecordedEvent, StoreError,
    StreamId, read_stream_pages,
};
use serde_json::json;

use crate::StoreFactory;
use crate::support::{
    append_err, append_ok, assert_nothing_written, event, events, read_whole, sid, snapshot,
};

/// A store with a little in it, so that "nothing written" is checked against something.
async fn seeded<F: StoreFactory>(factory: &F) -> (F::Store, StreamId) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    append_ok(
        &store,
        &stream,
        ExpectedVersion::NoStream,
        events("A", 1, 2),
        "seeding the store",
    )
    .await;
    (store, stream)
}

/// Appends `batch` to an existing and to a new stream, expecting `check` to accept the error
/// each time and nothing to be written.
async fn refused<S: EventStore>(
    store: &S,
    existing: &StreamId,
    batch: Vec<NewEvent>,
    what: &str,
    check: impl Fn(&StoreError) -> bool,
) {
    for stream in [existing.clone(), sid("order-new")] {
        let what = format!("{what} appended to {stream:?}");
        let before = snapshot(store).await;
        let error = append_err(store, &stream, ExpectedVersion::Any, batch.clone(), &what).await;
        assert!(check(&error), "{what}: wrong error {error:?}");
        assert!(
            error.is_bad_input(),
            "{what}: {error:?} must count as bad input"
        );
        assert_nothing_written(store, &before, &stream, &what).await;
    }
}

/// `StreamId::new` (and deserializing a stream id) refuses an empty id, one of 256 bytes and
/// ids with control characters, so no store ever sees one; 255 bytes are accepted.
pub async fn invalid_stream_ids_are_rejected_by_stream_id_new<F: StoreFactory>(_factory: &F) {
    for (label, id) in [
        ("an empty id", String::new()),
        ("an id of 256 bytes", "x".repeat(256)),
        ("an id of 86 three-byte characters", "€".repeat(86)),
        ("an id with a newline", "order-1\n".to_owned()),
        ("an id with a NUL", "order\u{0}-1".to_owned()),
        ("an id with a tab", "order\t1".to_owned()),
        ("an id with DEL", "order-\u{7f}".to_owned()),
        ("an id with a C1 control", "order-\u{85}".to_owned()),
    ] {
        let result = StreamId::new(id.clone());
        assert!(
            matches!(&result, Err(StoreError::InvalidStreamId { id: got, .. }) if *got == id),
            "StreamId::new with {label}: expected InvalidStreamId naming the id, got {result:?}"
        );
        let decoded = serde_json::from_value::<StreamId>(json!(id));
        assert!(
            decoded.is_err(),
            "deserializing {label} as a StreamId must fail, got {decoded:?}"
        );
    }
    assert!(
        StreamId::new("x".repeat(255)).is_ok(),
        "StreamId::new must accept 255 bytes"
    );
}

/// An append with no events is [`StoreError::EmptyAppend`] naming the stream, whatever the
/// expected version; nothing is written.
pub async fn an_empty_batch_is_rejected<F: StoreFactory>(factory: &F) {
    let (store, stream) = seeded(factory).await;
    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::Exact(2),
        ExpectedVersion::NoStream,
    ] {
        let what = format!("an empty batch expecting {expected:?}");
        let target = if expected == ExpectedVersion::NoStream {
            sid("order-new")
        } else {
            stream.clone()
        };
        let before = snapshot(&store).await;
        let error = append_err(&store, &target, expected, Vec::new(), &what).await;
        assert!(
            matches!(&error, StoreError::EmptyAppend { stream: got } if *got == target),
            "{what}: expected EmptyAppend naming {target:?}, got {error:?}"
        );
        assert_nothing_written(&store, &before, &target, &what).await;
    }
}

/// An event whose data plus metadata is one byte over the limit is
/// [`StoreError::EventTooLarge`] with its size and the limit, alone or in a batch; metadata
/// counts toward the size.
pub async fn an_oversize_event_is_rejected<F: StoreFactory>(factory: &F) {
    let (store, stream) = seeded(factory).await;
    let max = Limits::default().max_event_bytes;
    // `{"p":"` + padding + `"}` is 8 bytes of framing; with `{}` metadata the event is max + 1.
    let data = format!("{{\"p\":\"{}\"}}", "x".repeat(max + 1 - 2 - 8));
    assert_eq!(
        data.len() + 2,
        max + 1,
        "test data: the oversize event's size"
    );
    let too_large = |size: usize| {
        move |error: &StoreError| {
            matches!(error, StoreError::EventTooLarge { event_type, size: s, max: m }
                if event_type == "Big" && *s == size && *m == max)
        }
    };
    let big = NewEvent::from_json_text("Big", data);
    refused(
        &store,
        &stream,
        vec![big.clone()],
        "data one byte over the limit",
        too_large(max + 1),
    )
    .await;
    refused(
        &store,
        &stream,
        vec![event("A", 1), big, event("A", 2)],
        "a batch with an oversize event",
        too_large(max + 1),
    )
    .await;
    let mut metadata = Metadata::default();
    metadata
        .extra
        .insert("blob".to_owned(), json!("y".repeat(max)));
    let heavy = NewEvent::from_json_text("Big", "{}").with_metadata(metadata.clone());
    let size = 2 + metadata.to_json().len();
    refused(
        &store,
        &stream,
        vec![heavy],
        "metadata over the limit",
        too_large(size),
    )
    .await;
}

/// An event of exactly the limit (1 MiB of data plus `{}` metadata) is stored and read back
/// whole.
pub async fn the_largest_allowed_event_is_stored_whole<F: StoreFactory>(factory: &F) {
    let (store, stream) = seeded(factory).await;
    let max = Limits::default().max_event_bytes;
    let data = format!("{{\"p\":\"{}\"}}", "x".repeat(max - 2 - 8));
    assert_eq!(data.len() + 2, max, "test data: the largest event's size");
    append_ok(
        &store,
        &stream,
        ExpectedVersion::Exact(2),
        vec![NewEvent::from_json_text("Big", data.clone())],
        "appending an event of exactly the limit",
    )
    .await;
    let read = read_whole(&store, &stream).await;
    assert_eq!(read.len(), 3, "events read back");
    assert!(
        read[2].data == data,
        "the largest event came back with {} bytes of data, expected {}",
        read[2].data.len(),
        data.len()
    );
}

/// Event types that are empty, too long, start with a digit or `-`, or hold spaces, slashes,
/// non-ASCII or control characters are [`StoreError::InvalidEventType`] naming the type;
/// `_`, `.`, `-`, `:` and 255 bytes are accepted and round-trip.
pub async fn invalid_event_types_are_rejected<F: StoreFactory>(factory: &F) {
    let (store, stream) = seeded(factory).await;
    for name in [
        String::new(),
        "a".repeat(256),
        "1Created".to_owned(),
        "-Created".to_owned(),
        "Order Created".to_owned(),
        "Order/Created".to_owned(),
        "Ordér".to_owned(),
        "Created\n".to_owned(),
        "Created;DROP".to_owned(),
    ] {
        let what = format!("event type {name:?}");
        let check = |error: &StoreError| matches!(error, StoreError::InvalidEventType { name: got, .. } if *got == name);
        refused(
            &store,
            &stream,
            vec![event("A", 0), event(&name, 0)],
            &what,
            check,
        )
        .await;
    }
    let good = [
        "_private".to_owned(),
        "order.created:v2-x".to_owned(),
        "a".repeat(255),
    ];
    let batch = good.iter().map(|name| event(name, 0)).collect();
    append_ok(
        &store,
        &stream,
        ExpectedVersion::Exact(2),
        batch,
        "valid unusual event types",
    )
    .await;
    let read = read_whole(&store, &stream).await;
    let types: Vec<&str> = read[2..].iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        good.iter().map(String::as_str).collect::<Vec<_>>(),
        "event types must round-trip"
    );
}

/// Schema version 0 is [`StoreError::InvalidSchemaVersion`]; nothing is written.
pub async fn schema_version_zero_is_rejected<F: StoreFactory>(factory: &F) {
    let (store, stream) = seeded(factory).await;
    let check = |error: &StoreError| matches!(error, StoreError::InvalidSchemaVersion { event_type, schema_version: 0 } if event_type == "Zero");
    let zero = event("Zero", 0).with_schema_version(0);
    refused(
        &store,
        &stream,
        vec![zero.clone()],
        "schema version 0",
        check,
    )
    .await;
    refused(
        &store,
        &stream,
        vec![event("A", 0), zero],
        "a batch with schema version 0 second",
        check,
    )
    .await;
}

/// Data that is not a JSON object (array, string, number, null, boolean, invalid or truncated
/// JSON, trailing text, empty text) is [`StoreError::InvalidData`]; nothing is written.
pub async fn non_object_json_data_is_rejected<F: StoreFactory>(factory: &F) {
    let (store, stream) = seeded(factory).await;
    for text in [
        "[1, 2]",
        "\"text\"",
        "42",
        "null",
        "true",
        "{\"a\":",
        "{'a': 1}",
        "{\"a\":1} trailing",
        "{\"a\":1}{\"b\":2}",
        "",
        "   ",
        "{\"a\":NaN}",
    ] {
        let what = format!("data {text:?}");
        let check = |error: &StoreError| matches!(error, StoreError::InvalidData { event_type, .. } if event_type == "Bad");
        refused(
            &store,
            &stream,
            vec![NewEvent::from_json_text("Bad", text)],
            &what,
            check,
        )
        .await;
    }
    let built = NewEvent::json("Bad", json!([1, 2]));
    assert!(
        matches!(built, Err(StoreError::InvalidData { .. })),
        "NewEvent::json with an array must be InvalidData, got {built:?}"
    );
}

/// One event over the per-append limit (4097) is [`StoreError::TooManyEvents`] with the count
/// and the limit; nothing is written.
pub async fn too_many_events_in_one_append_are_rejected<F: StoreFactory>(factory: &F) {
    let (store, stream) = seeded(factory).await;
    let max = Limits::default().max_events_per_append;
    let check = |error: &StoreError| matches!(error, StoreError::TooManyEvents { count, max: m } if *count == max + 1 && *m == max);
    refused(
        &store,
        &stream,
        events("A", 0, max as u64 + 1),
        "one event over the per-append limit",
        check,
    )
    .await;
}

/// An append of exactly the per-append limit (4096 events) is stored whole, versions 1 to
/// 4096, in order.
pub async fn the_largest_allowed_batch_is_stored_whole<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let stream = sid("bulk-1");
    let max = Limits::default().max_events_per_append as u64;
    let result = append_ok(
        &store,
        &stream,
        ExpectedVersion::NoStream,
        events("A", 1, max),
        "appending the largest batch",
    )
    .await;
    assert_eq!(
        (result.first_version, result.last_version),
        (1, max),
        "the largest batch's versions"
    );
    let read: Vec<RecordedEvent> =
        read_stream_pages(&store, stream, Direction::Forward, None, 1000)
            .try_collect()
            .await
            .unwrap_or_else(|error| panic!("reading the largest batch back failed: {error}"));
    assert_eq!(
        read.len() as u64,
        max,
        "events of the largest batch read back"
    );
    for (index, event) in read.iter().enumerate() {
        assert_eq!(
            event.version,
            index as u64 + 1,
            "the largest batch: event {index} has the wrong version"
        );
        assert_eq!(
            event.data,
            json!({ "n": index + 1 }).to_string(),
            "the largest batch: event {index} has another event's data"
        );
    }
}
