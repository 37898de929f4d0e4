//! `mammoth projections list|status|pause|resume|replay|rebuild|verify NAME`: operates the SQL
//! read models in the read-model file (`[projections.NAME] read_dsn`, by default
//! `./mammoth-data/read_models.db`). The event store is opened read-only, so every command
//! works beside a process that writes events and runs the projections: pause and resume are
//! requests that runner picks up; replay, rebuild and verify run here, and a live runner sees
//! the checkpoint move and follows.
//!
//! The projections this binary knows are its [`App`]'s (the `mammoth` binary's: `orders`, the
//! seed's OrderProjection; a user's binary: its own); configuration tunes them (`batch_size`, `read_dsn`, `on_failure`), it
//! never names code to load. They are SQL read models, so their checkpoint always lives in the
//! read-model file, written in the same transaction as their rows: `checkpoint` applies to
//! non-SQL handlers only, and `list` says where the checkpoint is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mammoth_core::read_model::{ReadModelStatus, SHADOW_VERSION, VerifyReport};
use mammoth_core::{EventStore, Position, ProjectionError, ProjectionState, ProjectionTarget};
use mammoth_runtime::projection::{self, OnFailure, ProjectionOptions, ProjectionRunner};
use mammoth_server::{AdminError, BoxFuture, ProjectionRow, ProjectionsAdmin};
use serde::Serialize;

use crate::app::{App, OnBatch, ProjectionDef, projection_settings};
use crate::cli::GlobalOptions;
use crate::exit::{ConfigProblem, UsageError};
use crate::output::{Columns, Output, thousands};
use crate::read_models::{AnyReadModelAdmin, ReadModelAt};
use crate::settings::{self, Settings};
use crate::store::{self, Access, AnyStore};

/// `mammoth projections ...`.
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// The projections this binary knows, with their filters and read-model files.
    List,
    /// State, checkpoint, head and lag of each projection (or one).
    Status {
        /// Only this projection.
        name: Option<String>,
    },
    /// Ask the runner of NAME (in whatever process) to pause after its current batch.
    Pause {
        /// The projection.
        name: String,
    },
    /// Clear a pause, or make a failed projection retry from its checkpoint.
    Resume {
        /// The projection.
        name: String,
    },
    /// Empty NAME's read model and replay the log from zero, in place.
    Replay {
        /// The projection.
        name: String,
    },
    /// Blue-green: build a new version beside the serving one, switch when caught up, keep
    /// the old version (drop it with --drop-old).
    Rebuild {
        /// The projection.
        name: String,
        /// Drop the previous version's tables after the switch.
        #[arg(long)]
        drop_old: bool,
    },
    /// Rebuild NAME into a shadow and diff it against the live read model (exit 1 on a
    /// difference).
    Verify {
        /// The projection.
        name: String,
    },
}

/// One projection this binary's app registered, as configured.
pub(crate) struct Known {
    pub(crate) name: String,
    pub(crate) tables: &'static [&'static str],
    pub(crate) at: ReadModelAt,
    pub(crate) options: ProjectionOptions,
    pub(crate) def: Arc<dyn ProjectionDef>,
    /// Its read-model administration, opened on first use and kept (the server asks at every
    /// `/metrics` scrape; a PostgreSQL or MySQL admin holds a connection pool).
    admin: tokio::sync::OnceCell<AnyReadModelAdmin>,
}

impl Known {
    /// The read-model administration where this projection lives, opened once.
    ///
    /// # Errors
    /// When the file or database cannot be opened.
    pub(crate) async fn admin(&self) -> anyhow::Result<&AnyReadModelAdmin> {
        self.admin
            .get_or_try_init(|| AnyReadModelAdmin::open(&self.at))
            .await
    }
}

