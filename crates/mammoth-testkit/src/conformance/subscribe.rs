//! Subscriptions: catch-up then live with no gap or duplicate at the switch-over, starting
//! positions, filters that skip non-matching events without stalling, and `wait_for_append`.

use std::sync::Arc;
use std::time::Duration;

use mammoth_core::{EventFilter, EventStore, ExpectedVersion, RecordedEvent, Subscription};
use uuid::Uuid;

use crate::StoreFactory;
use crate::support::{
    PROMPTLY, append_ok, describe, event, events, head, ids, ok, promptly, read_log, sid,
};

/// Takes `count` events from `subscription`, each within [`PROMPTLY`].
async fn take<S: EventStore>(
    subscription: &mut Subscription<S>,
    count: usize,
    what: &str,
) -> Vec<RecordedEvent> {
    let mut got: Vec<RecordedEvent> = Vec::with_capacity(count);
    for index in 0..count {
        let waiting = format!(
            "{what}: delivered {index} of {count} events, then stalled (a skipped event never comes back); last delivered: {:?}",
            got.last().map(describe)
        );
        let next = promptly(subscription.next(), &waiting).await;
        got.push(ok(next, &waiting));
    }
    got
}

/// Panics if `subscription` delivers anything within a short wait: nothing more was appended.
async fn assert_quiet<S: EventStore>(subscription: &mut Subscription<S>, what: &str) {
    if let Ok(extra) = tokio::time::timeout(Duration::from_millis(300), subscription.next()).await {
        panic!(
            "{what}: the subscription delivered {:?} although nothing more was appended",
            extra.map(|e| describe(&e))
        );
    }
}

/// Panics unless `got` has exactly the ids `want`, in order.
fn assert_delivered(got: &[RecordedEvent], want: &[Uuid], what: &str) {
    let got_ids = ids(got);
    if got_ids != want {
        let first_wrong = got_ids.iter().zip(want).position(|(g, w)| g != w);
        let described: Vec<String> = got.iter().map(describe).collect();
        panic!(
            "{what}: delivered {} events, expected {}; first difference at index {first_wrong:?}; delivered {described:?}",
            got.len(),
            want.len()
        );
    }
}

