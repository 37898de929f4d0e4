//! `mammoth status`: one screen of everything — the store's head and event count, the SQL
//! projections with their lag and state (in the default read-model file and wherever the app's
//! projections are configured to: other files, PostgreSQL schemas, MySQL databases), the saga runners' checkpoints, the sagas per type and
//! status, and the bus's depth and dead letters. A part that cannot be read says why and the
//! rest is still shown.

use std::path::PathBuf;

use mammoth_core::bus::MessageBus as _;
use mammoth_core::{CheckpointStore as _, EventStore};
use mammoth_mysql::MysqlCheckpointStore;
use mammoth_postgres::PgCheckpointStore;
use mammoth_sqlite::read_model::DEFAULT_READ_MODEL_PATH;
use mammoth_sqlite::saga::SagaCount;
use serde::Serialize;

use crate::app::{App, projection_settings};
use crate::cli::GlobalOptions;
use crate::output::{Output, thousands};
use crate::read_models::{AnyReadModelAdmin, ReadModelAt};
use crate::settings::{self, Settings};
use crate::store::{self, Access, AnyStore};

#[derive(Debug, Default, Serialize)]
struct Report {
    backend: &'static str,
    head: u64,
    events: u64,
    projections: Vec<ProjectionLine>,
    sagas: Vec<SagaCount>,
    bus: Option<BusLine>,
    problems: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ProjectionLine {
    name: String,
    state: String,
    checkpoint: u64,
    lag: u64,
}

#[derive(Debug, Default, Serialize)]
struct BusLine {
    topics: usize,
    depth: u64,
    in_flight: u64,
    dead_letters: u64,
}

/// Runs `mammoth status`.
///
/// # Errors
/// Configuration errors and a store that cannot be opened; other parts report problems
/// in the output instead.
pub async fn run(global: &GlobalOptions, app: &App) -> anyhow::Result<()> {
    let settings = settings::load(global.config.as_deref())?;
    let store = store::open(&settings.store, Access::ReadOnly).await?;
    let stats = store.stats().await?;
    let head = store.head_position().await?;
    let mut report = Report {
        backend: stats.backend,
        head,
        events: stats.event_count,
        ..Report::default()
    };
    // The default read-model file and everywhere the app's projections are configured to.
    let mut places = vec![ReadModelAt::File(PathBuf::from(DEFAULT_READ_MODEL_PATH))];
    for def in app.projection_defs() {
        match projection_settings(&settings, def.name()) {
            Ok((at, _)) if !places.contains(&at) => places.push(at),
            Ok(_) => {}
            Err(error) => report.problems.push(format!("{error:#}")),
        }
    }
    for models in &places {
        if let ReadModelAt::File(path) = models
            && !path.exists()
        {
            continue;
        }
        let rows = match AnyReadModelAdmin::open(models).await {
            Ok(admin) => admin.status().await.map_err(anyhow::Error::from),
            Err(error) => Err(error),
        };
        match rows {
            Ok(rows) => {
                for row in rows.into_iter().filter(|row| row.active) {
                    report.projections.push(ProjectionLine {
                        name: row.name,
                        state: row.state.label().to_owned(),
                        checkpoint: row.checkpoint,
                        lag: head.saturating_sub(row.checkpoint),
                    });
                }
            }
            Err(error) => report
                .problems
                .push(format!("projections in {}: {error:#}", models.describe())),
        }
    }
    match saga_checkpoints(&settings, &store).await {
        Ok(checkpoints) => {
            for (name, checkpoint) in checkpoints {
                report.projections.push(ProjectionLine {
                    name,
                    // Only its checkpoint is stored; whether it runs is known to its process.
                    state: "saga runner".to_owned(),
                    checkpoint,
                    lag: head.saturating_sub(checkpoint),
                });
            }
        }
        Err(error) => report.problems.push(format!("saga runners: {error}")),
    }
    match crate::sagas::counts(&settings, &store).await {
        Ok(counts) => report.sagas = counts,
        Err(error) => report.problems.push(format!("sagas: {error:#}")),
    }
    match crate::bus_backend::open_on(&settings, &store, true).await {
        Ok(bus) => match bus.stats().await {
            Ok(topics) => {
                let mut line = BusLine {
                    topics: topics.len(),
                    ..BusLine::default()
                };
                for topic in &topics {
                    line.depth += topic.depth;
                    line.in_flight += topic.in_flight;
                    line.dead_letters += topic.dead_letters;
                }
                report.bus = Some(line);
            }
            Err(error) => report.problems.push(format!("bus: {error}")),
        },
        Err(error) => report.problems.push(format!("bus: {error:#}")),
    }
    print(&report, global.json)
}

fn print(report: &Report, json: bool) -> anyhow::Result<()> {
    let mut out = Output::new(json);
    if out.is_json() {
        out.json_document(report)?;
        return out.flush();
    }
    out.line(format!(
        "store       {}: head {}, {} events",
        report.backend,
        thousands(report.head),
        thousands(report.events)
    ))?;
    if report.projections.is_empty() {
        out.line("projections none recorded")?;
    }
    for projection in &report.projections {
        out.line(format!(
            "projection  {}: {}, checkpoint {}, lag {}",
            projection.name,
            projection.state,
            thousands(projection.checkpoint),
            thousands(projection.lag)
        ))?;
    }
    if report.sagas.is_empty() {
        out.line("sagas       none")?;
    }
    let mut types: Vec<&str> = report.sagas.iter().map(|c| c.saga_type.as_str()).collect();
    types.dedup();
    for saga_type in types {
        let counts: Vec<String> = report
            .sagas
            .iter()
            .filter(|count| count.saga_type == saga_type)
            .map(|count| format!("{} {}", count.status, thousands(count.count)))
            .collect();
        out.line(format!("sagas       {saga_type}: {}", counts.join(", ")))?;
    }
    if let Some(bus) = &report.bus {
        out.line(format!(
            "bus         {} topic groups: depth {}, in flight {}, dead letters {}",
            bus.topics,
            thousands(bus.depth),
            thousands(bus.in_flight),
            thousands(bus.dead_letters)
        ))?;
    }
    for problem in &report.problems {
        out.line(format!("problem     {problem}"))?;
    }
    out.flush()
}

/// The saga runners' checkpoints (`saga-<type>`): in the server's own table on PostgreSQL and
/// MySQL, else in the SQLite file (read-only; none when it has no checkpoint table yet).
async fn saga_checkpoints(
    settings: &Settings,
    store: &AnyStore,
) -> Result<Vec<(String, u64)>, mammoth_core::StoreError> {
    let all = match store {
        AnyStore::Postgres(pg) => PgCheckpointStore::new(pg).list().await?,
        AnyStore::Mysql(my) => MysqlCheckpointStore::new(my).list().await?,
        AnyStore::Sqlite(_) | AnyStore::Memory(_) => {
            let Ok(conn) = rusqlite::Connection::open_with_flags(
                &settings.store.sqlite_path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            ) else {
                return Ok(Vec::new());
            };
            let Ok(mut statement) = conn.prepare("SELECT name, position FROM checkpoints") else {
                return Ok(Vec::new());
            };
            let rows = statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })
                .map_err(|error| {
                    mammoth_core::StoreError::backend(
                        "sqlite",
                        "reading the saga checkpoints",
                        error,
                        false,
                    )
                })?;
            rows.flatten()
                .map(|(name, position)| (name, u64::try_from(position).unwrap_or(0)))
                .collect()
        }
    };
    Ok(all
        .into_iter()
        .filter(|(name, _)| name.starts_with("saga-"))
        .collect())
}
