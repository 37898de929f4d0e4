//! `mammoth sagas list|show`: the sagas the runtime keeps in `$saga-<type>-<id>` streams.
//! `list` reads the saga index (a SQL read model, caught up from the log first, wherever
//! `[projections.saga_index] read_dsn` puts it: the read-model file by default, or a PostgreSQL
//! schema or MySQL database); `show` reads one saga's stream and prints its timeline: each
//! input received, command issued, compensation, deadline scheduled, cancelled or fired, and
//! status change, with times. [`AppSagas`] is the same index for the server's `/admin/sagas`.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Subcommand;
use mammoth_core::saga::{
    InputKind, SAGA_CATEGORY, SAGA_STEPPED, SagaStatus, SagaStepped, saga_stream,
};
use mammoth_core::{Direction, EventStore, RecordedEvent};
use mammoth_mysql::read_model::{MysqlReadModel, ReadModelDatabase};
use mammoth_mysql::saga_index::MysqlSagaIndex;
use mammoth_postgres::read_model::{PgReadModel, PgReadModelDb};
use mammoth_postgres::saga_index::PgSagaIndex;
use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
use mammoth_server::{AdminError, BoxFuture, SagaAdmin};
use mammoth_sqlite::SqliteReadModel;
use mammoth_sqlite::saga::{SAGA_INDEX, SagaCount, SagaIndex, SagaRow};
use serde::Serialize;

use crate::cli::GlobalOptions;
use crate::exit::UsageError;
use crate::output::{Columns, Output};
use crate::read_models::ReadModelAt;
use crate::settings::{self, Settings};
use crate::store::{self, Access, AnyStore};

/// `mammoth sagas ...`.
#[derive(Debug, Subcommand)]
pub enum SagasCommand {
    /// The sagas, newest first, with status, steps and reason.
    List {
        /// Only sagas of this type (e.g. `order`).
        #[arg(long = "type", value_name = "TYPE")]
        saga_type: Option<String>,
        /// Only sagas in this status: running, compensating, completed, compensated, failed.
        #[arg(long)]
        status: Option<SagaStatus>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One saga's timeline. ID is `<type>-<id>` (e.g. `order-42`) or the stream id
    /// (`$saga-order-42`).
    Show {
        /// The saga.
        id: String,
    },
}

/// The saga index's database, wherever `[projections.saga_index] read_dsn` puts it.
pub(crate) enum SagaIndexDb {
    /// A SQLite read-model file.
    Sqlite(PathBuf),
    /// A PostgreSQL read-model schema.
    Postgres(PgReadModelDb),
    /// A MySQL read-model database.
    Mysql(ReadModelDatabase),
}

impl SagaIndexDb {
    /// Opens the configured place (creating the file's directory, or the schema).
    ///
    /// # Errors
    /// A `read_dsn` that cannot be read; a database that cannot be reached.
    pub(crate) async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let (at, _) = crate::app::projection_settings(settings, SAGA_INDEX)?;
        Ok(match &at {
            ReadModelAt::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                Self::Sqlite(path.clone())
            }
            ReadModelAt::Postgres { .. } => Self::Postgres(at.postgres().await?),
            ReadModelAt::Mysql { .. } => Self::Mysql(at.mysql()?),
        })
    }

    /// Catches the index up with `store`'s log.
    ///
    /// # Errors
    /// Store and read-model failures.
    pub(crate) async fn catch_up(&self, store: &AnyStore) -> anyhow::Result<()> {
        let options = ProjectionOptions::default();
        match self {
            Self::Sqlite(path) => {
                let target = SqliteReadModel::open(path, SagaIndex)?;
                let mut runner = ProjectionRunner::new(store.clone(), target, options);
                runner.catch_up(None, |_, _| {}).await?;
            }
            Self::Postgres(db) => {
                let target = PgReadModel::open(db, PgSagaIndex);
                let mut runner = ProjectionRunner::new(store.clone(), target, options);
                runner.catch_up(None, |_, _| {}).await?;
            }
            Self::Mysql(db) => {
                let target = MysqlReadModel::open(db, MysqlSagaIndex).await?;
                let mut runner = ProjectionRunner::new(store.clone(), target, options);
                runner.catch_up(None, |_, _| {}).await?;
            }
        }
        Ok(())
    }

    /// Sagas newest first, of one type and status when given, at most `limit`.
    ///
    /// # Errors
    /// Read-model failures.
    pub(crate) async fn list(
        &self,
        saga_type: Option<&str>,
        status: Option<SagaStatus>,
        limit: usize,
    ) -> anyhow::Result<Vec<SagaRow>> {
        Ok(match self {
            Self::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                mammoth_sqlite::saga::list(&conn, saga_type, status, limit)?
            }
            Self::Postgres(db) => {
                mammoth_postgres::saga_index::list(db, saga_type, status, limit).await?
            }
            Self::Mysql(db) => {
                mammoth_mysql::saga_index::list(db, saga_type, status, limit).await?
            }
        })
    }

    /// How many sagas of each type are in each status.
    ///
    /// # Errors
    /// Read-model failures.
    pub(crate) async fn counts(&self) -> anyhow::Result<Vec<SagaCount>> {
        Ok(match self {
            Self::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                mammoth_sqlite::saga::counts(&conn)?
            }
            Self::Postgres(db) => mammoth_postgres::saga_index::counts(db).await?,
            Self::Mysql(db) => mammoth_mysql::saga_index::counts(db).await?,
        })
    }
}

