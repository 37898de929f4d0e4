//! The engine of `mammoth demo`: the seed's order saga end to end on the embedded backends,
//! as a library so the CLI, the tests and the crash test's worker all run the same code.
//!
//! [`run`] prepares the data directory ([`setup::prepare`]: `--reset` or reuse), opens the
//! SQLite store (`mammoth.db`) with, in the same file, the embedded bus, the snapshots, the
//! saga checkpoint and deadlines (see [`setup::STORE_FILE`]), and the read models
//! (`read_models.db`), stocks the warehouses, then starts:
//! - the saga runner (`saga-order`) over the log, with its deadline poller;
//! - the outbox relay, publishing the saga's command events to the three command topics;
//! - the inventory, payment and order services, one bus worker each ([`crate::services`]);
//! - the OrderProjection;
//!
//! [`sql::run_on_store`] and [`sql::run_on_store_with_bus`] do the same with the events,
//! snapshots, saga deadlines and the saga runner's checkpoint in a SQL server's store
//! ([`RunStores`]: PostgreSQL, MySQL), the bus and read models staying in the data directory.
//!
//! [`run_with_bus`] does the same with the message bus on a broker (NATS JetStream, Redis
//! Streams: any [`MessageBus`] + [`RelayTarget`]), everything else staying in SQLite; its
//! topics, relay name and run ids carry the data directory's namespace ([`BusNames`],
//! [`setup::bus_namespace`]). Either way it
//! sends the orders concurrently, follows the log until every saga of the run has ended
//! (reporting [`Progress`]), stops everything, and builds the [`DemoReport`]: counts, per-stage
//! timings and the invariants, all read back from the store ([`invariants`]).

pub mod invariants;
pub mod setup;
pub mod sql;
pub mod summary;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mammoth_core::bus::{
    BusError, ConsumerGroup, DeadLetterFilter, MessageBus, RelayTarget, RetryPolicy,
    SubscribeOptions, Topic, TopicMap,
};
use mammoth_core::saga::TimerStore;
use mammoth_core::saga::{SAGA_STEPPED, SagaStatus, SagaStepped, parse_saga_stream};
use mammoth_core::{
    CheckpointStore, EventFilter, EventStore, ProjectionError, SnapshotStore, StoreError,
    Subscription, now_micros,
};
use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
use mammoth_runtime::saga::{SagaOptions, SagaRunner};
use mammoth_runtime::{BusWorker, Relay};
use mammoth_sqlite::snapshot::SqliteSnapshotStore;
use mammoth_sqlite::{
    SqliteBus, SqliteBusOptions, SqliteCheckpointStore, SqliteEventStore, SqliteOptions,
    SqliteReadModel, SqliteTimerStore,
};
use tokio::sync::watch;

use crate::app::{OrdersApp, customer};
use crate::projection::OrderProjection;
use crate::saga::commands::{
    CancelOrder, ConfirmOrder, INVENTORY_TOPIC, ORDERS_TOPIC, PAYMENT_TOPIC, ProcessPayment,
    ReleaseInventory, ReserveInventory,
};
use crate::saga::{OrderSaga, SAGA_TYPE};
use crate::services::{PaymentBehaviour, Services};
use invariants::{LogFacts, OrderOutcome, OrderTimes};
use summary::{DemoReport, Latency, ServiceCounts, Stage};

/// Why a demo run could not run (a failed invariant is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The data directory cannot be used.
    #[error("data directory {path}: {message}")]
    DataDir {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong, and what to do.
        message: String,
    },
    /// An option is out of range.
    #[error("{0}")]
    InvalidOption(String),
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A projection (or the saga runner's projection) failed.
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// The saga runner failed.
    #[error("the saga runner failed: {0}")]
    Saga(String),
    /// A command failed.
    #[error("a command failed: {0}")]
    Command(String),
}

