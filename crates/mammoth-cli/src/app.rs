//! [`App`]: what a binary built on mammoth registers — its commands and queries, SQL
//! projections, sagas, and the bus workers that handle what the outbox relay publishes — and
//! gets every `mammoth` command for. The `mammoth` binary is [`App::orders`] (the built-in
//! order app of `examples/orders`); a user's binary is a few lines:
//!
//! ```no_run
//! use mammoth_cli::App;
//! # fn routes(_: &mammoth_cli::AppContext) -> mammoth_server::AppRegistry { todo!() }
//!
//! fn main() -> std::process::ExitCode {
//!     App::new("shop")
//!         .routes(routes) // POST /commands/{name}, GET /queries/{name}
//!         .main()
//! }
//! ```
//!
//! `mammoth serve` then runs everything registered in one process: each projection's runner,
//! each saga's runner (deadlines and checkpoint beside the events), the outbox relay
//! (events to topics by [`App::topics`], else by `[message_bus.topics]`) and a
//! worker per registered handler on the configured bus (embedded, NATS or Redis), and stops them
//! all at a batch boundary on SIGTERM or Ctrl-C. `mammoth projections` operates the
//! registered projections by name.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use mammoth_config::Config;
use mammoth_core::bus::{
    ConsumerGroup, Delivery, Failure, MessageBus, SubscribeOptions, Topic, TopicMap,
};
use mammoth_core::read_model::VerifyReport;
use mammoth_core::saga::Saga;
use mammoth_core::{EventFilter, Position, ProjectionTarget};
use mammoth_mysql::read_model::{MysqlProjection, MysqlReadModel};
use mammoth_postgres::read_model::{PgProjection, PgReadModel, PgReadModelDb};
use mammoth_runtime::BusWorker;
use mammoth_runtime::PositionWatch;
use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
use mammoth_runtime::relay::Relay;
use mammoth_runtime::saga::{SagaOptions, SagaRunner};
use mammoth_server::{AppRegistry, Metered};
use mammoth_sqlite::{SqliteProjection, SqliteReadModel};
use tokio::sync::watch;

use crate::bus_backend::AnyBus;
use crate::read_models::ReadModelAt;
use crate::settings::Settings;
use crate::store::AnyStore;

/// The store an app gets: the configured backend, counted in the server's metrics.
pub type AppStore = Metered<AnyStore>;

/// A boxed future a task can own.
type SendFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
/// A boxed future that may borrow and be sent (what `serve` awaits).
pub(crate) type BorrowingSendFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// How a started part of the app stops: at a batch boundary, with its checkpoint saved.
type Stop = Box<dyn FnOnce() -> SendFuture<anyhow::Result<()>> + Send>;
type Routes = Arc<dyn Fn(&AppContext) -> AppRegistry + Send + Sync>;
type Handler = Arc<dyn Fn(Delivery) -> SendFuture<Result<(), Failure>> + Send + Sync>;
type MakeHandler = Arc<dyn Fn(&AppContext) -> Handler + Send + Sync>;

