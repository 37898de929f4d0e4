//! The checkpoint conformance suite: the [`CheckpointStore`] contract as code. Every driver
//! (memory, SQLite, PostgreSQL, MySQL) runs it unchanged through
//! [`checkpoint_conformance_tests!`](crate::checkpoint_conformance_tests), one `#[tokio::test]`
//! per clause, each with a fresh store from the driver's [`CheckpointFactory`].

use std::future::Future;

use mammoth_core::CheckpointStore;

/// Makes checkpoint stores for the suite: one fresh, empty, isolated store per scenario (its
/// own file, schema or database).
pub trait CheckpointFactory: Send + Sync + 'static {
    /// The driver's store.
    type Store: CheckpointStore + 'static;

    /// A fresh, empty store. Panics (naming the backend and the reason) when the backend
    /// cannot be reached.
    fn fresh(&self) -> impl Future<Output = Self::Store> + Send;

    /// Drops `store` and opens the same data again; `None` when the driver keeps nothing across
    /// a reopen (memory), which skips the durability scenario with a printed note.
    fn reopen(&self, store: Self::Store) -> impl Future<Output = Option<Self::Store>> + Send;
}

/// Expands to one `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` per checkpoint
/// scenario, named after it, each calling `checkpoint::<name>(&factory)` with a factory made
/// by evaluating the expression anew (an expression may `return` to skip).
///
/// ```text
/// mammoth_testkit::checkpoint_conformance_tests!(SqliteCheckpoints::new());
/// ```
#[macro_export]
macro_rules! checkpoint_conformance_tests {
    (@scenarios ($($mode:tt)*)) => {
        $crate::checkpoint_conformance_tests! {$($mode)* [
            loading_a_name_never_saved_is_none
            a_save_overwrites_forwards_and_backwards
            list_returns_every_checkpoint_sorted_by_name_bytewise
            names_with_odd_characters_are_kept_apart_and_round_trip
            the_largest_position_round_trips
            checkpoints_survive_reopen
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
                $crate::checkpoint::$name(&factory).await;
            }
        )*
    };
    ($factory:expr $(,)?) => {
        $crate::checkpoint_conformance_tests!(@scenarios (@tests ($factory)));
    };
}

/// The names of every scenario
/// [`checkpoint_conformance_tests!`](crate::checkpoint_conformance_tests) generates, in order.
pub const CHECKPOINT_SCENARIOS: &[&str] = checkpoint_conformance_tests!(@scenarios (@names));

/// Names a collation-aware or case-folding, space-padding backend would confuse or misorder.
const ODD_NAMES: &[&str] = &[
    "relay",
    "Relay",
    "relay ",
    "saga:OrderFulfilment/timers",
    "it's \"quoted\"; DROP TABLE checkpoints; --",
    "percent%_under\\back",
    "ünïcödé ✓ 日本",
    "tab\tnew\nline",
];

/// `load` of a name never saved is `None`, also after other names were saved.
pub async fn loading_a_name_never_saved_is_none<F: CheckpointFactory>(factory: &F) {
    let store = factory.fresh().await;
    assert_eq!(store.load("relay").await.expect("load"), None);
    store.save("relay", 5).await.expect("save");
    assert_eq!(store.load("other").await.expect("load"), None);
    assert_eq!(store.load("rela").await.expect("load"), None);
}

/// `save` replaces the previous position, including with a smaller one (a replay from zero).
pub async fn a_save_overwrites_forwards_and_backwards<F: CheckpointFactory>(factory: &F) {
    let store = factory.fresh().await;
    store.save("relay", 10).await.expect("save");
    store.save("relay", 42).await.expect("save forwards");
    assert_eq!(store.load("relay").await.expect("load"), Some(42));
    store.save("relay", 7).await.expect("save backwards");
    assert_eq!(store.load("relay").await.expect("load"), Some(7));
    store.save("relay", 0).await.expect("save zero");
    assert_eq!(store.load("relay").await.expect("load"), Some(0));
    assert_eq!(
        store.list().await.expect("list"),
        vec![("relay".to_owned(), 0)],
        "an overwrite keeps one row"
    );
}