/// How a demo runs.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Where the store and read models live (default `./mammoth-data/demo`).
    pub data_dir: PathBuf,
    /// Remove an existing store first (else it is reused).
    pub reset: bool,
    /// How many orders to send (default 1,000).
    pub orders: usize,
    /// The share of orders whose card is declined (default 0.1).
    pub payment_failure_rate: f64,
    /// How many orders' payment commands are poison (dead-lettered; their sagas compensate
    /// on the deadline). Default 2.
    pub poison: usize,
    /// Seed of the per-order choices (items, declined cards). Default 42.
    pub seed: u64,
    /// How long the saga waits for a payment answer (default 3 s).
    pub payment_deadline: Duration,
    /// Warehouses the SKUs are spread over (default 4).
    pub warehouses: usize,
    /// The run's id: the prefix of its order ids. `None`: `d<head of the log>`, new per run
    /// (on a broker, `d<head>-<namespace>`, new per run and data directory).
    pub run_id: Option<String>,
    /// Retries of the services' bus deliveries. `None`: fast (3 attempts from 50 ms).
    pub bus_retry: Option<RetryPolicy>,
    /// `event_store.synchronous`.
    pub synchronous: mammoth_sqlite::Synchronous,
    /// The configuration the order app is tuned by (snapshots, conflict retries).
    pub config: mammoth_config::Config,
    /// How long to wait for every saga to end before reporting what is left (default 120 s).
    pub timeout: Duration,
    /// Saga runner settings.
    pub saga: SagaOptions,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./mammoth-data/demo"),
            reset: false,
            orders: 1_000,
            payment_failure_rate: 0.1,
            poison: 2,
            seed: 42,
            payment_deadline: Duration::from_secs(3),
            warehouses: 4,
            run_id: None,
            bus_retry: None,
            synchronous: mammoth_sqlite::Synchronous::Full,
            config: mammoth_config::Config::default(),
            timeout: Duration::from_secs(120),
            saga: SagaOptions::default(),
        }
    }
}

/// The fast retry policy of the demo's services: 3 attempts, 50 ms doubling, capped at 1 s.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(50),
        factor: 2.0,
        cap: Duration::from_secs(1),
        jitter: true,
    }
}

/// A live view of a run, for a progress bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Orders sent so far.
    pub sent: u64,
    /// Orders of the run.
    pub total: u64,
    /// Sagas of the run that ended.
    pub done: u64,
    /// Of those, completed (order confirmed).
    pub confirmed: u64,
    /// Of those, compensated.
    pub compensated: u64,
    /// Of those, failed.
    pub failed: u64,
}

/// Where a run reports to.
pub trait DemoReporter: Send + Sync {
    /// A message for the user (data directory reused or reset, phases).
    fn message(&self, text: &str);
    /// The run's progress, several times a second.
    fn progress(&self, progress: &Progress, elapsed: Duration);
}

/// A reporter that prints nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

impl DemoReporter for Quiet {
    fn message(&self, _: &str) {}
    fn progress(&self, _: &Progress, _: Duration) {}
}

/// What the log follower has seen of the run's sagas.
#[derive(Debug, Default)]
struct Seen {
    status: HashMap<String, SagaStatus>,
}

impl Seen {
    fn progress(&self, sent: u64, total: u64) -> Progress {
        let mut progress = Progress {
            sent,
            total,
            ..Progress::default()
        };
        for status in self.status.values() {
            match status {
                SagaStatus::Completed => progress.confirmed += 1,
                SagaStatus::Compensated => progress.compensated += 1,
                SagaStatus::Failed => progress.failed += 1,
                SagaStatus::Running | SagaStatus::Compensating => continue,
            }
            progress.done += 1;
        }
        progress
    }
}

/// The topics the relay publishes the saga's commands to.
///
/// # Errors
/// [`BusError::InvalidName`] never, for these names.
pub fn topic_map() -> Result<TopicMap, BusError> {
    BusNames::embedded().topic_map()
}

/// The names a run uses on its bus: the three command topics and the relay's name. On the
/// embedded bus (in the data directory's own file) they are the plain names; on a broker,
/// which outlives data directories, they carry the directory's namespace
/// ([`setup::bus_namespace`]) so runs of different directories never share a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusNames {
    namespace: Option<String>,
}