/// A mammoth application: its routes, projections, sagas and bus workers. Build it with the
/// methods below and call [`App::main`] from `fn main`.
#[derive(Clone)]
pub struct App {
    name: String,
    routes: Option<Routes>,
    projections: Vec<Arc<dyn ProjectionDef>>,
    sagas: Vec<Arc<dyn SagaDef>>,
    workers: Vec<WorkerDef>,
    topics: Option<TopicMap>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field(
                "projections",
                &self
                    .projections
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>(),
            )
            .field(
                "sagas",
                &self.sagas.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .field(
                "workers",
                &self
                    .workers
                    .iter()
                    .map(|w| format!("{}/{}", w.topic, w.group))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// What the app's factories get when `mammoth serve` starts: the open store, the
/// configuration, and the running projections' read models.
pub struct AppContext {
    store: AppStore,
    settings: Arc<Settings>,
    read_models: BTreeMap<String, ReadModel>,
}

/// A running projection's read model, for the queries that read it.
#[derive(Clone, Debug)]
pub struct ReadModel {
    /// Where its tables are (`[projections.NAME] read_dsn`): a SQLite file, or a PostgreSQL
    /// or MySQL database sharing the runner's pool.
    pub database: ReadModelDatabase,
    /// Its checkpoint: hand it to the query bus so `min_position` queries wait for it.
    pub progress: PositionWatch,
}

/// Where a running read model's tables are, for the queries that read them.
#[derive(Clone, Debug)]
pub enum ReadModelDatabase {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL schema.
    Postgres(PgReadModelDb),
    /// A MySQL database.
    Mysql(mammoth_mysql::read_model::ReadModelDatabase),
}

impl AppContext {
    /// The event store the configuration names, open for writing; its appends and reads are
    /// counted in the server's `/metrics`.
    pub fn store(&self) -> &AppStore {
        &self.store
    }

    /// The whole configuration (mammoth.tsk).
    pub fn config(&self) -> &Config {
        &self.settings.config
    }

    /// The read model of the registered projection `name`, running in this process.
    pub fn read_model(&self, name: &str) -> Option<&ReadModel> {
        self.read_models.get(name)
    }
}

#[derive(Clone)]
struct WorkerDef {
    topic: String,
    group: String,
    make: MakeHandler,
}

impl App {
    /// An app called `name` with nothing registered yet. The name keys the outbox relay's
    /// checkpoint (`{name}-outbox`).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            routes: None,
            projections: Vec::new(),
            sagas: Vec::new(),
            workers: Vec::new(),
            topics: None,
        }
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The commands and queries `mammoth serve` serves (`POST /commands/{name}`,
    /// `GET /queries/{name}`), built once the store is open and the projections run.
    pub fn routes<F>(mut self, routes: F) -> Self
    where
        F: Fn(&AppContext) -> AppRegistry + Send + Sync + 'static,
    {
        self.routes = Some(Arc::new(routes));
        self
    }

    /// A SQL read model in SQLite: `mammoth serve` runs it (`[projections.NAME]` tunes its
    /// file, batch and failure policy) and `mammoth projections` operates it by its name.
    /// `make` makes a fresh projection (for the runner, replays, rebuilds and verifies).
    pub fn projection<P, F>(self, make: F) -> Self
    where
        P: SqliteProjection,
        F: Fn() -> P + Send + Sync + 'static,
    {
        self.register::<SqliteKind<P>, F>(make)
    }

    /// The same read model kept in PostgreSQL: used when `[projections.NAME] read_dsn` is a
    /// `postgres://` URL (register the SQLite one with [`App::projection`] too, under the same
    /// name, to let the configuration choose).
    pub fn postgres_projection<P, F>(self, make: F) -> Self
    where
        P: PgProjection,
        F: Fn() -> P + Send + Sync + 'static,
    {
        self.register::<PgKind<P>, F>(make)
    }

    /// The same read model kept in MySQL/MariaDB: used when `[projections.NAME] read_dsn` is a
    /// `mysql://` URL or the seed's PDO form.
    pub fn mysql_projection<P, F>(self, make: F) -> Self
    where
        P: MysqlProjection,
        F: Fn() -> P + Send + Sync + 'static,
    {
        self.register::<MysqlKind<P>, F>(make)
    }

    fn register<K, F>(mut self, make: F) -> Self
    where
        K: ReadModelKind,
        F: Fn() -> K::Projection + Send + Sync + 'static,
    {
        let sample = make();
        self.projections.push(Arc::new(SqlProjectionDef::<K> {
            name: K::name(&sample).to_owned(),
            tables: K::tables(&sample),
            make: Arc::new(make),
        }));
        self
    }

    /// A saga: `mammoth serve` runs it over the event store, with its deadlines and its
    /// checkpoint beside the events on PostgreSQL and MySQL, in the SQLite file on SQLite, so a
    /// restart resumes where it stopped.
    pub fn saga<G, F>(mut self, make: F) -> Self
    where
        G: Saga,
        F: Fn(&AppContext) -> G + Send + Sync + 'static,
    {
        self.sagas.push(Arc::new(SagaDefOf { make }));
        self
    }

    /// A bus worker: `mammoth serve` subscribes group `group` to `topic` on the configured bus
    /// and runs `make`'s handler over its deliveries, with `[message_bus.retry]`'s retries and
    /// dead letters. Names are checked when `serve` starts.
    pub fn worker<F, H, Fut>(mut self, topic: &str, group: &str, make: F) -> Self
    where
        F: Fn(&AppContext) -> H + Send + Sync + 'static,
        H: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Failure>> + Send + 'static,
    {
        let make: MakeHandler = Arc::new(move |context: &AppContext| {
            let handler = Arc::new(make(context));
            let erased: Handler = Arc::new(move |delivery| Box::pin(handler(delivery)));
            erased
        });
        self.workers.push(WorkerDef {
            topic: topic.to_owned(),
            group: group.to_owned(),
            make,
        });
        self
    }

    /// Where the outbox relay publishes events. Without it, `[message_bus.topics]` routes them
    /// when it names types or categories; without either, `serve` runs no relay.
    pub fn topics(mut self, topics: TopicMap) -> Self {
        self.topics = Some(topics);
        self
    }

    /// Runs the `mammoth` command line for this app (arguments from the process) and returns
    /// its exit code: call it from `fn main`.
    pub fn main(self) -> ExitCode {
        self.main_from(std::env::args_os())
    }

    /// As [`App::main`], with the arguments given (the first is the program name).
    pub fn main_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        crate::main_with(self, args)
    }

    /// Serves this app as `mammoth serve` does, on `listener` until `shutdown` resolves, with
    /// the configuration at `config` (else `$MAMMOTH_CONFIG`, `./mammoth.tsk`, defaults).
    /// Prints nothing: for tests and for binaries that embed the server.
    ///
    /// # Errors
    /// Configuration, store, bus and read-model failures; a server failure; a part of the app
    /// that stopped with an error.
    pub async fn serve(
        &self,
        config: Option<&Path>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let settings = crate::settings::load(config)?;
        crate::serve::serve(self, settings, listener, shutdown, None).await
    }

    pub(crate) fn projection_defs(&self) -> &[Arc<dyn ProjectionDef>] {
        &self.projections
    }

    /// Starts everything registered over `store` and `bus`; [`Started::stop`] stops it.
    pub(crate) async fn start(
        &self,
        settings: Arc<Settings>,
        store: AppStore,
        bus: Option<AnyBus>,
    ) -> anyhow::Result<Started> {
        let mut started = Started {
            stops: Vec::new(),
            labels: Vec::new(),
            registry: AppRegistry::new(),
            known: Vec::new(),
        };
        match self.start_parts(&settings, store, bus, &mut started).await {
            Ok(()) => Ok(started),
            Err(error) => {
                // Whatever started before the failure is stopped, not leaked.
                let _ = started.stop().await;
                Err(error)
            }
        }
    }

    async fn start_parts(
        &self,
        settings: &Arc<Settings>,
        store: AppStore,
        bus: Option<AnyBus>,
        started: &mut Started,
    ) -> anyhow::Result<()> {
        let mut read_models = BTreeMap::new();
        for known in crate::projections::known(settings, self)? {
            let name = known.name.clone();
            if let ReadModelAt::File(path) = &known.at
                && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let running = known
                .def
                .spawn(store.clone(), &known.at, known.options)
                .await
                .with_context(|| format!("starting projection {name} ({})", known.at.describe()))?;
            started.push(format!("projection {name}"), running.stop);
            read_models.insert(
                name,
                ReadModel {
                    database: running.database,
                    progress: running.progress,
                },
            );
            started.known.push(known);
        }
        let context = AppContext {
            store: store.clone(),
            settings: Arc::clone(settings),
            read_models,
        };
        // Saga deadlines and checkpoints on SQLite or memory stores: the SQLite file.
        let side = settings.store.sqlite_path.clone();
        let sql_server = matches!(store.inner(), AnyStore::Postgres(_) | AnyStore::Mysql(_));
        if !self.sagas.is_empty()
            && !sql_server
            && let Some(parent) = side.parent().filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        for def in &self.sagas {
            let stop = def
                .spawn(&context, &side)
                .with_context(|| format!("starting the {} saga", def.name()))?;
            started.push(format!("saga {}", def.name()), stop);
        }
        let relay_topics = self.relay_topics(settings)?;
        let needs_bus = !self.workers.is_empty() || relay_topics.is_some();
        match (bus, needs_bus) {
            (Some(bus), true) => {
                self.start_bus(settings, &context, bus, relay_topics, started)
                    .await?;
            }
            (None, true) => anyhow::bail!(
                "app {} has bus workers or relay topics but no message bus could be opened; check [message_bus]",
                self.name
            ),
            (_, false) => {}
        }
        if let Some(routes) = &self.routes {
            started.registry = routes(&context);
        }
        Ok(())
    }

    /// The relay's topic map: the app's own ([`App::topics`]: its workers' topics are code),
    /// else `[message_bus.topics]` when it routes anything by type or category.
    fn relay_topics(&self, settings: &Settings) -> anyhow::Result<Option<TopicMap>> {
        if self.topics.is_some() {
            return Ok(self.topics.clone());
        }
        let configured = &settings.config.message_bus.topics;
        if configured.categories.is_empty() && configured.types.is_empty() {
            return Ok(None);
        }
        let policy = settings
            .config
            .message_bus
            .bus_policy()
            .context("[message_bus.topics]")?;
        Ok(Some(policy.topics))
    }

    async fn start_bus(
        &self,
        settings: &Settings,
        context: &AppContext,
        bus: AnyBus,
        relay_topics: Option<TopicMap>,
        started: &mut Started,
    ) -> anyhow::Result<()> {
        let policy = settings
            .config
            .message_bus
            .bus_policy()
            .context("[message_bus]")?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let shutdown = move || {
            let mut stopped = stop_rx.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let mut tasks: Vec<(String, tokio::task::JoinHandle<anyhow::Result<()>>)> = Vec::new();
        if let Some(topics) = relay_topics {
            let relay = Relay::new(
                format!("{}-outbox", self.name),
                context.store.clone(),
                bus.clone(),
                topics,
            );
            let shutdown = shutdown();
            tasks.push((
                "outbox relay".to_owned(),
                tokio::spawn(async move { Ok(relay.run(shutdown).await?) }),
            ));
        }
        for def in &self.workers {
            let topic = Topic::new(def.topic.as_str())
                .with_context(|| format!("worker topic {:?}", def.topic))?;
            let group = ConsumerGroup::new(def.group.as_str())
                .with_context(|| format!("worker group {:?}", def.group))?;
            let options = SubscribeOptions {
                retry: policy.retry,
                ..SubscribeOptions::default()
            };
            let consumer = bus
                .subscribe(&topic, &group, options)
                .await
                .with_context(|| format!("subscribing {group} to {topic}"))?;
            let handler = (def.make)(context);
            let worker = BusWorker::new(consumer, move |delivery| handler(delivery));
            let shutdown = shutdown();
            tasks.push((
                format!("worker {topic}/{group}"),
                tokio::spawn(async move {
                    worker.run(shutdown).await?;
                    Ok(())
                }),
            ));
        }
        let labels: Vec<String> = tasks.iter().map(|(label, _)| label.clone()).collect();
        let stop: Stop = Box::new(move || {
            Box::pin(async move {
                stop_tx.send_replace(true);
                let mut first = None;
                for (label, task) in tasks {
                    let outcome = match task.await {
                        Ok(outcome) => outcome,
                        Err(error) => Err(anyhow::anyhow!("{label} panicked: {error}")),
                    };
                    if let Err(error) = outcome {
                        tracing::warn!(%label, %error, "stopped with an error");
                        first.get_or_insert(error.context(label));
                    }
                }
                first.map_or(Ok(()), Err)
            })
        });
        if !labels.is_empty() {
            started.push(labels.join(", "), stop);
        }
        Ok(())
    }
}

/// The parts of an app `serve` started.
pub(crate) struct Started {
    stops: Vec<(String, Stop)>,
    labels: Vec<String>,
    /// The app's commands and queries.
    pub registry: AppRegistry,
    /// The running projections, for the admin routes.
    pub known: Vec<crate::projections::Known>,
}

impl Started {
    fn push(&mut self, label: String, stop: Stop) {
        self.labels.push(label.clone());
        self.stops.push((label, stop));
    }

    /// What runs, for the startup line.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Stops everything, the last started first (workers and relay, then sagas, then
    /// projections), each at a batch boundary. Returns the first failure; every part is
    /// stopped whatever the others did.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let mut first = None;
        while let Some((label, stop)) = self.stops.pop() {
            tracing::info!(%label, "stopping");
            if let Err(error) = stop().await {
                first.get_or_insert(error.context(format!("stopping {label}")));
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Projection `name` as configured: where its read model lives and runner options.
///
/// # Errors
/// A [`crate::exit::ConfigProblem`] for a `read_dsn` that names no database read models can
/// live in.
pub(crate) fn projection_settings(
    settings: &Settings,
    name: &str,
) -> anyhow::Result<(ReadModelAt, ProjectionOptions)> {
    use mammoth_runtime::projection::OnFailure;
    let config = settings.config.projections.get(name);
    let batch = config.map_or(1_000, |config| config.batch_size.max(1) as usize);
    let on_failure = match config.map(|config| config.on_failure).unwrap_or_default() {
        mammoth_config::OnFailure::Stop => OnFailure::Stop,
        mammoth_config::OnFailure::Park => OnFailure::Park,
    };
    let options = ProjectionOptions::default()
        .with_batch_size(batch)
        .on_failure(on_failure);
    let at = match config.and_then(|config| config.read_dsn.as_ref()) {
        Some(dsn) => ReadModelAt::parse(dsn.expose())
            .with_context(|| format!("[projections.{name}] read_dsn"))?,
        None => ReadModelAt::File(PathBuf::from(
            mammoth_sqlite::read_model::DEFAULT_READ_MODEL_PATH,
        )),
    };
    Ok((at, options))
}

/// A projection started by `serve`: its progress, how it stops, and the database its read
/// model is in (PostgreSQL and MySQL), for the app's queries.
pub(crate) struct Running {
    pub progress: PositionWatch,
    pub stop: Stop,
    pub database: ReadModelDatabase,
}

/// A registered SQL projection, with its type erased.
pub(crate) trait ProjectionDef: Send + Sync {
    fn name(&self) -> &str;
    fn tables(&self) -> &'static [&'static str];
    /// `sqlite`, `postgres` or `mysql`: where this registration keeps its read model.
    fn backend(&self) -> &'static str;
    /// The event types and categories it reads.
    fn filter(&self) -> EventFilter;
    fn spawn<'a>(
        &'a self,
        store: AppStore,
        at: &'a ReadModelAt,
        options: ProjectionOptions,
    ) -> BorrowingSendFuture<'a, anyhow::Result<Running>>;
    /// Empties the active version and replays the log into it, in place.
    fn replay<'a>(
        &'a self,
        store: AnyStore,
        known: &'a crate::projections::Known,
        on_batch: OnBatch<'a>,
    ) -> BorrowingSendFuture<'a, anyhow::Result<Position>>;
    /// Blue-green: builds the next version, switches to it, drops the old one if asked.
    fn rebuild<'a>(
        &'a self,
        store: AnyStore,
        known: &'a crate::projections::Known,
        drop_old: bool,
        on_batch: OnBatch<'a>,
    ) -> BorrowingSendFuture<'a, anyhow::Result<crate::projections::Rebuilt>>;
    /// Builds a shadow from zero and diffs it with the live read model.
    fn verify<'a>(
        &'a self,
        store: AnyStore,
        known: &'a crate::projections::Known,
    ) -> BorrowingSendFuture<'a, anyhow::Result<VerifyReport>>;
}

/// What a long replay or rebuild reports after each batch: (checkpoint, head).
pub(crate) type OnBatch<'a> = Box<dyn FnMut(Position, Position) + Send + 'a>;

/// A database read models can be kept in: how to make the runner's targets there.
pub(crate) trait ReadModelKind: Send + Sync + 'static {
    /// The projections it runs.
    type Projection: Send + 'static;
    /// The target the runner drives.
    type Target: ProjectionTarget + Send + 'static;
    /// `sqlite`, `postgres` or `mysql`, as [`ReadModelAt::backend`] says.
    const BACKEND: &'static str;
    fn name(projection: &Self::Projection) -> &str;
    fn tables(projection: &Self::Projection) -> &'static [&'static str];
    fn filter(projection: &Self::Projection) -> EventFilter;
    /// The target writing the active version.
    fn open<'a>(
        at: &'a ReadModelAt,
        projection: Self::Projection,
    ) -> BorrowingSendFuture<'a, anyhow::Result<Self::Target>>;
    /// The target building the next version (blue-green).
    fn next_version<'a>(
        at: &'a ReadModelAt,
        projection: Self::Projection,
    ) -> BorrowingSendFuture<'a, anyhow::Result<Self::Target>>;
    /// The target building the verify shadow.
    fn shadow<'a>(
        at: &'a ReadModelAt,
        projection: Self::Projection,
    ) -> BorrowingSendFuture<'a, anyhow::Result<Self::Target>>;
    /// The target's database, for queries.
    fn database(target: &Self::Target) -> ReadModelDatabase;
}

