//! The command and query buses: routing, middleware order, idempotency, validation,
//! authorization, retries, typed rejections, and read-your-writes waits.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Account, AccountCommand, Insufficient};
use mammoth_core::{ExpectedVersion, InMemoryEventStore, StreamId};
use mammoth_runtime::{
    Authorization, BoxFuture, Command, CommandBus, CommandContext, CommandError, Envelope,
    ErasedResult, Execute, Idempotency, Middleware, Next, PositionWatch, Query, QueryBus,
    QueryError, QueryOptions, Repository, RetryOnConflict, RetryPolicy, Tracing, Validation,
};

#[derive(Clone, Debug)]
struct Greet {
    name: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("nobody to greet")]
struct Nobody;

impl Command for Greet {
    type Output = String;
    type Error = Nobody;
}

#[derive(Clone)]
struct Unregistered;

impl Command for Unregistered {
    type Output = ();
    type Error = Nobody;
}

/// Records "<name> in" and "<name> out" around the rest of the chain.
struct Record {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

impl Middleware for Record {
    fn handle<'a>(&'a self, envelope: Envelope, next: Next<'a>) -> BoxFuture<'a, ErasedResult> {
        Box::pin(async move {
            self.log.lock().unwrap().push(format!("{} in", self.name));
            let result = next.run(envelope).await;
            self.log.lock().unwrap().push(format!("{} out", self.name));
            result
        })
    }
}

fn greeter(
    calls: Arc<AtomicU32>,
) -> impl Fn(Greet, CommandContext) -> BoxFuture<'static, Result<String, CommandError<Nobody>>>
+ Send
+ Sync
+ 'static {
    move |greet: Greet, _| {
        let calls = Arc::clone(&calls);
        Box::pin(async move {
            let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if greet.name.is_empty() {
                return Err(CommandError::Rejected(Nobody));
            }
            Ok(format!("hello {} (call {call})", greet.name))
        })
    }
}

#[tokio::test]
async fn middleware_runs_in_the_order_it_was_added_around_the_handler() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let handler_log = Arc::clone(&log);
    let bus = CommandBus::builder()
        .layer(Record {
            name: "outer",
            log: Arc::clone(&log),
        })
        .layer(Tracing)
        .layer(Record {
            name: "inner",
            log: Arc::clone(&log),
        })
        .handle(move |greet: Greet, _| {
            let log = Arc::clone(&handler_log);
            async move {
                log.lock().unwrap().push("handler".to_owned());
                Ok::<_, CommandError<Nobody>>(greet.name)
            }
        })
        .build();
    bus.dispatch(Greet { name: "ada".into() }).await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        ["outer in", "inner in", "handler", "inner out", "outer out"]
    );
}

