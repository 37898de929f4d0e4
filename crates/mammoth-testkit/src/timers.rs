//! The saga timer conformance suite: the [`TimerStore`] contract as code. Every driver
//! (memory, SQLite, PostgreSQL, MySQL) runs it unchanged through
//! [`timer_conformance_tests!`](crate::timer_conformance_tests), one `#[tokio::test]` per
//! clause, each with a fresh store from the driver's [`TimerFactory`].

use std::future::Future;
use std::sync::Arc;

use mammoth_core::saga::{Timer, TimerStore};
use uuid::Uuid;

/// Makes timer stores for the suite: one fresh, empty, isolated store per scenario (its own
/// file, schema or database).
pub trait TimerFactory: Send + Sync + 'static {
    /// The driver's store.
    type Store: TimerStore + 'static;

    /// A fresh, empty store. Panics (naming the backend and the reason) when the backend
    /// cannot be reached.
    fn fresh(&self) -> impl Future<Output = Self::Store> + Send;

    /// Drops `store` and opens the same data again; `None` when the driver keeps nothing across
    /// a reopen (memory), which skips the durability scenario with a printed note.
    fn reopen(&self, store: Self::Store) -> impl Future<Output = Option<Self::Store>> + Send;
}

/// Expands to one `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` per timer
/// scenario, named after it, each calling `timers::<name>(&factory)` with a factory made by
/// evaluating the expression anew (an expression may `return` to skip).
///
/// ```text
/// mammoth_testkit::timer_conformance_tests!(SqliteTimers::new());
/// ```
#[macro_export]
macro_rules! timer_conformance_tests {
    (@scenarios ($($mode:tt)*)) => {
        $crate::timer_conformance_tests! {$($mode)* [
            an_upsert_replaces_the_timer_with_the_same_id
            due_returns_only_expired_timers_of_the_asked_saga_type
            due_returns_the_earliest_first_within_the_limit
            delete_removes_the_given_ids_and_ignores_unknown_ones
            empty_upserts_and_deletes_change_nothing
            pending_lists_every_timer_of_every_type_earliest_first
            concurrent_upserts_of_the_same_ids_leave_one_row_each
            timers_survive_reopen
        ]}
    };
    (@names [$($name:ident)*]) => {
        &[$(stringify!($name)),*]
    };
    (@tests ($factory:expr) [$($name:ident)*]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let factory = $factory;
                $crate::timers::$name(&factory).await;
            }
        )*
    };
    ($factory:expr $(,)?) => {
        $crate::timer_conformance_tests!(@scenarios (@tests ($factory)));
    };
}

/// The names of every scenario [`timer_conformance_tests!`](crate::timer_conformance_tests)
/// generates, in order.
pub const TIMER_SCENARIOS: &[&str] = timer_conformance_tests!(@scenarios (@names));

fn timer(saga_type: &str, saga_id: &str, name: &str, due_micros: i64) -> Timer {
    Timer {
        id: Uuid::new_v4(),
        saga_type: saga_type.to_owned(),
        saga_id: saga_id.to_owned(),
        name: name.to_owned(),
        due_micros,
    }
}

fn ids(timers: &[Timer]) -> Vec<Uuid> {
    timers.iter().map(|timer| timer.id).collect()
}

/// Re-upserting an id (a saga rescheduling a deadline, or a restart re-upserting it) keeps
/// one timer with the new due time.
pub async fn an_upsert_replaces_the_timer_with_the_same_id<F: TimerFactory>(factory: &F) {
    let store = factory.fresh().await;
    let first = timer("OrderFulfilment", "order-1", "payment", 1_000);
    let other = timer("OrderFulfilment", "order-2", "payment", 1_500);
    store
        .upsert(&[first.clone(), other.clone()])
        .await
        .expect("upsert");
    let later = Timer {
        due_micros: 5_000,
        ..first.clone()
    };
    store
        .upsert(std::slice::from_ref(&later))
        .await
        .expect("re-upsert");
    assert_eq!(
        store.pending().await.expect("pending"),
        vec![other.clone(), later.clone()]
    );
    // Every field is replaced, not only the due time.
    let earlier = Timer {
        due_micros: 10,
        name: "payment-retry".to_owned(),
        ..first
    };
    store
        .upsert(std::slice::from_ref(&earlier))
        .await
        .expect("re-upsert earlier");
    assert_eq!(
        store.pending().await.expect("pending"),
        vec![earlier, other],
        "a deadline can also move earlier"
    );
}