fn file(at: &ReadModelAt) -> anyhow::Result<&Path> {
    match at {
        ReadModelAt::File(path) => Ok(path),
        other => anyhow::bail!("{} is not a SQLite read-model file", other.describe()),
    }
}

/// Read models in a SQLite file.
pub(crate) struct SqliteKind<P>(std::marker::PhantomData<fn() -> P>);

impl<P: SqliteProjection> ReadModelKind for SqliteKind<P> {
    type Projection = P;
    type Target = SqliteReadModel<P>;
    const BACKEND: &'static str = "sqlite";
    fn name(projection: &P) -> &str {
        projection.name()
    }
    fn tables(projection: &P) -> &'static [&'static str] {
        projection.tables()
    }
    fn filter(projection: &P) -> EventFilter {
        SqliteProjection::filter(projection)
    }
    fn open<'a>(
        at: &'a ReadModelAt,
        projection: P,
    ) -> BorrowingSendFuture<'a, anyhow::Result<Self::Target>> {
        Box::pin(async move { Ok(SqliteReadModel::open(file(at)?, projection)?) })
    }
    fn next_version<'a>(
        at: &'a ReadModelAt,
        projection: P,
    ) -> BorrowingSendFuture<'a, anyhow::Result<Self::Target>> {
        Box::pin(async move { Ok(SqliteReadModel::next_version(file(at)?, projection)?) })
    }
    fn shadow<'a>(
        at: &'a ReadModelAt,
        projection: P,
    ) -> BorrowingSendFuture<'a, anyhow::Result<Self::Target>> {
        Box::pin(async move { Ok(SqliteReadModel::shadow(file(at)?, projection)?) })
    }
    fn database(target: &Self::Target) -> ReadModelDatabase {
        ReadModelDatabase::Sqlite(target.path().to_path_buf())
    }
}

