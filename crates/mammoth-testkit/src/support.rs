//! Helpers the scenarios share: building events, appending with context on failure, reading
//! whole streams and logs, and checking that a failed append left the store as it was.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use mammoth_core::{
    AppendResult, Direction, EventFilter, EventStore, ExpectedVersion, NewEvent, Position,
    RecordedEvent, StoreError, StreamId, Version,
};
use serde_json::{Value, json};
use uuid::Uuid;

/// How long a scenario waits for something that should happen "promptly" (a live event, a
/// wake-up) before it calls it a failure. Generous, so a loaded CI machine does not flake.
pub(crate) const PROMPTLY: Duration = Duration::from_secs(10);

/// A read limit large enough to return everything a scenario wrote.
pub(crate) const ALL: usize = 100_000;

/// A stream id the scenario knows to be valid.
pub(crate) fn sid(id: &str) -> StreamId {
    StreamId::new(id).unwrap_or_else(|error| panic!("test stream id {id:?} is invalid: {error}"))
}

/// An event of `event_type` whose data is `{"n": n}`.
pub(crate) fn event(event_type: &str, n: u64) -> NewEvent {
    data_event(event_type, json!({ "n": n }))
}

/// An event of `event_type` with the given JSON object as data.
pub(crate) fn data_event(event_type: &str, data: Value) -> NewEvent {
    NewEvent::json(event_type, data)
        .unwrap_or_else(|error| panic!("test event {event_type:?} is invalid: {error}"))
}

/// `count` events of `event_type` numbered from `first`.
pub(crate) fn events(event_type: &str, first: u64, count: u64) -> Vec<NewEvent> {
    (first..first + count)
        .map(|n| event(event_type, n))
        .collect()
}

/// The `n` field of an event written by [`event`].
pub(crate) fn n_of(event: &RecordedEvent) -> u64 {
    event
        .data_json()
        .ok()
        .and_then(|data| data.get("n").and_then(Value::as_u64))
        .unwrap_or_else(|| {
            panic!(
                "event at position {} has data {:?}, expected {{\"n\": <number>}}",
                event.position, event.data
            )
        })
}

/// Appends and panics with `what` and the error when the store refuses.
pub(crate) async fn append_ok<S: EventStore>(
    store: &S,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    what: &str,
) -> AppendResult {
    let count = events.len();
    match store.append(stream, expected, events).await {
        Ok(result) => result,
        Err(error) => panic!(
            "{what}: append of {count} events to {stream:?} expecting {expected:?} failed: {error} ({error:?})"
        ),
    }
}

/// Appends and returns the error, panicking with `what` when the store accepts.
pub(crate) async fn append_err<S: EventStore>(
    store: &S,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    what: &str,
) -> StoreError {
    let count = events.len();
    match store.append(stream, expected, events).await {
        Ok(result) => panic!(
            "{what}: append of {count} events to {stream:?} expecting {expected:?} was accepted ({result:?}), expected an error"
        ),
        Err(error) => error,
    }
}

/// Panics unless `error` is the conflict `stream`/`expected`/`actual`, with a Display text that
/// names both versions.
pub(crate) fn assert_conflict(
    error: &StoreError,
    stream: &StreamId,
    expected: ExpectedVersion,
    actual: Version,
    what: &str,
) {
    match error {
        StoreError::Conflict {
            stream: got_stream,
            expected: got_expected,
            actual: got_actual,
        } => {
            assert_eq!(
                got_stream, stream,
                "{what}: conflict names the wrong stream"
            );
            assert_eq!(
                *got_expected, expected,
                "{what}: conflict must carry what the writer expected"
            );
            assert_eq!(
                *got_actual, actual,
                "{what}: conflict must carry the stream's actual version"
            );
            let text = error.to_string();
            let found = if actual == 0 {
                "no stream".to_owned()
            } else {
                format!("version {actual}")
            };
            assert!(
                text.contains(stream.as_str())
                    && text.contains(&expected.to_string())
                    && text.contains(&found),
                "{what}: conflict message {text:?} must name the stream, expected `{expected}` and found `{found}`"
            );
        }
        other => panic!("{what}: expected a conflict (actual version {actual}), got {other:?}"),
    }
}

