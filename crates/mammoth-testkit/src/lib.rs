//! # mammoth-testkit
//!
//! The conformance suite every [`EventStore`](mammoth_core::EventStore) driver runs unchanged,
//! and a model check that compares a driver with the in-memory reference store.
//!
//! - [`StoreFactory`]: how the suite gets fresh stores (and reopens them) from a driver.
//! - [`conformance`]: one public async function per clause of the store contract.
//! - [`conformance_tests!`]: one `#[tokio::test]` per clause, named after its scenario.
//! - [`check_against_model`]: random operation sequences applied to the driver and to
//!   [`InMemoryEventStore`](mammoth_core::InMemoryEventStore), outcomes compared.
//!
//! A driver's test file (it needs `tokio` with `macros` and `rt-multi-thread` among its
//! dev-dependencies):
//!
//! ```no_run
//! use mammoth_testkit::{InMemoryFactory, check_against_model, conformance_tests};
//!
//! // One #[tokio::test] per scenario, each with a fresh store from the factory.
//! conformance_tests!(InMemoryFactory);
//!
//! #[test]
//! fn agrees_with_the_model() {
//!     check_against_model(InMemoryFactory, 64);
//! }
//! # fn main() {}
//! ```

pub mod aggregate;
pub mod bus;
pub mod checkpoint;
pub mod conformance;
mod factory;
mod model;
pub mod saga;
mod support;
pub mod timers;

pub use bus::BusFactory;
pub use checkpoint::CheckpointFactory;
pub use factory::{InMemoryFactory, StoreFactory};
pub use model::check_against_model;
pub use timers::TimerFactory;

/// Expands to one `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` per
/// conformance scenario, named after it, each calling [`conformance`]`::<name>(&factory)` with
/// a factory made by evaluating the expression anew.
///
/// ```text
/// mammoth_testkit::conformance_tests!(SqliteFactory::new());
/// mammoth_testkit::conformance_tests!(InMemoryFactory, skip = [scenario_name, ...]);
/// ```
///
/// Scenarios listed in `skip` return at once with a printed note (use it for a known bug, with
/// a comment pointing at it); a generated test, `conformance_skip_list_names_known_scenarios`,
/// fails if a listed name is not a scenario. The caller's crate needs `tokio` with the `macros`
/// and `rt-multi-thread` features.
#[macro_export]
macro_rules! conformance_tests {
    (@scenarios ($($mode:tt)*)) => {
        $crate::conformance_tests! {$($mode)* [
            any_version_appends_to_new_and_existing_streams
            no_stream_succeeds_on_a_new_stream_and_conflicts_on_an_existing_one
            stream_exists_conflicts_on_a_new_stream_and_succeeds_on_an_existing_one
            exact_version_matching_the_stream_succeeds
            exact_version_mismatch_is_a_conflict_with_actual_version
            exact_zero_means_no_stream
            conflict_message_names_stream_expected_and_actual
            two_writers_expecting_the_same_version_exactly_one_wins
            a_batch_with_one_bad_event_writes_nothing
            a_conflicting_batch_writes_nothing
            metadata_fields_shadowing_typed_fields_never_half_write_a_batch
            versions_start_at_one_and_are_contiguous
            positions_strictly_increase_in_commit_order
            resending_the_same_ids_to_the_same_stream_returns_the_first_result
            an_event_id_used_in_another_stream_is_a_duplicate_event_id
            a_partly_matching_resend_is_an_idempotency_mismatch
            the_same_id_twice_in_one_batch_is_rejected
            stream_reads_forward_from_a_version_with_a_limit
            stream_reads_backward_from_a_version_with_a_limit
            reading_an_unknown_stream_is_empty
            a_zero_limit_is_an_invalid_read
            paged_stream_reads_return_long_streams_in_order
            global_reads_start_at_the_given_position_inclusive
            global_reads_filter_by_event_type
            global_reads_filter_by_category
            global_reads_filter_by_type_and_category_together
            filtered_global_reads_fill_the_limit_past_non_matching_events
            head_position_and_stream_version_track_appends
            paged_global_reads_return_the_whole_log_in_order
            metadata_round_trips
            schema_version_and_caller_ids_round_trip
            event_data_is_stored_byte_for_byte
            stream_ids_at_the_limits_round_trip
            recorded_events_carry_their_commit_time
            invalid_stream_ids_are_rejected_by_stream_id_new
            an_empty_batch_is_rejected
            an_oversize_event_is_rejected
            the_largest_allowed_event_is_stored_whole
            invalid_event_types_are_rejected
            schema_version_zero_is_rejected
            non_object_json_data_is_rejected
            too_many_events_in_one_append_are_rejected
            the_largest_allowed_batch_is_stored_whole
            subscription_catches_up_then_goes_live_without_gap_or_duplicate
            subscription_starts_at_the_given_position
            filtered_subscription_skips_non_matching_events_without_stalling
            wait_for_append_wakes_on_a_new_commit
            concurrent_writers_never_hide_a_commit_from_tailing_readers
            data_survives_close_and_reopen
        ]}
    };
    (@names [$($name:ident)*]) => {
        &[$(stringify!($name)),*]
    };
    (@tests ($factory:expr) $skip:tt [$($name:ident)*]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                if $crate::__skipped(stringify!($name), stringify!($skip)) {
                    return;
                }
                let factory = $factory;
                $crate::conformance::$name(&factory).await;
            }
        )*

        #[test]
        fn conformance_skip_list_names_known_scenarios() {
            $crate::__check_skip_list(stringify!($skip));
        }
    };
    ($factory:expr, skip = [$($skip:ident),* $(,)?] $(,)?) => {
        $crate::conformance_tests!(@scenarios (@tests ($factory) [$($skip),*]));
    };
    ($factory:expr $(,)?) => {
        $crate::conformance_tests!(@scenarios (@tests ($factory) []));
    };
}