impl BusNames {
    /// The plain names, for the embedded bus.
    pub fn embedded() -> Self {
        Self { namespace: None }
    }

    /// The names under `namespace` (`{namespace}.inventory.commands`, ...).
    pub fn namespaced(namespace: impl Into<String>) -> Self {
        Self {
            namespace: Some(namespace.into()),
        }
    }

    /// The namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The topic standing for `base` (one of the command topics).
    ///
    /// # Errors
    /// [`BusError::InvalidName`] when the namespace makes an invalid topic name.
    pub fn topic(&self, base: &str) -> Result<Topic, BusError> {
        match &self.namespace {
            None => Topic::new(base),
            Some(namespace) => Topic::new(format!("{namespace}.{base}")),
        }
    }

    /// The outbox relay's name (its checkpoint's key on the bus).
    pub fn relay(&self) -> String {
        match &self.namespace {
            None => "demo-outbox".to_owned(),
            Some(namespace) => format!("{namespace}-outbox"),
        }
    }

    /// The relay's topic map: each saga command to its service's topic.
    ///
    /// # Errors
    /// [`BusError::InvalidName`] when the namespace makes an invalid topic name.
    pub fn topic_map(&self) -> Result<TopicMap, BusError> {
        Ok(TopicMap::default()
            .event_type(ReserveInventory::NAME, self.topic(INVENTORY_TOPIC)?)
            .event_type(ReleaseInventory::NAME, self.topic(INVENTORY_TOPIC)?)
            .event_type(ProcessPayment::NAME, self.topic(PAYMENT_TOPIC)?)
            .event_type(ConfirmOrder::NAME, self.topic(ORDERS_TOPIC)?)
            .event_type(CancelOrder::NAME, self.topic(ORDERS_TOPIC)?))
    }

    /// The dead letters of the run's bus: every one on the embedded bus, the namespace's
    /// topics' on a broker.
    async fn dead_letters<B: MessageBus>(&self, bus: &B) -> Result<u64, BusError> {
        if self.namespace.is_none() {
            return Ok(bus
                .dead_letters(&DeadLetterFilter::all(), 100_000)
                .await?
                .len() as u64);
        }
        let mut count = 0;
        for base in [INVENTORY_TOPIC, PAYMENT_TOPIC, ORDERS_TOPIC] {
            let filter = DeadLetterFilter {
                topic: Some(self.topic(base)?),
                ..DeadLetterFilter::default()
            };
            count += bus.dead_letters(&filter, 100_000).await?.len() as u64;
        }
        Ok(count)
    }
}

/// Runs the demo: see the module documentation.
///
/// # Errors
/// [`DemoError`] when the run cannot proceed (bad options, a locked or unusable data
/// directory, a failing store or bus). Failed invariants are reported in the
/// [`DemoReport`] (`ok == false`), not as errors.
pub async fn run(
    options: DemoOptions,
    reporter: &dyn DemoReporter,
) -> Result<DemoReport, DemoError> {
    check_options(&options)?;
    let dir = setup::prepare(&options.data_dir, options.reset).await?;
    reporter.message(&dir.message);
    let store = open_sqlite(&options, &dir)?;
    let outcome = async {
        let bus = SqliteBus::open(dir.bus_path(), SqliteBusOptions::default())?;
        let on = BusOn {
            bus,
            names: BusNames::embedded(),
            label: "embedded".to_owned(),
            run_tag: None,
            relay_from_head: false,
        };
        run_on(&options, &dir, sqlite_stores(&dir, &store)?, on, reporter).await
    }
    .await;
    store.close().await?;
    outcome
}

/// Opens the data directory's SQLite event store.
fn open_sqlite(options: &DemoOptions, dir: &setup::DataDir) -> Result<SqliteEventStore, DemoError> {
    let store_options = SqliteOptions {
        synchronous: options.synchronous,
        ..SqliteOptions::default()
    };
    SqliteEventStore::open(dir.store_path(), store_options).map_err(|error| DemoError::DataDir {
        path: dir.path.clone(),
        message: error.to_string(),
    })
}

