//! SQL read models on PostgreSQL, driven by the projection runner over a `PgEventStore`:
//! projected rows match, a failing batch rolls back whole, parked events become dead letters,
//! a killed runner resumes without double-applying, a second writer of the same version is
//! refused, pause and resume requests cross processes, blue-green rebuilds switch the view,
//! and verify finds a row changed behind the projection's back. Each test has an event-store
//! schema and a read-model schema of its own. Needs MAMMOTH_TEST_POSTGRES_URL (skips with a
//! note without it, fails under CI=true).

// The event store tests' factory: this binary uses only part of it.
#[allow(dead_code)]
#[path = "postgres/common.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mammoth_core::{
    EventFilter, EventStore, ExpectedVersion, NewEvent, Position, ProjectionError, ProjectionState,
    ProjectionTarget, RecordedEvent, StreamId,
};
use mammoth_postgres::read_model::{
    EventFailure, PgProjection, PgReadModel, PgReadModelAdmin, PgReadModelDb, Tables, VerifyReport,
};
use mammoth_runtime::RetryPolicy;
use mammoth_runtime::projection::{self, OnFailure, ProjectionOptions, ProjectionRunner};
use serde_json::json;
use tokio::sync::Notify;
use tokio_postgres::Transaction;

use common::{SchemaGuard, TestStore};

const NAME: &str = "counts";
const TABLES: &[&str] = &["counts"];

/// Counts events per stream: not idempotent, so an event applied twice shows. An event of type
/// `Poison` fails. With `stall`, the batch holding that position hangs inside its transaction
/// after writing it (and says so), for a runner to be killed there.
#[derive(Default)]
struct Counts {
    stall: Option<(Position, Arc<Notify>)>,
}

impl PgProjection for Counts {
    fn name(&self) -> &str {
        NAME
    }

    fn filter(&self) -> EventFilter {
        EventFilter::all()
    }

    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }

    async fn create(
        &self,
        tx: &Transaction<'_>,
        tables: &Tables,
    ) -> Result<(), tokio_postgres::Error> {
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (
                 stream_id TEXT PRIMARY KEY,
                 n BIGINT NOT NULL,
                 last_position BIGINT NOT NULL
             )",
            tables.name("counts")
        ))
        .await
    }

    async fn apply(
        &mut self,
        tx: &Transaction<'_>,
        tables: &Tables,
        events: &[RecordedEvent],
    ) -> Result<(), EventFailure> {
        let table = tables.name("counts");
        let statement = tx
            .prepare(&format!(
                "INSERT INTO {table} (stream_id, n, last_position) VALUES ($1, 1, $2)
                 ON CONFLICT (stream_id)
                 DO UPDATE SET n = {table}.n + 1, last_position = EXCLUDED.last_position"
            ))
            .await
            .map_err(|error| EventFailure {
                index: 0,
                error: Box::new(error),
            })?;
        for (index, event) in events.iter().enumerate() {
            if event.event_type == "Poison" {
                return Err(EventFailure {
                    index,
                    error: "a poison event cannot be counted".into(),
                });
            }
            let position = i64::try_from(event.position).unwrap_or(i64::MAX);
            tx.execute(&statement, &[&event.stream_id.as_str(), &position])
                .await
                .map_err(|error| EventFailure {
                    index,
                    error: Box::new(error),
                })?;
            if let Some((at, stalled)) = &self.stall
                && *at == event.position
            {
                stalled.notify_one();
                std::future::pending::<()>().await;
            }
        }
        Ok(())
    }
}

/// An event store and a read-model schema, both dropped at the end.
struct Fixture {
    events: TestStore,
    db: PgReadModelDb,
    admin: PgReadModelAdmin,
    _read_models: SchemaGuard,
}

impl Fixture {
    async fn new() -> Option<Self> {
        let factory = common::factory()?;
        let events = factory.fresh_with(common::options("unused")).await;
        let schema = common::unique_schema();
        let guard = SchemaGuard {
            url: factory.url.clone(),
            schema: schema.clone(),
        };
        let db = PgReadModelDb::beside(&events.store, &schema)
            .await
            .expect("the read-model schema is created");
        let admin = PgReadModelAdmin::new(&db);
        Some(Self {
            events,
            db,
            admin,
            _read_models: guard,
        })
    }

