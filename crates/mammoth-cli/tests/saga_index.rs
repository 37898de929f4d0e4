//! The saga index is one read model on every backend: saga streams are appended (as the saga
//! runner writes them) to a PostgreSQL or MySQL/MariaDB event store, projected by the
//! projection runner from that one store into SQLite's `SagaIndex` and into `PgSagaIndex` /
//! `MysqlSagaIndex`, and every `list` (with and without the type and status filters, with a
//! limit) and `counts` must return the same rows from both. This crate is the one that
//! depends on all three drivers. Each test uses a schema (PostgreSQL) or database (MySQL) of
//! its own, dropped afterwards. Needs MAMMOTH_TEST_POSTGRES_URL / MAMMOTH_TEST_MYSQL_URL:
//! skipped with a note without them, a failure under CI=true.

use std::path::Path;

use mammoth_core::saga::{InputKind, SAGA_STEPPED, SagaStatus, SagaStepped, saga_stream};
use mammoth_core::{EventStore, ExpectedVersion, NewEvent, StreamId};
use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
use mammoth_sqlite::SqliteReadModel;
use mammoth_sqlite::saga::{SagaCount, SagaIndex, SagaRow};
use serde_json::json;

const POSTGRES_VAR: &str = "MAMMOTH_TEST_POSTGRES_URL";
const MYSQL_VAR: &str = "MAMMOTH_TEST_MYSQL_URL";

/// The service's URL, or `None` (after saying why) when the test is skipped; under `CI=true`
/// a missing URL fails the test.
fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!(
                "CI=true but {var} is not set (.ci/run exports it): this test cannot be skipped in CI"
            )
        }
        _ => {
            eprintln!("skipped: set {var} to run this test against that service");
            None
        }
    }
}

/// A schema or database name no other test or run uses.
fn unique_name(prefix: &str) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}_{}", std::process::id(), &suffix[..8])
}

/// Drops the test's schemas or databases when the test ends, passed or failed.
struct DropOnExit {
    url: String,
    names: Vec<String>,
    postgres: bool,
}

impl Drop for DropOnExit {
    fn drop(&mut self) {
        let (url, names, postgres) = (self.url.clone(), self.names.clone(), self.postgres);
        // A thread of its own: the test's runtime may still be on this one.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                for name in &names {
                    let dropped = if postgres {
                        mammoth_postgres::drop_schema(&url, name).await
                    } else {
                        mammoth_mysql::drop_database(&url, name).await
                    };
                    if let Err(error) = dropped {
                        eprintln!("could not drop {name}: {error}");
                    }
                }
            });
        });
        let _ = dropper.join();
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
        input_id: uuid::Uuid::new_v4(),
        input_kind: InputKind::Event,
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

/// A command a step issued (an event of the saga's stream the index skips), or a domain event.
fn command(name: &str) -> NewEvent {
    NewEvent::json(name, json!({ "order": "1" })).unwrap()
}

