//! The harness behind `mammoth bench projections`: the seed's `OrderProjection` on SQLite.
//!
//! Each run fills a fresh store with order events (64 concurrent appenders, `OrderCreated` +
//! `OrderPaid` per order: the raw append rate of the run), scans the whole log through the
//! store with the projection's filter (the raw scan rate: the read side alone), catches the
//! projection up from zero (the catch-up rate), then goes live and times single appends until
//! the projection's checkpoint covers them (append-to-visible latency). The report gives the
//! medians over the runs, judged against the targets.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mammoth_core::{EventStore, ExpectedVersion, Metadata, NewEvent, StreamId, encode_event};
use mammoth_example_orders::order::{OrderEvent, OrderLine};
use mammoth_example_orders::projection::OrderProjection;
use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
use mammoth_sqlite::{SqliteEventStore, SqliteOptions, SqliteProjection as _, SqliteReadModel};
use serde::Serialize;

use crate::commands::median;
use crate::{BenchError, Progress, synchronous_name, temporary_dir, thousands};

/// Catch-up of the OrderProjection on SQLite must reach this many events per second.
pub const CATCH_UP_TARGET: f64 = 200_000.0;
/// The 99th percentile of append-to-visible latency in live mode must stay under this.
pub const LIVE_P99_TARGET_MS: f64 = 5.0;

/// Concurrent appenders filling the log.
const FILLERS: usize = 64;
/// Events per read and per read-model transaction while catching up.
const BATCH_SIZE: usize = 2_000;

/// How much the catch-up part replays.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CatchUpSize {
    /// Fill the log with this many events.
    Events(u64),
    /// Fill the log for this long (the raw appenders' duration).
    Duration(Duration),
}

/// How `mammoth bench projections` runs.
#[derive(Clone, Debug)]
pub struct ProjectionsOptions {
    /// The log the projection catches up on.
    pub size: CatchUpSize,
    /// Single appends timed in live mode per run.
    pub live_appends: usize,
    /// How many times the whole benchmark runs; the report gives medians.
    pub runs: usize,
    /// Where the temporary files go; `None` for the system's temporary directory.
    pub dir: Option<PathBuf>,
}

impl Default for ProjectionsOptions {
    /// The measurement behind BENCHMARKS.md: 300,000 events, 1,000 live appends, 3 runs.
    fn default() -> Self {
        Self {
            size: CatchUpSize::Events(300_000),
            live_appends: 1_000,
            runs: 3,
            dir: None,
        }
    }
}

impl ProjectionsOptions {
    /// A quick check of a few seconds: one run, 20,000 events, 200 live appends.
    pub fn quick() -> Self {
        Self {
            size: CatchUpSize::Events(20_000),
            live_appends: 200,
            runs: 1,
            dir: None,
        }
    }
}

/// One run's numbers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProjectionsRun {
    /// Events in the log the projection caught up on.
    pub events: u64,
    /// Events per second appended by 64 concurrent appenders filling the log.
    pub raw_append_events_per_s: f64,
    /// Events per second read through the store with the projection's filter, nothing applied.
    pub raw_scan_events_per_s: f64,
    /// Events per second the projection caught up from zero.
    pub catch_up_events_per_s: f64,
    /// Seconds the catch-up took.
    pub catch_up_seconds: f64,
    /// Median append-to-visible latency in live mode, milliseconds.
    pub live_p50_ms: f64,
    /// 99th percentile append-to-visible latency in live mode, milliseconds.
    pub live_p99_ms: f64,
}

/// One case of `mammoth bench projections`, as `--json` prints it: rates and latencies are
/// medians over the runs; `None` fields do not apply to the case.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProjectionsResult {
    /// `catch_up` or `live`.
    pub case: &'static str,
    /// What the case measures.
    pub title: String,
    /// Runs measured.
    pub runs: usize,
    /// Events projected per run (catch-up) or single appends timed per run (live).
    pub events: u64,
    /// Catch-up events per second.
    pub events_per_s: Option<f64>,
    /// Each run's catch-up rate.
    pub events_per_s_per_run: Option<Vec<f64>>,
    /// The raw append rate of the same runs (64 concurrent appenders filling the log).
    pub raw_append_events_per_s: Option<f64>,
    /// The raw scan rate of the same runs (the log read through the store, nothing applied).
    pub raw_scan_events_per_s: Option<f64>,
    /// `events_per_s / raw_scan_events_per_s` (the median of each run's ratio).
    pub ratio_to_scan: Option<f64>,
    /// Append-to-visible latency, median, milliseconds.
    pub p50_ms: Option<f64>,
    /// Append-to-visible latency, 99th percentile, milliseconds.
    pub p99_ms: Option<f64>,
    /// Each run's p99.
    pub p99_ms_per_run: Option<Vec<f64>>,
    /// Durability of the store (`full`).
    pub synchronous: &'static str,
    /// The target, as text.
    pub target: &'static str,
    /// Whether the median met the target.
    pub pass: bool,
}