/// Read models in a PostgreSQL schema.
pub(crate) struct PgKind<P>(std::marker::PhantomData<fn() -> P>);

impl<P: PgProjection> ReadModelKind for PgKind<P> {
    type Projection = P;
    type Target = PgReadModel<P>;
    const BACKEND: &'static str = "postgres";
    fn name(projection: &P) -> &str {
        projection.name()
    }
    fn tables(projection: &P) -> &'static [&'static str] {
        projection.tables()
    }
    fn filter(projection: &P) -> EventFilter {
        PgProjection::filter(projection)
    }
    fn open<'a>(
        at: &'a ReadModelAt,
        projection: P,
    ) -> BorrowingSendFuture<'a, anyhow::Result<Self::Target>> {
        Box::pin(async move { Ok(PgReadModel::open(&at.postgres().await?, projection)) })
    }
    fn next_version<'a>(
        at: &'a ReadModelAt,
        projection: P,
    ) -> BorrowingSendFuture<'a, anyhow::Result<Self::Target>> {
        Box::pin(
            async move { Ok(PgReadModel::next_version(&at.postgres().await?, projection).await?) },
        )
    }
    fn shadow<'a>(
        at: &'a ReadModelAt,
        projection: P,
    ) -> BorrowingSendFuture<'a, anyhow::Result<Self::Target>> {
        Box::pin(async move { Ok(PgReadModel::shadow(&at.postgres().await?, projection).await?) })
    }
    fn database(target: &Self::Target) -> ReadModelDatabase {
        ReadModelDatabase::Postgres(target.db().clone())
    }
}