/// The SQLite store's side stores, all in its own file.
fn sqlite_stores(
    dir: &setup::DataDir,
    store: &SqliteEventStore,
) -> Result<
    RunStores<SqliteEventStore, SqliteSnapshotStore, SqliteTimerStore, SqliteCheckpointStore>,
    DemoError,
> {
    let path = dir.store_path();
    Ok(RunStores {
        events: store.clone(),
        snapshots: SqliteSnapshotStore::open(&path)?,
        timers: SqliteTimerStore::open(&path)?,
        checkpoints: SqliteCheckpointStore::open(&path)?,
        label: "sqlite".to_owned(),
    })
}

/// Runs the demo with its message bus on `bus` (a broker: NATS JetStream, Redis Streams, ...)
/// while the event store, snapshots, saga deadlines, checkpoints and read models stay in the
/// data directory's SQLite files, as in [`run`]. `label` names the bus in the report
/// (`nats`, `redis`). The run's topics and relay name carry the data directory's namespace
/// ([`setup::bus_namespace`]), so a broker other runs used delivers none of their messages.
///
/// # Errors
/// As [`run`].
pub async fn run_with_bus<B>(
    options: DemoOptions,
    bus: B,
    label: &str,
    reporter: &dyn DemoReporter,
) -> Result<DemoReport, DemoError>
where
    B: MessageBus + RelayTarget + Clone + 'static,
{
    check_options(&options)?;
    let dir = setup::prepare(&options.data_dir, options.reset).await?;
    reporter.message(&dir.message);
    let (namespace, new) = setup::bus_namespace(&dir.path)?;
    reporter.message(&if new && options.reset {
        format!(
            "message bus {label}: --reset cannot delete the earlier runs' messages, dead letters and relay checkpoint on the broker (they stay under their old namespace); this run uses the new namespace {namespace}, so none of them reach it"
        )
    } else if new {
        format!(
            "message bus {label}: topics and relay checkpoint under the new namespace {namespace} (a broker keeps other runs' messages; each data directory uses its own names, so none reach this run)"
        )
    } else {
        format!("message bus {label}: continuing this data directory's namespace {namespace}")
    });
    let store = open_sqlite(&options, &dir)?;
    // The saga's command events have ids derived from the saga (order) id, and a broker drops
    // a message id it saw within its de-duplication window (JetStream: stream-wide): another
    // directory's `d0` run would make this one's commands vanish. The run id carries the
    // namespace's random part so order ids, and so message ids, differ per directory.
    let run_tag = namespace
        .strip_prefix("demo-")
        .unwrap_or(&namespace)
        .to_owned();
    let on = BusOn {
        bus,
        label: format!("{label} ({namespace})"),
        names: BusNames::namespaced(namespace),
        run_tag: Some(run_tag),
        relay_from_head: false,
    };
    let outcome =
        async { run_on(&options, &dir, sqlite_stores(&dir, &store)?, on, reporter).await }.await;
    store.close().await?;
    outcome
}

/// Where a run keeps what must survive together: the events, the aggregates' snapshots, the
/// saga's deadlines and the saga runner's checkpoint. [`run`] and [`run_with_bus`] put all
/// four in the data directory's `mammoth.db`; [`sql::run_on_store`] takes them from a SQL
/// server's store (PostgreSQL, MySQL), or any other.
#[derive(Clone, Debug)]
pub struct RunStores<S, N, T, C> {
    /// The event store.
    pub events: S,
    /// The aggregates' snapshots.
    pub snapshots: N,
    /// The saga's deadlines.
    pub timers: T,
    /// The saga runner's checkpoint.
    pub checkpoints: C,
    /// Where they are, for the report: `sqlite`, `postgres (schema "mammoth")`, ...
    pub label: String,
}

/// The bus a run uses, with its names and its label for the report.
struct BusOn<B> {
    bus: B,
    names: BusNames,
    label: String,
    /// Appended to the default run id (`d{head}-{tag}`), on a broker.
    run_tag: Option<String>,
    /// Whether a relay that never ran starts at the log's head instead of its beginning: on
    /// a SQL server's log, which earlier runs (of other data directories) and other
    /// applications share, whose commands this bus must not carry.
    relay_from_head: bool,
}