/// The app's projections by name, each with the registration for the database its
/// `read_dsn` names.
///
/// # Errors
/// A [`ConfigProblem`] for a `read_dsn` that cannot be read, or that names a database the app
/// registered no implementation of the projection for.
pub(crate) fn known(settings: &Settings, app: &App) -> anyhow::Result<Vec<Known>> {
    let mut names: Vec<&str> = Vec::new();
    for def in app.projection_defs() {
        if !names.contains(&def.name()) {
            names.push(def.name());
        }
    }
    let mut all = Vec::new();
    for name in names {
        let (at, options) = projection_settings(settings, name)?;
        let registered: Vec<&Arc<dyn ProjectionDef>> = app
            .projection_defs()
            .iter()
            .filter(|def| def.name() == name)
            .collect();
        let Some(def) = registered.iter().find(|def| def.backend() == at.backend()) else {
            let kinds: Vec<&str> = registered.iter().map(|def| def.backend()).collect();
            return Err(ConfigProblem(format!(
                "[projections.{name}] read_dsn puts the read model in {} ({}), but this binary has the {name} projection for {} only; point read_dsn at one of those",
                at.backend(),
                at.describe(),
                kinds.join(", ")
            ))
            .into());
        };
        all.push(Known {
            name: name.to_owned(),
            tables: def.tables(),
            at,
            options,
            def: Arc::clone(def),
            admin: tokio::sync::OnceCell::new(),
        });
    }
    Ok(all)
}

/// The projection called `name`; an unknown name is a usage error (exit code 2).
fn find<'a>(all: &'a [Known], name: &str) -> anyhow::Result<&'a Known> {
    all.iter().find(|known| known.name == name).ok_or_else(|| {
        let unknown = ProjectionError::Unknown {
            name: name.to_owned(),
            known: all
                .iter()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        UsageError(format!("{unknown}; `mammoth projections list` shows them")).into()
    })
}

/// `stop` or `park`, as mammoth.tsk spells it.
fn on_failure_name(on_failure: OnFailure) -> &'static str {
    match on_failure {
        OnFailure::Stop => "stop",
        OnFailure::Park => "park",
    }
}

/// Runs one `projections` command.
///
/// # Errors
/// Configuration, store and read-model failures; an unknown name; a verify that found
/// differences.
pub async fn run(
    command: ProjectionsCommand,
    global: &GlobalOptions,
    app: &App,
) -> anyhow::Result<()> {
    let settings = settings::load(global.config.as_deref())?;
    let all = known(&settings, app)?;
    let mut out = Output::new(global.json);
    match command {
        ProjectionsCommand::List => list(&all, &mut out),
        ProjectionsCommand::Status { name } => {
            status(&settings, &all, name.as_deref(), &mut out).await
        }
        ProjectionsCommand::Pause { name } => {
            let known = find(&all, &name)?;
            known.admin().await?.pause(&known.name).await?;
            out.line(format!(
                "asked {name} to pause; `mammoth projections status` shows when it has"
            ))?;
            out.flush()
        }
        ProjectionsCommand::Resume { name } => {
            let known = find(&all, &name)?;
            known.admin().await?.resume(&known.name).await?;
            out.line(format!("asked {name} to resume"))?;
            out.flush()
        }
        ProjectionsCommand::Replay { name } => {
            let known = find(&all, &name)?;
            let store = store::open(&settings.store, Access::ReadOnly).await?;
            let progress = bar(!out.is_json(), &format!("replaying {name}"));
            let started = std::time::Instant::now();
            let reached = known
                .def
                .replay(store, known, Box::new(follow(&progress)))
                .await
                .with_context(|| format!("replaying {name}"))?;
            progress.finish_and_clear();
            report_done(&mut out, "replayed", &name, reached, started.elapsed())
        }
        ProjectionsCommand::Rebuild { name, drop_old } => {
            let known = find(&all, &name)?;
            let store = store::open(&settings.store, Access::ReadOnly).await?;
            let progress = bar(!out.is_json(), &format!("rebuilding {name}"));
            let started = std::time::Instant::now();
            let rebuilt = known
                .def
                .rebuild(store, known, drop_old, Box::new(follow(&progress)))
                .await
                .with_context(|| format!("rebuilding {name}"))?;
            progress.finish_and_clear();
            if !out.is_json() {
                let old = match (rebuilt.old, drop_old) {
                    (None, _) => String::new(),
                    (Some(old), true) => format!("; version {old} dropped"),
                    (Some(old), false) => {
                        format!("; version {old} kept (drop it with --drop-old)")
                    }
                };
                out.line(format!(
                    "{name}: version {} is now active{old}",
                    rebuilt.version
                ))?;
            }
            report_done(
                &mut out,
                "rebuilt",
                &name,
                rebuilt.reached,
                started.elapsed(),
            )
        }
        ProjectionsCommand::Verify { name } => {
            let known = find(&all, &name)?;
            let store = store::open(&settings.store, Access::ReadOnly).await?;
            let report = known.def.verify(store, known).await?;
            print_verify(&report, &mut out)
        }
    }
}

