//! Reading the global log: from a position (inclusive), with event-type and category filters,
//! with a limit; the head; the paged reader over a long log.

use futures_util::TryStreamExt;
use mammoth_core::{
    EventFilter, EventStore, ExpectedVersion, Position, RecordedEvent, read_all_pages,
};
use uuid::Uuid;

use crate::StoreFactory;
use crate::support::{
    append_ok, assert_positions_increase, describe, event, events, head, ids, read_log, sid,
    version_of,
};

/// Streams whose categories trip naive filters: `order` (no dash: the whole id is the
/// category), `orders-1` and `order_x-1` (an `order` prefix), `invoice-order-1` (category
/// `invoice`), and `ord%-1` (SQL wildcard characters).
const STREAMS: [&str; 7] = [
    "order-1",
    "order-2",
    "order",
    "orders-1",
    "order_x-1",
    "invoice-order-1",
    "ord%-1",
];
const TYPES: [&str; 3] = ["Created", "Paid", "Shipped"];

/// Writes three rounds over [`STREAMS`], types cycling through [`TYPES`], and returns the log.
async fn mixed_log<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    let mut n = 0;
    for round in 0..3 {
        for (index, stream) in STREAMS.iter().enumerate() {
            let count = 1 + (round + index) as u64 % 2;
            let batch = (0..count)
                .map(|k| event(TYPES[(n + k) as usize % TYPES.len()], n + k))
                .collect();
            append_ok(
                store,
                &sid(stream),
                ExpectedVersion::Any,
                batch,
                "writing the mixed log",
            )
            .await;
            n += count;
        }
    }
    let log = read_log(store).await;
    assert_eq!(
        log.len() as u64,
        n,
        "the global log holds every event written"
    );
    assert_positions_increase(&log, "the global log");
    log
}

async fn read<S: EventStore>(
    store: &S,
    from: Position,
    filter: &EventFilter,
    limit: usize,
) -> Vec<RecordedEvent> {
    let page = store
        .read_all(from, filter, limit)
        .await
        .unwrap_or_else(|error| {
            panic!("read_all from {from} with {filter:?}, limit {limit} failed: {error}")
        });
    assert_positions_increase(&page, "a read_all page");
    page
}

/// Panics unless `got` is exactly `want`, naming the read and the first difference.
fn assert_same(got: &[RecordedEvent], want: &[&RecordedEvent], what: &str) {
    if got.len() != want.len() || got.iter().zip(want).any(|(g, w)| g != *w) {
        let got: Vec<String> = got.iter().map(describe).collect();
        let want: Vec<String> = want.iter().map(|e| describe(e)).collect();
        panic!("{what}:\n got  {got:?}\n want {want:?}");
    }
}

/// A read from position p starts at the event at p (inclusive), returns at most `limit`
/// events in position order, and nothing past the head; from 0 and from 1 both start at the
/// beginning; a position above every event (even `u64::MAX`) reads empty.
pub async fn global_reads_start_at_the_given_position_inclusive<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let log = mixed_log(&store).await;
    let all = EventFilter::all();
    let everything: Vec<&RecordedEvent> = log.iter().collect();
    assert_same(
        &read(&store, 0, &all, 10_000).await,
        &everything,
        "read_all from 0",
    );
    assert_same(
        &read(&store, 1, &all, 10_000).await,
        &everything,
        "read_all from 1",
    );
    for index in [0, 1, 5, log.len() - 1] {
        let from = log[index].position;
        let what = format!("read_all from position {from} (event {index})");
        assert_same(
            &read(&store, from, &all, 10_000).await,
            &everything[index..],
            &what,
        );
        let end = (index + 3).min(log.len());
        assert_same(
            &read(&store, from, &all, 3).await,
            &everything[index..end],
            &format!("{what}, limit 3"),
        );
    }
    let past = log[log.len() - 1].position + 1;
    for from in [past, past + 1000, Position::MAX / 2, Position::MAX] {
        let page = read(&store, from, &all, 10).await;
        assert!(
            page.is_empty(),
            "read_all from {from}, past the last position {}, returned {:?}",
            past - 1,
            ids(&page)
        );
    }
    assert_same(
        &read(&store, 0, &all, usize::MAX).await,
        &everything,
        "read_all with limit usize::MAX",
    );
}

