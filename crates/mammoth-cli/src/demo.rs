//! `mammoth demo`: the seed's order saga end to end on the embedded backends (nothing to
//! install), with its message bus on the broker `[message_bus]` names (NATS JetStream, Redis
//! Streams), and/or with its event store (and snapshots, saga timers, the saga runner's
//! checkpoint) on the PostgreSQL or MySQL server `[event_store]` names; the read models stay
//! in the data directory. The engine is `mammoth_example_orders::demo`; this module reads the arguments and
//! the configuration, draws the progress bar, prints the summary table (or `--json`) and turns
//! a failed invariant into a non-zero exit.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mammoth_config::{EventStoreBackend, MessageBusBackend, RetryConfig};
use mammoth_core::saga::TimerStore;
use mammoth_core::{CheckpointStore, EventStore, SnapshotStore};
use mammoth_example_orders::demo::sql as demo_sql;
use mammoth_example_orders::demo::summary::DemoReport;
use mammoth_example_orders::demo::{self, DemoOptions, DemoReporter, Progress, RunStores};
use mammoth_mysql::{MysqlCheckpointStore, MysqlSnapshotStore, MysqlTimerStore};
use mammoth_postgres::{PgCheckpointStore, PgSnapshotStore, PgTimerStore};

use crate::bus_backend;
use crate::cli::GlobalOptions;
use crate::exit::{ConfigProblem, usage_error};
use crate::output::{Columns, Output, thousands};
use crate::settings;
use crate::store::{Access, AnyStore};

/// Arguments of `mammoth demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many orders to send, all at once.
    #[arg(long, default_value_t = 1_000)]
    pub orders: usize,

    /// The share of orders (0 to 1) whose card the simulated payment provider declines; the
    /// same orders on every run with the same --seed.
    #[arg(long, default_value_t = 0.1, value_name = "P")]
    pub payment_failure_rate: f64,

    /// How many orders' payment commands are poison: they fail every attempt, end in the
    /// dead-letter queue, and their sagas compensate when the payment deadline expires.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub poison: usize,

    /// Seed of the per-order choices (items, declined cards).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// How long a saga waits for the payment answer before it compensates.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub payment_deadline: Duration,

    /// How many warehouses the products are spread over (each is one inventory stream).
    #[arg(long, default_value_t = 4)]
    pub warehouses: usize,

    /// Where the demo's store, bus and read models live [default: a `demo` directory beside
    /// the configured SQLite file, i.e. ./mammoth-data/demo].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Remove the demo's existing store first. Without it an existing store is reused: the
    /// new run adds its orders, and sagas a previous run left unfinished continue. On a broker
    /// bus (NATS, Redis) a reset cannot delete what earlier runs left there: the reset directory
    /// gets a new namespace for its topics, so none of it reaches the new run.
    #[arg(long)]
    pub reset: bool,

    /// How long to wait for every saga to end before reporting what is left.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

/// The progress bar on stderr: orders sent, sagas done, confirmed, compensated, rate.
struct Bar(ProgressBar);

impl Bar {
    fn new(visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} sagas [{bar:30}] {pos}/{len} {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(bar)
    }
}

impl DemoReporter for Bar {
    fn message(&self, text: &str) {
        // Reuse/reset messages are shown under --json and without a terminal too.
        if self.0.is_hidden() {
            eprintln!("{text}");
        } else {
            self.0.println(text);
        }
    }

    fn progress(&self, progress: &Progress, elapsed: Duration) {
        self.0.set_length(progress.total);
        self.0.set_position(progress.done);
        let rate = progress.done as f64 / elapsed.as_secs_f64().max(0.001);
        self.0.set_message(format!(
            "done · {} confirmed · {} compensated · {} failed · {} sent · {rate:.0} sagas/s",
            progress.confirmed, progress.compensated, progress.failed, progress.sent
        ));
    }
}