/// Runs the projection benchmark `options.runs` times, each run in a fresh temporary
/// directory removed afterwards, and reports the catch-up and live cases.
///
/// # Errors
/// [`BenchError::Setup`] for zero runs, a directory that cannot be created or a live append
/// the projection did not show within 10 s; the first failure of the store or read model.
pub async fn run_projections(
    options: &ProjectionsOptions,
    progress: Arc<dyn Progress>,
) -> Result<Vec<ProjectionsResult>, BenchError> {
    let runs = run_projections_raw(options, progress).await?;
    Ok(summarize(options, &runs))
}

/// Like [`run_projections`], but returns each run's numbers rather than the judged medians.
///
/// # Errors
/// As [`run_projections`].
pub async fn run_projections_raw(
    options: &ProjectionsOptions,
    progress: Arc<dyn Progress>,
) -> Result<Vec<ProjectionsRun>, BenchError> {
    if options.runs == 0 {
        return Err(BenchError::Setup("at least one run is needed".to_owned()));
    }
    let mut runs = Vec::with_capacity(options.runs);
    for run in 1..=options.runs {
        runs.push(one_run(options, run, progress.as_ref()).await?);
    }
    Ok(runs)
}

async fn one_run(
    options: &ProjectionsOptions,
    run: usize,
    progress: &dyn Progress,
) -> Result<ProjectionsRun, BenchError> {
    let label = |what: &str| {
        if options.runs > 1 {
            format!("run {run}/{}: {what}", options.runs)
        } else {
            what.to_owned()
        }
    };
    let dir = temporary_dir(options.dir.as_deref(), "mammoth-bench-projections-")?;
    let store = SqliteEventStore::open(dir.path().join("events.db"), SqliteOptions::default())?;
    let measured = measure(options, &store, dir.path(), &label, progress).await;
    store.close().await?;
    measured
}

async fn measure(
    options: &ProjectionsOptions,
    store: &SqliteEventStore,
    dir: &std::path::Path,
    label: &dyn Fn(&str) -> String,
    progress: &dyn Progress,
) -> Result<ProjectionsRun, BenchError> {
    let fill_length = match options.size {
        CatchUpSize::Events(events) => Some(events),
        CatchUpSize::Duration(_) => None,
    };
    progress.phase(&label("fill the log with order events"), fill_length);
    let started = Instant::now();
    fill(store, options.size, progress).await?;
    let head = store.head_position().await?;
    let raw_append = head as f64 / started.elapsed().as_secs_f64();

    progress.phase(&label("scan the log (nothing applied)"), Some(head));
    let raw_scan = scan(store, head, progress).await?;

    let target = SqliteReadModel::open(dir.join("read_models.db"), OrderProjection::new())
        .map_err(|error| BenchError::Setup(format!("opening the read model: {error}")))?;
    let mut runner = ProjectionRunner::new(
        store.clone(),
        target,
        ProjectionOptions::default().with_batch_size(BATCH_SIZE),
    );
    progress.phase(&label("catch the OrderProjection up from zero"), Some(head));
    let started = Instant::now();
    let mut shown = 0;
    runner
        .catch_up(None, |checkpoint, _| {
            progress.advance(checkpoint.saturating_sub(shown));
            shown = checkpoint;
        })
        .await
        .map_err(projection_failed)?;
    let catch_up_seconds = started.elapsed().as_secs_f64();

    progress.phase(
        &label("live: append, wait until the projection shows it"),
        Some(options.live_appends as u64),
    );
    let handle = runner.spawn();
    let mut latencies = Vec::with_capacity(options.live_appends);
    for n in 0..options.live_appends {
        let stream = stream(&format!("order-live{n}"))?;
        let started = Instant::now();
        let written = store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                vec![order(n)?.remove(0)],
            )
            .await?;
        if !handle
            .wait_for(written.last_position, Duration::from_secs(10))
            .await
        {
            return Err(BenchError::Setup(format!(
                "the projection did not show position {} within 10 s",
                written.last_position
            )));
        }
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        progress.advance(1);
    }
    handle.stop().await.map_err(projection_failed)?;
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let index = ((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(index).copied().unwrap_or(0.0)
    };
    Ok(ProjectionsRun {
        events: head,
        raw_append_events_per_s: raw_append,
        raw_scan_events_per_s: raw_scan,
        catch_up_events_per_s: head as f64 / catch_up_seconds,
        catch_up_seconds,
        live_p50_ms: at(0.5),
        live_p99_ms: at(0.99),
    })
}

fn projection_failed(error: mammoth_core::ProjectionError) -> BenchError {
    BenchError::Setup(format!("the projection failed: {error}"))
}

