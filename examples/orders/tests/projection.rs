//! The OrderProjection on the projection runner over the embedded SQLite store: live
//! read-your-writes through the QueryBus, replay from zero, blue-green rebuild, verify,
//! failures that stop or park, pause requests from another process, and upcast v1 events.

mod projection_support;

use std::time::Duration;

use mammoth_core::{
    EventStore, ExpectedVersion, NewEvent, ProjectionState, ProjectionTarget, StreamId,
};
use mammoth_example_orders::app::{OrdersApp, customer};
use mammoth_example_orders::projection::{
    GetOrderSummary, NAME, OrderProjection, OrderSummaries, TABLES,
};
use mammoth_runtime::projection::{self, OnFailure, ProjectionOptions, ProjectionRunner};
use mammoth_runtime::{QueryBus, QueryOptions, RetryPolicy};
use mammoth_sqlite::{ReadModelAdmin, SqliteReadModel};
use projection_support::{Fixture, book_order, order_rows};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_after_a_command_sees_the_projected_row() {
    let fixture = Fixture::new();
    let target = SqliteReadModel::open(&fixture.read_path, OrderProjection::new()).unwrap();
    let handle =
        ProjectionRunner::new(fixture.store.clone(), target, ProjectionOptions::default()).spawn();
    let queries = OrderSummaries::new(&fixture.read_path)
        .register(QueryBus::builder(), handle.progress())
        .build();
    let app = OrdersApp::new(fixture.store.clone());
    for n in 0..20 {
        let written = app
            .commands
            .dispatch_with(book_order(&format!("{n}")), customer("ada"))
            .await
            .unwrap();
        let summary = queries
            .query_with(
                GetOrderSummary {
                    order_id: format!("{n}"),
                },
                QueryOptions::after(written.position).with_timeout(Duration::from_secs(5)),
            )
            .await
            .unwrap()
            .expect("the row is there as soon as the query returns");
        assert_eq!(
            (summary.customer.as_str(), summary.total_cents),
            ("ada", 3000)
        );
        assert_eq!(summary.status, "pending");
    }
    let status = handle.status();
    assert_eq!(status.state, ProjectionState::Running);
    assert_eq!(status.lag, 0, "{status:?}");
    handle.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_from_zero_rebuilds_the_same_rows() {
    let fixture = Fixture::new();
    fixture.append_orders(0..300).await;
    let mut runner = fixture.runner(ProjectionOptions::default().with_batch_size(64));
    runner.catch_up(None, |_, _| {}).await.unwrap();
    let before = order_rows(&fixture.read_path);
    assert_eq!(before.len(), 300);
    assert_eq!(
        before.iter().filter(|row| row.contains("|paid|")).count(),
        80
    );

    let mut admin = ReadModelAdmin::open(&fixture.read_path).unwrap();
    admin.reset(NAME, TABLES).unwrap();
    assert!(order_rows(&fixture.read_path).is_empty());
    // The old runner's checkpoint moved under it: it reloads and replays.
    runner.catch_up(None, |_, _| {}).await.unwrap();
    assert_eq!(order_rows(&fixture.read_path), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blue_green_rebuild_switches_only_when_caught_up_and_keeps_the_old_version() {
    let fixture = Fixture::new();
    fixture.append_orders(0..200).await;
    let target = SqliteReadModel::open(&fixture.read_path, OrderProjection::new()).unwrap();
    let live =
        ProjectionRunner::new(fixture.store.clone(), target, ProjectionOptions::default()).spawn();
    assert!(
        live.wait_for(
            fixture.store.head_position().await.unwrap(),
            Duration::from_secs(10)
        )
        .await
    );
    let before = order_rows(&fixture.read_path);

    let next = SqliteReadModel::next_version(&fixture.read_path, OrderProjection::new()).unwrap();
    let mut admin = ReadModelAdmin::open(&fixture.read_path).unwrap();
    // Writes keep arriving while version 2 is built; version 1 serves meanwhile.
    let writer = {
        let fixture_store = fixture.store.clone();
        tokio::spawn(
            async move { projection_support::append_orders(&fixture_store, 200..400).await },
        )
    };
    let switched_at = projection::rebuild(
        fixture.store.clone(),
        next,
        ProjectionOptions::default(),
        |_, _| {},
        || std::future::ready(admin.switch(NAME, TABLES, 2)),
    )
    .await
    .unwrap();
    writer.await.unwrap();
    assert!(switched_at > 0);
    let head = fixture.store.head_position().await.unwrap();
    assert!(
        live.wait_for(head, Duration::from_secs(10)).await,
        "{:?}",
        live.status()
    );
    let admin = ReadModelAdmin::open(&fixture.read_path).unwrap();
    let active = admin.active(NAME).unwrap().unwrap();
    assert_eq!(active.version, 2);
    assert_eq!(active.checkpoint, head);
    assert_eq!(order_rows(&fixture.read_path).len(), 400);
    assert!(before.len() == 200);
    // Version 1 is kept until dropped.
    let versions: Vec<u32> = admin.status().unwrap().iter().map(|s| s.version).collect();
    assert_eq!(versions, vec![1, 2]);
    assert!(
        admin.drop_version(NAME, TABLES, 2).is_err(),
        "the active version cannot be dropped"
    );
    admin.drop_version(NAME, TABLES, 1).unwrap();
    live.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_rows_changed_behind_the_projections_back() {
    let fixture = Fixture::new();
    fixture.append_orders(0..50).await;
    let mut runner = fixture.runner(ProjectionOptions::default());
    runner.catch_up(None, |_, _| {}).await.unwrap();
    let verify = |fixture: &Fixture| {
        let shadow = SqliteReadModel::shadow(&fixture.read_path, OrderProjection::new()).unwrap();
        let admin = std::cell::RefCell::new(ReadModelAdmin::open(&fixture.read_path).unwrap());
        let store = fixture.store.clone();
        async move {
            projection::verify(
                store,
                shadow,
                ProjectionOptions::default(),
                || std::future::ready(admin.borrow().live_checkpoint(NAME)),
                || std::future::ready(admin.borrow_mut().diff_shadow(NAME, TABLES)),
            )
            .await
            .unwrap()
        }
    };
    let clean = verify(&fixture).await;
    assert!(clean.is_clean(), "{clean:?}");

    let admin = ReadModelAdmin::open(&fixture.read_path).unwrap();
    admin.execute("UPDATE orders_v1 SET total_cents = 1 WHERE id = '7'; DELETE FROM orders_v1 WHERE id = '8';").unwrap();
    let dirty = verify(&fixture).await;
    assert_eq!(dirty.differences.len(), 1, "{dirty:?}");
    let diff = &dirty.differences[0];
    assert_eq!((diff.only_live, diff.only_shadow), (1, 2), "{diff:?}");
    assert!(
        diff.examples
            .iter()
            .any(|row| row.contains("\"7\"") && row.contains("live only"))
    );
}

fn broken_order_created() -> NewEvent {
    // Schema version 2 without total_cents: the projection cannot decode it.
    NewEvent::json(
        "OrderCreated",
        json!({ "order_id": "bad", "customer_id": "x" }),
    )
    .unwrap()
    .with_schema_version(2)
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
async fn a_failing_event_stops_the_projection_as_failed_at_its_position() {
    let fixture = Fixture::new();
    fixture.append_orders(0..5).await;
    let bad = fixture
        .store
        .append(
            &StreamId::new("order-bad").unwrap(),
            ExpectedVersion::Any,
            vec![broken_order_created()],
        )
        .await
        .unwrap();
    fixture.append_orders(5..10).await;
    let target = SqliteReadModel::open(&fixture.read_path, OrderProjection::new()).unwrap();
    let handle = ProjectionRunner::new(
        fixture.store.clone(),
        target,
        quick_retries(OnFailure::Stop),
    )
    .spawn();
    let mut status = handle.watch_status();
    tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| matches!(s.state, ProjectionState::Failed { .. })),
    )
    .await
    .unwrap()
    .unwrap();
    let status = handle.status();
    let ProjectionState::Failed {
        position,
        attempts,
        error,
    } = &status.state
    else {
        unreachable!()
    };
    assert_eq!(*position, bad.first_position);
    assert_eq!(*attempts, 3);
    assert!(error.contains("cannot decode OrderCreated"), "{error}");
    assert!(
        status.checkpoint < bad.first_position,
        "nothing at or after the failure is applied"
    );
    // Another process sees it too.
    let admin = ReadModelAdmin::open(&fixture.read_path).unwrap();
    assert_eq!(admin.active(NAME).unwrap().unwrap().state.label(), "failed");
    handle.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_event_is_parked_as_a_dead_letter_when_configured_and_the_rest_applied() {
    let fixture = Fixture::new();
    fixture.append_orders(0..5).await;
    let bad = fixture
        .store
        .append(
            &StreamId::new("order-bad").unwrap(),
            ExpectedVersion::Any,
            vec![broken_order_created()],
        )
        .await
        .unwrap();
    fixture.append_orders(5..10).await;
    let mut runner = ProjectionRunner::new(
        fixture.store.clone(),
        SqliteReadModel::open(&fixture.read_path, OrderProjection::new()).unwrap(),
        quick_retries(OnFailure::Park),
    );
    runner.catch_up(None, |_, _| {}).await.unwrap();
    assert_eq!(order_rows(&fixture.read_path).len(), 10);
    let letters = ReadModelAdmin::open(&fixture.read_path)
        .unwrap()
        .dead_letters(NAME)
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].position, letters[0].attempts),
        (bad.first_position, 3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_asked_for_by_another_process_holds_the_runner_until_resumed() {
    let fixture = Fixture::new();
    let target = SqliteReadModel::open(&fixture.read_path, OrderProjection::new()).unwrap();
    let options = ProjectionOptions {
        poll: Duration::from_millis(20),
        ..ProjectionOptions::default()
    };
    let handle = ProjectionRunner::new(fixture.store.clone(), target, options).spawn();
    let admin = ReadModelAdmin::open(&fixture.read_path).unwrap();
    admin.pause(NAME).unwrap();
    let mut status = handle.watch_status();
    tokio::time::timeout(
        Duration::from_secs(5),
        status.wait_for(|s| s.state == ProjectionState::Paused),
    )
    .await
    .unwrap()
    .unwrap();
    fixture.append_orders(0..10).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handle.status().checkpoint, 0);
    admin.resume(NAME).unwrap();
    let head = fixture.store.head_position().await.unwrap();
    assert!(handle.wait_for(head, Duration::from_secs(5)).await);
    assert_eq!(order_rows(&fixture.read_path).len(), 10);
    handle.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_v1_order_created_events_are_upcast_before_they_are_projected() {
    let fixture = Fixture::new();
    let v1 = NewEvent::json(
        "OrderCreated",
        json!({ "order_id": "old", "customer_id": "php", "items": [{ "sku": "a", "quantity": 1, "price": "12.50" }], "total": "12.50" }),
    )
    .unwrap();
    fixture
        .store
        .append(
            &StreamId::new("order-old").unwrap(),
            ExpectedVersion::NoStream,
            vec![v1],
        )
        .await
        .unwrap();
    let mut runner = fixture.runner(ProjectionOptions::default());
    runner.catch_up(None, |_, _| {}).await.unwrap();
    let summary = OrderSummaries::new(&fixture.read_path)
        .get("old")
        .unwrap()
        .unwrap();
    assert_eq!(summary.total_cents, 1250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_outside_the_filter_still_move_the_checkpoint_to_the_head() {
    let fixture = Fixture::new();
    fixture.append_orders(0..3).await;
    let other = NewEvent::json("StockAdded", json!({ "sku": "a" })).unwrap();
    fixture
        .store
        .append(
            &StreamId::new("inventory-1").unwrap(),
            ExpectedVersion::Any,
            vec![other],
        )
        .await
        .unwrap();
    let mut runner = fixture.runner(ProjectionOptions::default());
    let reached = runner.catch_up(None, |_, _| {}).await.unwrap();
    assert_eq!(reached, fixture.store.head_position().await.unwrap());
    let mut target = SqliteReadModel::open(&fixture.read_path, OrderProjection::new()).unwrap();
    assert_eq!(target.checkpoint().await.unwrap(), reached);
}

/// Regression: a runner starts as running in memory and only recorded changes of state, so a
/// new process never overwrote the "stopped" (or "failed") an earlier runner left behind, and
/// `mammoth projections status` showed a running projection as stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_runner_records_running_over_the_state_an_earlier_runner_left() {
    let fixture = Fixture::new();
    fixture.append_orders(0..5).await;
    let first = ProjectionRunner::new(
        fixture.store.clone(),
        SqliteReadModel::open(&fixture.read_path, OrderProjection::new()).unwrap(),
        quick_retries(OnFailure::Stop),
    )
    .spawn();
    first.stop().await.unwrap();
    let admin = ReadModelAdmin::open(&fixture.read_path).unwrap();
    assert_eq!(
        admin.active(NAME).unwrap().unwrap().state.label(),
        "stopped"
    );

    let second = ProjectionRunner::new(
        fixture.store.clone(),
        SqliteReadModel::open(&fixture.read_path, OrderProjection::new()).unwrap(),
        quick_retries(OnFailure::Stop),
    )
    .spawn();
    let mut label = String::new();
    for _ in 0..100 {
        label = admin
            .active(NAME)
            .unwrap()
            .unwrap()
            .state
            .label()
            .to_owned();
        if label == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        label, "running",
        "the new runner must replace the earlier runner's state"
    );
    second.stop().await.unwrap();
}