fn check_options(options: &DemoOptions) -> Result<(), DemoError> {
    if !(0.0..=1.0).contains(&options.payment_failure_rate) {
        return Err(DemoError::InvalidOption(format!(
            "--payment-failure-rate {} is not between 0 and 1",
            options.payment_failure_rate
        )));
    }
    if options.warehouses == 0 {
        return Err(DemoError::InvalidOption(
            "--warehouses must be at least 1".to_owned(),
        ));
    }
    Ok(())
}

async fn run_on<S, N, T, C, B>(
    options: &DemoOptions,
    dir: &setup::DataDir,
    stores: RunStores<S, N, T, C>,
    on: BusOn<B>,
    reporter: &dyn DemoReporter,
) -> Result<DemoReport, DemoError>
where
    S: EventStore + Clone + Send + Sync + 'static,
    N: SnapshotStore + Clone + 'static,
    T: TimerStore + 'static,
    C: CheckpointStore + Clone + 'static,
    B: MessageBus + RelayTarget + Clone + 'static,
{
    let BusOn {
        bus,
        names,
        label,
        run_tag,
        relay_from_head,
    } = on;
    let RunStores {
        events: store,
        snapshots,
        timers,
        checkpoints,
        label: store_label,
    } = stores;
    let start_head = store.head_position().await?;
    let run_id = options.run_id.clone().unwrap_or_else(|| match &run_tag {
        None => format!("d{start_head}"),
        Some(tag) => format!("d{start_head}-{tag}"),
    });
    let prefix = format!("{run_id}-");
    let app = Arc::new(OrdersApp::configured(
        store.clone(),
        snapshots,
        &options.config,
    ));

    let stocked = setup::seed_stock(&app, &run_id, options.warehouses, options.orders).await?;
    reporter.message(&format!(
        "run {run_id}: {} warehouses stocked ({stocked} items); sending {} orders",
        options.warehouses, options.orders
    ));

    // Everything runs until `stop` flips.
    let (stop, stopped) = watch::channel(false);
    let shutdown = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };

    let saga = OrderSaga::new(options.payment_deadline);
    let sagas =
        SagaRunner::with_options(saga, store.clone(), timers, checkpoints, options.saga).spawn();

    if relay_from_head && start_head > 0 && bus.relay_checkpoint(&names.relay()).await? == 0 {
        // An empty batch moves the new relay's checkpoint to the head.
        bus.relay_publish(&names.relay(), Vec::new(), start_head)
            .await?;
    }
    let relay = Relay::new(
        names.relay(),
        store.clone(),
        bus.clone(),
        names.topic_map()?,
    );
    let relay_task = tokio::spawn({
        let shutdown = shutdown();
        async move { relay.run(shutdown).await }
    });

    let payment = PaymentBehaviour {
        failure_rate: options.payment_failure_rate,
        seed: options.seed,
        poison: setup::poisoned(&run_id, options.orders, options.poison),
        charge_window: Some(options.payment_deadline * 3 / 5),
    };
    let services = Services::new(Arc::clone(&app), store.clone(), payment);
    let retry = options.bus_retry.unwrap_or_else(fast_retry);
    let subscribe = SubscribeOptions {
        retry,
        visibility_timeout: Duration::from_secs(30),
        ..SubscribeOptions::default()
    };
    let mut workers = Vec::new();
    for (topic, group) in [
        (INVENTORY_TOPIC, "inventory"),
        (PAYMENT_TOPIC, "payment"),
        (ORDERS_TOPIC, "orders"),
    ] {
        let consumer = bus
            .subscribe(
                &names.topic(topic)?,
                &ConsumerGroup::new(group)?,
                subscribe.clone(),
            )
            .await?;
        let shutdown = shutdown();
        let task = match group {
            "inventory" => {
                let worker = BusWorker::new(consumer, services.inventory_handler());
                tokio::spawn(async move { worker.run(shutdown).await })
            }
            "payment" => {
                let worker = BusWorker::new(consumer, services.payment_handler());
                tokio::spawn(async move { worker.run(shutdown).await })
            }
            _ => {
                let worker = BusWorker::new(consumer, services.orders_handler());
                tokio::spawn(async move { worker.run(shutdown).await })
            }
        };
        workers.push(task);
    }

    let read_path = dir.read_models_path();
    let projection = ProjectionRunner::new(
        store.clone(),
        SqliteReadModel::open(&read_path, OrderProjection::new())?,
        ProjectionOptions::default(),
    )
    .spawn();

    // Follow the log for the run's saga records.
    let seen = Arc::new(Mutex::new(Seen::default()));
    // A new run id has nothing before the start; a given one (a restarted run) may have
    // sagas that ended in an earlier process.
    let follow_from = if options.run_id.is_some() {
        1
    } else {
        start_head + 1
    };
    let follower = tokio::spawn(follow(
        store.clone(),
        follow_from,
        prefix.clone(),
        Arc::clone(&seen),
        shutdown(),
    ));

    // Send the orders, all at once (the store's writer groups their commits).
    let started = Instant::now();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sent_at: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..options.orders {
        let order = setup::order(&run_id, n, options.warehouses, options.seed);
        let app = Arc::clone(&app);
        let sent = Arc::clone(&sent);
        let sent_at = Arc::clone(&sent_at);
        sends.spawn(async move {
            let key = format!("demo-order/{}", order.order_id);
            let context = customer(&order.customer_id).with_idempotency_key(key);
            let order_id = order.order_id.clone();
            let at = now_micros();
            let outcome = app.commands.dispatch_with(order, context).await;
            if outcome.is_ok() {
                lock(&sent_at).insert(order_id, at);
            }
            sent.fetch_add(1, Ordering::Relaxed);
            outcome.map(|_| ()).map_err(|error| error.to_string())
        });
    }

    let total = options.orders as u64;
    let deadline = started + options.timeout;
    let mut send_error = None;
    let mut last_done = started;
    loop {
        while let Some(joined) = sends.try_join_next() {
            if let Ok(Err(error)) = joined {
                send_error.get_or_insert(error);
            }
        }
        let progress = lock(&seen).progress(sent.load(Ordering::Relaxed), total);
        reporter.progress(&progress, started.elapsed());
        if progress.done >= total && sends.is_empty() {
            last_done = Instant::now();
            break;
        }
        if send_error.is_some() && sends.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            reporter.message(&format!(
                "timed out after {:?}: {} of {total} sagas ended",
                options.timeout, progress.done
            ));
            last_done = Instant::now();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = last_done.duration_since(started);

    // Let the read model catch up with everything written, then stop.
    let head = store.head_position().await?;
    projection.wait_for(head, Duration::from_secs(30)).await;
    let projection_lag = projection.status().lag;
    stop.send_replace(true);
    for worker in workers {
        let _ = worker.await;
    }
    let _ = relay_task.await;
    let _ = follower.await;
    sagas
        .stop()
        .await
        .map_err(|error| DemoError::Saga(error.to_string()))?;
    projection.stop().await?;
    if let Some(error) = send_error {
        return Err(DemoError::Command(error));
    }

    let facts = LogFacts::scan(&store, &prefix).await?;
    let mut checks = facts.check();
    checks.push(invariants::projection_matches_replay(&store, &read_path).await?);
    let dead_letters = names.dead_letters(&bus).await?;
    let counts = services.counters();
    let services = ServiceCounts {
        handled: counts.handled.load(Ordering::Relaxed),
        replayed: counts.replayed.load(Ordering::Relaxed),
        rejected: counts.rejected.load(Ordering::Relaxed),
        retried: counts.retried.load(Ordering::Relaxed),
        poisoned: counts.poisoned.load(Ordering::Relaxed),
    };
    let sagas_by_status = facts.sagas_by_status(&prefix);
    let ended: u64 = sagas_by_status
        .iter()
        .filter(|(status, _)| {
            status
                .parse::<SagaStatus>()
                .is_ok_and(SagaStatus::is_terminal)
        })
        .map(|(_, count)| count)
        .sum();
    let sent_at = lock(&sent_at).clone();
    let latencies = facts
        .times
        .iter()
        .filter_map(|(id, times)| Some(times.confirmed? - sent_at.get(id)?))
        .collect();
    let ok = checks.iter().all(|check| check.ok) && ended == total;
    let head = store.head_position().await?;
    Ok(DemoReport {
        run_id,
        data_dir: dir.path.display().to_string(),
        reused: dir.reused,
        event_store: store_label,
        message_bus: label,
        orders: total,
        confirmed: facts.orders_with(&prefix, OrderOutcome::Confirmed),
        cancelled: facts.orders_with(&prefix, OrderOutcome::Cancelled),
        sagas_by_status,
        events_written: head.saturating_sub(start_head),
        projection_lag,
        dead_letters,
        elapsed_secs: elapsed.as_secs_f64(),
        sagas_per_sec: if elapsed.is_zero() {
            0.0
        } else {
            ended as f64 / elapsed.as_secs_f64()
        },
        confirmation_latency: Latency::of(latencies),
        stages: stages(&facts.times, &sent_at),
        services,
        invariants: checks,
        ok,
    })
}

