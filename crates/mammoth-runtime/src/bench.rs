//! `bench_commands`: command throughput through the full path (CommandBus with middleware,
//! repository load + decide + encode + append) beside the raw append rate of the same store
//! in the same run, and aggregate load time with and without a snapshot.
//!
//! It is generic over the store so that `mammoth bench commands` (and the example binary
//! `cargo run --release -p mammoth-example-orders --example bench_commands`) can run it on
//! SQLite, and any driver later. Each case gets a fresh store from the caller's factory.
//!
//! The command is realistic rather than trivial: each caller works on an aggregate for
//! [`EVENTS_PER_AGGREGATE`] commands (so every command loads up to that many events), then
//! moves to a new one; the raw baseline appends the same event (same data, same metadata)
//! one per call to streams rotated the same way, with the same expected-version check.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mammoth_core::{
    Aggregate, DomainEvent, EventStore, ExpectedVersion, NewEvent, SnapshotStore, StoreError,
    StreamId,
};
use serde::{Deserialize, Serialize};

use crate::{
    CommandBus, CommandContext, CommandError, Execute, Idempotency, Repository, RetryPolicy,
    SnapshotPolicy, Tracing,
};

/// How many commands a caller sends to one aggregate before moving to a new one.
pub const EVENTS_PER_AGGREGATE: u64 = 10;

/// The aggregate the benchmark drives: a counter.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BenchCounter {
    /// The sum of increments.
    pub value: u64,
}

/// The counter's one event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BenchEvent {
    /// The counter went up.
    Incremented {
        /// By how much.
        by: u64,
    },
}

impl DomainEvent for BenchEvent {
    fn schema_version(event_type: &str) -> Option<u32> {
        (event_type == "Incremented").then_some(1)
    }
}

/// The counter never refuses; the type exists to satisfy [`Aggregate::Error`].
#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

impl Aggregate for BenchCounter {
    const CATEGORY: &'static str = "bench";
    type Command = u64;
    type Event = BenchEvent;
    type Error = Never;

    fn decide(&self, by: &u64) -> Result<Vec<BenchEvent>, Never> {
        Ok(vec![BenchEvent::Incremented { by: *by }])
    }

    fn evolve(self, event: &BenchEvent) -> Self {
        let BenchEvent::Incremented { by } = event;
        Self {
            value: self.value + by,
        }
    }
}

/// How long and how big.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchOptions {
    /// How long each throughput case runs.
    pub duration: Duration,
    /// Events in the stream of the load case.
    pub load_events: u64,
    /// How many loads are timed in each load case (the median is reported).
    pub load_repeats: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(3),
            load_events: 10_000,
            load_repeats: 7,
        }
    }
}

impl BenchOptions {
    /// A quick run (0.5 s per case, 3 loads) for CI and smoke tests.
    pub fn short() -> Self {
        Self {
            duration: Duration::from_millis(500),
            load_repeats: 3,
            ..Self::default()
        }
    }
}

/// One measured case, as `--json` prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchCase {
    /// The case: `raw_append`, `commands_own`, `commands_shared`, `load_without_snapshot`,
    /// `load_with_snapshot`.
    pub case: String,
    /// Concurrent callers (1 for the load cases).
    pub callers: usize,
    /// Distinct aggregates written at once: `callers` for own aggregates, 16 when shared.
    pub aggregates: usize,
    /// Operations completed (commands, appends, or loads).
    pub operations: u64,
    /// Wall time of the case in seconds.
    pub seconds: f64,
    /// Operations per second (for load cases: loads per second of the median load).
    pub per_second: f64,
    /// Conflicts the repository retried (shared aggregates only).
    pub conflicts_retried: u64,
    /// The raw append rate with the same number of callers, measured in the same run.
    pub raw_append_per_second: Option<f64>,
    /// Median time of one load, in microseconds (load cases only).
    pub median_load_micros: Option<f64>,
}

/// Runs every case: raw appends and commands with 1 and 64 callers on their own aggregates,
/// commands with 64 callers on 16 shared aggregates, and a `load_events`-event load without
/// and with a snapshot. `open_store(case)` gives a fresh store per case; `open_snapshots(case)`
/// a snapshot store on it.
///
/// # Errors
/// The first store failure.
pub async fn bench_commands<S, P>(
    open_store: impl Fn(&str) -> Result<S, StoreError>,
    open_snapshots: impl Fn(&str) -> Result<P, StoreError>,
    options: BenchOptions,
) -> Result<Vec<BenchCase>, StoreError>
where
    S: EventStore + Clone + Send + Sync + 'static,
    P: SnapshotStore + Clone + 'static,
{
    let mut cases = Vec::new();
    for callers in [1, 64] {
        let raw = raw_appends(open_store(&format!("raw-{callers}"))?, callers, options).await?;
        let raw_rate = raw.per_second;
        cases.push(raw);
        let store = open_store(&format!("commands-{callers}"))?;
        let mut own = commands(store, callers, None, options).await?;
        own.raw_append_per_second = Some(raw_rate);
        cases.push(own);
        if callers == 64 {
            let store = open_store("commands-shared")?;
            let mut shared = commands(store, callers, Some(16), options).await?;
            shared.raw_append_per_second = Some(raw_rate);
            cases.push(shared);
        }
    }
    let store = open_store("load")?;
    let snapshots = open_snapshots("load")?;
    cases.extend(loads(store, snapshots, options).await?);
    Ok(cases)
}

fn stream_of(caller: usize, generation: u64) -> String {
    format!("c{caller}g{generation}")
}