/// The names of every scenario [`conformance_tests!`] generates, in order.
pub const SCENARIOS: &[&str] = conformance_tests!(@scenarios (@names));

fn skip_list(list: &str) -> impl Iterator<Item = &str> {
    list.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
}

/// True (after printing a note) when `name` is in the stringified skip list `list`.
#[doc(hidden)]
pub fn __skipped(name: &str, list: &str) -> bool {
    let skipped = skip_list(list).any(|listed| listed == name);
    if skipped {
        eprintln!("note: conformance scenario {name} skipped: it is in this driver's skip list");
    }
    skipped
}

/// Panics when the stringified skip list names something that is not a scenario.
#[doc(hidden)]
pub fn __check_skip_list(list: &str) {
    let unknown: Vec<&str> = skip_list(list)
        .filter(|name| !SCENARIOS.contains(name))
        .collect();
    assert!(
        unknown.is_empty(),
        "conformance_tests! skip list names unknown scenarios {unknown:?}; known: {SCENARIOS:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::SCENARIOS;

    /// Every public scenario function in `conformance/` is in the macro's list, and the other
    /// way round, so no clause silently drops out of drivers' test runs.
    #[test]
    fn every_scenario_function_is_in_the_macro() {
        let sources = [
            include_str!("conformance/atomic.rs"),
            include_str!("conformance/durability.rs"),
            include_str!("conformance/expected.rs"),
            include_str!("conformance/idempotency.rs"),
            include_str!("conformance/input.rs"),
            include_str!("conformance/race.rs"),
            include_str!("conformance/read_all.rs"),
            include_str!("conformance/read_stream.rs"),
            include_str!("conformance/roundtrip.rs"),
            include_str!("conformance/subscribe.rs"),
        ];
        let mut functions: Vec<&str> = sources
            .iter()
            .flat_map(|source| source.split("pub async fn ").skip(1))
            .map(|rest| rest.split(['<', '(']).next().unwrap_or_default())
            .filter(|name| !name.ends_with("_with"))
            .collect();
        functions.sort_unstable();
        let mut listed = SCENARIOS.to_vec();
        listed.sort_unstable();
        assert_eq!(
            functions, listed,
            "conformance functions vs the conformance_tests! list"
        );
    }

    #[test]
    fn skip_lists_parse() {
        assert!(super::__skipped("b", "[a, b]"));
        assert!(!super::__skipped("c", "[a, b]"));
        assert!(!super::__skipped("a", "[]"));
        super::__check_skip_list("[exact_zero_means_no_stream]");
        let unknown = std::panic::catch_unwind(|| super::__check_skip_list("[no_such_scenario]"));
        assert!(unknown.is_err(), "an unknown skip name must fail");
    }
}
