//! The saga index on MySQL/MariaDB ([`MysqlSagaIndex`], `list`, `counts`), driven by the
//! projection runner over a `MysqlEventStore` holding saga streams as the saga runner writes
//! them (a `SagaStepped` record, then the commands the step issued). Its rows are checked
//! against a model of the SQLite index's semantics (the last record per saga wins, first start
//! kept; newest first, ties by type then id byte for byte) and against hand-written
//! expectations where a collation would show (`B`/`b` and `a`/`a ` are four sagas, as in
//! SQLite). Each test has an event-store database and a read-model database of its own. Needs
//! MAMMOTH_TEST_MYSQL_URL (skips with a note without it, fails under CI=true).

// The event store tests' factory: this binary uses only part of it.
#[allow(dead_code)]
#[path = "mysql/common.rs"]
mod common;

use std::cmp::Reverse;
use std::collections::BTreeMap;

use mammoth_core::saga::{SAGA_CATEGORY, SAGA_STEPPED, SagaStatus, SagaStepped, saga_stream};
use mammoth_core::{
    EventFilter, EventStore, ExpectedVersion, NewEvent, ProjectionError, RecordedEvent, StreamId,
};
use mammoth_mysql::MysqlEventStore;
use mammoth_mysql::read_model::{MysqlReadModel, ReadModelDatabase};
use mammoth_mysql::saga_index::{self, MysqlSagaIndex, SagaCount, SagaRow};
use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
use serde_json::json;
use uuid::Uuid;

use common::{SchemaGuard, TestStore};
use mysql_async::prelude::Queryable;

/// An event store and a read-model database, both dropped at the end.
struct Fixture {
    events: TestStore,
    db: ReadModelDatabase,
    _read_models: SchemaGuard,
}

impl Fixture {
    async fn new() -> Option<Self> {
        let factory = common::factory()?;
        let events = factory.fresh_with(common::options("unused")).await;
        let database = format!("{}_rm", events.guard.schema);
        let guard = SchemaGuard {
            url: factory.url.clone(),
            schema: database.clone(),
        };
        let db = ReadModelDatabase::connect(&factory.url, Some(&database)).unwrap();
        Some(Self {
            events,
            db,
            _read_models: guard,
        })
    }

    fn store(&self) -> MysqlEventStore {
        self.events.store.clone()
    }

    /// Brings the index up to the head, three events per transaction.
    async fn project(&self) {
        let options = ProjectionOptions {
            batch_size: 3,
            ..ProjectionOptions::default()
        };
        let target = MysqlReadModel::open(&self.db, MysqlSagaIndex)
            .await
            .expect("the saga index opens");
        ProjectionRunner::new(self.store(), target, options)
            .catch_up(None, |_, _| {})
            .await
            .expect("the saga index catches up");
    }
}

/// One saga step's record, as the runner opens each step's append with it.
fn stepped(
    saga_type: &str,
    saga_id: &str,
    status: SagaStatus,
    reason: Option<&str>,
    steps: u64,
) -> NewEvent {
    let record = SagaStepped {
        saga_type: saga_type.to_owned(),
        saga_id: saga_id.to_owned(),
        input_id: Uuid::new_v4(),
        input_kind: mammoth_core::saga::InputKind::Event,
        input: "Something".to_owned(),
        detail: None,
        state: json!({ "step": steps }),
        status,
        reason: reason.map(str::to_owned),
        issued: Vec::new(),
        compensations: Vec::new(),
        awaiting: None,
        scheduled: Vec::new(),
        cancelled: Vec::new(),
        timers: Vec::new(),
        started_micros: 1_000_000 + i64::try_from(steps).unwrap(),
        steps,
    };
    NewEvent::json(SAGA_STEPPED, serde_json::to_value(record).unwrap()).unwrap()
}

/// A command the step issued: an event of the saga's stream the index must skip.
fn command(name: &str) -> NewEvent {
    NewEvent::json(name, json!({ "order": "1" })).unwrap()
}

/// Appends one step of saga `(saga_type, saga_id)`: its record and the commands it issued.
async fn step(
    store: &impl EventStore,
    saga_type: &str,
    saga_id: &str,
    status: SagaStatus,
    reason: Option<&str>,
    steps: u64,
) {
    let stream = saga_stream(saga_type, saga_id).unwrap();
    let events = vec![
        stepped(saga_type, saga_id, status, reason, steps),
        command("ReserveSeat"),
    ];
    store
        .append(&stream, ExpectedVersion::Any, events)
        .await
        .unwrap();
}