fn stream(name: &str) -> Result<StreamId, BenchError> {
    StreamId::new(name).map_err(|error| BenchError::Setup(error.to_string()))
}

fn encoded(event: &OrderEvent) -> Result<NewEvent, BenchError> {
    encode_event(event)
        .map(|event| event.into_new_event(Metadata::default()))
        .map_err(|error| BenchError::Setup(format!("encoding an order event: {error}")))
}

/// Order `n`: created, then paid.
fn order(n: usize) -> Result<Vec<NewEvent>, BenchError> {
    let id = n.to_string();
    Ok(vec![
        encoded(&OrderEvent::OrderCreated {
            order_id: id.clone(),
            customer_id: format!("c{}", n % 1000),
            items: vec![OrderLine::new("book", 1, 1500)],
            total_cents: 1500,
        })?,
        encoded(&OrderEvent::OrderPaid {
            order_id: id,
            payment_id: format!("p{n}"),
            amount_cents: 1500,
        })?,
    ])
}

/// 64 appenders, each writing whole orders to streams of their own, until `size` is reached.
async fn fill(
    store: &SqliteEventStore,
    size: CatchUpSize,
    progress: &dyn Progress,
) -> Result<(), BenchError> {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(FILLERS);
    for worker in 0..FILLERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = worker;
            let mut written = 0u64;
            loop {
                let more = match size {
                    CatchUpSize::Events(events) => (n as u64) * 2 < events,
                    CatchUpSize::Duration(duration) => started.elapsed() < duration,
                };
                if !more {
                    break;
                }
                store
                    .append(
                        &stream(&format!("order-{n}"))?,
                        ExpectedVersion::NoStream,
                        order(n)?,
                    )
                    .await?;
                written += 2;
                n += FILLERS;
            }
            Ok::<u64, BenchError>(written)
        }));
    }
    for task in tasks {
        let written = task
            .await
            .map_err(|error| BenchError::Setup(format!("an appender failed: {error}")))??;
        progress.advance(written);
    }
    Ok(())
}

/// Reads the whole log through the store with the projection's filter, in catch-up batches,
/// and returns events per second.
async fn scan(
    store: &SqliteEventStore,
    head: u64,
    progress: &dyn Progress,
) -> Result<f64, BenchError> {
    let filter = OrderProjection::new().filter();
    let started = Instant::now();
    let mut position = 0;
    while position < head {
        let events = store.read_all(position + 1, &filter, BATCH_SIZE).await?;
        let Some(last) = events.last() else { break };
        progress.advance(last.position - position);
        position = last.position;
    }
    Ok(head as f64 / started.elapsed().as_secs_f64())
}

fn summarize(options: &ProjectionsOptions, runs: &[ProjectionsRun]) -> Vec<ProjectionsResult> {
    let pick = |f: fn(&ProjectionsRun) -> f64| runs.iter().map(f).collect::<Vec<_>>();
    let rates = pick(|run| run.catch_up_events_per_s);
    let ratios = pick(|run| run.catch_up_events_per_s / run.raw_scan_events_per_s.max(1e-9));
    let p99s = pick(|run| run.live_p99_ms);
    let events = runs.iter().map(|run| run.events).max().unwrap_or(0);
    let catch_up = median(&rates).unwrap_or(0.0);
    let p99 = median(&p99s).unwrap_or(f64::INFINITY);
    let synchronous = synchronous_name(SqliteOptions::default().synchronous);
    vec![
        ProjectionsResult {
            case: "catch_up",
            title: format!("OrderProjection catch-up of {} events", thousands(events)),
            runs: runs.len(),
            events,
            events_per_s: Some(catch_up),
            events_per_s_per_run: Some(rates),
            raw_append_events_per_s: median(&pick(|run| run.raw_append_events_per_s)),
            raw_scan_events_per_s: median(&pick(|run| run.raw_scan_events_per_s)),
            ratio_to_scan: median(&ratios),
            p50_ms: None,
            p99_ms: None,
            p99_ms_per_run: None,
            synchronous,
            target: ">= 200,000 events/s",
            pass: catch_up >= CATCH_UP_TARGET,
        },
        ProjectionsResult {
            case: "live",
            title: "live append -> visible in the read model".to_owned(),
            runs: runs.len(),
            events: options.live_appends as u64,
            events_per_s: None,
            events_per_s_per_run: None,
            raw_append_events_per_s: None,
            raw_scan_events_per_s: None,
            ratio_to_scan: None,
            p50_ms: median(&pick(|run| run.live_p50_ms)),
            p99_ms: Some(p99),
            p99_ms_per_run: Some(p99s),
            synchronous,
            target: "p99 < 5 ms",
            pass: p99 < LIVE_P99_TARGET_MS,
        },
    ]
}
