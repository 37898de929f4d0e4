//! The suite must fail on broken stores. Each mutant wraps the in-memory store and breaks one
//! clause of the contract the way real drivers get it wrong; the scenario (and, where it
//! applies, the model check) that guards the clause must panic, for the right reason.

use std::time::Duration;

use mammoth_core::{
    AppendResult, Direction, EventFilter, EventStore, ExpectedVersion, InMemoryEventStore, Limits,
    NewEvent, Position, RecordedEvent, StoreError, StreamId, Version, validate_append,
};
use mammoth_testkit::conformance::{self, RaceConfig};
use mammoth_testkit::{StoreFactory, check_against_model};

#[derive(Clone, Copy, Debug)]
enum Bug {
    /// `read_all` never returns events at positions divisible by 7.
    SkipsEvents,
    /// Event p (even) becomes visible only once p + 2 is committed, while p + 1 already is:
    /// the SQL failure where a later transaction commits first.
    OutOfOrderCommits,
    /// `append` ignores the expected version.
    NoVersionCheck,
    /// A batch with a bad event writes the good events before it.
    PartialBatch,
    /// Caller-given ids are dropped, so re-sends are appended again.
    ForgetsIds,
    /// Categories are matched as prefixes of the stream id (`LIKE 'order%'`).
    PrefixCategories,
    /// Filtered reads take `limit` rows first and filter afterwards.
    LimitBeforeFilter,
}

struct Mutant {
    inner: InMemoryEventStore,
    bug: Bug,
}

impl EventStore for Mutant {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        mut events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        match self.bug {
            Bug::NoVersionCheck => {
                self.inner
                    .append(stream, ExpectedVersion::Any, events)
                    .await
            }
            Bug::ForgetsIds => {
                events.iter_mut().for_each(|event| event.id = None);
                self.inner.append(stream, expected, events).await
            }
            Bug::PartialBatch => {
                if let Err(error) = validate_append(stream, events.clone(), &Limits::default()) {
                    for event in events {
                        self.inner
                            .append(stream, ExpectedVersion::Any, vec![event])
                            .await?;
                    }
                    return Err(error);
                }
                self.inner.append(stream, expected, events).await
            }
            _ => self.inner.append(stream, expected, events).await,
        }
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: Option<Version>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, direction, from, limit).await
    }

    async fn read_all(
        &self,
        from: Position,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = match self.bug {
            Bug::PrefixCategories if !filter.categories.is_empty() && limit > 0 => {
                let types = EventFilter::all().with_types(filter.event_types.iter().cloned());
                let mut events = self.inner.read_all(from, &types, usize::MAX).await?;
                events.retain(|e| {
                    filter
                        .categories
                        .iter()
                        .any(|c| e.stream_id.as_str().starts_with(c.as_str()))
                });
                events.truncate(limit);
                events
            }
            Bug::LimitBeforeFilter => {
                let mut events = self
                    .inner
                    .read_all(from, &EventFilter::all(), limit)
                    .await?;
                events.retain(|e| filter.matches(e));
                events
            }
            _ => self.inner.read_all(from, filter, limit).await?,
        };
        match self.bug {
            Bug::SkipsEvents => events.retain(|e| e.position % 7 != 0),
            Bug::OutOfOrderCommits => {
                let head = self.inner.head_position().await?;
                events.retain(|e| e.position % 2 == 1 || e.position + 2 <= head);
            }
            _ => {}
        }
        Ok(events)
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        self.inner.head_position().await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version, StoreError> {
        self.inner.stream_version(stream).await
    }

    async fn wait_for_append(&self, after: Position) -> Result<(), StoreError> {
        // Poll, so that events a mutant hides now are found by a later read.
        let _ = tokio::time::timeout(Duration::from_millis(20), self.inner.wait_for_append(after))
            .await;
        Ok(())
    }
}

struct Factory(Bug);

impl StoreFactory for Factory {
    type Store = Mutant;

    async fn fresh(&self) -> Mutant {
        Mutant {
            inner: InMemoryEventStore::new(),
            bug: self.0,
        }
    }

    async fn reopen(&self, _store: Mutant) -> Option<Mutant> {
        None
    }
}

fn short_race() -> RaceConfig {
    RaceConfig {
        timeout: Duration::from_secs(5),
        ..RaceConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "reader")]
async fn the_race_catches_a_store_that_skips_committed_events() {
    let factory = Factory(Bug::SkipsEvents);
    conformance::concurrent_writers_never_hide_a_commit_from_tailing_readers_with(
        &factory,
        short_race(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "reader")]
async fn the_race_catches_a_store_whose_later_commits_overtake_earlier_ones() {
    let factory = Factory(Bug::OutOfOrderCommits);
    conformance::concurrent_writers_never_hide_a_commit_from_tailing_readers_with(
        &factory,
        short_race(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "delivered")]
async fn subscriptions_catch_a_store_whose_later_commits_overtake_earlier_ones() {
    conformance::subscription_catches_up_then_goes_live_without_gap_or_duplicate(&Factory(
        Bug::OutOfOrderCommits,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "exactly one must")]
async fn racing_writers_catch_a_store_without_a_version_check() {
    conformance::two_writers_expecting_the_same_version_exactly_one_wins(&Factory(
        Bug::NoVersionCheck,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "was accepted")]
async fn expected_versions_catch_a_store_without_a_version_check() {
    conformance::exact_version_mismatch_is_a_conflict_with_actual_version(&Factory(
        Bug::NoVersionCheck,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "the append failed")]
async fn atomicity_catches_a_store_that_writes_part_of_a_bad_batch() {
    conformance::a_batch_with_one_bad_event_writes_nothing(&Factory(Bug::PartialBatch)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "re-sending")]
async fn idempotency_catches_a_store_that_forgets_ids() {
    conformance::resending_the_same_ids_to_the_same_stream_returns_the_first_result(&Factory(
        Bug::ForgetsIds,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "read_all of categories")]
async fn category_filters_catch_prefix_matching() {
    conformance::global_reads_filter_by_category(&Factory(Bug::PrefixCategories)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "after 600 non-matching events")]
async fn filtered_reads_catch_a_limit_applied_before_the_filter() {
    conformance::filtered_global_reads_fill_the_limit_past_non_matching_events(&Factory(
        Bug::LimitBeforeFilter,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "filtered subscription")]
async fn filtered_subscriptions_catch_a_limit_applied_before_the_filter() {
    conformance::filtered_subscription_skips_non_matching_events_without_stalling(&Factory(
        Bug::LimitBeforeFilter,
    ))
    .await;
}

#[test]
#[should_panic(expected = "disagrees with the in-memory model")]
fn the_model_check_catches_a_store_without_a_version_check() {
    check_against_model(Factory(Bug::NoVersionCheck), 64);
}

#[test]
#[should_panic(expected = "disagrees with the in-memory model")]
fn the_model_check_catches_a_store_that_forgets_ids() {
    check_against_model(Factory(Bug::ForgetsIds), 64);
}

#[test]
#[should_panic(expected = "disagrees with the in-memory model")]
fn the_model_check_catches_a_store_that_skips_events() {
    check_against_model(Factory(Bug::SkipsEvents), 64);
}

#[test]
#[should_panic(expected = "disagrees with the in-memory model")]
fn the_model_check_catches_prefix_category_matching() {
    check_against_model(Factory(Bug::PrefixCategories), 64);
}