/// The saga (type, id) pairs the tie batch writes, in byte order: one append gives them one
/// `recorded_at`, so only the tie-break orders them. A locale collation would put `order`
/// rows around the two `trip` types' differently and merge nothing, but sort `b` before `B`.
const TIED: [(&str, &str); 5] = [
    ("Trip", "b"),
    ("order", "a"),
    ("order", "a "),
    ("trip", "B"),
    ("trip", "b"),
];

/// Sagas in every status, over several appends each, with commands between the records, an
/// event outside the saga category, and last a batch of records sharing one `recorded_at`.
async fn write_sagas(store: &impl EventStore) {
    use SagaStatus::*;
    step(store, "trip", "ok", Running, None, 1).await;
    step(store, "trip", "bad", Running, None, 1).await;
    step(store, "trip", "ok", Running, None, 2).await;
    let orders = StreamId::new("order-1").unwrap();
    store
        .append(&orders, ExpectedVersion::Any, vec![command("OrderPlaced")])
        .await
        .unwrap();
    let no_seats = "BookFlight rejected: no seats";
    step(store, "trip", "bad", Compensating, Some(no_seats), 2).await;
    step(store, "trip", "ok", Completed, None, 3).await;
    step(store, "trip", "bad", Compensated, Some(no_seats), 3).await;
    step(
        store,
        "order",
        "7",
        Failed,
        Some("payment: card declined"),
        1,
    )
    .await;
    step(store, "order", "8", Running, None, 1).await;
    // Several sagas' records in one append (one stream holds them: the index keys on the
    // record, not the stream), so they share one `recorded_at`.
    let tied = TIED
        .iter()
        .zip(1..)
        .map(|((saga_type, saga_id), steps)| stepped(saga_type, saga_id, Running, None, steps))
        .collect();
    let stream = saga_stream("order", "batch").unwrap();
    store
        .append(&stream, ExpectedVersion::Any, tied)
        .await
        .unwrap();
}

/// The model: the index as the SQLite one builds it, from every saga record in the store.
async fn model(store: &impl EventStore) -> Vec<SagaRow> {
    let filter = EventFilter::all()
        .with_categories([SAGA_CATEGORY])
        .with_types([SAGA_STEPPED]);
    let events: Vec<RecordedEvent> = store.read_all(0, &filter, 10_000).await.unwrap();
    let mut rows: BTreeMap<(Vec<u8>, Vec<u8>), SagaRow> = BTreeMap::new();
    for event in events {
        let record: SagaStepped = serde_json::from_str(&event.data).unwrap();
        let key = (
            record.saga_type.clone().into_bytes(),
            record.saga_id.clone().into_bytes(),
        );
        let started = rows.get(&key).map(|row| row.started_micros);
        rows.insert(
            key,
            SagaRow {
                saga_type: record.saga_type,
                saga_id: record.saga_id,
                status: record.status.label().to_owned(),
                reason: record.reason,
                started_micros: started.unwrap_or(record.started_micros),
                updated_micros: event.recorded_at_micros,
                steps: record.steps,
            },
        );
    }
    let mut rows: Vec<SagaRow> = rows.into_values().collect();
    rows.sort_by(|a, b| {
        (
            Reverse(a.updated_micros),
            a.saga_type.as_bytes(),
            a.saga_id.as_bytes(),
        )
            .cmp(&(
                Reverse(b.updated_micros),
                b.saga_type.as_bytes(),
                b.saga_id.as_bytes(),
            ))
    });
    rows
}

fn model_counts(rows: &[SagaRow]) -> Vec<SagaCount> {
    let mut counts: BTreeMap<(Vec<u8>, Vec<u8>), u64> = BTreeMap::new();
    for row in rows {
        *counts
            .entry((
                row.saga_type.clone().into_bytes(),
                row.status.clone().into_bytes(),
            ))
            .or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((saga_type, status), count)| SagaCount {
            saga_type: String::from_utf8(saga_type).unwrap(),
            status: String::from_utf8(status).unwrap(),
            count,
        })
        .collect()
}

