//! Reading one stream: forward and backward, from a version, with a limit; unknown streams;
//! zero limits; stream versions; the paged reader over long streams.

use futures_util::TryStreamExt;
use mammoth_core::{
    Direction, EventFilter, EventStore, ExpectedVersion, RecordedEvent, StoreError, StreamId,
    Version, read_stream_pages,
};

use crate::StoreFactory;
use crate::support::{append_ok, event, events, n_of, sid, version_of};

/// A store holding `order-1` at version 10 (in batches of 3, 1, 4, 2) interleaved with events
/// of `order-2` and `order-10`; event n of `order-1` has data `{"n": n}` and version n.
async fn ten_event_stream<F: StoreFactory>(factory: &F) -> (F::Store, StreamId) {
    let store = factory.fresh().await;
    let stream = sid("order-1");
    let mut next = 1;
    for (round, count) in [3_u64, 1, 4, 2].into_iter().enumerate() {
        append_ok(
            &store,
            &stream,
            ExpectedVersion::Any,
            events("A", next, count),
            "writing order-1",
        )
        .await;
        let noise = sid(if round % 2 == 0 {
            "order-2"
        } else {
            "order-10"
        });
        append_ok(
            &store,
            &noise,
            ExpectedVersion::Any,
            vec![event("B", 100 + round as u64)],
            "writing a neighbour stream",
        )
        .await;
        next += count;
    }
    (store, stream)
}

async fn versions<S: EventStore>(
    store: &S,
    stream: &StreamId,
    direction: Direction,
    from: Option<Version>,
    limit: usize,
) -> Vec<Version> {
    let what = format!("read_stream({stream:?}, {direction:?}, from {from:?}, limit {limit})");
    let events: Vec<RecordedEvent> = store
        .read_stream(stream, direction, from, limit)
        .await
        .unwrap_or_else(|error| panic!("{what} failed: {error}"));
    for event in &events {
        assert_eq!(
            &event.stream_id, stream,
            "{what} returned an event of another stream"
        );
        assert_eq!(
            n_of(event),
            event.version,
            "{what}: version {} carries the data of another event",
            event.version
        );
    }
    events.iter().map(|event| event.version).collect()
}

/// Forward reads start at `from` (inclusive; `None` and 0 mean the first event), return at
/// most `limit` events oldest first, and only the stream's own events.
pub async fn stream_reads_forward_from_a_version_with_a_limit<F: StoreFactory>(factory: &F) {
    let (store, stream) = ten_event_stream(factory).await;
    let f = Direction::Forward;
    for (from, limit, want) in [
        (None, 100, (1..=10).collect::<Vec<Version>>()),
        (None, 1, vec![1]),
        (Some(0), 2, vec![1, 2]),
        (Some(4), 3, vec![4, 5, 6]),
        (Some(9), 5, vec![9, 10]),
        (Some(10), 1, vec![10]),
        (Some(11), 5, vec![]),
        (Some(Version::MAX), 5, vec![]),
        (Some(3), usize::MAX, (3..=10).collect()),
    ] {
        let got = versions(&store, &stream, f, from, limit).await;
        assert_eq!(
            got, want,
            "forward read of {stream:?} from {from:?} with limit {limit}: versions"
        );
    }
}

/// Backward reads start at `from` (inclusive; `None` means the last event), return at most
/// `limit` events newest first.
pub async fn stream_reads_backward_from_a_version_with_a_limit<F: StoreFactory>(factory: &F) {
    let (store, stream) = ten_event_stream(factory).await;
    let b = Direction::Backward;
    for (from, limit, want) in [
        (None, 100, (1..=10).rev().collect::<Vec<Version>>()),
        (None, 2, vec![10, 9]),
        (Some(6), 3, vec![6, 5, 4]),
        (Some(2), 5, vec![2, 1]),
        (Some(1), 5, vec![1]),
        (Some(0), 5, vec![]),
        (Some(50), 2, vec![10, 9]),
        (Some(Version::MAX), 1, vec![10]),
        (Some(8), usize::MAX, (1..=8).rev().collect()),
    ] {
        let got = versions(&store, &stream, b, from, limit).await;
        assert_eq!(
            got, want,
            "backward read of {stream:?} from {from:?} with limit {limit}: versions"
        );
    }
}