/// A subscription from the start delivers the events appended before it (across pages), then
/// those appended while it catches up and after, each exactly once and in position order.
pub async fn subscription_catches_up_then_goes_live_without_gap_or_duplicate<F: StoreFactory>(
    factory: &F,
) {
    let store = Arc::new(factory.fresh().await);
    for n in 0..7 {
        append_ok(
            &*store,
            &sid(&format!("order-{}", n % 3)),
            ExpectedVersion::Any,
            vec![event("Before", n)],
            "appending before subscribing",
        )
        .await;
    }
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for n in 0..20_u64 {
                let stream = sid(&format!("order-{}", n % 4));
                append_ok(
                    &*store,
                    &stream,
                    ExpectedVersion::Any,
                    events("Live", n * 10, 1 + n % 2),
                    "appending while subscribed",
                )
                .await;
                if n % 5 == 4 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    let total = 7 + (0..20_u64).map(|n| 1 + n % 2).sum::<u64>() as usize;
    let mut subscription =
        Subscription::new(store.clone(), 0, EventFilter::all()).with_page_size(2);
    let got = take(&mut subscription, total, "catch-up then live").await;
    promptly(writer, "the writer task")
        .await
        .expect("the writer task panicked");
    let log = read_log(&*store).await;
    assert_delivered(
        &got,
        &ids(&log),
        "catch-up then live, compared with the log",
    );
    assert_quiet(&mut subscription, "after the last event").await;

    let mut batches = Subscription::new(store.clone(), 0, EventFilter::all()).with_page_size(5);
    let mut batched = Vec::new();
    while batched.len() < log.len() {
        let batch = ok(
            promptly(batches.next_batch(), "next_batch").await,
            "next_batch",
        );
        assert!(
            !batch.is_empty() && batch.len() <= 5,
            "next_batch returned {} events with page size 5",
            batch.len()
        );
        batched.extend(batch);
    }
    assert_delivered(&batched, &ids(&log), "next_batch from the start");
}

/// A subscription from position p delivers the event at p first (inclusive) and then the rest
/// of the log, then live events.
pub async fn subscription_starts_at_the_given_position<F: StoreFactory>(factory: &F) {
    let store = Arc::new(factory.fresh().await);
    for n in 0..6 {
        append_ok(
            &*store,
            &sid("order-1"),
            ExpectedVersion::Any,
            events("A", n * 10, 2),
            "appending",
        )
        .await;
    }
    let log = read_log(&*store).await;
    let start = &log[5];
    let mut subscription =
        Subscription::new(store.clone(), start.position, EventFilter::all()).with_page_size(3);
    let got = take(
        &mut subscription,
        log.len() - 5,
        "subscription from the sixth event",
    )
    .await;
    assert_delivered(&got, &ids(&log[5..]), "subscription from the sixth event");
    append_ok(
        &*store,
        &sid("order-2"),
        ExpectedVersion::Any,
        vec![event("Late", 0)],
        "appending live",
    )
    .await;
    let live = take(
        &mut subscription,
        1,
        "subscription from the sixth event, live",
    )
    .await;
    assert_eq!(
        live[0].event_type, "Late",
        "the live event after catching up from a position"
    );
    assert_quiet(
        &mut subscription,
        "subscription from a position, after the live event",
    )
    .await;
}

/// A filtered subscription delivers only matching events, in order, finding them past more
/// non-matching events than a page holds, both while catching up and live.
pub async fn filtered_subscription_skips_non_matching_events_without_stalling<F: StoreFactory>(
    factory: &F,
) {
    let store = Arc::new(factory.fresh().await);
    let noise = sid("noise-1");
    let mut wanted = Vec::new();
    for round in 0..2_u64 {
        for batch in 0..4 {
            append_ok(
                &*store,
                &noise,
                ExpectedVersion::Any,
                events("Noise", batch * 200, 200),
                "writing noise",
            )
            .await;
        }
        let id = Uuid::now_v7();
        append_ok(
            &*store,
            &sid("signal-1"),
            ExpectedVersion::Any,
            vec![event("Wanted", round).with_id(id)],
            "writing a wanted event",
        )
        .await;
        wanted.push(id);
    }
    let by_type = EventFilter::all().with_types(["Wanted"]);
    let by_category = EventFilter::all().with_categories(["signal"]);
    let mut subscriptions = vec![
        Subscription::new(store.clone(), 0, by_type.clone()).with_page_size(16),
        Subscription::new(store.clone(), 0, by_category).with_page_size(512),
        Subscription::new(store.clone(), 0, by_type.with_categories(["signal"])).with_page_size(1),
    ];
    for (index, subscription) in subscriptions.iter_mut().enumerate() {
        let what =
            format!("filtered subscription {index}, catching up past 800 non-matching events");
        let got = take(subscription, 2, &what).await;
        assert_delivered(&got, &wanted, &what);
    }
    let writer = {
        let (store, noise) = (store.clone(), noise.clone());
        tokio::spawn(async move {
            let mut live = Vec::new();
            for round in 0..3_u64 {
                append_ok(
                    &*store,
                    &noise,
                    ExpectedVersion::Any,
                    events("Noise", round, 600),
                    "writing live noise",
                )
                .await;
                let id = Uuid::now_v7();
                append_ok(
                    &*store,
                    &sid("signal-1"),
                    ExpectedVersion::Any,
                    vec![event("Wanted", 10 + round).with_id(id)],
                    "writing a live wanted event",
                )
                .await;
                live.push(id);
            }
            live
        })
    };
    let mut delivered: Vec<Vec<RecordedEvent>> = Vec::new();
    for (index, subscription) in subscriptions.iter_mut().enumerate() {
        delivered.push(
            take(
                subscription,
                3,
                &format!("filtered subscription {index}, live"),
            )
            .await,
        );
    }
    let live = promptly(writer, "the writer task")
        .await
        .expect("the writer task panicked");
    for (index, (got, subscription)) in delivered.iter().zip(&mut subscriptions).enumerate() {
        let what =
            format!("filtered subscription {index}, live past 600 non-matching events per match");
        assert_delivered(got, &live, &what);
        assert_quiet(subscription, &what).await;
    }
}

/// `wait_for_append(after)` returns promptly when the head is already past `after`, and wakes
/// a waiter promptly when another task appends.
pub async fn wait_for_append_wakes_on_a_new_commit<F: StoreFactory>(factory: &F) {
    let store = Arc::new(factory.fresh().await);
    append_ok(
        &*store,
        &sid("order-1"),
        ExpectedVersion::Any,
        events("A", 0, 3),
        "appending",
    )
    .await;
    let at = head(&*store).await;
    ok(
        promptly(
            store.wait_for_append(at - 1),
            "wait_for_append below the head",
        )
        .await,
        "wait_for_append below the head",
    );
    ok(
        promptly(
            store.wait_for_append(0),
            "wait_for_append(0) on a non-empty store",
        )
        .await,
        "wait_for_append(0)",
    );
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            // Wake-ups may be spurious: wait until the head has really moved.
            while head(&*store).await <= at {
                ok(
                    store.wait_for_append(at).await,
                    "wait_for_append at the head",
                );
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    append_ok(
        &*store,
        &sid("order-2"),
        ExpectedVersion::Any,
        vec![event("B", 0)],
        "appending while a task waits",
    )
    .await;
    let woke = tokio::time::timeout(PROMPTLY, waiter).await;
    assert!(
        matches!(woke, Ok(Ok(()))),
        "a task waiting in wait_for_append({at}) was not woken within {PROMPTLY:?} by an append: {woke:?}"
    );
}
