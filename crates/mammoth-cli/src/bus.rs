//! `mammoth bus stats`, and opening the configured message bus for the bus commands (`bus`,
//! `dlq`). The embedded bus lives beside the events (the SQLite file here; tables of a
//! PostgreSQL or MySQL store, and the broker buses, NATS JetStream and Redis Streams, are opened
//! by [`crate::bus_backend`]).

use anyhow::Context as _;
use clap::Subcommand;
use mammoth_config::{BusPolicy, MessageBusBackend};
use mammoth_core::bus::MessageBus as _;
use mammoth_sqlite::SqliteBus;

use crate::cli::GlobalOptions;
use crate::exit::ConfigProblem;
use crate::output::{Columns, Output, thousands};
use crate::settings::{self, Settings};

/// Message bus commands.
#[derive(Debug, Subcommand)]
pub enum BusCommand {
    /// Per topic and consumer group: messages held, depth (waiting), in flight, waiting for a
    /// retry, and dead letters.
    #[command(after_long_help = "Examples:\n  mammoth bus stats\n  mammoth bus stats --json")]
    Stats,
}

/// Opens the embedded bus in the event store's SQLite file (the default path for a memory
/// store). Commands that only look (`must_exist`) refuse to create a database that is not there.
///
/// # Errors
/// A [`ConfigProblem`] for a bus this build cannot open; the bus's own error otherwise.
pub fn open(settings: &Settings, must_exist: bool) -> anyhow::Result<SqliteBus> {
    let bus = &settings.config.message_bus;
    if bus.backend != MessageBusBackend::Embedded {
        return Err(ConfigProblem(format!(
            "message_bus.backend {:?} is not supported by this build yet; use \"embedded\"",
            bus.backend
        ))
        .into());
    }
    let path = &settings.store.sqlite_path;
    if must_exist && !path.exists() {
        anyhow::bail!(
            "no database at {}: nothing has been published yet (or --config points elsewhere)",
            path.display()
        );
    }
    SqliteBus::open_default(path).with_context(|| format!("opening the bus in {}", path.display()))
}

/// Opens the bus `[message_bus] backend` names (embedded, NATS or Redis) for `bus stats` and
/// `dlq`; see [`crate::bus_backend::open`].
///
/// # Errors
/// Configuration errors and a broker that cannot be reached.
pub async fn open_configured(
    settings: &Settings,
    must_exist: bool,
) -> anyhow::Result<crate::bus_backend::AnyBus> {
    crate::bus_backend::open(settings, must_exist).await
}

/// The retry policy and topic map `[message_bus]` configures: what consumers subscribe with
/// and what the outbox relay publishes by.
///
/// # Errors
/// A [`ConfigProblem`] for a section the bus cannot use (loading already rejects those).
pub fn policy(settings: &Settings) -> anyhow::Result<BusPolicy> {
    settings
        .config
        .message_bus
        .bus_policy()
        .map_err(|error| ConfigProblem(error.to_string()).into())
}

/// Runs a bus command.
///
/// # Errors
/// Configuration and bus errors.
pub async fn run(command: BusCommand, global: &GlobalOptions) -> anyhow::Result<()> {
    let settings = settings::load(global.config.as_deref())?;
    let bus = open_configured(&settings, true).await?;
    let policy = policy(&settings)?;
    let mut out = Output::new(global.json);
    match command {
        BusCommand::Stats => {
            let stats = bus.stats().await?;
            if out.is_json() {
                out.json_document(&stats)?;
                return out.flush();
            }
            if stats.is_empty() {
                out.line("no topics yet")?;
                return out.flush();
            }
            let mut rows = vec![
                [
                    "TOPIC",
                    "GROUP",
                    "MESSAGES",
                    "DEPTH",
                    "IN FLIGHT",
                    "RETRYING",
                    "DEAD",
                ]
                .map(str::to_owned)
                .to_vec(),
            ];
            for row in &stats {
                rows.push(vec![
                    row.topic.clone(),
                    row.group.clone().unwrap_or_else(|| "-".to_owned()),
                    thousands(row.messages),
                    thousands(row.depth),
                    thousands(row.in_flight),
                    thousands(row.retrying),
                    thousands(row.dead_letters),
                ]);
            }
            let columns = Columns::fitting(&rows);
            for row in &rows {
                out.line(columns.row(row))?;
            }
            let retry = &policy.retry;
            out.line(format!(
                "\nretry policy ([message_bus.retry]): {} attempts, {:?} x{} up to {:?}{}, then the dead-letter queue",
                retry.max_attempts,
                retry.base,
                retry.factor,
                retry.cap,
                if retry.jitter { ", full jitter" } else { "" },
            ))?;
            out.flush()
        }
    }
}