/// Runs `mammoth demo`.
///
/// # Errors
/// A configuration this build cannot run the demo on (exit 2), a store or bus failure (1),
/// or failed invariants (1, after the summary is printed).
pub async fn run(args: DemoArgs, global: &GlobalOptions) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.payment_failure_rate) {
        usage_error!(
            "--payment-failure-rate {} must be between 0 and 1",
            args.payment_failure_rate
        );
    }
    if args.orders == 0 || args.warehouses == 0 {
        usage_error!("--orders and --warehouses must be at least 1");
    }
    let settings = settings::load(global.config.as_deref())?;
    let config = &settings.config;
    if settings.store.backend == EventStoreBackend::Memory {
        return Err(ConfigProblem(
            "mammoth demo needs a durable event store: event_store.backend is \"memory\"; set it to \"sqlite\", \"postgres\" or \"mysql\"".to_owned(),
        )
        .into());
    }
    // The configured retry policy if the file sets one, else the demo's fast one.
    let bus_retry = (config.message_bus.retry != RetryConfig::default())
        .then(|| config.message_bus.bus_policy().map(|policy| policy.retry))
        .transpose()
        .map_err(|error| ConfigProblem(error.to_string()))?;
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        settings
            .store
            .sqlite_path
            .parent()
            .map_or_else(|| PathBuf::from("demo"), |parent| parent.join("demo"))
    });
    let options = DemoOptions {
        data_dir,
        reset: args.reset,
        orders: args.orders,
        payment_failure_rate: args.payment_failure_rate,
        poison: args.poison,
        seed: args.seed,
        payment_deadline: args.payment_deadline,
        warehouses: args.warehouses,
        bus_retry,
        synchronous: settings.store.synchronous,
        config: config.clone(),
        timeout: args.timeout,
        ..DemoOptions::default()
    };
    let bar = Bar::new(!global.json);
    let broker = match config.message_bus.backend {
        MessageBusBackend::Embedded => None,
        MessageBusBackend::NatsJetstream => Some("nats"),
        MessageBusBackend::Redis => Some("redis"),
    };
    let outcome = if settings.store.backend == EventStoreBackend::Sqlite {
        match broker {
            None => {
                bar.message("message bus: embedded (in the demo store's file)");
                demo::run(options, &bar).await.map_err(anyhow::Error::from)
            }
            Some(label) => {
                let bus = bus_backend::open(&settings, false).await?;
                let url = config.message_bus.broker_url().unwrap_or_default();
                bar.message(&format!(
                    "message bus: {label} at {} (store, saga timers, checkpoints and read models: embedded SQLite)",
                    bus_backend::redacted(&url)
                ));
                demo::run_with_bus(options, bus, label, &bar)
                    .await
                    .map_err(anyhow::Error::from)
            }
        }
    } else {
        let store = AnyStore::open(&settings.store, Access::ReadWrite).await?;
        // The embedded bus goes into the store's own tables; a broker is connected to.
        let bus = bus_backend::open_on(&settings, &store, false).await?;
        let outcome = match &store {
            AnyStore::Postgres(pg) => {
                let stores = RunStores {
                    events: pg.clone(),
                    snapshots: PgSnapshotStore::new(pg),
                    timers: PgTimerStore::new(pg),
                    checkpoints: PgCheckpointStore::new(pg),
                    label: format!("postgres (schema {:?})", pg.schema()),
                };
                run_on_sql(options, stores, bus, &settings, &bar).await
            }
            AnyStore::Mysql(my) => {
                let stores = RunStores {
                    events: my.clone(),
                    snapshots: MysqlSnapshotStore::new(my),
                    timers: MysqlTimerStore::new(my),
                    checkpoints: MysqlCheckpointStore::new(my),
                    label: format!("mysql (database {:?})", my.database()),
                };
                run_on_sql(options, stores, bus, &settings, &bar).await
            }
            other => Err(ConfigProblem(format!(
                "mammoth demo cannot run on event_store.backend \"{}\"; use sqlite, postgres or mysql",
                other.backend_name()
            ))
            .into()),
        };
        store.close().await?;
        outcome
    };
    bar.0.finish_and_clear();
    let report = outcome?;
    let mut out = Output::new(global.json);
    if out.is_json() {
        out.json_document(&report)?;
    } else {
        print_summary(&mut out, &report)?;
    }
    out.flush()?;
    if !report.ok {
        let failed: Vec<&str> = report.failures().map(|check| check.name.as_str()).collect();
        let unfinished = report.orders
            - report
                .sagas_by_status
                .iter()
                .filter(|(status, _)| {
                    matches!(status.as_str(), "completed" | "compensated" | "failed")
                })
                .map(|(_, count)| count)
                .sum::<u64>();
        anyhow::bail!(
            "the demo's checks failed: invariants [{}], {unfinished} sagas of this run unfinished",
            failed.join(", ")
        );
    }
    Ok(())
}