    fn store(&self) -> mammoth_postgres::PgEventStore {
        self.events.store.clone()
    }

    fn target(&self) -> PgReadModel<Counts> {
        PgReadModel::open(&self.db, Counts::default())
    }

    fn runner(
        &self,
        options: ProjectionOptions,
    ) -> ProjectionRunner<mammoth_postgres::PgEventStore, PgReadModel<Counts>> {
        ProjectionRunner::new(self.store(), self.target(), options)
    }

    /// Appends `count` events round-robin over streams `s-0` .. `s-{streams - 1}`, in
    /// appends of up to 50 events per stream.
    async fn append(&self, count: usize, streams: usize) {
        let mut per_stream: BTreeMap<usize, usize> = BTreeMap::new();
        for n in 0..count {
            *per_stream.entry(n % streams).or_default() += 1;
        }
        for (stream, total) in per_stream {
            let id = StreamId::new(format!("s-{stream}")).unwrap();
            let mut left = total;
            while left > 0 {
                let now = left.min(50);
                let events = (0..now)
                    .map(|_| NewEvent::json("Counted", json!({})).unwrap())
                    .collect();
                self.events
                    .store
                    .append(&id, ExpectedVersion::Any, events)
                    .await
                    .unwrap();
                left -= now;
            }
        }
    }

    async fn append_poison(&self) -> Position {
        self.events
            .store
            .append(
                &StreamId::new("s-poison").unwrap(),
                ExpectedVersion::Any,
                vec![NewEvent::json("Poison", json!({})).unwrap()],
            )
            .await
            .unwrap()
            .first_position
    }

    async fn head(&self) -> Position {
        self.events.store.head_position().await.unwrap()
    }

