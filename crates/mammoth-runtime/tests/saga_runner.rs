//! The saga runner over the in-memory store: one append per step, idempotent re-processing,
//! two runners on one saga, compensation order, rejected commands and deadlines.

mod saga_toy;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use mammoth_core::saga::{
    InMemoryTimerStore, SAGA_FIELD, SAGA_STEPPED, SagaStatus, SagaStepped, TOPIC_FIELD, TimerStore,
};
use mammoth_core::{CheckpointStore, EventStore, InMemoryCheckpointStore, InMemoryEventStore};
use mammoth_runtime::saga::{SagaOptions, SagaRunner};
use saga_toy::{Answer, Trip, happy, request_trip, saga_events, serve};

type Store = Arc<InMemoryEventStore>;
type Runner = SagaRunner<Trip, Store, InMemoryTimerStore, InMemoryCheckpointStore>;

fn trip() -> Trip {
    Trip {
        deadline: Duration::from_secs(3600),
    }
}

fn runner(store: &Store, timers: &InMemoryTimerStore) -> Runner {
    SagaRunner::new(
        trip(),
        store.clone(),
        timers.clone(),
        InMemoryCheckpointStore::new(),
    )
}

fn records(events: &[mammoth_core::RecordedEvent]) -> Vec<SagaStepped> {
    events
        .iter()
        .filter(|event| event.event_type == SAGA_STEPPED)
        .map(|event| serde_json::from_str(&event.data).unwrap())
        .collect()
}

fn names(events: &[mammoth_core::RecordedEvent]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event.event_type.as_str())
        .collect()
}

#[tokio::test]
async fn a_step_appends_its_record_and_its_commands_in_one_append() {
    let store = Arc::new(InMemoryEventStore::new());
    let timers = InMemoryTimerStore::new();
    request_trip(&store, "1").await;
    runner(&store, &timers).catch_up().await.unwrap();

    let events = saga_events(&store, "1").await;
    assert_eq!(names(&events), ["SagaStepped", "BookHotel"]);
    // One append: consecutive positions, and both caused by the input.
    assert_eq!(events[1].position, events[0].position + 1);
    let input = store.read_all(1, &Default::default(), 1).await.unwrap()[0].id;
    for event in &events {
        assert_eq!(event.metadata.causation_id, Some(input));
        assert_eq!(event.metadata.extra[SAGA_FIELD], "trip/1");
    }
    assert_eq!(events[1].metadata.extra[TOPIC_FIELD], "bookings");
    let record = &records(&events)[0];
    assert_eq!(record.input_id, input);
    assert_eq!(record.status, SagaStatus::Running);
    assert_eq!(record.issued[0].id, events[1].id);
    // The deadline it scheduled is in the timer store.
    let pending = timers.pending().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].name, "hotel");
}

