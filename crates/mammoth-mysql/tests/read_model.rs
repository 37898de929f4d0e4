//! SQL read models on MySQL/MariaDB driven by the projection runner: queries see what was
//! projected, a failing batch rolls back whole, parked events become dead letters, a restart
//! resumes exactly once, a stale target is told its checkpoint moved, pause and resume
//! requests cross processes, blue-green rebuilds switch the views, and verify diffs a shadow.
//! Every test has an event store database and a read-model database of its own. Needs
//! MAMMOTH_TEST_MYSQL_URL (skips with a note without it, fails under CI=true).

#[allow(dead_code)]
#[path = "mysql/common.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mammoth_core::{
    EventFilter, EventStore, ExpectedVersion, NewEvent, Position, ProjectionError, ProjectionState,
    ProjectionTarget, RecordedEvent, StreamId,
};
use mammoth_mysql::MysqlEventStore;
use mammoth_mysql::read_model::{
    EventFailure, MysqlProjection, MysqlReadModel, MysqlReadModelAdmin, ReadModelDatabase, Tables,
    VerifyReport,
};
use mammoth_runtime::RetryPolicy;
use mammoth_runtime::projection::{self, OnFailure, ProjectionOptions, ProjectionRunner};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Transaction};
use serde_json::json;

use common::{SchemaGuard, TestStore};

const NAME: &str = "stream_counts";
const TABLES: &[&str] = &["stream_counts"];

/// Counts the events of every stream and remembers the last position; an event of type
/// `Poison` fails.
struct StreamCounts;

impl MysqlProjection for StreamCounts {
    fn name(&self) -> &str {
        NAME
    }

    fn filter(&self) -> EventFilter {
        EventFilter::all()
    }

    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }

    async fn create(&self, conn: &mut Conn, tables: &Tables) -> mysql_async::Result<()> {
        conn.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS `{}` (
                stream_id VARCHAR(190) NOT NULL PRIMARY KEY,
                events BIGINT NOT NULL,
                last_position BIGINT NOT NULL
            ) ENGINE=InnoDB",
            tables.name("stream_counts")
        ))
        .await
    }

    async fn apply(
        &mut self,
        tx: &mut Transaction<'_>,
        tables: &Tables,
        events: &[RecordedEvent],
    ) -> Result<(), EventFailure> {
        let upsert = format!(
            "INSERT INTO `{}` (stream_id, events, last_position) VALUES (?, 1, ?)
             ON DUPLICATE KEY UPDATE events = events + 1, last_position = VALUES(last_position)",
            tables.name("stream_counts")
        );
        for (index, event) in events.iter().enumerate() {
            if event.event_type == "Poison" {
                return Err(EventFailure {
                    index,
                    error: "a poisoned event".into(),
                });
            }
            let position = i64::try_from(event.position).unwrap_or(i64::MAX);
            tx.exec_drop(upsert.as_str(), (event.stream_id.as_str(), position))
                .await
                .map_err(|error| EventFailure {
                    index,
                    error: Box::new(error),
                })?;
        }
        Ok(())
    }
}

/// The same counts written with one multi-row upsert per batch: what a projection gains by
/// sending a batch in one round trip instead of one statement per event.
struct BatchedCounts;

impl MysqlProjection for BatchedCounts {
    fn name(&self) -> &str {
        "batched_counts"
    }

    fn filter(&self) -> EventFilter {
        EventFilter::all()
    }