/// Saga counts per type and status, from the caught-up index.
///
/// # Errors
/// Store and read-model failures.
pub async fn counts(settings: &Settings, store: &AnyStore) -> anyhow::Result<Vec<SagaCount>> {
    let index = SagaIndexDb::open(settings).await?;
    index.catch_up(store).await?;
    index.counts().await
}

/// The saga index for the server's `/admin/sagas`, caught up from the log before each read.
pub(crate) struct AppSagas {
    store: AnyStore,
    index: SagaIndexDb,
    // One catch-up at a time: concurrent requests would only race for the same batches.
    lock: tokio::sync::Mutex<()>,
}

impl AppSagas {
    /// The index `index`, built from `store`.
    pub(crate) fn new(store: AnyStore, index: SagaIndexDb) -> Self {
        Self {
            store,
            index,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    async fn caught_up(&self) -> Result<(), AdminError> {
        let _one = self.lock.lock().await;
        self.index.catch_up(&self.store).await.map_err(index_failed)
    }
}

fn index_failed(error: anyhow::Error) -> AdminError {
    AdminError::Failed(format!("saga index: {error:#}"))
}

impl SagaAdmin for AppSagas {
    fn list(
        &self,
        saga_type: Option<String>,
        status: Option<SagaStatus>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<SagaRow>, AdminError>> {
        Box::pin(async move {
            self.caught_up().await?;
            self.index
                .list(saga_type.as_deref(), status, limit)
                .await
                .map_err(index_failed)
        })
    }

    fn counts(&self) -> BoxFuture<'_, Result<Vec<SagaCount>, AdminError>> {
        Box::pin(async move {
            self.caught_up().await?;
            self.index.counts().await.map_err(index_failed)
        })
    }
}

/// Runs one `sagas` command.
///
/// # Errors
/// Configuration, store and read-model failures; an unknown saga (exit code 2).
pub async fn run(command: SagasCommand, global: &GlobalOptions) -> anyhow::Result<()> {
    let settings = settings::load(global.config.as_deref())?;
    let store = store::open(&settings.store, Access::ReadOnly).await?;
    let mut out = Output::new(global.json);
    match command {
        SagasCommand::List {
            saga_type,
            status,
            limit,
        } => {
            let index = SagaIndexDb::open(&settings).await?;
            index.catch_up(&store).await?;
            let rows = index
                .list(saga_type.as_deref(), status, limit.max(1))
                .await?;
            list(&rows, &mut out)
        }
        SagasCommand::Show { id } => show(&store, &id, &mut out).await,
    }
}

/// Microseconds since the epoch as RFC 3339 (UTC, milliseconds).
fn time(micros: i64) -> String {
    let micros = u64::try_from(micros).unwrap_or(0);
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_micros(micros)).to_string()
}

fn list(rows: &[SagaRow], out: &mut Output) -> anyhow::Result<()> {
    if out.is_json() {
        out.json_document(&rows)?;
        return out.flush();
    }
    if rows.is_empty() {
        out.line("no sagas")?;
        return out.flush();
    }
    let mut table = vec![
        [
            "TYPE", "ID", "STATUS", "STEPS", "STARTED", "UPDATED", "REASON",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for row in rows {
        table.push(vec![
            row.saga_type.clone(),
            row.saga_id.clone(),
            row.status.clone(),
            row.steps.to_string(),
            time(row.started_micros),
            time(row.updated_micros),
            row.reason.clone().unwrap_or_default(),
        ]);
    }
    let columns = Columns::fitting(&table);
    for row in &table {
        out.line(columns.row(row).trim_end())?;
    }
    out.flush()
}

/// One line of a timeline.
#[derive(Debug, Serialize)]
struct Entry {
    at: String,
    version: u64,
    kind: &'static str,
    what: String,
}

/// `order-42` or `$saga-order-42` → `(order, 42)`.
fn parse_id(id: &str) -> anyhow::Result<(String, String)> {
    let rest = id
        .strip_prefix(SAGA_CATEGORY)
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or(id);
    rest.split_once('-')
        .map(|(saga_type, saga_id)| (saga_type.to_owned(), saga_id.to_owned()))
        .ok_or_else(|| {
            UsageError(format!(
                "saga {id:?} is not `<type>-<id>` (e.g. order-42); `mammoth sagas list` shows them"
            ))
            .into()
        })
}

async fn show(store: &AnyStore, id: &str, out: &mut Output) -> anyhow::Result<()> {
    let (saga_type, saga_id) = parse_id(id)?;
    let stream =
        saga_stream(&saga_type, &saga_id).map_err(|error| UsageError(error.to_string()))?;
    let mut events: Vec<RecordedEvent> = Vec::new();
    loop {
        let from = events.last().map_or(1, |event| event.version + 1);
        let page = store
            .read_stream(&stream, Direction::Forward, Some(from), 1_000)
            .await?;
        let full = page.len() == 1_000;
        events.extend(page);
        if !full {
            break;
        }
    }
    if events.is_empty() {
        return Err(UsageError(format!(
            "no saga {saga_type}-{saga_id} (stream {stream} is empty); `mammoth sagas list` shows them"
        ))
        .into());
    }
    let entries = timeline(&events);
    if out.is_json() {
        out.json_document(&entries)?;
        return out.flush();
    }
    out.line(format!("saga {saga_type}-{saga_id} ({stream})"))?;
    let mut table = Vec::new();
    for entry in &entries {
        table.push(vec![
            entry.at.clone(),
            entry.kind.to_owned(),
            entry.what.clone(),
        ]);
    }
    let columns = Columns::fitting(&table);
    for row in &table {
        out.line(columns.row(row).trim_end())?;
    }
    out.flush()
}

fn timeline(events: &[RecordedEvent]) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut status = SagaStatus::Running;
    let mut compensations = std::collections::HashSet::new();
    for event in events {
        let at = time(event.recorded_at_micros);
        let mut push = |kind: &'static str, what: String| {
            entries.push(Entry {
                at: at.clone(),
                version: event.version,
                kind,
                what,
            });
        };
        if event.event_type != SAGA_STEPPED {
            let topic = event
                .metadata
                .extra
                .get(mammoth_core::saga::TOPIC_FIELD)
                .and_then(serde_json::Value::as_str)
                .unwrap_or("?");
            let kind = if compensations.contains(&event.id) {
                "compensation"
            } else {
                "command"
            };
            push(
                kind,
                format!("{} -> {topic} {}", event.event_type, event.data),
            );
            continue;
        }
        let Ok(step) = serde_json::from_str::<SagaStepped>(&event.data) else {
            push("unreadable", event.data.clone());
            continue;
        };
        let kind = match step.input_kind {
            InputKind::Event => "received",
            InputKind::Deadline => "deadline fired",
            InputKind::Rejection => "rejected",
        };
        let detail = step
            .detail
            .as_ref()
            .map(|detail| format!(": {detail}"))
            .unwrap_or_default();
        push(kind, format!("{}{detail}", step.input));
        for timer in &step.scheduled {
            push(
                "deadline",
                format!("{} scheduled for {}", timer.name, time(timer.due_micros)),
            );
        }
        for name in &step.cancelled {
            push("deadline", format!("{name} cancelled"));
        }
        for issued in step.issued.iter().filter(|issued| issued.compensation) {
            compensations.insert(issued.id);
        }
        if step.status != status {
            let reason = step
                .reason
                .as_ref()
                .map(|reason| format!(" ({reason})"))
                .unwrap_or_default();
            push("status", format!("{status} -> {}{reason}", step.status));
            status = step.status;
        }
    }
    entries
}