fn pairs(rows: &[SagaRow]) -> Vec<(&str, &str)> {
    rows.iter()
        .map(|row| (row.saga_type.as_str(), row.saga_id.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_holds_the_last_step_of_every_saga_in_sqlite_order() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    write_sagas(&fixture.store()).await;
    fixture.project().await;
    let expected = model(&fixture.store()).await;
    assert_eq!(expected.len(), 4 + TIED.len(), "the model sees every saga");

    let all = saga_index::list(&fixture.db, None, None, 100)
        .await
        .unwrap();
    assert_eq!(all, expected);
    assert_eq!(
        pairs(&all[..TIED.len()]),
        TIED,
        "sagas stepped at the same time are ordered by type, then id, byte for byte"
    );
    let ok = all.iter().find(|row| row.saga_id == "ok").unwrap();
    assert_eq!(
        (ok.status.as_str(), ok.steps, ok.started_micros),
        ("completed", 3, 1_000_001),
        "the last record sets status and steps; the first one's start stays"
    );

    let newest = saga_index::list(&fixture.db, None, None, 3).await.unwrap();
    assert_eq!(newest, expected[..3], "the limit keeps the newest");
    let trips = saga_index::list(&fixture.db, Some("trip"), None, 100)
        .await
        .unwrap();
    let want: Vec<SagaRow> = expected
        .iter()
        .filter(|row| row.saga_type == "trip")
        .cloned()
        .collect();
    assert_eq!(
        trips, want,
        "the type filter matches `trip` only, not `Trip`"
    );
    assert_eq!(trips.len(), 4);
    let compensated = saga_index::list(&fixture.db, None, Some(SagaStatus::Compensated), 100)
        .await
        .unwrap();
    assert_eq!(pairs(&compensated), [("trip", "bad")]);
    assert_eq!(
        compensated[0].reason.as_deref(),
        Some("BookFlight rejected: no seats")
    );
    let running_trips = saga_index::list(&fixture.db, Some("trip"), Some(SagaStatus::Running), 1)
        .await
        .unwrap();
    assert_eq!(
        pairs(&running_trips),
        [("trip", "B")],
        "both filters and the limit at once"
    );

    let counts = saga_index::counts(&fixture.db).await.unwrap();
    assert_eq!(counts, model_counts(&expected));
    let counted: Vec<(&str, &str, u64)> = counts
        .iter()
        .map(|count| (count.saga_type.as_str(), count.status.as_str(), count.count))
        .collect();
    assert_eq!(
        counted,
        [
            ("Trip", "running", 1),
            ("order", "failed", 1),
            ("order", "running", 3),
            ("trip", "compensated", 1),
            ("trip", "completed", 1),
            ("trip", "running", 2),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_that_resumes_updates_rows_instead_of_adding_them() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    let store = fixture.store();
    step(&store, "trip", "ok", SagaStatus::Running, None, 1).await;
    fixture.project().await;
    step(
        &store,
        "trip",
        "ok",
        SagaStatus::Failed,
        Some("hotel: full"),
        2,
    )
    .await;
    fixture.project().await;
    let rows = saga_index::list(&fixture.db, None, None, 100)
        .await
        .unwrap();
    assert_eq!(rows, model(&store).await);
    assert_eq!(
        (
            rows.len(),
            rows[0].status.as_str(),
            rows[0].reason.as_deref()
        ),
        (1, "failed", Some("hotel: full"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reason_is_kept_byte_for_byte_even_with_a_nul() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    step(
        &fixture.store(),
        "trip",
        "nul",
        SagaStatus::Failed,
        Some("bad\0byte"),
        1,
    )
    .await;
    fixture.project().await;
    let rows = saga_index::list(&fixture.db, None, None, 100)
        .await
        .unwrap();
    assert_eq!(rows[0].reason.as_deref(), Some("bad\0byte"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn querying_before_the_index_first_runs_names_the_fix() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    // The database exists (another read model opened it) but the index never ran.
    mysql_async::Conn::new(mysql_async::Opts::from_url(&common::url().unwrap()).unwrap())
        .await
        .unwrap()
        .query_drop(format!("CREATE DATABASE `{}`", fixture.db.database()))
        .await
        .unwrap();
    let error = saga_index::list(&fixture.db, None, None, 10)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ProjectionError::ReadModel { message, .. } if message.contains("run the saga_index projection")),
        "{error}"
    );
    let error = saga_index::counts(&fixture.db).await.unwrap_err();
    assert!(error.to_string().contains("does not exist"), "{error}");
}
