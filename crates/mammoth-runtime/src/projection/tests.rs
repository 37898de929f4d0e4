//! Runner tests that need a target whose read model can be emptied under it (a replay in
//! place), with the runner's applies held at a gate so a rebuild can be stopped half-way.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mammoth_core::{
    ApplyFailure, EventFilter, EventStore, ExpectedVersion, InMemoryEventStore, NewEvent, Position,
    ProjectionError, ProjectionState, ProjectionTarget, RecordedEvent, StreamId,
};
use tokio::sync::Semaphore;

use super::{ProjectionHandle, ProjectionOptions, ProjectionRunner};
use crate::{Query, QueryBus, QueryError, QueryOptions};

/// The read model and its checkpoint, as a database would hold them.
#[derive(Default)]
struct Stored {
    applied: Vec<Position>,
    checkpoint: Position,
    /// Every state the runner recorded for other processes, in order.
    states: Vec<ProjectionState>,
}

/// A transactional target: each apply checks that the stored checkpoint is still the one it
/// loaded (as the SQL read models do) and takes one permit from `gate`.
struct GatedModel {
    stored: Arc<Mutex<Stored>>,
    gate: Arc<Semaphore>,
    loaded: Position,
}

impl GatedModel {
    fn check_loaded(&self) -> Result<(), ApplyFailure> {
        if lock(&self.stored).checkpoint == self.loaded {
            return Ok(());
        }
        Err(ApplyFailure {
            checkpoint: self.loaded,
            error: ProjectionError::CheckpointMoved {
                projection: "gated".to_owned(),
            },
        })
    }
}

impl ProjectionTarget for GatedModel {
    fn name(&self) -> &str {
        "gated"
    }

    fn filter(&self) -> EventFilter {
        EventFilter::all()
    }

    async fn checkpoint(&mut self) -> Result<Position, ProjectionError> {
        self.loaded = lock(&self.stored).checkpoint;
        Ok(self.loaded)
    }