/// A stream with no events, including ids that are prefixes or extensions of existing ones,
/// reads empty in both directions and is at version 0.
pub async fn reading_an_unknown_stream_is_empty<F: StoreFactory>(factory: &F) {
    let (store, _) = ten_event_stream(factory).await;
    for id in [
        "order-3",
        "order-",
        "order-1 ",
        "order-100",
        "order",
        "Order-1",
        "rder-1",
    ] {
        let stream = sid(id);
        for direction in [Direction::Forward, Direction::Backward] {
            let got = versions(&store, &stream, direction, None, 100).await;
            assert!(
                got.is_empty(),
                "unknown stream {id:?} read {direction:?} returned versions {got:?}"
            );
        }
        assert_eq!(
            version_of(&store, &stream).await,
            0,
            "unknown stream {id:?}: stream_version"
        );
    }
}

/// A read limit of 0 is [`StoreError::InvalidRead`], for stream reads in both directions
/// (known and unknown streams) and for global reads.
pub async fn a_zero_limit_is_an_invalid_read<F: StoreFactory>(factory: &F) {
    let (store, stream) = ten_event_stream(factory).await;
    for target in [stream, sid("order-404")] {
        for direction in [Direction::Forward, Direction::Backward] {
            let result = store.read_stream(&target, direction, None, 0).await;
            assert!(
                matches!(result, Err(StoreError::InvalidRead { .. })),
                "read_stream({target:?}, {direction:?}) with limit 0: expected InvalidRead, got {result:?}"
            );
        }
    }
    for from in [0, 1, 1000] {
        let result = store.read_all(from, &EventFilter::all(), 0).await;
        assert!(
            matches!(result, Err(StoreError::InvalidRead { .. })),
            "read_all from {from} with limit 0: expected InvalidRead, got {result:?}"
        );
    }
}

/// [`read_stream_pages`] returns a stream of 1100 events (written in batches of 100) whole and
/// in order, forward and backward, from the start or the middle, whatever the page size —
/// including page sizes that divide the stream exactly.
pub async fn paged_stream_reads_return_long_streams_in_order<F: StoreFactory>(factory: &F) {
    const LENGTH: u64 = 1100;
    let store = factory.fresh().await;
    let stream = sid("long-1");
    for batch in 0..LENGTH / 100 {
        append_ok(
            &store,
            &stream,
            ExpectedVersion::Exact(batch * 100),
            events("A", batch * 100 + 1, 100),
            "writing the long stream",
        )
        .await;
        append_ok(
            &store,
            &sid("long-2"),
            ExpectedVersion::Any,
            vec![event("B", batch)],
            "writing a neighbour",
        )
        .await;
    }
    let cases: [(Direction, Option<Version>, usize, Vec<Version>); 6] = [
        (Direction::Forward, None, 100, (1..=LENGTH).collect()),
        (Direction::Forward, None, 7, (1..=LENGTH).collect()),
        (Direction::Forward, Some(500), 64, (500..=LENGTH).collect()),
        (Direction::Backward, None, 100, (1..=LENGTH).rev().collect()),
        (Direction::Backward, None, 7, (1..=LENGTH).rev().collect()),
        (
            Direction::Backward,
            Some(600),
            512,
            (1..=600).rev().collect(),
        ),
    ];
    for (direction, from, page_size, want) in cases {
        let what = format!("read_stream_pages {direction:?} from {from:?} in pages of {page_size}");
        let got: Vec<RecordedEvent> =
            read_stream_pages(&store, stream.clone(), direction, from, page_size)
                .try_collect()
                .await
                .unwrap_or_else(|error| panic!("{what} failed: {error}"));
        let got_versions: Vec<Version> = got.iter().map(|event| event.version).collect();
        if got_versions != want {
            let first_wrong = got_versions.iter().zip(&want).position(|(g, w)| g != w);
            panic!(
                "{what}: got {} events, expected {}; first difference at index {first_wrong:?}",
                got_versions.len(),
                want.len()
            );
        }
        for event in &got {
            assert_eq!(
                n_of(event),
                event.version,
                "{what}: version {} carries another event's data",
                event.version
            );
        }
    }
}