fn list(all: &[Known], out: &mut Output) -> anyhow::Result<()> {
    if out.is_json() {
        let rows: Vec<_> = all
            .iter()
            .map(|k| {
                let filter = k.def.filter();
                serde_json::json!({ "name": k.name, "tables": k.tables, "read_model": k.at.describe(), "backend": k.at.backend(), "event_types": filter.event_types, "categories": filter.categories, "batch_size": k.options.batch_size, "on_failure": on_failure_name(k.options.on_failure), "checkpoint": "read_model" })
            })
            .collect();
        out.json_document(&rows)?;
        return out.flush();
    }
    let mut rows = vec![vec![
        "NAME".to_owned(),
        "EVENTS".to_owned(),
        "TABLES".to_owned(),
        "READ MODEL".to_owned(),
        "ON FAILURE".to_owned(),
    ]];
    for known in all {
        rows.push(vec![
            known.name.clone(),
            known.def.filter().event_types.join(","),
            known.tables.join(","),
            known.at.describe(),
            on_failure_name(known.options.on_failure).to_owned(),
        ]);
    }
    let columns = Columns::fitting(&rows);
    for row in &rows {
        out.line(columns.row(row))?;
    }
    out.line(
        "Checkpoints live in the read-model file, committed with the rows (exactly once); the `checkpoint` key applies to non-SQL handlers only.",
    )?;
    out.flush()
}

async fn status(
    settings: &Settings,
    all: &[Known],
    only: Option<&str>,
    out: &mut Output,
) -> anyhow::Result<()> {
    if let Some(name) = only {
        find(all, name)?;
    }
    let store = store::open(&settings.store, Access::ReadOnly).await?;
    let head = store.head_position().await?;
    let chosen: Vec<&Known> = all
        .iter()
        .filter(|k| only.is_none_or(|name| name == k.name))
        .collect();
    let rows = stored_rows(&chosen, head).await?;
    if out.is_json() {
        out.json_document(&rows)?;
        return out.flush();
    }
    let mut table = vec![
        ["NAME", "VERSION", "STATE", "CHECKPOINT", "HEAD", "LAG"]
            .map(str::to_owned)
            .to_vec(),
    ];
    let mut failures = Vec::new();
    for row in &rows {
        let mut state = row.state.label().to_owned();
        if row.pause_requested && row.state != ProjectionState::Paused {
            state.push_str(" (pause asked)");
        }
        let version = match (row.version, row.active) {
            (0, _) => "-".to_owned(),
            (v, true) => format!("{v} (active)"),
            (v, false) => v.to_string(),
        };
        table.push(vec![
            row.name.clone(),
            version,
            state,
            thousands(row.checkpoint),
            thousands(row.head),
            thousands(row.lag),
        ]);
        if let ProjectionState::Failed {
            position,
            error,
            attempts,
        } = &row.state
        {
            failures.push(format!(
                "{}: failed at position {position} after {attempts} attempts: {error}",
                row.name
            ));
        }
    }
    let columns = Columns::fitting(&table);
    for row in &table {
        out.line(columns.row(row))?;
    }
    for failure in failures {
        out.line(failure)?;
    }
    out.flush()
}