#[tokio::test]
async fn reprocessing_inputs_after_a_crash_before_the_checkpoint_writes_nothing() {
    let store = Arc::new(InMemoryEventStore::new());
    let timers = InMemoryTimerStore::new();
    request_trip(&store, "1").await;
    request_trip(&store, "2").await;
    let first = runner(&store, &timers);
    first.catch_up().await.unwrap();
    let head = store.head_position().await.unwrap();
    // The crash: the steps were appended, the checkpoint was not saved, and the timer upsert
    // was lost. A fresh runner (empty cache, checkpoint 0) handles the same inputs again.
    timers
        .delete(
            &timers
                .pending()
                .await
                .unwrap()
                .iter()
                .map(|t| t.id)
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let second = runner(&store, &timers);
    second.catch_up().await.unwrap();
    assert_eq!(
        store.head_position().await.unwrap(),
        head,
        "nothing new written"
    );
    assert_eq!(saga_events(&store, "1").await.len(), 2);
    assert_eq!(
        timers.pending().await.unwrap().len(),
        2,
        "re-processing restores the timers the steps recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runners_never_both_advance_one_saga() {
    let store = Arc::new(InMemoryEventStore::new());
    let timers = InMemoryTimerStore::new();
    let sagas = 30;
    for id in 0..sagas {
        request_trip(&store, &id.to_string()).await;
    }
    let options = SagaOptions {
        concurrency: 8,
        ..SagaOptions::default()
    };
    let make = || {
        SagaRunner::with_options(
            trip(),
            store.clone(),
            timers.clone(),
            InMemoryCheckpointStore::new(),
            options,
        )
    };
    let (a, b) = (make(), make());
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
        assert_eq!(
            names(&events),
            [
                "SagaStepped",
                "BookHotel",
                "SagaStepped",
                "BookFlight",
                "SagaStepped",
                "BookCar",
                "SagaStepped"
            ],
            "saga {id}"
        );
        assert_eq!(steps.last().unwrap().status, SagaStatus::Completed);
    }
    assert!(
        timers.pending().await.unwrap().is_empty(),
        "completed sagas keep no timers"
    );
}

#[tokio::test]
async fn compensations_run_in_reverse_order_one_at_a_time() {
    let store = Arc::new(InMemoryEventStore::new());
    let timers = InMemoryTimerStore::new();
    let runner = runner(&store, &timers);
    let mut answered = HashSet::new();
    request_trip(&store, "1").await;
    let car_fails = |command: &str| match command {
        "BookCar" => Answer::Event("CarUnavailable"),
        "CancelFlight" | "CancelHotel" => Answer::Silent,
        other => happy(other),
    };
    for _ in 0..4 {
        runner.catch_up().await.unwrap();
        serve(&store, &mut answered, car_fails).await;
    }
    let events = saga_events(&store, "1").await;
    // CancelCar was never recorded: BookCar failed. Only the flight's cancellation is out,
    // the hotel's waits for its answer.
    assert_eq!(names(&events).last(), Some(&"CancelFlight"));
    assert!(!names(&events).contains(&"CancelHotel"));
    assert_eq!(
        records(&events).last().unwrap().status,
        SagaStatus::Compensating
    );

    serve(&store, &mut answered, happy).await;
    runner.catch_up().await.unwrap();
    let events = saga_events(&store, "1").await;
    assert_eq!(names(&events).last(), Some(&"CancelHotel"));
    serve(&store, &mut answered, happy).await;
    runner.catch_up().await.unwrap();

    let events = saga_events(&store, "1").await;
    let commands: Vec<&str> = names(&events)
        .into_iter()
        .filter(|name| *name != "SagaStepped")
        .collect();
    assert_eq!(
        commands,
        [
            "BookHotel",
            "BookFlight",
            "BookCar",
            "CancelFlight",
            "CancelHotel"
        ]
    );
    let last = records(&events).pop().unwrap();
    assert_eq!(last.status, SagaStatus::Compensated);
    assert_eq!(last.reason.as_deref(), Some("no car"));
}

#[tokio::test]
async fn a_rejected_command_reaches_react_and_the_saga_compensates() {
    let store = Arc::new(InMemoryEventStore::new());
    let timers = InMemoryTimerStore::new();
    let runner = runner(&store, &timers);
    let mut answered = HashSet::new();
    request_trip(&store, "1").await;
    let flight_rejected = |command: &str| match command {
        "BookFlight" => Answer::Reject("no seats"),
        other => happy(other),
    };
    for _ in 0..4 {
        runner.catch_up().await.unwrap();
        serve(&store, &mut answered, flight_rejected).await;
    }
    runner.catch_up().await.unwrap();
    let steps = records(&saga_events(&store, "1").await);
    let rejected = steps
        .iter()
        .find(|step| step.input == "rejected BookFlight")
        .expect("the rejection was stepped");
    assert_eq!(rejected.detail.as_deref(), Some("no seats"));
    let last = steps.last().unwrap();
    assert_eq!(last.status, SagaStatus::Compensated);
    assert_eq!(
        last.reason.as_deref(),
        Some("BookFlight rejected: no seats")
    );
}

#[tokio::test]
async fn answers_tagged_with_the_saga_field_route_without_correlate() {
    let store = Arc::new(InMemoryEventStore::new());
    let timers = InMemoryTimerStore::new();
    let runner = runner(&store, &timers);
    let mut answered = HashSet::new();
    request_trip(&store, "1").await;
    runner.catch_up().await.unwrap();
    // The answer goes to `svc-1`, which `correlate` does not map: only the `saga` field
    // copied by SagaCommandContext brings it back.
    serve(&store, &mut answered, |_| Answer::Tagged("HotelBooked")).await;
    runner.catch_up().await.unwrap();
    let events = saga_events(&store, "1").await;
    assert_eq!(names(&events).last(), Some(&"BookFlight"));
}

#[tokio::test]
async fn an_expired_deadline_compensates_and_firing_it_again_is_a_no_op() {
    let store = Arc::new(InMemoryEventStore::new());
    let timers = InMemoryTimerStore::new();
    let runner = SagaRunner::new(
        Trip {
            deadline: Duration::from_millis(1),
        },
        store.clone(),
        timers.clone(),
        InMemoryCheckpointStore::new(),
    );
    request_trip(&store, "1").await;
    runner.catch_up().await.unwrap();
    let pending = timers.pending().await.unwrap();
    let far_future = i64::MAX / 2;
    runner.fire_due_timers(far_future).await.unwrap();
    let after_first = saga_events(&store, "1").await;
    // Fire the same timer again, as a second poller that read it before the delete would.
    timers.upsert(&pending).await.unwrap();
    runner.fire_due_timers(far_future).await.unwrap();
    assert_eq!(saga_events(&store, "1").await, after_first);
    let steps = records(&after_first);
    assert_eq!(steps[1].input, "deadline hotel");
    // Nothing was booked yet, so there is nothing to undo.
    assert_eq!(steps[1].status, SagaStatus::Compensated);
    assert_eq!(steps[1].reason.as_deref(), Some("deadline hotel expired"));
    assert_eq!(
        names(&after_first),
        ["SagaStepped", "BookHotel", "SagaStepped"]
    );
    assert!(timers.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_spawned_runner_follows_the_log_live() {
    let store = Arc::new(InMemoryEventStore::new());
    let timers = InMemoryTimerStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let handle =
        SagaRunner::new(trip(), store.clone(), timers.clone(), checkpoints.clone()).spawn();
    request_trip(&store, "live").await;
    let head = store.head_position().await.unwrap();
    assert!(handle.wait_for(head, Duration::from_secs(10)).await);
    handle.stop().await.unwrap();
    assert_eq!(
        names(&saga_events(&store, "live").await),
        ["SagaStepped", "BookHotel"]
    );
    assert!(checkpoints.load("saga-trip").await.unwrap().unwrap() >= head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_committed_before_the_deadline_wins_even_when_the_runner_reads_it_late() {
    let store = Arc::new(InMemoryEventStore::new());
    let timers = InMemoryTimerStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let options = SagaOptions {
        timer_poll: Duration::from_millis(10),
        ..SagaOptions::default()
    };
    let saga = Trip {
        deadline: Duration::from_millis(100),
    };
    let handle =
        SagaRunner::with_options(saga, store.clone(), timers.clone(), checkpoints, options).spawn();
    request_trip(&store, "late").await;
    let head = store.head_position().await.unwrap();
    assert!(handle.wait_for(head, Duration::from_secs(10)).await);

    // The hotel answers in time, but the runner is behind (paused) while the deadline passes.
    handle.pause();
    let stream = mammoth_core::StreamId::new("trip-late").unwrap();
    let answer = mammoth_core::NewEvent::json("HotelBooked", serde_json::json!({})).unwrap();
    store
        .append(&stream, mammoth_core::ExpectedVersion::Any, vec![answer])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    handle.resume();
    let head = store.head_position().await.unwrap();
    assert!(handle.wait_for(head, Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    handle.stop().await.unwrap();

    assert_eq!(
        names(&saga_events(&store, "late").await),
        ["SagaStepped", "BookHotel", "SagaStepped", "BookFlight"],
        "the hotel's answer is stepped and the deadline it beat never fires"
    );
}