/// `due` returns timers due at or before `now` (inclusive), and only of the saga type asked.
pub async fn due_returns_only_expired_timers_of_the_asked_saga_type<F: TimerFactory>(factory: &F) {
    let store = factory.fresh().await;
    let past = timer("OrderFulfilment", "order-1", "payment", 900);
    let now = timer("OrderFulfilment", "order-2", "payment", 1_000);
    let future = timer("OrderFulfilment", "order-3", "payment", 1_001);
    let other_type = timer("Refund", "order-1", "payment", 100);
    let prefix_type = timer("OrderFulfilmentV2", "order-4", "payment", 100);
    store
        .upsert(&[
            future.clone(),
            other_type.clone(),
            now.clone(),
            past.clone(),
            prefix_type,
        ])
        .await
        .expect("upsert");
    assert_eq!(
        store.due("OrderFulfilment", 1_000, 100).await.expect("due"),
        vec![past, now],
        "due at or before now, of that type only"
    );
    assert_eq!(
        store.due("Refund", 99, 100).await.expect("due"),
        vec![],
        "nothing of Refund is due yet"
    );
    assert_eq!(
        store.due("Refund", 100, 100).await.expect("due"),
        vec![other_type]
    );
    assert_eq!(
        store.due("Unknown", i64::MAX, 100).await.expect("due"),
        vec![]
    );
}

/// `due` orders by due time, earliest first, and returns at most `limit` timers.
pub async fn due_returns_the_earliest_first_within_the_limit<F: TimerFactory>(factory: &F) {
    let store = factory.fresh().await;
    let mut timers: Vec<Timer> = [70, 10, 50, 30, 60, 20, 40]
        .into_iter()
        .map(|due| timer("Saga", &format!("s-{due}"), "deadline", due))
        .collect();
    store.upsert(&timers).await.expect("upsert");
    timers.sort_by_key(|timer| timer.due_micros);
    assert_eq!(
        store.due("Saga", 1_000, 3).await.expect("due"),
        timers[..3].to_vec()
    );
    assert_eq!(
        store.due("Saga", 1_000, 100).await.expect("due"),
        timers,
        "a limit above the count returns everything due"
    );
    assert_eq!(
        store.due("Saga", 1_000, 0).await.expect("due"),
        vec![],
        "a zero limit returns nothing"
    );
    assert_eq!(
        store
            .due("Saga", 1_000, usize::MAX)
            .await
            .expect("due")
            .len(),
        7,
        "the largest limit does not overflow"
    );
}

/// `delete` removes exactly the given ids; ids never stored (or already deleted) are fine.
pub async fn delete_removes_the_given_ids_and_ignores_unknown_ones<F: TimerFactory>(factory: &F) {
    let store = factory.fresh().await;
    let keep = timer("Saga", "a", "deadline", 10);
    let gone = timer("Saga", "b", "deadline", 20);
    store
        .upsert(&[keep.clone(), gone.clone()])
        .await
        .expect("upsert");
    store
        .delete(&[Uuid::new_v4()])
        .await
        .expect("deleting an unknown id");
    store
        .delete(&[gone.id, Uuid::new_v4(), gone.id])
        .await
        .expect("delete");
    assert_eq!(store.pending().await.expect("pending"), vec![keep.clone()]);
    store.delete(&[gone.id]).await.expect("deleting again");
    assert_eq!(store.pending().await.expect("pending"), vec![keep]);
}

/// An upsert or a delete of no timers succeeds and writes nothing.
pub async fn empty_upserts_and_deletes_change_nothing<F: TimerFactory>(factory: &F) {
    let store = factory.fresh().await;
    store.upsert(&[]).await.expect("an empty upsert");
    store.delete(&[]).await.expect("an empty delete");
    assert_eq!(store.pending().await.expect("pending"), vec![]);
    let one = timer("Saga", "a", "deadline", 10);
    store
        .upsert(std::slice::from_ref(&one))
        .await
        .expect("upsert");
    store.delete(&[]).await.expect("an empty delete");
    assert_eq!(store.pending().await.expect("pending"), vec![one]);
}

