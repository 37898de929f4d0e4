//! The conformance suite: one public async function per clause of the [`EventStore`] contract
//! (DESIGN.md section 3), each taking a [`StoreFactory`] and panicking with a message that says
//! what broke. [`crate::conformance_tests!`] turns all of them into `#[tokio::test]`s; a driver
//! may also call them one by one, or [`concurrent_writers_never_hide_a_commit_from_tailing_readers_with`]
//! at a larger [`RaceConfig`].
//!
//! Every scenario starts from [`StoreFactory::fresh`] and relies on [`mammoth_core::Limits::default`].
//!
//! [`EventStore`]: mammoth_core::EventStore
//! [`StoreFactory`]: crate::StoreFactory
//! [`StoreFactory::fresh`]: crate::StoreFactory::fresh

mod atomic;
mod durability;
mod expected;
mod idempotency;
mod input;
mod race;
mod read_all;
mod read_stream;
mod roundtrip;
mod subscribe;

pub use atomic::{
    a_batch_with_one_bad_event_writes_nothing, a_conflicting_batch_writes_nothing,
    metadata_fields_shadowing_typed_fields_never_half_write_a_batch,
    positions_strictly_increase_in_commit_order, versions_start_at_one_and_are_contiguous,
};
pub use durability::data_survives_close_and_reopen;
pub use expected::{
    any_version_appends_to_new_and_existing_streams,
    conflict_message_names_stream_expected_and_actual, exact_version_matching_the_stream_succeeds,
    exact_version_mismatch_is_a_conflict_with_actual_version, exact_zero_means_no_stream,
    no_stream_succeeds_on_a_new_stream_and_conflicts_on_an_existing_one,
    stream_exists_conflicts_on_a_new_stream_and_succeeds_on_an_existing_one,
    two_writers_expecting_the_same_version_exactly_one_wins,
};
pub use idempotency::{
    a_partly_matching_resend_is_an_idempotency_mismatch,
    an_event_id_used_in_another_stream_is_a_duplicate_event_id,
    resending_the_same_ids_to_the_same_stream_returns_the_first_result,
    the_same_id_twice_in_one_batch_is_rejected,
};
pub use input::{
    an_empty_batch_is_rejected, an_oversize_event_is_rejected, invalid_event_types_are_rejected,
    invalid_stream_ids_are_rejected_by_stream_id_new, non_object_json_data_is_rejected,
    schema_version_zero_is_rejected, the_largest_allowed_batch_is_stored_whole,
    the_largest_allowed_event_is_stored_whole, too_many_events_in_one_append_are_rejected,
};
pub use race::{
    RaceConfig, concurrent_writers_never_hide_a_commit_from_tailing_readers,
    concurrent_writers_never_hide_a_commit_from_tailing_readers_with,
};
pub use read_all::{
    filtered_global_reads_fill_the_limit_past_non_matching_events, global_reads_filter_by_category,
    global_reads_filter_by_event_type, global_reads_filter_by_type_and_category_together,
    global_reads_start_at_the_given_position_inclusive,
    head_position_and_stream_version_track_appends,
    paged_global_reads_return_the_whole_log_in_order,
};
pub use read_stream::{
    a_zero_limit_is_an_invalid_read, paged_stream_reads_return_long_streams_in_order,
    reading_an_unknown_stream_is_empty, stream_reads_backward_from_a_version_with_a_limit,
    stream_reads_forward_from_a_version_with_a_limit,
};
pub use roundtrip::{
    event_data_is_stored_byte_for_byte, metadata_round_trips,
    recorded_events_carry_their_commit_time, schema_version_and_caller_ids_round_trip,
    stream_ids_at_the_limits_round_trip,
};
pub use subscribe::{
    filtered_subscription_skips_non_matching_events_without_stalling,
    subscription_catches_up_then_goes_live_without_gap_or_duplicate,
    subscription_starts_at_the_given_position, wait_for_append_wakes_on_a_new_commit,
};
