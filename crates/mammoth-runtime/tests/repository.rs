//! The repository: load, decide, append, retry on conflict, snapshots, schemas, metadata
//! and durable idempotency keys.

mod common;

use std::sync::Arc;

use common::{Account, AccountCommand, Behaviour, BrokenSnapshots, Insufficient, TestStore};
use mammoth_core::{
    EventStore, ExpectedVersion, InMemoryEventStore, InMemorySnapshotStore, NewEvent, Snapshot,
    SnapshotStore, StreamId,
};
use mammoth_runtime::{
    CommandContext, CommandError, Repository, RetryPolicy, Schemas, SnapshotPolicy,
};
use serde_json::json;

fn ctx() -> CommandContext {
    CommandContext::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_on_one_aggregate_all_land_and_the_state_adds_up() {
    let store = TestStore::new(Behaviour::YieldBeforeAppend);
    let repository =
        Repository::<Account, _>::new(store.clone()).with_retry(RetryPolicy::attempts(1000));
    let tasks: Vec<_> = (1..=48)
        .map(|amount| {
            let repository = repository.clone();
            tokio::spawn(async move {
                repository
                    .execute("1", &AccountCommand::Deposit(amount), &ctx())
                    .await
            })
        })
        .collect();
    let mut retried = 0;
    for task in tasks {
        let committed = task.await.unwrap().unwrap();
        assert_eq!(committed.events, 1);
        if committed.attempts > 1 {
            retried += 1;
        }
    }
    let loaded = repository.load("1").await.unwrap();
    assert_eq!(loaded.state.balance, (1..=48).sum::<i64>());
    assert_eq!(loaded.version, 48);
    assert_eq!(store.events("account-1").await.len(), 48);
    assert!(
        retried > 0,
        "the yield in append should have made some commands conflict"
    );
    assert!(
        store.appends() > 48,
        "conflicting appends were attempted and retried"
    );
}

#[tokio::test]
async fn the_retry_bound_is_honoured_and_the_conflict_is_typed() {
    let store = TestStore::new(Behaviour::AlwaysConflict);
    let repository =
        Repository::<Account, _>::new(store.clone()).with_retry(RetryPolicy::attempts(3));
    let error = repository
        .execute("1", &AccountCommand::Deposit(5), &ctx())
        .await
        .unwrap_err();
    let CommandError::Conflict {
        stream, attempts, ..
    } = &error
    else {
        panic!("expected a conflict, got {error:?}");
    };
    assert_eq!((stream.as_str(), *attempts), ("account-1", 3));
    assert_eq!(store.appends(), 3, "exactly the allowed attempts");
    assert!(error.to_string().contains("3 attempt"), "{error}");
    // Only the rival events landed: the command itself wrote nothing.
    let mine = store.events("account-1").await;
    assert!(mine.iter().all(|event| event.data == r#"{"amount":1}"#));
}

#[tokio::test]
async fn a_snapshot_is_taken_every_n_events_and_loads_read_only_the_rest() {
    let store = Arc::new(InMemoryEventStore::new());
    let snapshots = InMemorySnapshotStore::new();
    let repository = Repository::<Account, _>::new(Arc::clone(&store))
        .with_snapshots(snapshots.clone(), SnapshotPolicy::every(5));
    let stream = StreamId::new("account-1").unwrap();
    for n in 1..=12 {
        repository
            .execute("1", &AccountCommand::Deposit(n), &ctx())
            .await
            .unwrap();
        let snapshot = snapshots.load(&stream).await.unwrap();
        let expected = match n {
            0..5 => None,
            5..10 => Some(5),
            _ => Some(10),
        };
        assert_eq!(snapshot.map(|s| s.version), expected, "after {n} events");
    }
    let loaded = repository.load("1").await.unwrap();
    assert_eq!(loaded.snapshot_version, Some(10));
    assert_eq!(loaded.events_read, 2);
    assert_eq!(loaded.state.balance, (1..=12).sum::<i64>());
    assert_eq!(loaded.state.events, 12);
}

#[tokio::test]
async fn a_snapshot_of_a_stale_schema_version_is_ignored() {
    let store = Arc::new(InMemoryEventStore::new());
    let snapshots = InMemorySnapshotStore::new();
    let repository = Repository::<Account, _>::new(Arc::clone(&store))
        .with_snapshots(snapshots.clone(), SnapshotPolicy::every(100));
    for _ in 0..3 {
        repository
            .execute("1", &AccountCommand::Deposit(10), &ctx())
            .await
            .unwrap();
    }
    // A snapshot written by older code whose state had another shape (and a wrong balance).
    let stale = Snapshot {
        stream_id: StreamId::new("account-1").unwrap(),
        version: 3,
        schema_version: 0,
        state: json!({ "balance": 1_000_000, "events": 3 }).to_string(),
        taken_at_micros: 0,
    };
    snapshots.save(&stale).await.unwrap();
    let loaded = repository.load("1").await.unwrap();
    assert_eq!(loaded.snapshot_version, None);
    assert_eq!(loaded.state.balance, 30);
    assert_eq!(loaded.events_read, 3);
}

#[tokio::test]
async fn a_failing_snapshot_store_only_costs_time() {
    let store = Arc::new(InMemoryEventStore::new());
    let broken = BrokenSnapshots::default();
    let repository = Repository::<Account, _>::new(Arc::clone(&store))
        .with_snapshots(broken.clone(), SnapshotPolicy::every(2));
    for _ in 0..5 {
        repository
            .execute("1", &AccountCommand::Deposit(2), &ctx())
            .await
            .unwrap();
    }
    repository
        .execute("1", &AccountCommand::Withdraw(10), &ctx())
        .await
        .unwrap();
    let loaded = repository.load("1").await.unwrap();
    assert_eq!((loaded.state.balance, loaded.version), (0, 6));
    assert!(
        broken.calls.load(std::sync::atomic::Ordering::SeqCst) > 6,
        "snapshots were tried"
    );
}

#[tokio::test]
async fn a_forgotten_snapshot_is_taken_again() {
    let store = Arc::new(InMemoryEventStore::new());
    let snapshots = InMemorySnapshotStore::new();
    let repository = Repository::<Account, _>::new(Arc::clone(&store))
        .with_snapshots(snapshots.clone(), SnapshotPolicy::every(3));
    for _ in 0..4 {
        repository
            .execute("1", &AccountCommand::Deposit(1), &ctx())
            .await
            .unwrap();
    }
    snapshots.clear();
    let stream = StreamId::new("account-1").unwrap();
    // This process still knows the snapshot at 3, so the next one is due at 6.
    repository
        .execute("1", &AccountCommand::Deposit(1), &ctx())
        .await
        .unwrap();
    repository
        .execute("1", &AccountCommand::Deposit(1), &ctx())
        .await
        .unwrap();
    assert_eq!(
        snapshots.load(&stream).await.unwrap().map(|s| s.version),
        Some(6)
    );
    // Another process (no cache) finds none and takes one on its first write.
    snapshots.clear();
    let other = Repository::<Account, _>::new(Arc::clone(&store))
        .with_snapshots(snapshots.clone(), SnapshotPolicy::every(3));
    other
        .execute("1", &AccountCommand::Deposit(1), &ctx())
        .await
        .unwrap();
    assert_eq!(
        snapshots.load(&stream).await.unwrap().map(|s| s.version),
        Some(7)
    );
    assert_eq!(other.load("1").await.unwrap().state.balance, 7);
}

#[tokio::test]
async fn a_cached_aggregate_made_stale_by_another_writer_conflicts_and_reloads() {
    let store = Arc::new(InMemoryEventStore::new());
    // Two repositories with their own caches, as two processes would have.
    let first = Repository::<Account, _>::new(Arc::clone(&store));
    let second = Repository::<Account, _>::new(Arc::clone(&store));
    first
        .execute("1", &AccountCommand::Deposit(10), &ctx())
        .await
        .unwrap();
    second
        .execute("1", &AccountCommand::Withdraw(10), &ctx())
        .await
        .unwrap();
    // `first` has balance 10 at version 1 cached; deciding on it would allow this withdrawal.
    let error = first
        .execute("1", &AccountCommand::Withdraw(10), &ctx())
        .await
        .unwrap_err();
    assert_eq!(
        error.rejection(),
        Some(&Insufficient {
            balance: 0,
            wanted: 10
        })
    );
    let committed = first
        .execute("1", &AccountCommand::Deposit(1), &ctx())
        .await
        .unwrap();
    assert_eq!((committed.version, committed.attempts), (3, 1));
    let committed = second
        .execute("1", &AccountCommand::Deposit(1), &ctx())
        .await
        .unwrap();
    assert_eq!(
        (committed.version, committed.attempts),
        (4, 2),
        "stale cache: one conflict"
    );
    assert_eq!(second.load("1").await.unwrap().state.balance, 2);
}

#[tokio::test]
async fn a_rejection_decided_on_a_stale_cached_aggregate_is_checked_against_the_store() {
    let store = Arc::new(InMemoryEventStore::new());
    let first = Repository::<Account, _>::new(Arc::clone(&store));
    let second = Repository::<Account, _>::new(Arc::clone(&store));
    first
        .execute("1", &AccountCommand::Deposit(1), &ctx())
        .await
        .unwrap();
    second
        .execute("1", &AccountCommand::Deposit(10), &ctx())
        .await
        .unwrap();
    // `first` has balance 1 cached: on that state this is refused, on the store's it is not.
    let committed = first
        .execute("1", &AccountCommand::Withdraw(5), &ctx())
        .await
        .unwrap();
    assert_eq!(committed.version, 3);
    assert_eq!(first.load("1").await.unwrap().state.balance, 6);
}

#[tokio::test]
async fn every_written_event_carries_the_correlation_and_causation_ids() {
    let store = Arc::new(InMemoryEventStore::new());
    let repository = Repository::<Account, _>::new(Arc::clone(&store));
    let context = CommandContext::new().with_actor("ada").with_tenant("acme");
    repository
        .execute("1", &AccountCommand::Deposit(3), &context)
        .await
        .unwrap();
    let events = store
        .read_stream(
            &StreamId::new("account-1").unwrap(),
            Default::default(),
            None,
            10,
        )
        .await
        .unwrap();
    let metadata = &events[0].metadata;
    assert_eq!(metadata.correlation_id, Some(context.correlation_id));
    assert_eq!(metadata.causation_id, Some(context.command_id));
    assert_eq!(metadata.actor.as_deref(), Some("ada"));
    assert_eq!(metadata.tenant.as_deref(), Some("acme"));
}

#[tokio::test]
async fn a_schema_violation_names_the_field_and_rule_and_writes_nothing() {
    let store = Arc::new(InMemoryEventStore::new());
    let schemas = Schemas::new()
        .add(
            "Deposited",
            1,
            json!({
                "type": "object",
                "required": ["amount"],
                "properties": { "amount": { "type": "integer", "minimum": 1 } }
            }),
        )
        .unwrap();
    let repository = Repository::<Account, _>::new(Arc::clone(&store)).with_schemas(schemas);
    let error = repository
        .execute("1", &AccountCommand::Deposit(0), &ctx())
        .await
        .unwrap_err();
    let CommandError::Schema(violation) = &error else {
        panic!("expected a schema violation, got {error:?}");
    };
    assert_eq!(violation.field, "/amount");
    assert_eq!(violation.rule, "minimum");
    assert!(error.to_string().contains("/amount") && error.to_string().contains("minimum"));
    assert_eq!(
        store.head_position().await.unwrap(),
        0,
        "nothing was written"
    );
    repository
        .execute("1", &AccountCommand::Deposit(1), &ctx())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_rejection_is_typed_and_writes_nothing() {
    let store = Arc::new(InMemoryEventStore::new());
    let repository = Repository::<Account, _>::new(Arc::clone(&store));
    let error = repository
        .execute("1", &AccountCommand::Withdraw(5), &ctx())
        .await
        .unwrap_err();
    assert_eq!(
        error.rejection(),
        Some(&Insufficient {
            balance: 0,
            wanted: 5
        })
    );
    assert_eq!(store.head_position().await.unwrap(), 0);
}

#[tokio::test]
async fn a_decision_with_no_events_writes_nothing() {
    let store = Arc::new(InMemoryEventStore::new());
    let repository = Repository::<Account, _>::new(Arc::clone(&store));
    let committed = repository
        .execute("1", &AccountCommand::Nothing, &ctx())
        .await
        .unwrap();
    assert_eq!(
        (committed.events, committed.position, committed.version),
        (0, 0, 0)
    );
    assert_eq!(store.head_position().await.unwrap(), 0);
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_first_result_without_a_second_write() {
    let store = Arc::new(InMemoryEventStore::new());
    let repository = Repository::<Account, _>::new(Arc::clone(&store));
    repository
        .execute("1", &AccountCommand::Deposit(10), &ctx())
        .await
        .unwrap();
    let keyed = ctx().with_idempotency_key("withdraw-1");
    let first = repository
        .execute("1", &AccountCommand::Withdraw(10), &keyed)
        .await
        .unwrap();
    // Deciding again would be rejected (the balance is 0 now): the key answers first.
    let again = repository
        .execute(
            "1",
            &AccountCommand::Withdraw(10),
            &ctx().with_idempotency_key("withdraw-1"),
        )
        .await
        .unwrap();
    assert!(again.replayed && !first.replayed);
    assert_eq!(
        (again.version, again.position, again.events),
        (first.version, first.position, 1)
    );
    assert_eq!(store.head_position().await.unwrap(), 2);
}

#[tokio::test]
async fn a_key_used_before_the_latest_snapshot_still_replays() {
    let store = Arc::new(InMemoryEventStore::new());
    let repository = Repository::<Account, _>::new(Arc::clone(&store))
        .with_snapshots(InMemorySnapshotStore::new(), SnapshotPolicy::every(2));
    let deposit = ctx().with_idempotency_key("deposit-1");
    let withdraw = ctx().with_idempotency_key("withdraw-1");
    let first_deposit = repository
        .execute("1", &AccountCommand::Deposit(7), &deposit)
        .await
        .unwrap();
    let first_withdraw = repository
        .execute("1", &AccountCommand::Withdraw(7), &withdraw)
        .await
        .unwrap();
    for _ in 0..4 {
        repository
            .execute("1", &AccountCommand::Deposit(1), &ctx())
            .await
            .unwrap();
    }
    let loaded = repository.load("1").await.unwrap();
    assert_eq!(
        loaded.snapshot_version,
        Some(6),
        "the keyed events are behind the snapshot"
    );
    let head = store.head_position().await.unwrap();
    // Accepted again by decide: the store recognises the derived ids.
    let again = repository
        .execute("1", &AccountCommand::Deposit(7), &deposit)
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.position, first_deposit.position);
    // Rejected by decide now (balance 4 < 7): the stream is scanned for the key.
    let again = repository
        .execute("1", &AccountCommand::Withdraw(7), &withdraw)
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.position, first_withdraw.position);
    assert_eq!(
        store.head_position().await.unwrap(),
        head,
        "nothing new was written"
    );
}

#[tokio::test]
async fn a_key_used_for_another_aggregate_is_refused() {
    let store = Arc::new(InMemoryEventStore::new());
    let repository = Repository::<Account, _>::new(Arc::clone(&store));
    let keyed = ctx().with_idempotency_key("k");
    repository
        .execute("1", &AccountCommand::Deposit(1), &keyed)
        .await
        .unwrap();
    let error = repository
        .execute("2", &AccountCommand::Deposit(1), &keyed)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CommandError::IdempotencyKeyReused { stream, .. } if stream == "account-1"),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_with_one_key_write_once() {
    let store = TestStore::new(Behaviour::YieldBeforeAppend);
    let repository =
        Repository::<Account, _>::new(store.clone()).with_retry(RetryPolicy::attempts(100));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let repository = repository.clone();
            tokio::spawn(async move {
                let keyed = CommandContext::new().with_idempotency_key("pay-once");
                repository
                    .execute("1", &AccountCommand::Deposit(5), &keyed)
                    .await
            })
        })
        .collect();
    let mut positions = Vec::new();
    for task in tasks {
        positions.push(task.await.unwrap().unwrap().position);
    }
    positions.dedup();
    assert_eq!(
        positions.len(),
        1,
        "every caller got the one write's position"
    );
    assert_eq!(store.events("account-1").await.len(), 1);
}

#[tokio::test]
async fn an_event_that_cannot_be_decoded_fails_the_load_naming_it() {
    let store = Arc::new(InMemoryEventStore::new());
    let stream = StreamId::new("account-1").unwrap();
    let bad = NewEvent::from_json_text("Deposited", r#"{"amount":"ten"}"#);
    store
        .append(&stream, ExpectedVersion::NoStream, vec![bad])
        .await
        .unwrap();
    let repository = Repository::<Account, _>::new(Arc::clone(&store));
    let error = repository.load("1").await.unwrap_err();
    assert!(matches!(error, CommandError::Codec(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("account-1") && message.contains("position 1"),
        "{message}"
    );
}

#[test]
fn the_snapshot_interval_comes_from_configuration_per_aggregate() {
    let mut per_aggregate = std::collections::BTreeMap::new();
    assert_eq!(
        SnapshotPolicy::for_aggregate::<Account>(100, &per_aggregate).every,
        100
    );
    per_aggregate.insert("Account".to_owned(), 20);
    assert_eq!(
        SnapshotPolicy::for_aggregate::<Account>(100, &per_aggregate).every,
        20
    );
    per_aggregate.insert("account".to_owned(), 5);
    assert_eq!(
        SnapshotPolicy::for_aggregate::<Account>(100, &per_aggregate).every,
        5
    );
}