/// Runs the demo on a SQL server's `stores` with `bus`: the embedded bus in the server's own
/// tables, or a broker.
async fn run_on_sql<S, N, T, C>(
    options: DemoOptions,
    stores: RunStores<S, N, T, C>,
    bus: bus_backend::AnyBus,
    settings: &settings::Settings,
    bar: &Bar,
) -> anyhow::Result<DemoReport>
where
    S: EventStore + Clone + Send + Sync + 'static,
    N: SnapshotStore + Clone + 'static,
    T: TimerStore + 'static,
    C: CheckpointStore + Clone + 'static,
{
    let where_ = stores.label.clone();
    let label = bus.label();
    let at = match bus {
        bus_backend::AnyBus::Nats(_) | bus_backend::AnyBus::Redis(_) => {
            let url = settings.config.message_bus.broker_url().unwrap_or_default();
            format!(" at {}", bus_backend::redacted(&url))
        }
        _ => " (beside the events)".to_owned(),
    };
    bar.message(&format!(
        "event store: {where_} (with snapshots, saga timers and checkpoints); message bus: {label}{at}"
    ));
    Ok(demo_sql::run_on_store_with_bus(options, stores, bus, label, bar).await?)
}

fn print_summary(out: &mut Output, report: &DemoReport) -> anyhow::Result<()> {
    out.line(format!(
        "demo run {} in {} ({})",
        report.run_id,
        report.data_dir,
        if report.reused {
            "store reused"
        } else {
            "new store"
        }
    ))?;
    let sagas: Vec<String> = report
        .sagas_by_status
        .iter()
        .map(|(status, count)| format!("{status} {count}"))
        .collect();
    let rows = vec![
        vec!["event store".to_owned(), report.event_store.clone()],
        vec!["message bus".to_owned(), report.message_bus.clone()],
        vec!["orders".to_owned(), thousands(report.orders)],
        vec!["confirmed".to_owned(), thousands(report.confirmed)],
        vec!["cancelled".to_owned(), thousands(report.cancelled)],
        vec!["sagas".to_owned(), sagas.join(", ")],
        vec![
            "events written".to_owned(),
            thousands(report.events_written),
        ],
        vec![
            "projection lag".to_owned(),
            thousands(report.projection_lag),
        ],
        vec!["dead letters".to_owned(), thousands(report.dead_letters)],
        vec![
            "elapsed".to_owned(),
            format!("{:.2} s", report.elapsed_secs),
        ],
        vec![
            "throughput".to_owned(),
            format!("{:.0} sagas/s", report.sagas_per_sec),
        ],
        vec![
            "command → confirmation".to_owned(),
            format!(
                "p50 {:.1} ms, p99 {:.1} ms ({} orders)",
                report.confirmation_latency.p50_ms,
                report.confirmation_latency.p99_ms,
                report.confirmation_latency.count
            ),
        ],
        vec![
            "services".to_owned(),
            format!(
                "{} handled ({} redelivered), {} rejected, {} retried, {} poisoned",
                report.services.handled,
                report.services.replayed,
                report.services.rejected,
                report.services.retried,
                report.services.poisoned
            ),
        ],
    ];
    let columns = Columns::fitting(&rows);
    for row in &rows {
        out.line(columns.row(row))?;
    }
    out.line("")?;
    out.line("where the time goes (commit to commit, p50 / p99):")?;
    let stages: Vec<Vec<String>> = report
        .stages
        .iter()
        .map(|stage| {
            vec![
                format!("  {}", stage.stage),
                format!("{:.1} ms", stage.latency.p50_ms),
                format!("{:.1} ms", stage.latency.p99_ms),
            ]
        })
        .collect();
    let columns = Columns::fitting(&stages);
    for row in &stages {
        out.line(columns.row(row))?;
    }
    out.line("")?;
    out.line("invariants (read back from the store):")?;
    for check in &report.invariants {
        out.line(format!(
            "  {} {:<26} {}",
            if check.ok { "ok  " } else { "FAIL" },
            check.name,
            check.detail
        ))?;
    }
    Ok(())
}
