//! mammoth's command path: `PgEventStore` (group commit) under a `Repository` (aggregate
//! cache, conflict retry) behind a `CommandBus` with the `Tracing` and `Idempotency`
//! middleware, as docs/cqrs.md sets it up; a fresh schema per case, dropped afterwards. With
//! `--mysql-url`, the same command path on `MysqlEventStore` (MariaDB/MySQL), in a fresh
//! database per case: mammoth's own numbers there (cqrs-es is not run on MySQL).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use mammoth_core::{Aggregate, EventStore};
use mammoth_mysql::{MysqlEventStore, MysqlOptions};
use mammoth_postgres::{PgEventStore, PgOptions};
use mammoth_runtime::{
    CommandBus, CommandContext, Execute, Idempotency, Repository, RetryPolicy, Tracing,
};
use serde::{Deserialize, Serialize};

use crate::{AccountEvent, BoxError, Case, Measured, Options};

/// The account, mammoth style: a decider.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Account {
    balance: i64,
}

/// The one command: deposit this amount.
#[derive(Clone, Debug)]
pub struct Deposit(pub i64);

/// The account never refuses a deposit.
#[derive(Debug)]
pub struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

impl mammoth_core::DomainEvent for AccountEvent {
    fn schema_version(event_type: &str) -> Option<u32> {
        (event_type == "Deposited").then_some(1)
    }
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "account";
    type Command = Deposit;
    type Event = AccountEvent;
    type Error = Never;

    fn decide(&self, command: &Deposit) -> Result<Vec<AccountEvent>, Never> {
        Ok(vec![AccountEvent::Deposited { amount: command.0 }])
    }

    fn evolve(self, event: &AccountEvent) -> Self {
        let AccountEvent::Deposited { amount } = event;
        Self {
            balance: self.balance + amount,
        }
    }
}

/// Runs one case on mammoth in a fresh schema, then drops the schema.
pub async fn measure(options: &Options, case: Case, tag: &str) -> Result<Measured, BoxError> {
    let schema = format!("mammoth_bench_{tag}");
    let store = PgEventStore::open(
        &options.url,
        PgOptions {
            schema: schema.clone(),
            ..PgOptions::default()
        },
    )
    .await?;
    let commands = run_commands(options, case, store.clone()).await;
    // The schema goes even when a caller failed.
    let closed = store.close().await;
    mammoth_postgres::drop_schema(&options.url, &schema).await?;
    closed?;
    commands
}

/// Runs one case on mammoth on MySQL/MariaDB at `url` in a fresh database, then drops it.
pub async fn measure_mysql(
    options: &Options,
    url: &str,
    case: Case,
    tag: &str,
) -> Result<Measured, BoxError> {
    let database = format!("mammoth_bench_{tag}");
    let store = MysqlEventStore::open(
        url,
        MysqlOptions {
            database: Some(database.clone()),
            ..MysqlOptions::default()
        },
    )
    .await?;
    let commands = run_commands(options, case, store.clone()).await;
    let closed = store.close().await;
    mammoth_mysql::drop_database(url, &database).await?;
    closed?;
    commands
}

/// The callers of `case`, each dispatching `Deposit`s through the bus until the time is up.
async fn run_commands<S>(options: &Options, case: Case, store: S) -> Result<Measured, BoxError>
where
    S: EventStore + Clone + Send + Sync + 'static,
{
    let repository = Repository::<Account, S>::new(store).with_retry(RetryPolicy::attempts(50));
    let bus = CommandBus::builder()
        .layer(Tracing)
        .layer(Idempotency::default())
        .repository(repository)
        .build();
    let retries = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + options.duration;
    let tasks: Vec<_> = (0..case.callers)
        .map(|caller| {
            let bus = bus.clone();
            let retries = Arc::clone(&retries);
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let id = case.aggregate_id(caller, done);
                    let committed = bus
                        .dispatch_with(
                            Execute::<Account>::new(id, Deposit(1)),
                            CommandContext::new(),
                        )
                        .await
                        .map_err(|error| BoxError::from(error.to_string()))?;
                    retries.fetch_add(u64::from(committed.attempts - 1), Ordering::Relaxed);
                    done += 1;
                }
                Ok::<u64, BoxError>(done)
            })
        })
        .collect();
    let mut commands = Ok(0);
    for task in tasks {
        let done = task.await.map_err(BoxError::from).and_then(|done| done);
        commands = commands.and_then(|sum| done.map(|done| sum + done));
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(bus);
    Ok(Measured {
        commands: commands?,
        retries: retries.load(Ordering::Relaxed),
        seconds,
        wal_syncs: None,
    })
}