/// `pending` returns every timer of every saga type, earliest first, every field intact
/// (including ids, names and saga ids with odd characters).
pub async fn pending_lists_every_timer_of_every_type_earliest_first<F: TimerFactory>(factory: &F) {
    let store = factory.fresh().await;
    assert_eq!(store.pending().await.expect("pending"), vec![]);
    let timers = vec![
        timer("Refund", "order-ü ✓", "it's \"late\"", 300),
        timer("OrderFulfilment", "order-1", "payment", -5),
        timer("OrderFulfilment", "order-2", "shipping", i64::MAX),
        timer("Refund", "order-3", "payment", 0),
        Timer {
            id: Uuid::nil(),
            ..timer("Saga", "nil", "deadline", 200)
        },
        Timer {
            id: Uuid::from_u128(u128::MAX),
            ..timer("Saga", "max", "deadline", 100)
        },
    ];
    store.upsert(&timers).await.expect("upsert");
    let mut expected = timers;
    expected.sort_by_key(|timer| timer.due_micros);
    assert_eq!(store.pending().await.expect("pending"), expected);
}

/// Many tasks upserting the same ids at once (in different orders, with different due times)
/// all succeed, and each id is stored once, with one of the written due times.
pub async fn concurrent_upserts_of_the_same_ids_leave_one_row_each<F: TimerFactory>(factory: &F) {
    let store = Arc::new(factory.fresh().await);
    let first = timer("Saga", "a", "deadline", 0);
    let second = timer("Saga", "b", "deadline", 0);
    let tasks: Vec<_> = (0..16_i64)
        .map(|task| {
            let store = Arc::clone(&store);
            let (first, second) = (first.clone(), second.clone());
            tokio::spawn(async move {
                for round in 0..8_i64 {
                    let due = task * 100 + round;
                    let a = Timer {
                        due_micros: due,
                        ..first.clone()
                    };
                    let b = Timer {
                        due_micros: due,
                        ..second.clone()
                    };
                    let batch = if (task + round) % 2 == 0 {
                        vec![a, b]
                    } else {
                        vec![b, a]
                    };
                    store.upsert(&batch).await?;
                }
                Ok::<(), mammoth_core::StoreError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("an upserting task panicked")
            .expect("a concurrent upsert failed");
    }
    let pending = store.pending().await.expect("pending");
    let mut stored = ids(&pending);
    stored.sort();
    let mut expected = vec![first.id, second.id];
    expected.sort();
    assert_eq!(stored, expected, "one row per id: {pending:?}");
    for timer in &pending {
        let (task, round) = (timer.due_micros / 100, timer.due_micros % 100);
        assert!(
            (0..16).contains(&task) && (0..8).contains(&round),
            "{timer:?} has a due time no task wrote"
        );
    }
}

/// Timers upserted before a close are pending after a reopen; deleted ones stay deleted.
pub async fn timers_survive_reopen<F: TimerFactory>(factory: &F) {
    let store = factory.fresh().await;
    let kept = timer("Saga", "a", "deadline", 10);
    let deleted = timer("Saga", "b", "deadline", 20);
    store
        .upsert(&[kept.clone(), deleted.clone()])
        .await
        .expect("upsert");
    store.delete(&[deleted.id]).await.expect("delete");
    let Some(store) = factory.reopen(store).await else {
        eprintln!("note: timers_survive_reopen skipped: this driver keeps nothing");
        return;
    };
    assert_eq!(store.pending().await.expect("pending"), vec![kept.clone()]);
    assert_eq!(store.due("Saga", 10, 10).await.expect("due"), vec![kept]);
}

#[cfg(test)]
mod tests {
    use super::TIMER_SCENARIOS;

    /// Every public scenario function is in the macro's list and the other way round.
    #[test]
    fn every_timer_scenario_function_is_in_the_macro() {
        let mut functions: Vec<&str> = include_str!("timers.rs")
            // Split on a literal this line does not contain itself.
            .split(concat!("pub async ", "fn "))
            .skip(1)
            .map(|rest| rest.split(['<', '(']).next().unwrap_or_default())
            .collect();
        functions.sort_unstable();
        let mut listed = TIMER_SCENARIOS.to_vec();
        listed.sort_unstable();
        assert_eq!(functions, listed, "timer scenarios vs the macro list");
    }
}