/// An event-type filter keeps exactly the events of the listed types, in position order.
pub async fn global_reads_filter_by_event_type<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let log = mixed_log(&store).await;
    for types in [
        vec!["Paid"],
        vec!["Created", "Shipped"],
        vec!["Refunded"],
        vec!["paid"],
    ] {
        let filter = EventFilter::all().with_types(types.iter().copied());
        let want: Vec<&RecordedEvent> = log
            .iter()
            .filter(|e| types.contains(&e.event_type.as_str()))
            .collect();
        assert_same(
            &read(&store, 0, &filter, 10_000).await,
            &want,
            &format!("read_all of types {types:?}"),
        );
        if want.len() > 3 {
            let from = want[1].position;
            assert_same(
                &read(&store, from, &filter, 2).await,
                &want[1..3],
                &format!("read_all of types {types:?} from {from}, limit 2"),
            );
        }
    }
}

/// A category filter keeps exactly the events of streams whose id up to the first `-` (or
/// whole, without one) is a listed category: `order` matches `order-1` and `order` but not
/// `orders-1`, `order_x-1` or `invoice-order-1`, and `_` or `%` in a category are literal.
pub async fn global_reads_filter_by_category<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let log = mixed_log(&store).await;
    let cases: [(Vec<&str>, Vec<&str>); 6] = [
        (vec!["order"], vec!["order-1", "order-2", "order"]),
        (vec!["orders"], vec!["orders-1"]),
        (
            vec!["invoice", "order_x"],
            vec!["invoice-order-1", "order_x-1"],
        ),
        (vec!["ord%"], vec!["ord%-1"]),
        (vec!["ord_r", "ord", "%", "order-1"], vec![]),
        (vec!["Order"], vec![]),
    ];
    for (categories, streams) in cases {
        let filter = EventFilter::all().with_categories(categories.iter().copied());
        let want: Vec<&RecordedEvent> = log
            .iter()
            .filter(|e| streams.contains(&e.stream_id.as_str()))
            .collect();
        assert_same(
            &read(&store, 0, &filter, 10_000).await,
            &want,
            &format!("read_all of categories {categories:?}"),
        );
        if want.len() > 4 {
            let from = want[2].position;
            assert_same(
                &read(&store, from, &filter, 2).await,
                &want[2..4],
                &format!("read_all of categories {categories:?} from {from}, limit 2"),
            );
        }
    }
}

/// Type and category filters together keep the events that pass both.
pub async fn global_reads_filter_by_type_and_category_together<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let log = mixed_log(&store).await;
    for (types, categories) in [
        (vec!["Paid"], vec!["order"]),
        (vec!["Created", "Shipped"], vec!["orders", "invoice"]),
        (vec!["Paid"], vec!["nothing"]),
    ] {
        let filter = EventFilter::all()
            .with_types(types.iter().copied())
            .with_categories(categories.iter().copied());
        let want: Vec<&RecordedEvent> = log.iter().filter(|e| filter.matches(e)).collect();
        assert!(
            types[0] != "Paid" || categories[0] != "order" || !want.is_empty(),
            "test data: the mixed log should hold Paid events in category order"
        );
        let what = format!("read_all of types {types:?} in categories {categories:?}");
        assert_same(&read(&store, 0, &filter, 10_000).await, &want, &what);
        if want.len() > 2 {
            assert_same(
                &read(&store, want[1].position, &filter, 1).await,
                &want[1..2],
                &format!("{what} from the second match, limit 1"),
            );
        }
    }
}

/// A filtered read fills its limit with matching events however many non-matching ones come
/// first: the limit counts results, not rows scanned.
pub async fn filtered_global_reads_fill_the_limit_past_non_matching_events<F: StoreFactory>(
    factory: &F,
) {
    let store = factory.fresh().await;
    for batch in 0..6 {
        append_ok(
            &store,
            &sid("noise-1"),
            ExpectedVersion::Any,
            events("Noise", batch * 100, 100),
            "writing noise",
        )
        .await;
    }
    let mut wanted = Vec::new();
    for n in 0..3 {
        let result = append_ok(
            &store,
            &sid("signal-1"),
            ExpectedVersion::Any,
            vec![event("Wanted", n)],
            "writing a wanted event",
        )
        .await;
        wanted.push(result.first_position);
        append_ok(
            &store,
            &sid("noise-1"),
            ExpectedVersion::Any,
            events("Noise", 1000 + n * 50, 50),
            "writing noise",
        )
        .await;
    }
    for filter in [
        EventFilter::all().with_types(["Wanted"]),
        EventFilter::all().with_categories(["signal"]),
    ] {
        let got: Vec<Position> = read(&store, 0, &filter, 2)
            .await
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(
            got,
            wanted[..2],
            "read_all with {filter:?} and limit 2 after 600 non-matching events"
        );
        let got: Vec<Position> = read(&store, wanted[0] + 1, &filter, 10)
            .await
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(
            got,
            wanted[1..],
            "read_all with {filter:?} from just after the first match"
        );
    }
}