/// Appends one step of a saga: its record and the command it issued.
async fn step(
    store: &impl EventStore,
    (saga_type, saga_id): (&str, &str),
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

/// Sagas in every status over several appends, an event outside the saga category, ids a
/// collation would merge or reorder (`B`/`b`, `a`/`a `, `é`), and a batch of records sharing
/// one `recorded_at` so that only the tie-break orders them.
async fn write_sagas(store: &impl EventStore) {
    use SagaStatus::*;
    let no_seats = "BookFlight rejected: no seats — réessayez";
    step(store, ("trip", "ok"), Running, None, 1).await;
    step(store, ("trip", "bad"), Running, None, 1).await;
    step(store, ("trip", "ok"), Running, None, 2).await;
    let orders = StreamId::new("order-1").unwrap();
    store
        .append(&orders, ExpectedVersion::Any, vec![command("OrderPlaced")])
        .await
        .unwrap();
    step(store, ("trip", "bad"), Compensating, Some(no_seats), 2).await;
    step(store, ("trip", "ok"), Completed, None, 3).await;
    step(store, ("trip", "bad"), Compensated, Some(no_seats), 3).await;
    step(store, ("order", "7"), Failed, Some("card declined"), 1).await;
    step(store, ("order", "é"), Running, None, 1).await;
    step(store, ("order", "e"), Running, None, 1).await;
    let tied = [
        ("trip", "b"),
        ("Trip", "b"),
        ("trip", "B"),
        ("order", "a "),
        ("order", "a"),
        ("order", "Z"),
    ]
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

/// The queries `mammoth sagas list` and `/admin/sagas` make: every filter combination, limits.
const QUERIES: [(Option<&str>, Option<SagaStatus>, usize); 8] = [
    (None, None, 100),
    (None, None, 3),
    (Some("trip"), None, 100),
    (Some("Trip"), None, 100),
    (None, Some(SagaStatus::Running), 100),
    (Some("trip"), Some(SagaStatus::Running), 1),
    (Some("order"), Some(SagaStatus::Failed), 100),
    (Some("nope"), None, 100),
];

/// Projects `store` into SQLite's index in `dir` and returns its answers to [`QUERIES`] and
/// its counts.
async fn sqlite_answers<S: EventStore + Clone + 'static>(
    store: &S,
    dir: &Path,
) -> (Vec<Vec<SagaRow>>, Vec<SagaCount>) {
    let path = dir.join("read_models.db");
    let target = SqliteReadModel::open(&path, SagaIndex).unwrap();
    ProjectionRunner::new(store.clone(), target, ProjectionOptions::default())
        .catch_up(None, |_, _| {})
        .await
        .expect("the SQLite saga index catches up");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let lists = QUERIES
        .iter()
        .map(|(saga_type, status, limit)| {
            mammoth_sqlite::saga::list(&conn, *saga_type, *status, *limit).unwrap()
        })
        .collect();
    (lists, mammoth_sqlite::saga::counts(&conn).unwrap())
}

/// Small batches, so the SQL indexes see several transactions.
fn small_batches() -> ProjectionOptions {
    ProjectionOptions {
        batch_size: 4,
        ..ProjectionOptions::default()
    }
}

fn assert_same(
    backend: &str,
    sqlite: (Vec<Vec<SagaRow>>, Vec<SagaCount>),
    other: (Vec<Vec<SagaRow>>, Vec<SagaCount>),
) {
    let (sqlite_lists, sqlite_counts) = sqlite;
    let (lists, counts) = other;
    assert_eq!(
        sqlite_lists[0].len(),
        11,
        "SQLite sees every saga, `a`/`a ` and `B`/`b` apart"
    );
    for ((query, want), got) in QUERIES.iter().zip(&sqlite_lists).zip(&lists) {
        assert_eq!(got, want, "{backend} list{query:?} differs from SQLite's");
    }
    assert_eq!(
        counts, sqlite_counts,
        "{backend} counts differ from SQLite's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_saga_index_answers_as_sqlites_does() {
    let Some(url) = service_url(POSTGRES_VAR) else {
        return;
    };
    let (events, read_models) = (
        unique_name("mammoth_sagas"),
        unique_name("mammoth_sagas_rm"),
    );
    let _guard = DropOnExit {
        url: url.clone(),
        names: vec![events.clone(), read_models.clone()],
        postgres: true,
    };
    let options = mammoth_postgres::PgOptions {
        schema: events,
        pool_size: 3,
        ..mammoth_postgres::PgOptions::default()
    };
    let store = mammoth_postgres::PgEventStore::open(&url, options)
        .await
        .unwrap();
    write_sagas(&store).await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = sqlite_answers(&store, dir.path()).await;

    use mammoth_postgres::read_model::{PgReadModel, PgReadModelDb};
    use mammoth_postgres::saga_index::{self, PgSagaIndex};
    let db = PgReadModelDb::beside(&store, &read_models).await.unwrap();
    let target = PgReadModel::open(&db, PgSagaIndex);
    ProjectionRunner::new(store.clone(), target, small_batches())
        .catch_up(None, |_, _| {})
        .await
        .expect("the PostgreSQL saga index catches up");
    let mut lists = Vec::new();
    for (saga_type, status, limit) in QUERIES {
        lists.push(
            saga_index::list(&db, saga_type, status, limit)
                .await
                .unwrap(),
        );
    }
    let counts = saga_index::counts(&db).await.unwrap();
    assert_same("PostgreSQL", sqlite, (lists, counts));
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_saga_index_answers_as_sqlites_does() {
    let Some(url) = service_url(MYSQL_VAR) else {
        return;
    };
    let (events, read_models) = (
        unique_name("mammoth_sagas"),
        unique_name("mammoth_sagas_rm"),
    );
    let _guard = DropOnExit {
        url: url.clone(),
        names: vec![events.clone(), read_models.clone()],
        postgres: false,
    };
    let options = mammoth_mysql::MysqlOptions {
        database: Some(events),
        pool_size: 3,
        ..mammoth_mysql::MysqlOptions::default()
    };
    let store = mammoth_mysql::MysqlEventStore::open(&url, options)
        .await
        .unwrap();
    write_sagas(&store).await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = sqlite_answers(&store, dir.path()).await;

    use mammoth_mysql::read_model::{MysqlReadModel, ReadModelDatabase};
    use mammoth_mysql::saga_index::{self, MysqlSagaIndex};
    let db = ReadModelDatabase::connect(&url, Some(&read_models)).unwrap();
    let target = MysqlReadModel::open(&db, MysqlSagaIndex).await.unwrap();
    ProjectionRunner::new(store.clone(), target, small_batches())
        .catch_up(None, |_, _| {})
        .await
        .expect("the MySQL saga index catches up");
    let mut lists = Vec::new();
    for (saga_type, status, limit) in QUERIES {
        lists.push(
            saga_index::list(&db, saga_type, status, limit)
                .await
                .unwrap(),
        );
    }
    let counts = saga_index::counts(&db).await.unwrap();
    assert_same("MySQL", sqlite, (lists, counts));
    store.close().await.unwrap();
}