/// Every stored version of each of `known` (a "stopped" row for one that never ran), with its
/// lag behind `head`.
async fn stored_rows(known: &[&Known], head: Position) -> anyhow::Result<Vec<ProjectionRow>> {
    let mut rows = Vec::new();
    for known in known {
        let stored: Vec<ReadModelStatus> = match &known.at {
            ReadModelAt::File(path) if !path.exists() => Vec::new(),
            _ => known.admin().await?.status().await?,
        };
        let mine: Vec<_> = stored
            .into_iter()
            .filter(|s| s.name == known.name && s.version != SHADOW_VERSION)
            .collect();
        if mine.is_empty() {
            rows.push(ProjectionRow {
                name: known.name.clone(),
                version: 0,
                active: false,
                state: ProjectionState::Stopped,
                checkpoint: 0,
                head,
                lag: head,
                pause_requested: false,
            });
        }
        rows.extend(mine.into_iter().map(|s| ProjectionRow {
            name: s.name,
            version: s.version,
            active: s.active,
            state: s.state,
            checkpoint: s.checkpoint,
            head,
            lag: head.saturating_sub(s.checkpoint),
            pause_requested: s.pause_requested,
        }));
    }
    Ok(rows)
}

/// The app's projections for the server's admin routes (`/admin/projections`), wherever their
/// read models live: the same operations as the `projections` commands.
pub(crate) struct AppProjections {
    store: AnyStore,
    known: Vec<Known>,
}

impl AppProjections {
    /// The projections `known`, over `store`.
    pub(crate) fn new(store: AnyStore, known: Vec<Known>) -> Self {
        Self { store, known }
    }

    fn find(&self, name: &str) -> Result<&Known, AdminError> {
        self.known
            .iter()
            .find(|known| known.name == name)
            .ok_or_else(|| AdminError::UnknownProjection {
                name: name.to_owned(),
                known: self
                    .known
                    .iter()
                    .map(|known| known.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

fn admin_failed(error: anyhow::Error) -> AdminError {
    AdminError::Failed(format!("{error:#}"))
}

impl ProjectionsAdmin for AppProjections {
    fn list(&self, head: u64) -> BoxFuture<'_, Result<Vec<ProjectionRow>, AdminError>> {
        Box::pin(async move {
            let all: Vec<&Known> = self.known.iter().collect();
            stored_rows(&all, head).await.map_err(admin_failed)
        })
    }

    fn pause<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            let known = self.find(name)?;
            let admin = known.admin().await.map_err(admin_failed)?;
            admin
                .pause(name)
                .await
                .map_err(|error| admin_failed(error.into()))
        })
    }

    fn resume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            let known = self.find(name)?;
            let admin = known.admin().await.map_err(admin_failed)?;
            admin
                .resume(name)
                .await
                .map_err(|error| admin_failed(error.into()))
        })
    }

    fn rebuild<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<serde_json::Value, AdminError>> {
        Box::pin(async move {
            let known = self.find(name)?;
            let rebuilt = known
                .def
                .rebuild(self.store.clone(), known, false, Box::new(|_, _| {}))
                .await
                .map_err(admin_failed)?;
            Ok(serde_json::json!({
                "name": name,
                "version": rebuilt.version,
                "checkpoint": rebuilt.reached,
            }))
        })
    }

    fn verify<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<serde_json::Value, AdminError>> {
        Box::pin(async move {
            let known = self.find(name)?;
            let report = known
                .def
                .verify(self.store.clone(), known)
                .await
                .map_err(admin_failed)?;
            let clean = report.is_clean();
            let mut value = serde_json::to_value(&report).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.insert("clean".to_owned(), clean.into());
            }
            Ok(value)
        })
    }
}

fn bar(visible: bool, label: &str) -> ProgressBar {
    let target = if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {msg} [{bar:30}] {human_pos}/{human_len} positions ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Moves `progress` as batches land.
fn follow(progress: &ProgressBar) -> impl FnMut(Position, Position) + Send + '_ {
    move |checkpoint, head| {
        progress.set_length(head);
        progress.set_position(checkpoint);
    }
}

