//! The conformance suite and the model check against the in-memory reference store, so the
//! suite itself is exercised in CI (and the model check, comparing memory with memory, checks
//! its own harness).

use mammoth_testkit::{InMemoryFactory, check_against_model, conformance, conformance_tests};

mod suite {
    use super::InMemoryFactory;

    super::conformance_tests!(InMemoryFactory);
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
