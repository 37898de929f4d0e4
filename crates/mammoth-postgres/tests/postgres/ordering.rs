//! Gap-safe global order beyond the shared race test: a foreign writer's open transaction
//! holds readers back exactly until it ends; rolled-back appends never stall anyone; the race
//! at 32 writers and 4 readers; and the race with two store handles (two "processes") writing
//! one schema at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mammoth_core::{
    AppendResult, Direction, EventFilter, EventStore, ExpectedVersion, NewEvent, Position,
    RecordedEvent, StoreError, StreamId, Subscription, Version,
};
use mammoth_postgres::PgOptions;
use mammoth_testkit::StoreFactory;
use mammoth_testkit::conformance::{
    RaceConfig, concurrent_writers_never_hide_a_commit_from_tailing_readers_with,
};
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::common::{PgFactory, TestStore, factory, options};

const PROMPTLY: Duration = Duration::from_secs(10);
/// Long enough that a reader that could pass a held position would have done so.
const HOLD: Duration = Duration::from_millis(400);

fn sid(id: &str) -> StreamId {
    StreamId::new(id).expect("valid test stream id")
}

fn event(n: u64) -> NewEvent {
    NewEvent::json("Tested", serde_json::json!({ "n": n })).expect("valid test event")
}

async fn raw_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = url
        .parse::<tokio_postgres::Config>()
        .expect("test URL parses")
        .connect(NoTls)
        .await
        .expect("a raw connection to the test database");
    tokio::spawn(connection);
    client
}

/// What another process's writer does inside its append transaction: take the next
/// position under the `log_head` row lock and insert its row. Returns the position.
async fn foreign_append(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    stream: &str,
    version: i64,
) -> i64 {
    let position: i64 = tx
        .query_one(
            &format!("UPDATE \"{schema}\".log_head SET position = position + 1 RETURNING position"),
            &[],
        )
        .await
        .expect("taking a position")
        .get(0);
    tx.execute(
        &format!(
            "INSERT INTO \"{schema}\".events (position, stream_id, version, event_id, event_type,
                 schema_version, data, metadata, recorded_at)
             VALUES ($1, $2, $3, $4, 'Foreign', 1, '{{}}', '{{}}', 0)"
        ),
        &[&position, &stream, &version, &Uuid::now_v7()],
    )
    .await
    .expect("inserting the foreign event");
    position
}

async fn next(subscription: &mut Subscription<Arc<TestStore>>, what: &str) -> RecordedEvent {
    tokio::time::timeout(PROMPTLY, subscription.next())
        .await
        .unwrap_or_else(|_| panic!("{what}: no event within {PROMPTLY:?}"))
        .unwrap_or_else(|error| panic!("{what}: the subscription failed: {error}"))
}

async fn nothing_new(subscription: &mut Subscription<Arc<TestStore>>, what: &str) {
    if let Ok(event) = tokio::time::timeout(HOLD, subscription.next()).await {
        panic!("{what}: a reader got {event:?} past a position held by an open transaction");
    }
}