    async fn apply(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<(), ApplyFailure> {
        // A batch refused for a moved checkpoint takes no permit: permits count applied batches.
        self.check_loaded()?;
        if let Ok(permit) = self.gate.acquire().await {
            permit.forget();
        }
        self.check_loaded()?;
        let mut stored = lock(&self.stored);
        stored
            .applied
            .extend(events.iter().map(|event| event.position));
        stored.checkpoint = through;
        self.loaded = through;
        Ok(())
    }

    async fn park(
        &mut self,
        event: &RecordedEvent,
        _error: &str,
        _attempts: u32,
    ) -> Result<(), ProjectionError> {
        lock(&self.stored).checkpoint = event.position;
        self.loaded = event.position;
        Ok(())
    }

    async fn record_state(&mut self, state: &ProjectionState) -> Result<(), ProjectionError> {
        lock(&self.stored).states.push(state.clone());
        Ok(())
    }
}

fn lock(stored: &Mutex<Stored>) -> std::sync::MutexGuard<'_, Stored> {
    stored.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many events the read model holds.
struct CountApplied;

impl Query for CountApplied {
    type Output = usize;
}

struct Fixture {
    store: Arc<InMemoryEventStore>,
    stored: Arc<Mutex<Stored>>,
    gate: Arc<Semaphore>,
    handle: ProjectionHandle<GatedModel>,
    bus: QueryBus,
}

/// A runner that has applied `events` events one per batch, and a bus whose query waits on
/// the runner's progress.
async fn running_with(events: u64) -> Fixture {
    let store = Arc::new(InMemoryEventStore::new());
    for _ in 0..events {
        append_one(&store).await;
    }
    let stored = Arc::new(Mutex::new(Stored::default()));
    let gate = Arc::new(Semaphore::new(usize::try_from(events).unwrap()));
    let target = GatedModel {
        stored: stored.clone(),
        gate: gate.clone(),
        loaded: 0,
    };
    let mut options = ProjectionOptions::default().with_batch_size(1);
    options.poll = Duration::from_millis(10);
    let handle = ProjectionRunner::new(store.clone(), target, options).spawn();
    assert!(
        handle.wait_for(events, Duration::from_secs(10)).await,
        "the runner applies the first {events} events"
    );
    let model = stored.clone();
    let bus = QueryBus::builder()
        .handle_with_progress(
            move |_: CountApplied| {
                let count = lock(&model).applied.len();
                async move { Ok::<_, QueryError>(count) }
            },
            handle.progress(),
        )
        .build();
    Fixture {
        store,
        stored,
        gate,
        handle,
        bus,
    }
}

async fn append_one(store: &InMemoryEventStore) {
    let event = NewEvent::json("Happened", serde_json::json!({})).unwrap();
    store
        .append(
            &StreamId::new("thing-1").unwrap(),
            ExpectedVersion::Any,
            vec![event],
        )
        .await
        .unwrap();
}

/// What `mammoth projections replay` does to the read model: empties it, checkpoint 0.
fn replay_in_place(stored: &Mutex<Stored>) {
    let mut stored = lock(stored);
    stored.applied.clear();
    stored.checkpoint = 0;
}

async fn until_applied(stored: &Mutex<Stored>, count: usize) {
    for _ in 0..1_000 {
        if lock(stored).applied.len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the rebuild never applied {count} events");
}

/// Regression: the runner followed a reset checkpoint, but its progress watch "never moved
/// backwards", so a query waiting for position 4 was answered at once from a read model that
/// held 2 of the 4 events it had already promised.
#[tokio::test]
async fn a_query_after_an_in_place_replay_waits_until_the_rebuild_passes_its_position() {
    let fixture = running_with(4).await;
    replay_in_place(&fixture.stored);
    fixture.gate.add_permits(2);
    append_one(&fixture.store).await;
    until_applied(&fixture.stored, 2).await;

    let options = QueryOptions::after(4).with_timeout(Duration::from_millis(100));
    let answer = fixture.bus.query_with(CountApplied, options).await;
    match answer {
        Err(QueryError::NotCaughtUp { reached, .. }) => {
            assert_eq!(reached, 2, "the watch stands where the rebuild is")
        }
        other => panic!("answered from the half-rebuilt read model: {other:?}"),
    }

    fixture.gate.add_permits(100);
    let answer = fixture
        .bus
        .query_with(CountApplied, QueryOptions::after(5))
        .await
        .unwrap();
    assert_eq!(
        answer, 5,
        "once the rebuild passes 5, the model holds all of it"
    );
    fixture.handle.stop().await.unwrap();
}

/// Regression: an idle runner noticed a replay in place only when a new event arrived, so
/// until then it kept promising positions its emptied read model no longer held.
#[tokio::test]
async fn an_idle_runner_follows_an_in_place_replay_without_a_new_event() {
    let fixture = running_with(4).await;
    replay_in_place(&fixture.stored);
    fixture.gate.add_permits(1);
    until_applied(&fixture.stored, 1).await;

    let options = QueryOptions::after(3).with_timeout(Duration::from_millis(100));
    let answer = fixture.bus.query_with(CountApplied, options).await;
    assert!(
        matches!(answer, Err(QueryError::NotCaughtUp { reached: 1, .. })),
        "a waiter for 3 is not answered by a model rebuilt to 1: {answer:?}"
    );

    fixture.gate.add_permits(100);
    let answer = fixture
        .bus
        .query_with(CountApplied, QueryOptions::after(4))
        .await
        .unwrap();
    assert_eq!(answer, 4);
    assert_eq!(
        lock(&fixture.stored).applied,
        vec![1, 2, 3, 4],
        "the rebuild applied every event once, in order"
    );
    fixture.handle.stop().await.unwrap();
}

/// Regression: `serve` catches a projection up before spawning its runner, and the spawned
/// runner recorded its state only when it (re)loaded the checkpoint, which a caught-up runner
/// had already done: other processes kept seeing the "stopped" an earlier runner had left.
#[tokio::test]
async fn a_runner_spawned_after_catching_up_records_that_it_runs() {
    let store = Arc::new(InMemoryEventStore::new());
    append_one(&store).await;
    let stored = Arc::new(Mutex::new(Stored::default()));
    lock(&stored).states.push(ProjectionState::Stopped);
    let target = GatedModel {
        stored: stored.clone(),
        gate: Arc::new(Semaphore::new(100)),
        loaded: 0,
    };
    let mut runner = ProjectionRunner::new(store.clone(), target, ProjectionOptions::default());
    assert_eq!(runner.catch_up(None, |_, _| {}).await.unwrap(), 1);

    let handle = runner.spawn();
    for _ in 0..1_000 {
        if lock(&stored).states.last() == Some(&ProjectionState::Running) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        lock(&stored).states.last(),
        Some(&ProjectionState::Running),
        "the spawned runner replaces the earlier runner's recorded state"
    );
    handle.stop().await.unwrap();
    assert_eq!(
        lock(&stored).states.last(),
        Some(&ProjectionState::Stopped),
        "a stopped runner says so"
    );
}
