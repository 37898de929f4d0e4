//! The conformance suite and the model check against the in-memory reference store, so the
//! suite itself is exercised in CI (and the model check, comparing memory with memory, checks
//! its own harness).

use mammoth_testkit::{InMemoryFactory, check_against_model, conformance, conformance_tests};

mod suite {
    use super::InMemoryFactory;

    // Skipped: mammoth-core's InMemoryEventStore half-writes a batch whose metadata has free
    // fields shadowing typed ones; see `in_memory_store_still_half_writes_shadowing_metadata`.
    super::conformance_tests!(
        InMemoryFactory,
        skip = [metadata_fields_shadowing_typed_fields_never_half_write_a_batch]
    );
}

/// Regression canary for a mammoth-core bug. `validate_append` serializes metadata without
/// checking that it parses back, and `InMemoryEventStore::append` parses it back inside its
/// write loop with `?`. Metadata whose free fields shadow a typed field (`extra["actor"] = 5`,
/// or `tenant` set both ways) fails that parse, so in a batch [ok, shadowing, ok] the first
/// event is already in the log when the append returns `InvalidMetadata`: a failed append that
/// wrote something, with no wake-up for subscribers. When core is fixed this test fails; then
/// delete it and the skip above.
#[tokio::test]
#[should_panic(expected = "the append failed")]
async fn in_memory_store_still_half_writes_shadowing_metadata() {
    conformance::metadata_fields_shadowing_typed_fields_never_half_write_a_batch(&InMemoryFactory)
        .await;
}

/// The race at the size PostgreSQL drivers run it (32 writers, 4 readers).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_hide_a_commit_at_32_writers_and_4_readers() {
    let config = conformance::RaceConfig {
        writers: 32,
        readers: 4,
        ..conformance::RaceConfig::default()
    };
    conformance::concurrent_writers_never_hide_a_commit_from_tailing_readers_with(
        &InMemoryFactory,
        config,
    )
    .await;
}

#[test]
fn in_memory_store_agrees_with_the_model() {
    check_against_model(InMemoryFactory, 256);
}
