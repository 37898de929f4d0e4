//! The peer: cqrs-es 0.5 with postgres-es (sqlx), as its documentation sets it up
//! (`PersistedEventStore::new_event_store`, no queries), tables from postgres-es's `init.sql`
//! in a schema of the case's own. cqrs-es does not retry conflicts itself; the callers retry
//! an `AggregateConflict` with the same jittered backoff mammoth's repository uses.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, CqrsFramework, DomainEvent};
use mammoth_runtime::RetryPolicy;
use postgres_es::PostgresEventRepository;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;

use crate::{AccountEvent, BoxError, Case, Measured, Options};

/// The account, cqrs-es style.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Account {
    balance: i64,
}

/// The one command.
pub struct Deposit {
    amount: i64,
}

/// The account never refuses a deposit.
#[derive(Debug)]
pub struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        "Deposited".to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = Deposit;
    type Event = AccountEvent;
    type Error = Never;
    type Services = ();

    async fn handle(
        &mut self,
        command: Deposit,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), Never> {
        sink.write(
            AccountEvent::Deposited {
                amount: command.amount,
            },
            self,
        )
        .await;
        Ok(())
    }

    fn apply(&mut self, event: AccountEvent) {
        let AccountEvent::Deposited { amount } = event;
        self.balance += amount;
    }
}

/// Runs one case on cqrs-es in a fresh schema, then drops the schema.
pub async fn measure(options: &Options, case: Case, tag: &str) -> Result<Measured, BoxError> {
    let schema = format!("cqrs_es_bench_{tag}");
    let pool = PgPoolOptions::new()
        .max_connections(options.peer_pool)
        .connect(&options.url)
        .await?;
    // postgres-es's db/init.sql, in a schema of our own.
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.events (
             aggregate_type text NOT NULL,
             aggregate_id   text NOT NULL,
             sequence       bigint CHECK (sequence >= 0) NOT NULL,
             event_type     text NOT NULL,
             event_version  text NOT NULL,
             payload        json NOT NULL,
             metadata       json NOT NULL,
             PRIMARY KEY (aggregate_type, aggregate_id, sequence));
         CREATE TABLE {schema}.snapshots (
             aggregate_type   text NOT NULL,
             aggregate_id     text NOT NULL,
             last_sequence    bigint CHECK (last_sequence >= 0) NOT NULL,
             current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
             payload          json NOT NULL,
             PRIMARY KEY (aggregate_type, aggregate_id, last_sequence));"
    ))
    .execute(&pool)
    .await?;
    let repository = PostgresEventRepository::new(pool.clone())
        .with_tables(&format!("{schema}.events"), &format!("{schema}.snapshots"));
    let cqrs = Arc::new(CqrsFramework::new(
        PersistedEventStore::<_, Account>::new_event_store(repository),
        vec![],
        (),
    ));
    let retries = Arc::new(AtomicU64::new(0));
    let retry = RetryPolicy::attempts(50);
    let started = Instant::now();
    let deadline = started + options.duration;
    let tasks: Vec<_> = (0..case.callers)
        .map(|caller| {
            let cqrs = Arc::clone(&cqrs);
            let retries = Arc::clone(&retries);
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let id = case.aggregate_id(caller, done);
                    let mut attempt: u32 = 1;
                    loop {
                        match cqrs.execute(&id, Deposit { amount: 1 }).await {
                            Ok(()) => break,
                            Err(AggregateError::AggregateConflict)
                                if attempt < retry.max_attempts =>
                            {
                                retries.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(retry.delay(attempt)).await;
                                attempt += 1;
                            }
                            Err(error) => return Err(BoxError::from(error.to_string())),
                        }
                    }
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
    // The schema goes even when a caller failed.
    sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(Measured {
        commands: commands?,
        retries: retries.load(Ordering::Relaxed),
        seconds,
        wal_syncs: None,
    })
}