/// The per-stage breakdown of the run's orders.
fn stages(times: &HashMap<String, OrderTimes>, sent_at: &HashMap<String, i64>) -> Vec<Stage> {
    type Pick = fn(&OrderTimes) -> Option<i64>;
    let steps: [(&str, Pick, Pick); 6] = [
        (
            "OrderCreated → ReserveInventory (saga runner)",
            |t| t.created,
            |t| t.reserve_issued,
        ),
        (
            "ReserveInventory → StockReserved (relay, bus, inventory)",
            |t| t.reserve_issued,
            |t| t.reserved,
        ),
        (
            "StockReserved → ProcessPayment (saga runner)",
            |t| t.reserved,
            |t| t.pay_issued,
        ),
        (
            "ProcessPayment → PaymentProcessed (relay, bus, payment)",
            |t| t.pay_issued,
            |t| t.paid,
        ),
        (
            "PaymentProcessed → ConfirmOrder (saga runner)",
            |t| t.paid,
            |t| t.confirm_issued,
        ),
        (
            "ConfirmOrder → OrderConfirmed (relay, bus, orders)",
            |t| t.confirm_issued,
            |t| t.confirmed,
        ),
    ];
    let mut out = vec![Stage {
        stage: "CreateOrder sent → OrderCreated (command bus, store)".to_owned(),
        latency: Latency::of(
            times
                .iter()
                .filter_map(|(id, t)| Some(t.created? - sent_at.get(id)?))
                .collect(),
        ),
    }];
    for (stage, from, to) in steps {
        out.push(Stage {
            stage: stage.to_owned(),
            latency: Latency::of(
                times
                    .values()
                    .filter_map(|t| Some(to(t)? - from(t)?))
                    .collect(),
            ),
        });
    }
    out
}

/// Follows the log from `from`, recording the status of every saga of the run.
async fn follow<S: EventStore + Clone + 'static>(
    store: S,
    from: u64,
    prefix: String,
    seen: Arc<Mutex<Seen>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let filter = EventFilter::all().with_types([SAGA_STEPPED]);
    let mut subscription = Subscription::new(store, from, filter).with_page_size(1024);
    loop {
        let batch = tokio::select! {
            () = &mut shutdown => return,
            batch = subscription.next_batch() => batch,
        };
        let Ok(events) = batch else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut seen = lock(&seen);
        for event in events {
            let Some((saga_type, saga_id)) = parse_saga_stream(&event.stream_id) else {
                continue;
            };
            if saga_type != SAGA_TYPE || !saga_id.starts_with(&prefix) {
                continue;
            }
            if let Ok(record) = serde_json::from_str::<SagaStepped>(&event.data) {
                seen.status.insert(saga_id.to_owned(), record.status);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