/// The head is 0 for an empty store and each append's last position afterwards; a stream's
/// version is 0 before its first event and each append's last version afterwards.
pub async fn head_position_and_stream_version_track_appends<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    assert_eq!(head(&store).await, 0, "the head of an empty store");
    let (a, b) = (sid("order-1"), sid("order-2"));
    assert_eq!(
        version_of(&store, &a).await,
        0,
        "the version of a stream with no events"
    );
    for (round, count) in [1_u64, 3, 2, 1].into_iter().enumerate() {
        let stream = if round % 2 == 0 { &a } else { &b };
        let result = append_ok(
            &store,
            stream,
            ExpectedVersion::Any,
            events("A", 0, count),
            "appending",
        )
        .await;
        let what = format!("after append {round} ({count} events to {stream:?})");
        assert_eq!(
            head(&store).await,
            result.last_position,
            "{what}: the head is the append's last position"
        );
        assert_eq!(
            version_of(&store, stream).await,
            result.last_version,
            "{what}: stream_version"
        );
    }
    assert_eq!(
        version_of(&store, &a).await,
        3,
        "order-1 after appends of 1 and 2 events"
    );
    assert_eq!(
        version_of(&store, &b).await,
        4,
        "order-2 after appends of 3 and 1 events"
    );
}

/// [`read_all_pages`] returns the whole log (1155 events) in position order across page
/// boundaries, from the start or the middle, filtered or not.
pub async fn paged_global_reads_return_the_whole_log_in_order<F: StoreFactory>(factory: &F) {
    let store = factory.fresh().await;
    let mut sparse = Vec::new();
    for batch in 0..11 {
        append_ok(
            &store,
            &sid("bulk-1"),
            ExpectedVersion::Any,
            events("Bulk", batch * 100, 100),
            "writing bulk",
        )
        .await;
        for k in 0..5 {
            let id = Uuid::now_v7();
            append_ok(
                &store,
                &sid(&format!("sparse-{k}")),
                ExpectedVersion::Any,
                vec![event("Sparse", batch).with_id(id)],
                "writing sparse",
            )
            .await;
            sparse.push(id);
        }
    }
    let log = read_log(&store).await;
    assert_eq!(log.len(), 1155, "the log holds every event written");
    let middle = log[600].position;
    let sparse_filter = EventFilter::all().with_categories(["sparse"]);
    for (from, filter, page_size, want) in [
        (0, EventFilter::all(), 100, ids(&log)),
        (0, EventFilter::all(), 7, ids(&log)),
        (middle, EventFilter::all(), 64, ids(&log[600..])),
        (0, sparse_filter.clone(), 3, sparse.clone()),
        (0, sparse_filter.clone(), 55, sparse.clone()),
        (
            middle,
            EventFilter::all().with_types(["Sparse"]),
            4,
            ids(&log[600..]
                .iter()
                .filter(|e| e.event_type == "Sparse")
                .cloned()
                .collect::<Vec<_>>()),
        ),
    ] {
        let what = format!("read_all_pages from {from} with {filter:?} in pages of {page_size}");
        let got: Vec<RecordedEvent> = read_all_pages(&store, from, filter, page_size)
            .try_collect()
            .await
            .unwrap_or_else(|error| panic!("{what} failed: {error}"));
        assert_positions_increase(&got, &what);
        let got = ids(&got);
        if got != want {
            let first_wrong = got.iter().zip(&want).position(|(g, w)| g != w);
            panic!(
                "{what}: got {} events, expected {}; first difference at index {first_wrong:?}",
                got.len(),
                want.len()
            );
        }
    }
}
