//! The saga runtime on the embedded store: deadlines that survive a restart (the timer table
//! lives in the event store's file), two runners on one SQLite file, and the saga index.

#[path = "../../mammoth-runtime/tests/saga_toy.rs"]
mod saga_toy;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use mammoth_core::now_micros;
use mammoth_core::saga::{SAGA_STEPPED, SagaStatus, SagaStepped, TimerStore};
use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
use mammoth_runtime::saga::{SagaOptions, SagaRunner};
use mammoth_sqlite::saga::{SagaIndex, SqliteTimerStore, counts, list};
use mammoth_sqlite::{SqliteCheckpointStore, SqliteEventStore, SqliteOptions, SqliteReadModel};
use saga_toy::{Answer, Trip, happy, request_trip, saga_events, serve};

type Runner = SagaRunner<Trip, SqliteEventStore, SqliteTimerStore, SqliteCheckpointStore>;

fn open(path: &Path, deadline: Duration) -> (SqliteEventStore, SqliteTimerStore, Runner) {
    let store = SqliteEventStore::open(path, SqliteOptions::default()).unwrap();
    let timers = SqliteTimerStore::open(path).unwrap();
    let checkpoints = SqliteCheckpointStore::open(path).unwrap();
    let runner = SagaRunner::new(
        Trip { deadline },
        store.clone(),
        timers.clone(),
        checkpoints,
    );
    (store, timers, runner)
}

