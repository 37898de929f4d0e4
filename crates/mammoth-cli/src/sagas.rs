//! `mammoth sagas list|show`: the sagas the runtime keeps in `$saga-<type>-<id>` streams.
//! `list` reads the saga index (a SQL read model, caught up from the log first, in the
//! read-model file); `show` reads one saga's stream and prints its timeline: each input
//! received, command issued, compensation, deadline scheduled, cancelled or fired, and status
//! change, with times.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Subcommand;
use mammoth_core::saga::{
    InputKind, SAGA_CATEGORY, SAGA_STEPPED, SagaStatus, SagaStepped, saga_stream,
};
use mammoth_core::{Direction, EventStore, RecordedEvent};
use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
use mammoth_sqlite::SqliteReadModel;
use mammoth_sqlite::saga::{SAGA_INDEX, SagaCount, SagaIndex, SagaRow};
use serde::Serialize;

use crate::cli::GlobalOptions;
use crate::exit::UsageError;
use crate::output::{Columns, Output};
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

/// The saga index's read-model file: `[projections.saga_index] read_dsn`, else the default.
fn index_path(settings: &Settings) -> PathBuf {
    crate::app::read_model_path(settings, SAGA_INDEX)
}

/// Catches the saga index up with the log and opens it for queries.
///
/// # Errors
/// Store and read-model failures.
pub async fn caught_up_index(
    settings: &Settings,
    store: &AnyStore,
) -> anyhow::Result<rusqlite::Connection> {
    let path = index_path(settings);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let target = SqliteReadModel::open(&path, SagaIndex)?;
    let mut runner = ProjectionRunner::new(store.clone(), target, ProjectionOptions::default());
    runner.catch_up(None, |_, _| {}).await?;
    rusqlite::Connection::open(&path).with_context(|| format!("opening {}", path.display()))
}

/// Saga counts per type and status, from the caught-up index.
///
/// # Errors
/// Store and read-model failures.
pub async fn counts(settings: &Settings, store: &AnyStore) -> anyhow::Result<Vec<SagaCount>> {
    let conn = caught_up_index(settings, store).await?;
    Ok(mammoth_sqlite::saga::counts(&conn)?)
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
            let conn = caught_up_index(&settings, &store).await?;
            let rows =
                mammoth_sqlite::saga::list(&conn, saga_type.as_deref(), status, limit.max(1))?;
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