async fn raw_appends<S>(
    store: S,
    callers: usize,
    options: BenchOptions,
) -> Result<BenchCase, StoreError>
where
    S: EventStore + Clone + Send + Sync + 'static,
{
    let started = Instant::now();
    let deadline = started + options.duration;
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let stream = StreamId::new(format!(
                        "raw-{}",
                        stream_of(caller, done / EVENTS_PER_AGGREGATE)
                    ))?;
                    let version = done % EVENTS_PER_AGGREGATE;
                    // The same event a command writes: data and metadata (correlation and
                    // causation ids), so the comparison measures the framework, not payload.
                    let event = NewEvent::from_json_text("Incremented", r#"{"by":1}"#)
                        .with_metadata(CommandContext::new().metadata());
                    store
                        .append(&stream, ExpectedVersion::Exact(version), vec![event])
                        .await?;
                    done += 1;
                }
                Ok::<u64, StoreError>(done)
            })
        })
        .collect();
    let operations = join_counts(tasks).await?;
    Ok(rate_case(
        "raw_append",
        callers,
        callers,
        operations,
        started,
    ))
}

async fn join_counts(
    tasks: Vec<tokio::task::JoinHandle<Result<u64, StoreError>>>,
) -> Result<u64, StoreError> {
    let mut total = 0;
    for task in tasks {
        total += task
            .await
            .map_err(|error| StoreError::backend("bench", "joining a caller", error, false))??;
    }
    Ok(total)
}

fn rate_case(
    case: &str,
    callers: usize,
    aggregates: usize,
    operations: u64,
    started: Instant,
) -> BenchCase {
    let seconds = started.elapsed().as_secs_f64();
    BenchCase {
        case: case.to_owned(),
        callers,
        aggregates,
        operations,
        seconds,
        per_second: operations as f64 / seconds,
        conflicts_retried: 0,
        raw_append_per_second: None,
        median_load_micros: None,
    }
}

async fn commands<S>(
    store: S,
    callers: usize,
    shared: Option<usize>,
    options: BenchOptions,
) -> Result<BenchCase, StoreError>
where
    S: EventStore + Clone + Send + Sync + 'static,
{
    let repository =
        Repository::<BenchCounter, S>::new(store).with_retry(RetryPolicy::attempts(50));
    let bus = CommandBus::builder()
        .layer(Tracing)
        .layer(Idempotency::default())
        .repository(repository)
        .build();
    let retried = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + options.duration;
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let bus = bus.clone();
            let retried = Arc::clone(&retried);
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let generation = done / EVENTS_PER_AGGREGATE;
                    let id = match shared {
                        Some(slots) => format!("s{}g{generation}", caller % slots),
                        None => stream_of(caller, generation),
                    };
                    let committed = bus
                        .dispatch_with(Execute::<BenchCounter>::new(id, 1), CommandContext::new())
                        .await
                        .map_err(|error| match error {
                            CommandError::Store(error) => error,
                            other => {
                                StoreError::backend("bench", "running a command", other, false)
                            }
                        })?;
                    retried.fetch_add(u64::from(committed.attempts - 1), Ordering::Relaxed);
                    done += 1;
                }
                Ok::<u64, StoreError>(done)
            })
        })
        .collect();
    let operations = join_counts(tasks).await?;
    let (case, aggregates) = match shared {
        Some(slots) => ("commands_shared", slots),
        None => ("commands_own", callers),
    };
    let mut result = rate_case(case, callers, aggregates, operations, started);
    result.conflicts_retried = retried.load(Ordering::Relaxed);
    Ok(result)
}

async fn loads<S, P>(
    store: S,
    snapshots: P,
    options: BenchOptions,
) -> Result<Vec<BenchCase>, StoreError>
where
    S: EventStore + Clone + Send + Sync + 'static,
    P: SnapshotStore + Clone + 'static,
{
    let stream = StreamId::new("bench-long")?;
    let mut written = 0;
    while written < options.load_events {
        let batch = (options.load_events - written).min(1000);
        let events = (0..batch)
            .map(|_| NewEvent::from_json_text("Incremented", r#"{"by":1}"#))
            .collect();
        store
            .append(&stream, ExpectedVersion::Exact(written), events)
            .await?;
        written += batch;
    }
    let plain = Repository::<BenchCounter, S>::new(store.clone());
    let snapshotted = Repository::<BenchCounter, S>::new(store)
        .with_snapshots(snapshots, SnapshotPolicy::every(options.load_events.max(1)));
    // One command through the snapshotting repository takes the snapshot.
    snapshotted
        .execute("long", &1, &CommandContext::new())
        .await
        .map_err(|error| StoreError::backend("bench", "taking the snapshot", error, false))?;
    let mut cases = Vec::new();
    for (case, repository) in [
        ("load_without_snapshot", &plain),
        ("load_with_snapshot", &snapshotted),
    ] {
        let mut times = Vec::with_capacity(options.load_repeats);
        let started = Instant::now();
        for _ in 0..options.load_repeats.max(1) {
            let begun = Instant::now();
            let loaded = repository
                .load("long")
                .await
                .map_err(|error| StoreError::backend("bench", "loading", error, false))?;
            times.push(begun.elapsed());
            debug_assert_eq!(loaded.state.value, options.load_events + 1);
        }
        times.sort_unstable();
        let median = times[times.len() / 2];
        cases.push(BenchCase {
            case: case.to_owned(),
            callers: 1,
            aggregates: 1,
            operations: times.len() as u64,
            seconds: started.elapsed().as_secs_f64(),
            per_second: 1.0 / median.as_secs_f64(),
            conflicts_retried: 0,
            raw_append_per_second: None,
            median_load_micros: Some(median.as_secs_f64() * 1e6),
        });
    }
    Ok(cases)
}