fn records(events: &[mammoth_core::RecordedEvent]) -> Vec<SagaStepped> {
    events
        .iter()
        .filter(|event| event.event_type == SAGA_STEPPED)
        .map(|event| serde_json::from_str(&event.data).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_fires_after_a_runner_restart_and_firing_twice_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mammoth.db");
    let hour = Duration::from_secs(3600);
    {
        let (store, _timers, runner) = open(&path, hour);
        request_trip(&store, "1").await;
        runner.catch_up().await.unwrap();
        store.close().await.unwrap();
    }
    // The restart: a new process opens the same file.
    let (store, timers, runner) = open(&path, hour);
    let pending = timers.pending().await.unwrap();
    assert_eq!(pending.len(), 1, "the deadline survived the restart");
    assert_eq!(pending[0].name, "hotel");
    assert_eq!(
        runner.fire_due_timers(now_micros()).await.unwrap(),
        0,
        "not due yet"
    );
    let later = now_micros() + 2 * 3600 * 1_000_000;
    assert_eq!(runner.fire_due_timers(later).await.unwrap(), 1);
    let after_first = saga_events(&store, "1").await;
    let steps = records(&after_first);
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[1].input, "deadline hotel");
    assert_eq!(steps[1].status, SagaStatus::Compensated);
    assert!(timers.pending().await.unwrap().is_empty());

    // Firing the same timer again (a second poller read it before the delete) writes nothing.
    timers.upsert(&pending).await.unwrap();
    runner.fire_due_timers(later).await.unwrap();
    assert_eq!(saga_events(&store, "1").await, after_first);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runners_on_one_sqlite_file_never_both_advance_one_saga() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mammoth.db");
    let hour = Duration::from_secs(3600);
    let store = SqliteEventStore::open(&path, SqliteOptions::default()).unwrap();
    let sagas = 20;
    for id in 0..sagas {
        request_trip(&store, &id.to_string()).await;
    }
    // Each runner has its own connections to the file, as two processes would.
    let make = |checkpoint: &str| {
        let checkpoints = SqliteCheckpointStore::open(dir.path().join(checkpoint)).unwrap();
        SagaRunner::with_options(
            Trip { deadline: hour },
            store.clone(),
            SqliteTimerStore::open(&path).unwrap(),
            checkpoints,
            SagaOptions {
                concurrency: 8,
                ..SagaOptions::default()
            },
        )
    };
    let (a, b) = (make("a.db"), make("b.db"));
    let mut answered = HashSet::new();
    for _ in 0..5 {
        let (left, right) = tokio::join!(a.catch_up(), b.catch_up());
        left.unwrap();
        right.unwrap();
        serve(&store, &mut answered, happy).await;
    }
    for id in 0..sagas {
        let events = saga_events(&store, &id.to_string()).await;
        let versions: Vec<u64> = events.iter().map(|event| event.version).collect();
        assert_eq!(versions, (1..=events.len() as u64).collect::<Vec<_>>());
        let steps = records(&events);
        let inputs: HashSet<_> = steps.iter().map(|step| step.input_id).collect();
        assert_eq!(
            inputs.len(),
            steps.len(),
            "saga {id}: an input stepped twice"
        );
        assert_eq!(steps.len(), 4, "saga {id}: request, hotel, flight, car");
        assert_eq!(steps.last().unwrap().status, SagaStatus::Completed);
    }
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saga_index_lists_sagas_by_type_and_status_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mammoth.db");
    let models = dir.path().join("read_models.db");
    let (store, _timers, runner) = open(&path, Duration::from_secs(3600));
    let mut answered = HashSet::new();
    // "ok" completes; "bad" has its flight rejected and compensates; "open" hears nothing.
    request_trip(&store, "ok").await;
    for _ in 0..4 {
        runner.catch_up().await.unwrap();
        serve(&store, &mut answered, happy).await;
    }
    request_trip(&store, "bad").await;
    for _ in 0..4 {
        runner.catch_up().await.unwrap();
        serve(&store, &mut answered, |command| match command {
            "BookFlight" => Answer::Reject("no seats"),
            other => happy(other),
        })
        .await;
    }
    request_trip(&store, "open").await;
    runner.catch_up().await.unwrap();
    let index = SqliteReadModel::open(&models, SagaIndex).unwrap();
    let mut projection = ProjectionRunner::new(store.clone(), index, ProjectionOptions::default());
    projection.catch_up(None, |_, _| {}).await.unwrap();
    let conn = rusqlite::Connection::open(&models).unwrap();
    assert_eq!(list(&conn, Some("trip"), None, 100).unwrap().len(), 3);
    assert!(list(&conn, Some("other"), None, 100).unwrap().is_empty());
    let completed = list(&conn, None, Some(SagaStatus::Completed), 100).unwrap();
    assert_eq!(completed.len(), 1);
    assert_eq!(
        (completed[0].saga_id.as_str(), completed[0].steps),
        ("ok", 4)
    );
    let compensated = list(&conn, None, Some(SagaStatus::Compensated), 100).unwrap();
    assert_eq!(compensated.len(), 1);
    assert_eq!(compensated[0].saga_id, "bad");
    assert_eq!(
        compensated[0].reason.as_deref(),
        Some("BookFlight rejected: no seats")
    );
    let counted: Vec<(String, u64)> = counts(&conn)
        .unwrap()
        .into_iter()
        .map(|count| (count.status, count.count))
        .collect();
    assert_eq!(
        counted,
        [
            ("compensated".to_owned(), 1),
            ("completed".to_owned(), 1),
            ("running".to_owned(), 1)
        ]
    );
    store.close().await.unwrap();
}

/// Not a test of behaviour: prints how fast the runner steps sagas on this machine (run with
/// `cargo test -p mammoth-sqlite --release --test saga_sqlite -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn measure_saga_steps_per_second_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mammoth.db");
    let (store, _timers, runner) = open(&path, Duration::from_secs(3600));
    let sagas = 1_000;
    for id in 0..sagas {
        request_trip(&store, &id.to_string()).await;
    }
    let mut answered = HashSet::new();
    let mut stepping = Duration::ZERO;
    for _ in 0..4 {
        let started = std::time::Instant::now();
        runner.catch_up().await.unwrap();
        stepping += started.elapsed();
        serve(&store, &mut answered, happy).await;
    }
    let steps = sagas * 4;
    println!(
        "{steps} saga steps ({sagas} sagas x 4) in {stepping:?} of runner time: {:.0} steps/s",
        f64::from(steps) / stepping.as_secs_f64()
    );
    store.close().await.unwrap();
}