async fn held_transaction_scenario(factory: &PgFactory, commit: bool) {
    let store = Arc::new(factory.fresh().await);
    let schema = store.guard.schema.clone();
    let first = store
        .append(&sid("order-1"), ExpectedVersion::NoStream, vec![event(1)])
        .await
        .expect("first append");
    assert_eq!(first.last_position, 1);
    let mut subscription = Subscription::new(store.clone(), 0, EventFilter::all());
    assert_eq!(next(&mut subscription, "the first event").await.position, 1);

    let mut foreign = raw_client(&factory.url).await;
    let tx = foreign.transaction().await.expect("BEGIN");
    let held = foreign_append(&tx, &schema, "foreign-1", 1).await;
    assert_eq!(held, 2, "the foreign writer takes the next position");

    // The store's own append queues behind the open transaction.
    let appender = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append(&sid("order-2"), ExpectedVersion::NoStream, vec![event(2)])
                .await
        })
    };
    nothing_new(&mut subscription, "while the foreign transaction is open").await;
    assert_eq!(
        store.head_position().await.expect("head"),
        1,
        "the head must not pass a position whose transaction is open"
    );
    assert!(
        !appender.is_finished(),
        "an append was acknowledged while an earlier position was still open"
    );

    if commit {
        tx.commit().await.expect("COMMIT");
        let foreign_event = next(&mut subscription, "after the commit").await;
        assert_eq!(
            (foreign_event.position, foreign_event.stream_id.as_str()),
            (2, "foreign-1"),
            "the committed foreign event comes next"
        );
    } else {
        tx.rollback().await.expect("ROLLBACK");
    }
    let written: AppendResult = tokio::time::timeout(PROMPTLY, appender)
        .await
        .expect("the queued append finishes once the transaction ends")
        .expect("the append task")
        .expect("the queued append succeeds");
    let expected_position = if commit { 3 } else { 2 };
    assert_eq!(written.first_position, expected_position);
    let ours = next(&mut subscription, "the queued append").await;
    assert_eq!(
        (ours.position, ours.stream_id.as_str()),
        (expected_position, "order-2"),
        "readers continue with the store's append"
    );
    assert_eq!(
        store.head_position().await.expect("head"),
        expected_position
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_transaction_holds_readers_back_until_it_commits() {
    let Some(factory) = factory() else { return };
    held_transaction_scenario(&factory, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_transaction_holds_readers_back_until_it_rolls_back() {
    let Some(factory) = factory() else { return };
    held_transaction_scenario(&factory, false).await;
}

/// A foreign process commits version 2 of a stream the store has cached at version 1. The
/// store's next group is rolled back by the unique index, planned again from fresh heads, and
/// committed; the rolled-back attempt leaves no hole readers wait on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolled_back_append_never_stalls_readers() {
    let Some(factory) = factory() else { return };
    let store = Arc::new(factory.fresh().await);
    let schema = store.guard.schema.clone();
    let stream = sid("order-1");
    store
        .append(&stream, ExpectedVersion::NoStream, vec![event(1)])
        .await
        .expect("first append");
    let mut subscription = Subscription::new(store.clone(), 0, EventFilter::all());
    assert_eq!(next(&mut subscription, "the first event").await.position, 1);

    // A transaction that takes a position and rolls back.
    let mut foreign = raw_client(&factory.url).await;
    let tx = foreign.transaction().await.expect("BEGIN");
    foreign_append(&tx, &schema, "ghost-1", 1).await;
    tx.rollback().await.expect("ROLLBACK");

    // Another process appends to the stream behind the store's cached head.
    let tx = foreign.transaction().await.expect("BEGIN");
    let foreign_position = foreign_append(&tx, &schema, "order-1", 2).await;
    tx.commit().await.expect("COMMIT");

    let result = store
        .append(&stream, ExpectedVersion::Any, vec![event(3)])
        .await
        .expect("the append is planned again and succeeds");
    assert_eq!(
        result.first_version, 3,
        "versions continue after the foreign write"
    );
    let conflict = store
        .append(&stream, ExpectedVersion::Exact(1), vec![event(4)])
        .await
        .expect_err("Exact(1) on a stream at version 3");
    assert!(
        matches!(conflict, StoreError::Conflict { actual: 3, .. }),
        "expected a conflict at version 3, got {conflict:?}"
    );
    let seen = next(&mut subscription, "the foreign event").await;
    assert_eq!(seen.position, foreign_position as Position);
    let seen = next(&mut subscription, "the store's event").await;
    assert_eq!(seen.position, result.first_position);
    assert_eq!(
        store.head_position().await.expect("head"),
        result.last_position
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_hide_a_commit_at_32_writers_and_4_readers() {
    let Some(factory) = factory() else { return };
    let config = RaceConfig {
        writers: 32,
        readers: 4,
        ..RaceConfig::default()
    };
    concurrent_writers_never_hide_a_commit_from_tailing_readers_with(&factory, config).await;
}

/// Two store handles on one schema, as two processes would have: appends alternate between
/// them, reads and waits go to the first, which learns of the second's commits only through
/// the database and NOTIFY.
struct TwoProcesses {
    first: TestStore,
    second: TestStore,
    turn: AtomicUsize,
}

impl EventStore for TwoProcesses {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        if self.turn.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
            self.first.append(stream, expected, events).await
        } else {
            self.second.append(stream, expected, events).await
        }
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: Option<Version>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.first.read_stream(stream, direction, from, limit).await
    }
    async fn read_all(
        &self,
        from: Position,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.first.read_all(from, filter, limit).await
    }
    async fn head_position(&self) -> Result<Position, StoreError> {
        self.first.head_position().await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Version, StoreError> {
        self.first.stream_version(stream).await
    }
    async fn wait_for_append(&self, after: Position) -> Result<(), StoreError> {
        self.first.wait_for_append(after).await
    }
}

struct TwoProcessFactory(PgFactory);

impl StoreFactory for TwoProcessFactory {
    type Store = TwoProcesses;

    async fn fresh(&self) -> TwoProcesses {
        // A long poll interval: the first handle must be woken by NOTIFY, not by polling.
        let slow = PgOptions {
            poll_interval: Duration::from_secs(30),
            ..options("unused")
        };
        let first = self.0.fresh_with(slow.clone()).await;
        let second = self.0.open_again(&first, slow).await;
        TwoProcesses {
            first,
            second,
            turn: AtomicUsize::new(0),
        }
    }

    async fn reopen(&self, _store: TwoProcesses) -> Option<TwoProcesses> {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_writing_one_schema_never_hide_a_commit() {
    let Some(factory) = factory() else { return };
    let config = RaceConfig {
        writers: 16,
        readers: 4,
        ..RaceConfig::default()
    };
    concurrent_writers_never_hide_a_commit_from_tailing_readers_with(
        &TwoProcessFactory(factory),
        config,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notify_wakes_a_subscriber_of_another_process_promptly() {
    let Some(factory) = factory() else { return };
    let two = TwoProcessFactory(factory).fresh().await;
    let first = Arc::new(two.first);
    let mut subscription = Subscription::new(first.clone(), 0, EventFilter::all());
    let waiter = tokio::spawn(async move {
        let event = subscription.next().await.expect("the subscription");
        (event, std::time::Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = std::time::Instant::now();
    two.second
        .append(&sid("order-1"), ExpectedVersion::NoStream, vec![event(1)])
        .await
        .expect("append through the second handle");
    let (event, received) = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken by NOTIFY well before the 30 s poll interval")
        .expect("the waiter task");
    assert_eq!(event.position, 1);
    let latency = received.duration_since(sent);
    assert!(
        latency < Duration::from_secs(2),
        "cross-process wake-up took {latency:?}"
    );
}