/// Read models in a MySQL/MariaDB database.
pub(crate) struct MysqlKind<P>(std::marker::PhantomData<fn() -> P>);

impl<P: MysqlProjection> ReadModelKind for MysqlKind<P> {
    type Projection = P;
    type Target = MysqlReadModel<P>;
    const BACKEND: &'static str = "mysql";
    fn name(projection: &P) -> &str {
        projection.name()
    }
    fn tables(projection: &P) -> &'static [&'static str] {
        projection.tables()
    }
    fn filter(projection: &P) -> EventFilter {
        MysqlProjection::filter(projection)
    }
    fn open<'a>(
        at: &'a ReadModelAt,
        projection: P,
    ) -> BorrowingSendFuture<'a, anyhow::Result<Self::Target>> {
        Box::pin(async move { Ok(MysqlReadModel::open(&at.mysql()?, projection).await?) })
    }
    fn next_version<'a>(
        at: &'a ReadModelAt,
        projection: P,
    ) -> BorrowingSendFuture<'a, anyhow::Result<Self::Target>> {
        Box::pin(async move { Ok(MysqlReadModel::next_version(&at.mysql()?, projection).await?) })
    }
    fn shadow<'a>(
        at: &'a ReadModelAt,
        projection: P,
    ) -> BorrowingSendFuture<'a, anyhow::Result<Self::Target>> {
        Box::pin(async move { Ok(MysqlReadModel::shadow(&at.mysql()?, projection).await?) })
    }
    fn database(target: &Self::Target) -> ReadModelDatabase {
        ReadModelDatabase::Mysql(target.database().clone())
    }
}