    fn tables(&self) -> &'static [&'static str] {
        &["batched_counts"]
    }

    async fn create(&self, conn: &mut Conn, tables: &Tables) -> mysql_async::Result<()> {
        conn.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS `{}` (
                stream_id VARCHAR(190) NOT NULL PRIMARY KEY,
                events BIGINT NOT NULL,
                last_position BIGINT NOT NULL
            ) ENGINE=InnoDB",
            tables.name("batched_counts")
        ))
        .await
    }

    async fn apply(
        &mut self,
        tx: &mut Transaction<'_>,
        tables: &Tables,
        events: &[RecordedEvent],
    ) -> Result<(), EventFailure> {
        let mut counts: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for event in events {
            let entry = counts.entry(event.stream_id.as_str()).or_default();
            entry.0 += 1;
            entry.1 = i64::try_from(event.position).unwrap_or(i64::MAX);
        }
        if counts.is_empty() {
            return Ok(());
        }
        let rows = vec!["(?, ?, ?)"; counts.len()].join(", ");
        let params: Vec<mysql_async::Value> = counts
            .into_iter()
            .flat_map(|(stream, (n, last))| [stream.into(), n.into(), last.into()])
            .collect();
        tx.exec_drop(
            format!(
                "INSERT INTO `{}` (stream_id, events, last_position) VALUES {rows}
                 ON DUPLICATE KEY UPDATE events = events + VALUES(events),
                    last_position = VALUES(last_position)",
                tables.name("batched_counts")
            ),
            params,
        )
        .await
        .map_err(|error| EventFailure {
            index: 0,
            error: Box::new(error),
        })
    }
}

/// An event store and a read-model database, both dropped at the end.
struct Fixture {
    store: MysqlEventStore,
    db: ReadModelDatabase,
    admin: MysqlReadModelAdmin,
    _events: TestStore,
    _read_models: SchemaGuard,
}

impl Fixture {
    async fn new() -> Option<Self> {
        let factory = common::factory()?;
        let events = factory.fresh_with(common::options("unused")).await;
        let database = format!("{}_rm", events.guard.schema);
        let read_models = SchemaGuard {
            url: factory.url.clone(),
            schema: database.clone(),
        };
        let db = ReadModelDatabase::connect(&factory.url, Some(&database)).unwrap();
        let admin = MysqlReadModelAdmin::open(&db).await.unwrap();
        Some(Self {
            store: events.store.clone(),
            db,
            admin,
            _events: events,
            _read_models: read_models,
        })
    }

    async fn target(&self) -> MysqlReadModel<StreamCounts> {
        MysqlReadModel::open(&self.db, StreamCounts).await.unwrap()
    }

    fn runner(
        &self,
        target: MysqlReadModel<StreamCounts>,
        options: ProjectionOptions,
    ) -> ProjectionRunner<MysqlEventStore, MysqlReadModel<StreamCounts>> {
        ProjectionRunner::new(self.store.clone(), target, options)
    }

    /// Appends `per_stream` events to each of `streams` streams, in appends of up to 100.
    async fn append(&self, streams: usize, per_stream: usize) -> Position {
        let mut last = 0;
        for stream in 0..streams {
            let id = StreamId::new(format!("s-{stream}")).unwrap();
            let mut left = per_stream;
            while left > 0 {
                let n = left.min(100);
                let events = (0..n)
                    .map(|i| NewEvent::json("Counted", json!({ "i": i })).unwrap())
                    .collect();
                last = self
                    .store
                    .append(&id, ExpectedVersion::Any, events)
                    .await
                    .unwrap()
                    .last_position;
                left -= n;
            }
        }
        last
    }

    async fn poison(&self, stream: &str) -> Position {
        let event = NewEvent::json("Poison", json!({})).unwrap();
        self.store
            .append(
                &StreamId::new(stream).unwrap(),
                ExpectedVersion::Any,
                vec![event],
            )
            .await
            .unwrap()
            .first_position
    }

    /// `(stream, events)` of every row the view shows.
    async fn counts(&self) -> BTreeMap<String, i64> {
        self.rows("stream_counts").await
    }

    async fn rows(&self, table: &str) -> BTreeMap<String, i64> {
        let mut conn = self.db.conn().await.unwrap();
        let rows: Vec<(String, i64)> = conn
            .query(format!("SELECT stream_id, events FROM `{table}`"))
            .await
            .unwrap();
        rows.into_iter().collect()
    }

    async fn head(&self) -> Position {
        self.store.head_position().await.unwrap()
    }
}