#[tokio::test]
async fn an_unknown_command_is_a_typed_error() {
    let bus = CommandBus::builder().build();
    let error = bus.dispatch(Unregistered).await.unwrap_err();
    assert!(
        matches!(
            error,
            CommandError::UnknownCommand {
                command: "Unregistered"
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_rejection_keeps_its_domain_type_through_the_middleware() {
    let calls = Arc::new(AtomicU32::new(0));
    let bus = CommandBus::builder()
        .layer(Tracing)
        .layer(Idempotency::default())
        .handle(greeter(calls))
        .build();
    let error = bus
        .dispatch(Greet {
            name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.rejection(), Some(&Nobody));
}

#[tokio::test]
async fn the_same_idempotency_key_answers_with_the_first_result_without_running_again() {
    let calls = Arc::new(AtomicU32::new(0));
    let bus = CommandBus::builder()
        .layer(Idempotency::new(100))
        .handle(greeter(Arc::clone(&calls)))
        .build();
    let keyed = || CommandContext::new().with_idempotency_key("k1");
    let first = bus
        .dispatch_with(Greet { name: "ada".into() }, keyed())
        .await
        .unwrap();
    let again = bus
        .dispatch_with(Greet { name: "ada".into() }, keyed())
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let other = bus
        .dispatch_with(
            Greet { name: "ada".into() },
            CommandContext::new().with_idempotency_key("k2"),
        )
        .await
        .unwrap();
    assert_ne!(other, first);
    bus.dispatch(Greet { name: "ada".into() }).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "unkeyed commands always run"
    );
}

#[tokio::test]
async fn a_rejected_keyed_command_is_not_remembered() {
    let calls = Arc::new(AtomicU32::new(0));
    let bus = CommandBus::builder()
        .layer(Idempotency::new(100))
        .handle(greeter(Arc::clone(&calls)))
        .build();
    let keyed = || CommandContext::new().with_idempotency_key("k");
    assert!(
        bus.dispatch_with(
            Greet {
                name: String::new()
            },
            keyed()
        )
        .await
        .is_err()
    );
    assert!(
        bus.dispatch_with(Greet { name: "ada".into() }, keyed())
            .await
            .is_ok()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn validation_refuses_invalid_input_before_the_handler() {
    let calls = Arc::new(AtomicU32::new(0));
    let bus = CommandBus::builder()
        .layer(Validation::new().rule(|greet: &Greet| {
            if greet.name.len() > 5 {
                Err("name is longer than 5 letters".into())
            } else {
                Ok(())
            }
        }))
        .handle(greeter(Arc::clone(&calls)))
        .build();
    let error = bus
        .dispatch(Greet {
            name: "bartholomew".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CommandError::Invalid { command: "Greet", reason } if reason.contains("5 letters")),
        "{error:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_authorization_hook_refuses_with_the_actor_named() {
    let calls = Arc::new(AtomicU32::new(0));
    let bus = CommandBus::builder()
        .layer(Authorization::new(|envelope: &Envelope| {
            match envelope.context.actor.as_deref() {
                Some("admin") => Ok(()),
                _ => Err("only admin may greet".to_owned()),
            }
        }))
        .handle(greeter(Arc::clone(&calls)))
        .build();
    let error = bus
        .dispatch_with(
            Greet { name: "ada".into() },
            CommandContext::new().with_actor("eve"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CommandError::Unauthorized { actor, .. } if actor == "eve"),
        "{error:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    bus.dispatch_with(
        Greet { name: "ada".into() },
        CommandContext::new().with_actor("admin"),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_retry_middleware_retries_conflicts_up_to_its_bound() {
    let calls = Arc::new(AtomicU32::new(0));
    let handler_calls = Arc::clone(&calls);
    let bus = CommandBus::builder()
        .layer(RetryOnConflict::new(RetryPolicy::attempts(4)))
        .handle(move |_: Greet, _| {
            let calls = Arc::clone(&handler_calls);
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<String, _>(CommandError::<Nobody>::Conflict {
                    stream: StreamId::new("greeting-1").unwrap(),
                    expected: ExpectedVersion::Exact(1),
                    actual: 2,
                    attempts: 1,
                })
            }
        })
        .build();
    let error = bus
        .dispatch(Greet { name: "ada".into() })
        .await
        .unwrap_err();
    assert!(error.is_conflict());
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn an_aggregate_command_through_the_bus_carries_the_context_into_its_events() {
    let store = Arc::new(InMemoryEventStore::new());
    let repository = Repository::<Account, _>::new(Arc::clone(&store));
    let bus = CommandBus::builder()
        .layer(Tracing)
        .repository(repository)
        .build();
    let context = CommandContext::new().with_actor("ada");
    let committed = bus
        .dispatch_with(
            Execute::<Account>::new("9", AccountCommand::Deposit(3)),
            context.clone(),
        )
        .await
        .unwrap();
    assert_eq!((committed.version, committed.position), (1, 1));
    let error = bus
        .dispatch(Execute::<Account>::new("9", AccountCommand::Withdraw(5)))
        .await
        .unwrap_err();
    assert_eq!(
        error.rejection(),
        Some(&Insufficient {
            balance: 3,
            wanted: 5
        })
    );
    let events = mammoth_core::EventStore::read_all(&store, 1, &Default::default(), 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].metadata.correlation_id,
        Some(context.correlation_id)
    );
    assert_eq!(events[0].metadata.causation_id, Some(context.command_id));
}

struct Balance;

impl Query for Balance {
    type Output = u64;
}

struct Missing;

impl Query for Missing {
    type Output = ();
}

fn balance_bus(progress: PositionWatch) -> QueryBus {
    let model = progress.clone();
    QueryBus::builder()
        .handle_with_progress(
            move |_: Balance| {
                let model = model.clone();
                async move { Ok::<_, QueryError>(model.get() * 10) }
            },
            progress,
        )
        .build()
}

#[tokio::test]
async fn a_query_waits_until_its_read_model_has_processed_the_callers_position() {
    let progress = PositionWatch::new(2);
    let bus = balance_bus(progress.clone());
    let projector = tokio::spawn({
        let progress = progress.clone();
        async move {
            for position in 3..=5 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                progress.advance(position);
            }
        }
    });
    let started = Instant::now();
    let answer = bus
        .query_with(Balance, QueryOptions::after(5))
        .await
        .unwrap();
    assert_eq!(answer, 50, "the answer reflects position 5");
    assert!(started.elapsed() >= Duration::from_millis(50));
    projector.await.unwrap();
    assert_eq!(
        bus.query(Balance).await.unwrap(),
        50,
        "no position: no wait"
    );
}

#[tokio::test]
async fn a_query_times_out_with_a_typed_error_when_the_read_model_lags() {
    let bus = balance_bus(PositionWatch::new(5));
    let options = QueryOptions::after(10).with_timeout(Duration::from_millis(30));
    let error = bus.query_with(Balance, options).await.unwrap_err();
    assert!(
        matches!(
            error,
            QueryError::NotCaughtUp {
                wanted: 10,
                reached: 5,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unknown_query_is_a_typed_error() {
    let bus = balance_bus(PositionWatch::default());
    let error = bus.query(Missing).await.unwrap_err();
    assert!(
        matches!(error, QueryError::UnknownQuery { query: "Missing" }),
        "{error:?}"
    );
}