/// Every event of the global log, read in pages.
pub(crate) async fn read_log<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut from = 0;
    loop {
        let page = store
            .read_all(from, &EventFilter::all(), 1000)
            .await
            .unwrap_or_else(|error| panic!("reading the global log from {from} failed: {error}"));
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        let full = page.len() == 1000;
        all.extend(page);
        if !full {
            break;
        }
    }
    all
}

/// Every event of `stream`, oldest first.
pub(crate) async fn read_whole<S: EventStore>(store: &S, stream: &StreamId) -> Vec<RecordedEvent> {
    store
        .read_stream(stream, Direction::Forward, None, ALL)
        .await
        .unwrap_or_else(|error| panic!("reading stream {stream:?} failed: {error}"))
}

/// The global log's head, with context on failure.
pub(crate) async fn head<S: EventStore>(store: &S) -> Position {
    store
        .head_position()
        .await
        .unwrap_or_else(|error| panic!("head_position failed: {error}"))
}

/// A stream's version, with context on failure.
pub(crate) async fn version_of<S: EventStore>(store: &S, stream: &StreamId) -> Version {
    store
        .stream_version(stream)
        .await
        .unwrap_or_else(|error| panic!("stream_version of {stream:?} failed: {error}"))
}

/// What a store holds, to prove that a failed append changed nothing.
#[derive(Debug)]
pub(crate) struct Snapshot {
    head: Position,
    log: Vec<RecordedEvent>,
}

/// Takes a [`Snapshot`].
pub(crate) async fn snapshot<S: EventStore>(store: &S) -> Snapshot {
    Snapshot {
        head: head(store).await,
        log: read_log(store).await,
    }
}

/// Panics unless the store still holds exactly `before` and `stream` is unchanged: the global
/// log, the head, and the stream's reads and version.
pub(crate) async fn assert_nothing_written<S: EventStore>(
    store: &S,
    before: &Snapshot,
    stream: &StreamId,
    what: &str,
) {
    let now = snapshot(store).await;
    assert_eq!(
        now.head, before.head,
        "{what}: the head moved from {} to {} although the append failed; a failed append writes nothing",
        before.head, now.head
    );
    if now.log != before.log {
        let extra: Vec<String> = now
            .log
            .iter()
            .filter(|event| !before.log.contains(event))
            .map(describe)
            .collect();
        panic!(
            "{what}: the global log changed although the append failed ({} events before, {} after); new: {extra:?}",
            before.log.len(),
            now.log.len()
        );
    }
    let expected: Vec<&RecordedEvent> = before
        .log
        .iter()
        .filter(|event| &event.stream_id == stream)
        .collect();
    let stream_events = read_whole(store, stream).await;
    assert!(
        stream_events.iter().eq(expected.iter().copied()),
        "{what}: stream {stream:?} reads {} events after the failed append, expected the {} it had",
        stream_events.len(),
        expected.len()
    );
    let version = version_of(store, stream).await;
    assert_eq!(
        version,
        expected.len() as Version,
        "{what}: stream {stream:?} is at version {version} after the failed append, expected {}",
        expected.len()
    );
}

/// A short description of an event for assertion messages.
pub(crate) fn describe(event: &RecordedEvent) -> String {
    format!(
        "{}@{} pos {} {} id {}",
        event.stream_id, event.version, event.position, event.event_type, event.id
    )
}

/// Panics unless `events` have strictly increasing positions.
pub(crate) fn assert_positions_increase(events: &[RecordedEvent], what: &str) {
    for pair in events.windows(2) {
        assert!(
            pair[1].position > pair[0].position,
            "{what}: position {} ({}) came after {} ({}); positions must strictly increase",
            pair[1].position,
            describe(&pair[1]),
            pair[0].position,
            describe(&pair[0])
        );
    }
}

/// The ids of `events`, in order.
pub(crate) fn ids(events: &[RecordedEvent]) -> Vec<Uuid> {
    events.iter().map(|event| event.id).collect()
}

/// Awaits `future` for at most [`PROMPTLY`], panicking with `what` when it takes longer.
pub(crate) async fn promptly<T>(future: impl Future<Output = T>, what: &str) -> T {
    tokio::time::timeout(PROMPTLY, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing happened within {PROMPTLY:?}"))
}

/// Unwraps a store result, naming the call in the panic message.
pub(crate) fn ok<T, E: Debug>(result: Result<T, E>, what: &str) -> T {
    result.unwrap_or_else(|error| panic!("{what} failed: {error:?}"))
}