/// Empties `known`'s read model and replays the log into `target` (its active version), in
/// place. Returns the position reached.
///
/// # Errors
/// Read-model and store failures; a failing event.
pub(crate) async fn replay_into<T: ProjectionTarget + 'static>(
    store: AnyStore,
    known: &Known,
    target: T,
    on_batch: OnBatch<'_>,
) -> anyhow::Result<Position> {
    let admin = known.admin().await?;
    admin.reset(&known.name, known.tables).await?;
    let mut runner = ProjectionRunner::new(store, target, known.options);
    Ok(runner.catch_up(None, on_batch).await?)
}

fn report_done(
    out: &mut Output,
    verb: &str,
    name: &str,
    reached: u64,
    took: Duration,
) -> anyhow::Result<()> {
    if out.is_json() {
        out.json_document(&serde_json::json!({ "name": name, "checkpoint": reached, "seconds": took.as_secs_f64() }))?;
    } else {
        out.line(format!(
            "{verb} {name} to position {} in {:.2} s",
            thousands(reached),
            took.as_secs_f64()
        ))?;
    }
    out.flush()
}

/// What a blue-green rebuild did.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Rebuilt {
    /// The version now active.
    pub version: u32,
    /// The version that was active before (dropped when asked).
    pub old: Option<u32>,
    /// The position the new version reached before the switch.
    pub reached: Position,
}

/// Blue-green: `next` (a new version) is built beside the serving one and switched to when
/// caught up; the old version is dropped when `drop_old`.
///
/// # Errors
/// Read-model and store failures; a failing event.
pub(crate) async fn rebuild_into<T: ProjectionTarget + 'static>(
    store: AnyStore,
    known: &Known,
    next: T,
    drop_old: bool,
    on_batch: OnBatch<'_>,
) -> anyhow::Result<Rebuilt> {
    let admin = known.admin().await?;
    let old = admin
        .active(&known.name)
        .await?
        .map(|status| status.version);
    let version = AtomicU32::new(0);
    let reached = projection::rebuild(store, next, known.options, on_batch, || async {
        let newest = admin
            .status()
            .await?
            .iter()
            .filter(|s| s.name == known.name)
            .map(|s| s.version)
            .max()
            .unwrap_or(0);
        version.store(newest, Ordering::Relaxed);
        admin.switch(&known.name, known.tables, newest).await
    })
    .await?;
    if let (true, Some(old)) = (drop_old, old) {
        admin.drop_version(&known.name, known.tables, old).await?;
    }
    Ok(Rebuilt {
        version: version.load(Ordering::Relaxed),
        old,
        reached,
    })
}

/// `shadow` rebuilt from zero up to the live checkpoint and diffed with the live read model;
/// the shadow is dropped afterwards.
///
/// # Errors
/// Read-model and store failures; a failing event.
pub(crate) async fn verify_into<T: ProjectionTarget + 'static>(
    store: AnyStore,
    known: &Known,
    shadow: T,
) -> anyhow::Result<VerifyReport> {
    let admin = known.admin().await?;
    let report = projection::verify(
        store,
        shadow,
        known.options,
        || admin.live_checkpoint(&known.name),
        || admin.diff_shadow(&known.name, known.tables),
    )
    .await?;
    admin.drop_shadow(&known.name, known.tables).await?;
    Ok(report)
}

/// Prints what verify found; a difference is an error (exit code 1).
fn print_verify(report: &VerifyReport, out: &mut Output) -> anyhow::Result<()> {
    if out.is_json() {
        out.json_document(report)?;
    } else if report.is_clean() {
        out.line(format!(
            "{}: the read model equals a fresh replay at position {}",
            report.name,
            thousands(report.checkpoint)
        ))?;
    } else {
        for diff in &report.differences {
            out.line(format!(
                "{}: {} rows only live, {} only in a fresh replay",
                diff.table, diff.only_live, diff.only_shadow
            ))?;
            for example in &diff.examples {
                out.line(format!("  {example}"))?;
            }
        }
    }
    out.flush()?;
    if !report.is_clean() {
        bail!(
            "{}: the read model differs from a fresh replay at position {}",
            report.name,
            report.checkpoint
        );
    }
    Ok(())
}