fn expected_counts(streams: usize, per_stream: i64) -> BTreeMap<String, i64> {
    (0..streams)
        .map(|stream| (format!("s-{stream}"), per_stream))
        .collect()
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
async fn a_runner_projects_every_event_and_the_view_answers_queries() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    let head = fixture.append(4, 60).await;
    let mut runner = fixture.runner(
        fixture.target().await,
        ProjectionOptions::default().with_batch_size(50),
    );
    assert_eq!(runner.catch_up(None, |_, _| {}).await.unwrap(), head);
    assert_eq!(fixture.counts().await, expected_counts(4, 60));
    // The view and the target's own names reach the same rows.
    let target = runner.target();
    assert_eq!(target.version(), 1);
    let mut conn = target.database().conn().await.unwrap();
    let through_view: Option<i64> = conn
        .query_first(format!("SELECT SUM(events) FROM {}", target.view(NAME)))
        .await
        .unwrap();
    let physical: Option<i64> = conn
        .query_first(format!("SELECT SUM(events) FROM {}", target.physical(NAME)))
        .await
        .unwrap();
    assert_eq!((through_view, physical), (Some(240), Some(240)));
    let active = fixture.admin.active(NAME).await.unwrap().unwrap();
    assert_eq!((active.version, active.checkpoint), (1, head));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_on_the_event_stores_pool_leaves_the_store_working() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    // The store's pool has four connections: the runner's batches switch every one of them
    // to the read-model database.
    let shared =
        ReadModelDatabase::on_pool(fixture.store.pool().clone(), fixture.db.database()).unwrap();
    fixture.append(4, 30).await;
    let target = MysqlReadModel::open(&shared, StreamCounts).await.unwrap();
    let mut runner = fixture.runner(target, ProjectionOptions::default().with_batch_size(7));
    runner.catch_up(None, |_, _| {}).await.unwrap();
    assert_eq!(fixture.counts().await, expected_counts(4, 30));
    // The store still reads and writes its own tables on those connections.
    let head = fixture.append(4, 1).await;
    let stream = fixture
        .store
        .read_stream(
            &StreamId::new("s-3").unwrap(),
            mammoth_core::Direction::Forward,
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(stream.len(), 31);
    assert_eq!(runner.catch_up(None, |_, _| {}).await.unwrap(), head);
    assert_eq!(fixture.counts().await, expected_counts(4, 31));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_event_fails_rolls_back_entirely() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    fixture.append(2, 2).await;
    let bad = fixture.poison("s-0").await;
    let events = fixture
        .store
        .read_all(1, &EventFilter::all(), 100)
        .await
        .unwrap();
    assert_eq!(events.len(), 5);
    let mut target = fixture.target().await;
    assert_eq!(target.checkpoint().await.unwrap(), 0);
    let failure = target.apply(&events, bad).await.unwrap_err();
    assert_eq!(failure.checkpoint, 0);
    assert_eq!(failure.error.position(), Some(bad), "{:?}", failure.error);
    // The four good events before the poison were written in the same transaction: gone.
    assert!(fixture.counts().await.is_empty());
    assert_eq!(fixture.admin.live_checkpoint(NAME).await.unwrap(), 0);

    // The runner stops at it as failed, and another process sees that.
    let handle = fixture
        .runner(target, quick_retries(OnFailure::Stop))
        .spawn();
    let mut status = handle.watch_status();
    tokio::time::timeout(
        Duration::from_secs(20),
        status.wait_for(|s| matches!(s.state, ProjectionState::Failed { .. })),
    )
    .await
    .unwrap()
    .unwrap();
    let status = fixture.admin.active(NAME).await.unwrap().unwrap();
    let ProjectionState::Failed {
        position, attempts, ..
    } = status.state
    else {
        panic!("not failed: {status:?}")
    };
    assert_eq!((position, attempts), (bad, 3));
    assert!(status.checkpoint < bad);
    handle.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_event_is_passed_and_listed_as_a_dead_letter() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    fixture.append(2, 3).await;
    let bad = fixture.poison("s-0").await;
    let head = fixture.append(2, 3).await;
    let mut runner = fixture.runner(fixture.target().await, quick_retries(OnFailure::Park));
    assert_eq!(runner.catch_up(None, |_, _| {}).await.unwrap(), head);
    assert_eq!(fixture.counts().await, expected_counts(2, 6));
    let letters = fixture.admin.dead_letters(NAME).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        (
            letters[0].position,
            letters[0].attempts,
            letters[0].stream_id.as_str()
        ),
        (bad, 3, "s-0")
    );
    assert_eq!(letters[0].event_type, "Poison");
    assert!(letters[0].error.contains("a poisoned event"), "{letters:?}");
    assert_eq!(fixture.admin.live_checkpoint(NAME).await.unwrap(), head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_killed_mid_way_resumes_from_the_committed_checkpoint_without_double_applying() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    let head = fixture.append(5, 200).await;
    let mut runner = fixture.runner(
        fixture.target().await,
        ProjectionOptions::default().with_batch_size(37),
    );
    let batches = Arc::new(tokio::sync::Notify::new());
    let mut seen = 0;
    let notify = batches.clone();
    tokio::select! {
        reached = runner.catch_up(None, move |_, _| {
            seen += 1;
            if seen == 3 {
                notify.notify_one();
            }
        }) => panic!("caught up to {reached:?} before it was killed"),
        // Dropping the catch-up future abandons whatever batch is in flight.
        () = batches.notified() => {}
    }
    drop(runner);
    let committed = fixture.admin.live_checkpoint(NAME).await.unwrap();
    assert!(committed > 0 && committed < head, "{committed} of {head}");
    let partial: i64 = fixture.counts().await.values().sum();
    assert_eq!(
        u64::try_from(partial).unwrap(),
        committed,
        "rows match the checkpoint"
    );

    let mut reopened = fixture.runner(fixture.target().await, ProjectionOptions::default());
    assert_eq!(reopened.catch_up(None, |_, _| {}).await.unwrap(), head);
    assert_eq!(fixture.counts().await, expected_counts(5, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_whose_stored_checkpoint_moved_gets_checkpoint_moved() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    let head = fixture.append(1, 5).await;
    let events = fixture
        .store
        .read_all(1, &EventFilter::all(), 100)
        .await
        .unwrap();
    let mut stale = fixture.target().await;
    let mut other = fixture.target().await;
    assert_eq!(stale.checkpoint().await.unwrap(), 0);
    assert_eq!(other.checkpoint().await.unwrap(), 0);
    other.apply(&events, head).await.unwrap();
    let failure = stale.apply(&events, head).await.unwrap_err();
    assert!(
        matches!(failure.error, ProjectionError::CheckpointMoved { .. }),
        "{:?}",
        failure.error
    );
    assert_eq!(failure.checkpoint, 0);
    assert_eq!(
        fixture.counts().await,
        expected_counts(1, 5),
        "applied once"
    );
    // Reloaded, it follows.
    assert_eq!(stale.checkpoint().await.unwrap(), head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_asked_for_by_another_process_holds_the_runner_until_resumed() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    let options = ProjectionOptions {
        poll: Duration::from_millis(20),
        ..ProjectionOptions::default()
    };
    let handle = fixture.runner(fixture.target().await, options).spawn();
    let first = fixture.append(1, 3).await;
    assert!(handle.wait_for(first, Duration::from_secs(20)).await);
    fixture.admin.pause(NAME).await.unwrap();
    let mut status = handle.watch_status();
    tokio::time::timeout(
        Duration::from_secs(20),
        status.wait_for(|s| s.state == ProjectionState::Paused),
    )
    .await
    .unwrap()
    .unwrap();
    let stored = fixture.admin.active(NAME).await.unwrap().unwrap();
    assert!(stored.pause_requested);
    assert_eq!(stored.state, ProjectionState::Paused);
    let head = fixture.append(1, 3).await;
    // A paused runner applies nothing, however long it is given.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handle.status().checkpoint, first);
    assert_eq!(fixture.counts().await, expected_counts(1, 3));

    fixture.admin.resume(NAME).await.unwrap();
    assert!(handle.wait_for(head, Duration::from_secs(20)).await);
    assert_eq!(fixture.counts().await, expected_counts(1, 6));
    let stored = fixture.admin.active(NAME).await.unwrap().unwrap();
    assert!(!stored.pause_requested);
    handle.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blue_green_rebuild_fills_v2_while_v1_serves_then_switches_the_view() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    fixture.append(3, 50).await;
    let live = fixture
        .runner(fixture.target().await, ProjectionOptions::default())
        .spawn();
    assert!(
        live.wait_for(fixture.head().await, Duration::from_secs(20))
            .await
    );

    let next = MysqlReadModel::next_version(&fixture.db, StreamCounts)
        .await
        .unwrap();
    // Version 2 exists, empty, while the view still shows version 1.
    assert!(fixture.rows("stream_counts_v2").await.is_empty());
    assert_eq!(fixture.counts().await, expected_counts(3, 50));
    // Writes keep arriving during the build.
    let store = fixture.store.clone();
    let writer = tokio::spawn(async move {
        for round in 0..10 {
            let events = (0..5)
                .map(|i| NewEvent::json("Counted", json!({ "round": round, "i": i })).unwrap())
                .collect();
            store
                .append(&StreamId::new("s-0").unwrap(), ExpectedVersion::Any, events)
                .await
                .unwrap();
        }
    });
    let admin = fixture.admin.clone();
    let switched_at = projection::rebuild(
        fixture.store.clone(),
        next,
        ProjectionOptions::default().with_batch_size(20),
        |_, _| {},
        move || {
            let admin = admin.clone();
            async move { admin.switch(NAME, TABLES, 2).await }
        },
    )
    .await
    .unwrap();
    writer.await.unwrap();
    assert!(switched_at > 0);
    // Events after the switch reach version 2 through the live runner alone.
    let store = fixture.store.clone();
    let after = (0..5)
        .map(|i| NewEvent::json("Counted", json!({ "after": i })).unwrap())
        .collect();
    store
        .append(&StreamId::new("s-1").unwrap(), ExpectedVersion::Any, after)
        .await
        .unwrap();
    let head = fixture.head().await;
    // The live runner's version is no longer active: it reloads and follows version 2.
    assert!(
        live.wait_for(head, Duration::from_secs(20)).await,
        "{:?}",
        live.status()
    );
    let active = fixture.admin.active(NAME).await.unwrap().unwrap();
    assert_eq!((active.version, active.checkpoint), (2, head));
    let mut expected = expected_counts(3, 50);
    expected.insert("s-0".to_owned(), 100);
    expected.insert("s-1".to_owned(), 55);
    assert_eq!(fixture.counts().await, expected, "the view reads version 2");
    assert_eq!(fixture.rows("stream_counts_v2").await, expected);

    let versions: Vec<u32> = fixture
        .admin
        .status()
        .await
        .unwrap()
        .iter()
        .map(|status| status.version)
        .collect();
    assert_eq!(versions, vec![1, 2]);
    assert!(
        fixture.admin.drop_version(NAME, TABLES, 2).await.is_err(),
        "the active version cannot be dropped"
    );
    fixture.admin.drop_version(NAME, TABLES, 1).await.unwrap();
    let mut conn = fixture.db.conn().await.unwrap();
    let tables: Vec<String> = conn
        .query(
            "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'stream\\_counts%'
             ORDER BY TABLE_NAME",
        )
        .await
        .unwrap();
    assert_eq!(tables, vec!["stream_counts", "stream_counts_v2"]);
    live.stop().await.unwrap();
}

/// A switch whose version change committed but whose view swap never ran (the process died
/// between the two steps: MySQL cannot put DDL in the transaction) is finished by the next
/// target that loads the active version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_left_on_the_old_version_by_an_interrupted_switch_are_re_pointed_on_load() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    fixture.append(2, 10).await;
    let mut runner = fixture.runner(fixture.target().await, ProjectionOptions::default());
    runner.catch_up(None, |_, _| {}).await.unwrap();
    let mut next = MysqlReadModel::next_version(&fixture.db, StreamCounts)
        .await
        .unwrap();
    next.checkpoint().await.unwrap();
    let events = fixture
        .store
        .read_all(1, &EventFilter::all(), 100)
        .await
        .unwrap();
    next.apply(&events[..5], 5).await.unwrap();
    // The first step of a switch, alone.
    fixture
        .admin
        .execute("UPDATE mammoth_projection_control SET active_version = 2")
        .await
        .unwrap();
    assert_eq!(fixture.counts().await, expected_counts(2, 10), "still v1");

    let mut reopened = fixture.target().await;
    assert_eq!(reopened.checkpoint().await.unwrap(), 5);
    assert_eq!(reopened.version(), 2);
    let mut expected = BTreeMap::new();
    expected.insert("s-0".to_owned(), 5);
    assert_eq!(fixture.counts().await, expected, "the view reads version 2");
}

/// `mammoth projections verify` on this database: the runtime's verify loop over the admin.
async fn verify(fixture: &Fixture) -> VerifyReport {
    let shadow = MysqlReadModel::shadow(&fixture.db, StreamCounts)
        .await
        .unwrap();
    let admin = &fixture.admin;
    projection::verify(
        fixture.store.clone(),
        shadow,
        ProjectionOptions::default(),
        || admin.live_checkpoint(NAME),
        || admin.diff_shadow(NAME, TABLES),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_is_clean_for_an_untouched_read_model_and_names_a_tampered_row() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    fixture.append(3, 20).await;
    let mut runner = fixture.runner(fixture.target().await, ProjectionOptions::default());
    runner.catch_up(None, |_, _| {}).await.unwrap();
    let clean = verify(&fixture).await;
    assert!(clean.is_clean(), "{clean:?}");
    assert_eq!((clean.version, clean.checkpoint), (1, fixture.head().await));

    fixture
        .admin
        .execute(
            "UPDATE stream_counts_v1 SET events = 999 WHERE stream_id = 's-1';
             DELETE FROM stream_counts_v1 WHERE stream_id = 's-2'",
        )
        .await
        .unwrap();
    let dirty = verify(&fixture).await;
    assert_eq!(dirty.differences.len(), 1, "{dirty:?}");
    let diff = &dirty.differences[0];
    assert_eq!(diff.table, "stream_counts");
    assert_eq!((diff.only_live, diff.only_shadow), (1, 2), "{diff:?}");
    assert!(
        diff.examples
            .iter()
            .any(|row| row.starts_with("live only") && row.contains("\"s-1\", 999")),
        "{diff:?}"
    );
    assert!(
        diff.examples
            .iter()
            .any(|row| row.starts_with("shadow only") && row.contains("\"s-2\", 20")),
        "{diff:?}"
    );
    fixture.admin.drop_shadow(NAME, TABLES).await.unwrap();
    let versions: Vec<u32> = fixture
        .admin
        .status()
        .await
        .unwrap()
        .iter()
        .map(|status| status.version)
        .collect();
    assert_eq!(versions, vec![1]);
}

/// Not a benchmark (nothing is asserted about time): prints the rate at which the runner
/// projects 5,000 events, one upsert per event, for the report beside the SQLite numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_projects_5000_events_and_prints_its_rate() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    let head = fixture.append(50, 100).await;
    let mut runner = fixture.runner(fixture.target().await, ProjectionOptions::default());
    let started = Instant::now();
    assert_eq!(runner.catch_up(None, |_, _| {}).await.unwrap(), head);
    let elapsed = started.elapsed();
    assert_eq!(fixture.counts().await, expected_counts(50, 100));
    eprintln!(
        "mysql read model: {head} events in {:.3} s = {:.0} events/s (batches of 1,000, one upsert per event)",
        elapsed.as_secs_f64(),
        head as f64 / elapsed.as_secs_f64()
    );

    let batched = MysqlReadModel::open(&fixture.db, BatchedCounts)
        .await
        .unwrap();
    let mut runner =
        ProjectionRunner::new(fixture.store.clone(), batched, ProjectionOptions::default());
    let started = Instant::now();
    assert_eq!(runner.catch_up(None, |_, _| {}).await.unwrap(), head);
    let elapsed = started.elapsed();
    assert_eq!(
        fixture.rows("batched_counts").await,
        expected_counts(50, 100)
    );
    eprintln!(
        "mysql read model: {head} events in {:.3} s = {:.0} events/s (batches of 1,000, one multi-row upsert per batch)",
        elapsed.as_secs_f64(),
        head as f64 / elapsed.as_secs_f64()
    );
}