struct SqlProjectionDef<K: ReadModelKind> {
    name: String,
    tables: &'static [&'static str],
    make: Arc<dyn Fn() -> K::Projection + Send + Sync>,
}

impl<K: ReadModelKind> ProjectionDef for SqlProjectionDef<K> {
    fn name(&self) -> &str {
        &self.name
    }

    fn tables(&self) -> &'static [&'static str] {
        self.tables
    }

    fn backend(&self) -> &'static str {
        K::BACKEND
    }

    fn filter(&self) -> EventFilter {
        K::filter(&(self.make)())
    }

    fn spawn<'a>(
        &'a self,
        store: AppStore,
        at: &'a ReadModelAt,
        options: ProjectionOptions,
    ) -> BorrowingSendFuture<'a, anyhow::Result<Running>> {
        Box::pin(async move {
            let target = K::open(at, (self.make)()).await?;
            let database = K::database(&target);
            let handle = ProjectionRunner::new(store, target, options).spawn();
            let progress = handle.progress();
            let stop: Stop = Box::new(move || {
                Box::pin(async move {
                    handle.stop().await?;
                    Ok(())
                })
            });
            Ok(Running {
                progress,
                stop,
                database,
            })
        })
    }

    fn replay<'a>(
        &'a self,
        store: AnyStore,
        known: &'a crate::projections::Known,
        on_batch: OnBatch<'a>,
    ) -> BorrowingSendFuture<'a, anyhow::Result<Position>> {
        Box::pin(async move {
            let target = K::open(&known.at, (self.make)()).await?;
            crate::projections::replay_into(store, known, target, on_batch).await
        })
    }

    fn rebuild<'a>(
        &'a self,
        store: AnyStore,
        known: &'a crate::projections::Known,
        drop_old: bool,
        on_batch: OnBatch<'a>,
    ) -> BorrowingSendFuture<'a, anyhow::Result<crate::projections::Rebuilt>> {
        Box::pin(async move {
            let next = K::next_version(&known.at, (self.make)()).await?;
            crate::projections::rebuild_into(store, known, next, drop_old, on_batch).await
        })
    }

    fn verify<'a>(
        &'a self,
        store: AnyStore,
        known: &'a crate::projections::Known,
    ) -> BorrowingSendFuture<'a, anyhow::Result<VerifyReport>> {
        Box::pin(async move {
            if let ReadModelAt::File(path) = &known.at
                && !path.exists()
            {
                anyhow::bail!(
                    "{} has no read model at {} yet; run it or `mammoth projections replay {}`",
                    known.name,
                    path.display(),
                    known.name
                );
            }
            let shadow = K::shadow(&known.at, (self.make)()).await?;
            crate::projections::verify_into(store, known, shadow).await
        })
    }
}

/// A registered saga, with its type erased.
trait SagaDef: Send + Sync {
    fn name(&self) -> &'static str;
    fn spawn(&self, context: &AppContext, side: &Path) -> anyhow::Result<Stop>;
}

struct SagaDefOf<F> {
    make: F,
}

impl<G, F> SagaDef for SagaDefOf<F>
where
    G: Saga,
    F: Fn(&AppContext) -> G + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        G::TYPE
    }

    fn spawn(&self, context: &AppContext, side: &Path) -> anyhow::Result<Stop> {
        let (timers, checkpoints) = crate::side::open(context.store.inner(), side)?;
        let handle = SagaRunner::with_options(
            (self.make)(context),
            context.store.clone(),
            timers,
            checkpoints,
            SagaOptions::default(),
        )
        .spawn();
        Ok(Box::new(move || {
            Box::pin(async move {
                handle.stop().await?;
                Ok(())
            })
        }))
    }
}