    /// Every row of `relation` (the view, or one version's table) as `stream_id → n`.
    async fn counts_in(&self, relation: &str) -> BTreeMap<String, i64> {
        let client = self.db.pool().get().await.unwrap();
        client
            .query(&format!("SELECT stream_id, n FROM {relation}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    }

    /// The rows the `counts` view shows (the active version).
    async fn counts(&self) -> BTreeMap<String, i64> {
        self.counts_in(&self.db.view("counts")).await
    }

    /// The true counts per stream, from the event store.
    async fn expected(&self) -> BTreeMap<String, i64> {
        let mut counts = BTreeMap::new();
        for event in self
            .events
            .store
            .read_all(0, &EventFilter::all(), 1_000_000)
            .await
            .unwrap()
        {
            if event.event_type != "Poison" {
                *counts
                    .entry(event.stream_id.as_str().to_owned())
                    .or_default() += 1;
            }
        }
        counts
    }

    async fn execute(&self, sql: &str) {
        let client = self.db.pool().get().await.unwrap();
        client.batch_execute(sql).await.unwrap();
    }

    async fn relation_exists(&self, table: &str) -> bool {
        let client = self.db.pool().get().await.unwrap();
        let name = format!("{}.{table}", self.db.schema());
        client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
            .await
            .unwrap()
            .get(0)
    }
}

fn quick_retries(on_failure: OnFailure) -> ProjectionOptions {
    let retry = RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(1),
        factor: 2,
        cap: Duration::from_millis(5),
    };
    ProjectionOptions::default()
        .with_retry(retry)
        .on_failure(on_failure)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_projects_every_event_and_queries_see_the_counts() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    fixture.append(600, 7).await;
    let mut runner = fixture.runner(ProjectionOptions::default().with_batch_size(64));
    let reached = runner.catch_up(None, |_, _| {}).await.unwrap();
    assert_eq!(reached, fixture.head().await);
    let counts = fixture.counts().await;
    assert_eq!(counts, fixture.expected().await);
    assert_eq!(counts.values().sum::<i64>(), 600);

    let active = fixture.admin.active(NAME).await.unwrap().unwrap();
    assert_eq!((active.version, active.checkpoint), (1, reached));
    // A live runner (a fresh one, as a restarted process has) follows new appends and records
    // that it runs, where other processes look.
    drop(runner);
    let handle = fixture.runner(ProjectionOptions::default()).spawn();
    fixture.append(30, 3).await;
    assert!(
        handle
            .wait_for(fixture.head().await, Duration::from_secs(10))
            .await
    );
    assert_eq!(fixture.counts().await, fixture.expected().await);
    let status = fixture.admin.active(NAME).await.unwrap().unwrap();
    assert_eq!(status.state, ProjectionState::Running);
    handle.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_schema_that_is_the_event_stores_or_not_a_name_is_refused() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    let error = PgReadModelDb::beside(&fixture.events.store, fixture.events.store.schema())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("a schema of their own"),
        "{error}"
    );
    let error = PgReadModelDb::beside(&fixture.events.store, "read models; DROP")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("is not valid"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_event_rolls_its_whole_batch_back_and_stops_as_failed() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    fixture.append(20, 4).await;
    let bad = fixture.append_poison().await;
    fixture.append(20, 4).await;

    // The target alone: the batch fails at the poison event and nothing of it stays.
    let mut target = fixture.target();
    assert_eq!(target.checkpoint().await.unwrap(), 0);
    let events = fixture
        .events
        .store
        .read_all(0, &EventFilter::all(), 1_000)
        .await
        .unwrap();
    let failure = target
        .apply(&events, fixture.head().await)
        .await
        .unwrap_err();
    assert_eq!(failure.checkpoint, 0);
    assert_eq!(failure.error.position(), Some(bad), "{}", failure.error);
    assert!(fixture.counts().await.is_empty(), "no partial rows");
    assert_eq!(fixture.admin.live_checkpoint(NAME).await.unwrap(), 0);

    // The runner retries, then stops as failed at that event; other processes see it.
    let mut runner = ProjectionRunner::new(fixture.store(), target, quick_retries(OnFailure::Stop));
    let error = runner.catch_up(None, |_, _| {}).await.unwrap_err();
    assert_eq!(error.position(), Some(bad), "{error}");
    let status = fixture.admin.active(NAME).await.unwrap().unwrap();
    assert_eq!(
        status.checkpoint, 0,
        "the batch holding the failure rolled back"
    );
    let ProjectionState::Failed {
        position,
        attempts,
        error,
    } = &status.state
    else {
        panic!("expected a failed state, found {:?}", status.state);
    };
    assert_eq!((*position, *attempts), (bad, 3));
    assert!(error.contains("poison"), "{error}");
    assert!(fixture.counts().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_event_is_skipped_listed_as_a_dead_letter_and_the_rest_applied() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    fixture.append(20, 4).await;
    let bad = fixture.append_poison().await;
    fixture.append(20, 4).await;
    let mut runner = fixture.runner(quick_retries(OnFailure::Park));
    let reached = runner.catch_up(None, |_, _| {}).await.unwrap();
    assert_eq!(reached, fixture.head().await);
    assert_eq!(fixture.counts().await, fixture.expected().await);
    assert_eq!(fixture.counts().await.values().sum::<i64>(), 40);
    let letters = fixture.admin.dead_letters(NAME).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(
        (letter.position, letter.attempts, letter.stream_id.as_str()),
        (bad, 3, "s-poison")
    );
    assert_eq!(letter.event_type, "Poison");
    assert!(letter.error.contains("poison"), "{}", letter.error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_killed_mid_way_resumes_from_the_committed_checkpoint_without_double_applying() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    fixture.append(2_000, 13).await;
    let head = fixture.head().await;
    let stalled = Arc::new(Notify::new());
    let counts = Counts {
        stall: Some((210, stalled.clone())),
    };
    let target = PgReadModel::open(&fixture.db, counts);
    let options = ProjectionOptions::default().with_batch_size(25);
    let mut runner = ProjectionRunner::new(fixture.store(), target, options);
    let task = tokio::spawn(async move { runner.catch_up(None, |_, _| {}).await });
    tokio::time::timeout(Duration::from_secs(30), stalled.notified())
        .await
        .expect("the runner reaches position 210");
    // Killed inside the transaction of the batch 201..=225, with 201..=210 written.
    task.abort();
    let _ = task.await;
    assert_eq!(fixture.admin.live_checkpoint(NAME).await.unwrap(), 200);
    let partial: i64 = fixture.counts().await.values().sum();
    assert_eq!(partial, 200, "the rows are exactly the committed events");

    let mut reopened = fixture.runner(ProjectionOptions::default().with_batch_size(25));
    assert_eq!(reopened.catch_up(None, |_, _| {}).await.unwrap(), head);
    assert_eq!(fixture.counts().await, fixture.expected().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_target_whose_stored_checkpoint_moved_is_refused_and_writes_nothing() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    fixture.append(30, 3).await;
    let events = fixture
        .events
        .store
        .read_all(0, &EventFilter::all(), 1_000)
        .await
        .unwrap();
    let through = fixture.head().await;
    let (mut first, mut second) = (fixture.target(), fixture.target());
    assert_eq!(first.checkpoint().await.unwrap(), 0);
    assert_eq!(second.checkpoint().await.unwrap(), 0);
    first.apply(&events, through).await.unwrap();
    let failure = second.apply(&events, through).await.unwrap_err();
    assert!(
        matches!(failure.error, ProjectionError::CheckpointMoved { .. }),
        "{}",
        failure.error
    );
    assert_eq!(failure.checkpoint, 0);
    assert_eq!(
        fixture.counts().await,
        fixture.expected().await,
        "applied once"
    );
    // Reloaded, it is where the first one left it.
    assert_eq!(second.checkpoint().await.unwrap(), through);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_running_one_read_model_at_once_never_apply_an_event_twice() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    fixture.append(3_000, 11).await;
    // Each "process" has a pool of its own.
    let url = common::url().unwrap();
    let mut runners = Vec::new();
    for _ in 0..2 {
        let db = PgReadModelDb::connect(&url, fixture.db.schema(), 2)
            .await
            .unwrap();
        let target = PgReadModel::open(&db, Counts::default());
        let options = ProjectionOptions::default().with_batch_size(50);
        runners.push(ProjectionRunner::new(fixture.store(), target, options));
    }
    let (mut a, mut b) = (runners.remove(0), runners.remove(0));
    let (reached_a, reached_b) = tokio::join!(
        tokio::spawn(async move { a.catch_up(None, |_, _| {}).await }),
        tokio::spawn(async move { b.catch_up(None, |_, _| {}).await }),
    );
    let head = fixture.head().await;
    assert_eq!(reached_a.unwrap().unwrap(), head);
    assert_eq!(reached_b.unwrap().unwrap(), head);
    assert_eq!(fixture.counts().await, fixture.expected().await);
    assert_eq!(fixture.admin.live_checkpoint(NAME).await.unwrap(), head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_asked_for_by_another_process_holds_the_runner_until_resumed() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    let mut target = fixture.target();
    target.checkpoint().await.unwrap();
    fixture.admin.pause(NAME).await.unwrap();
    let requested = target.requested().await.unwrap();
    assert!(requested.paused);
    assert!(
        fixture
            .admin
            .active(NAME)
            .await
            .unwrap()
            .unwrap()
            .pause_requested
    );

    let options = ProjectionOptions {
        poll: Duration::from_millis(20),
        ..ProjectionOptions::default()
    };
    let handle = ProjectionRunner::new(fixture.store(), target, options).spawn();
    let mut status = handle.watch_status();
    tokio::time::timeout(
        Duration::from_secs(5),
        status.wait_for(|s| s.state == ProjectionState::Paused),
    )
    .await
    .unwrap()
    .unwrap();
    fixture.append(10, 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handle.status().checkpoint, 0);
    assert!(fixture.counts().await.is_empty());

    fixture.admin.resume(NAME).await.unwrap();
    assert!(
        handle
            .wait_for(fixture.head().await, Duration::from_secs(5))
            .await
    );
    assert_eq!(fixture.counts().await, fixture.expected().await);
    let mut probe = fixture.target();
    probe.checkpoint().await.unwrap();
    let requested = probe.requested().await.unwrap();
    assert_eq!((requested.paused, requested.resumes), (false, 1));
    handle.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_empties_the_tables_and_the_old_runner_replays_the_same_rows() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    fixture.append(300, 5).await;
    let mut runner = fixture.runner(ProjectionOptions::default().with_batch_size(64));
    runner.catch_up(None, |_, _| {}).await.unwrap();
    let before = fixture.counts().await;
    fixture.admin.reset(NAME, TABLES).await.unwrap();
    assert!(fixture.counts().await.is_empty());
    assert_eq!(fixture.admin.live_checkpoint(NAME).await.unwrap(), 0);
    // Its checkpoint moved under it: it reloads and replays.
    runner.catch_up(None, |_, _| {}).await.unwrap();
    assert_eq!(fixture.counts().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blue_green_rebuild_builds_v2_while_v1_serves_then_switches_the_view() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    fixture.append(200, 5).await;
    let live = fixture.runner(ProjectionOptions::default()).spawn();
    assert!(
        live.wait_for(fixture.head().await, Duration::from_secs(10))
            .await
    );

    let next = PgReadModel::next_version(&fixture.db, Counts::default())
        .await
        .unwrap();
    assert_eq!(next.version(), 2);
    assert!(
        !fixture.admin.switch(NAME, TABLES, 2).await.unwrap(),
        "an empty version 2 is behind and is not switched to"
    );
    assert_eq!(
        fixture.admin.active(NAME).await.unwrap().unwrap().version,
        1
    );
    // Version 1 serves while version 2 is built; writes keep arriving.
    let writer = {
        let store = fixture.store();
        tokio::spawn(async move {
            for n in 0..40 {
                let id = StreamId::new(format!("s-{}", n % 5)).unwrap();
                let event = NewEvent::json("Counted", json!({})).unwrap();
                store
                    .append(&id, ExpectedVersion::Any, vec![event])
                    .await
                    .unwrap();
            }
        })
    };
    let admin = fixture.admin.clone();
    let switched_at = projection::rebuild(
        fixture.store(),
        next,
        ProjectionOptions::default(),
        |_, _| {},
        || {
            let admin = admin.clone();
            async move { admin.switch(NAME, TABLES, 2).await }
        },
    )
    .await
    .unwrap();
    writer.await.unwrap();
    assert!(switched_at > 0);
    let head = fixture.head().await;
    assert!(
        live.wait_for(head, Duration::from_secs(10)).await,
        "{:?}",
        live.status()
    );
    let active = fixture.admin.active(NAME).await.unwrap().unwrap();
    assert_eq!((active.version, active.checkpoint), (2, head));
    // The view reads version 2, which the old live runner now follows.
    let v2 = format!("\"{}\".counts_v2", fixture.db.schema());
    assert_eq!(fixture.counts().await, fixture.counts_in(&v2).await);
    assert_eq!(fixture.counts().await, fixture.expected().await);
    let versions: Vec<u32> = fixture
        .admin
        .status()
        .await
        .unwrap()
        .iter()
        .map(|status| status.version)
        .collect();
    assert_eq!(versions, vec![1, 2], "version 1 is kept until dropped");
    assert!(
        fixture.admin.drop_version(NAME, TABLES, 2).await.is_err(),
        "the active version cannot be dropped"
    );
    fixture.admin.drop_version(NAME, TABLES, 1).await.unwrap();
    assert!(!fixture.relation_exists("counts_v1").await);
    assert!(fixture.relation_exists("counts_v2").await);
    live.stop().await.unwrap();
}

/// What `mammoth projections verify` does: build the shadow up to the live checkpoint, diff.
async fn verify(fixture: &Fixture) -> VerifyReport {
    let shadow = PgReadModel::shadow(&fixture.db, Counts::default())
        .await
        .unwrap();
    let mut runner = ProjectionRunner::new(fixture.store(), shadow, ProjectionOptions::default());
    loop {
        let live = fixture.admin.live_checkpoint(NAME).await.unwrap();
        runner.catch_up(Some(live), |_, _| {}).await.unwrap();
        if let Some(report) = fixture.admin.diff_shadow(NAME, TABLES).await.unwrap() {
            return report;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_is_clean_on_a_faithful_read_model_and_names_rows_changed_behind_its_back() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    fixture.append(100, 10).await;
    let mut runner = fixture.runner(ProjectionOptions::default());
    runner.catch_up(None, |_, _| {}).await.unwrap();
    let clean = verify(&fixture).await;
    assert!(clean.is_clean(), "{clean:?}");
    assert_eq!((clean.version, clean.checkpoint), (1, fixture.head().await));

    let schema = fixture.db.schema();
    fixture
        .execute(&format!(
            "UPDATE \"{schema}\".counts_v1 SET n = 99 WHERE stream_id = 's-7';
             DELETE FROM \"{schema}\".counts_v1 WHERE stream_id = 's-8';"
        ))
        .await;
    let dirty = verify(&fixture).await;
    assert_eq!(dirty.differences.len(), 1, "{dirty:?}");
    let diff = &dirty.differences[0];
    assert_eq!(diff.table, "counts");
    assert_eq!((diff.only_live, diff.only_shadow), (1, 2), "{diff:?}");
    assert!(
        diff.examples
            .iter()
            .any(|row| row.starts_with("live only") && row.contains("s-7") && row.contains("99")),
        "{diff:?}"
    );
    assert!(
        diff.examples
            .iter()
            .any(|row| row.starts_with("shadow only") && row.contains("s-8")),
        "{diff:?}"
    );
    fixture.admin.drop_shadow(NAME, TABLES).await.unwrap();
    assert!(!fixture.relation_exists("counts_shadow").await);
    assert_eq!(fixture.admin.status().await.unwrap().len(), 1);
}

/// [`Counts`] written the way a PostgreSQL read model should be for speed: the batch is
/// folded in memory and written by one statement, instead of one round trip per event.
struct BatchCounts;

impl PgProjection for BatchCounts {
    fn name(&self) -> &str {
        "batch_counts"
    }

    fn filter(&self) -> EventFilter {
        EventFilter::all()
    }

    fn tables(&self) -> &'static [&'static str] {
        &["batch_counts"]
    }

    async fn create(
        &self,
        tx: &Transaction<'_>,
        tables: &Tables,
    ) -> Result<(), tokio_postgres::Error> {
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (stream_id TEXT PRIMARY KEY, n BIGINT NOT NULL)",
            tables.name("batch_counts")
        ))
        .await
    }

    async fn apply(
        &mut self,
        tx: &Transaction<'_>,
        tables: &Tables,
        events: &[RecordedEvent],
    ) -> Result<(), EventFailure> {
        let mut folded: BTreeMap<&str, i64> = BTreeMap::new();
        for event in events {
            *folded.entry(event.stream_id.as_str()).or_default() += 1;
        }
        let (streams, counts): (Vec<&str>, Vec<i64>) = folded.into_iter().unzip();
        let table = tables.name("batch_counts");
        tx.execute(
            &format!(
                "INSERT INTO {table} (stream_id, n) SELECT * FROM UNNEST($1::text[], $2::bigint[])
                 ON CONFLICT (stream_id) DO UPDATE SET n = {table}.n + EXCLUDED.n"
            ),
            &[&streams, &counts],
        )
        .await
        .map(drop)
        .map_err(|error| EventFailure {
            index: 0,
            error: Box::new(error),
        })
    }
}

/// Catches `target` up over `fixture`'s events and prints the rate.
async fn timed<P: PgProjection>(fixture: &Fixture, target: PgReadModel<P>, label: &str) {
    let events = fixture.head().await;
    let mut runner = ProjectionRunner::new(fixture.store(), target, ProjectionOptions::default());
    let started = Instant::now();
    let reached = runner.catch_up(None, |_, _| {}).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(reached, events);
    eprintln!(
        "postgres read model, {label}: {events} events in {:.1} ms = {:.0} events/s (batch 1000)",
        elapsed.as_secs_f64() * 1_000.0,
        events as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_of_the_runner_on_5000_events_is_printed() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    fixture.append(5_000, 100).await;
    let started = Instant::now();
    let scanned = fixture
        .events
        .store
        .read_all(0, &EventFilter::all(), 10_000)
        .await
        .unwrap()
        .len();
    eprintln!(
        "postgres event store: read_all of {scanned} events in {:.1} ms",
        started.elapsed().as_secs_f64() * 1_000.0
    );
    // A pool of its own, as a read-model database apart from the event store's would have.
    let url = common::url().unwrap();
    let db = PgReadModelDb::connect(&url, fixture.db.schema(), 4)
        .await
        .unwrap();
    timed(
        &fixture,
        PgReadModel::open(&db, Counts::default()),
        "one upsert per event",
    )
    .await;
    assert_eq!(fixture.counts().await, fixture.expected().await);
    timed(
        &fixture,
        PgReadModel::open(&db, BatchCounts),
        "one upsert per batch",
    )
    .await;
    let batched = fixture.counts_in(&db.view("batch_counts")).await;
    assert_eq!(batched, fixture.expected().await);
}