/// `list` returns every checkpoint once, sorted by the names' bytes (as `String`'s `Ord`
/// sorts them), whatever the database's collation.
pub async fn list_returns_every_checkpoint_sorted_by_name_bytewise<F: CheckpointFactory>(
    factory: &F,
) {
    let store = factory.fresh().await;
    assert_eq!(store.list().await.expect("list"), vec![]);
    let names = [
        "zeta", "Zeta", "alpha", "_under", "Alpha", "beta", "b", "10", "9",
    ];
    for (position, name) in (1..).zip(names) {
        store.save(name, position).await.expect("save");
    }
    let mut expected: Vec<(String, u64)> = (1..)
        .zip(names)
        .map(|(position, name)| (name.to_owned(), position))
        .collect();
    expected.sort();
    assert_eq!(store.list().await.expect("list"), expected);
}

/// Names differing only in case, a trailing space, quotes, SQL wildcards, non-ASCII letters
/// or control characters are distinct checkpoints and come back byte for byte.
pub async fn names_with_odd_characters_are_kept_apart_and_round_trip<F: CheckpointFactory>(
    factory: &F,
) {
    let store = factory.fresh().await;
    for (position, name) in (100..).zip(ODD_NAMES) {
        store.save(name, position).await.expect("save an odd name");
    }
    for (position, name) in (100..).zip(ODD_NAMES) {
        assert_eq!(
            store.load(name).await.expect("load"),
            Some(position),
            "checkpoint {name:?}"
        );
    }
    let mut expected: Vec<(String, u64)> = (100..)
        .zip(ODD_NAMES)
        .map(|(position, name)| ((*name).to_owned(), position))
        .collect();
    expected.sort();
    assert_eq!(store.list().await.expect("list"), expected);
    assert_eq!(store.load("relay%").await.expect("load"), None);
}

/// A position at the top of the signed 64-bit range (what SQL columns hold) round-trips.
pub async fn the_largest_position_round_trips<F: CheckpointFactory>(factory: &F) {
    let store = factory.fresh().await;
    let largest = i64::MAX as u64;
    store.save("far", largest).await.expect("save");
    assert_eq!(store.load("far").await.expect("load"), Some(largest));
}

/// What was saved before a close is there after a reopen.
pub async fn checkpoints_survive_reopen<F: CheckpointFactory>(factory: &F) {
    let store = factory.fresh().await;
    store.save("relay", 12).await.expect("save");
    store.save("saga:orders", 3).await.expect("save");
    store.save("relay", 9).await.expect("save backwards");
    let Some(store) = factory.reopen(store).await else {
        eprintln!("note: checkpoints_survive_reopen skipped: this driver keeps nothing");
        return;
    };
    assert_eq!(store.load("relay").await.expect("load"), Some(9));
    assert_eq!(
        store.list().await.expect("list"),
        vec![("relay".to_owned(), 9), ("saga:orders".to_owned(), 3)]
    );
}

#[cfg(test)]
mod tests {
    use super::CHECKPOINT_SCENARIOS;

    /// Every public scenario function is in the macro's list and the other way round.
    #[test]
    fn every_checkpoint_scenario_function_is_in_the_macro() {
        let mut functions: Vec<&str> = include_str!("checkpoint.rs")
            // Split on a literal this line does not contain itself.
            .split(concat!("pub async ", "fn "))
            .skip(1)
            .map(|rest| rest.split(['<', '(']).next().unwrap_or_default())
            .collect();
        functions.sort_unstable();
        let mut listed = CHECKPOINT_SCENARIOS.to_vec();
        listed.sort_unstable();
        assert_eq!(functions, listed, "checkpoint scenarios vs the macro list");
    }
}
