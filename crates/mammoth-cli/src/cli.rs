//! The command line as clap sees it: the global options and the top-level commands. Each
//! command's own arguments live beside its code, in its module.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{bench, bus, config, demo, dlq, events, projections, serve, store_cmd};

const AFTER_LONG_HELP: &str = "\
Configuration:
  The configuration file is --config PATH, else $MAMMOTH_CONFIG, else ./mammoth.tsk if it
  exists, else built-in defaults (embedded SQLite in ./mammoth-data/).

Logging:
  Logs go to stderr, filtered by RUST_LOG (default: warn), e.g. RUST_LOG=mammoth=debug.

Exit codes:
  0  success
  1  runtime failure (storage, I/O), or events --decode met events it could not decode
     (each is named on stderr and shown as stored; the listing goes on)
  2  usage or configuration error, or input the store rejected (nothing was written)
  3  conflict: the stream was not at the expected version (nothing was written)

Examples:
  mammoth events append order-42 --type OrderCreated --data '{\"total\": 30}'
  mammoth events read order-42
  mammoth events read order-42 --decode     # as the built-in app (examples/orders) reads it
  mammoth events tail --json
  mammoth --config prod.tsk events stats
  mammoth bench store --seconds 2
  mammoth bench commands --quick";

/// mammoth: an event store, message bus and saga toolkit. This binary inspects and operates a
/// mammoth store.
#[derive(Debug, Parser)]
#[command(name = "mammoth", version, after_long_help = AFTER_LONG_HELP)]
pub struct Cli {
    /// Options every command accepts.
    #[command(flatten)]
    pub global: GlobalOptions,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts, before or after the command name.
#[derive(Debug, Args)]
pub struct GlobalOptions {
    /// The configuration file (mammoth.tsk) to use.
    ///
    /// Without it: $MAMMOTH_CONFIG, else ./mammoth.tsk if it exists, else built-in defaults.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Print machine-readable JSON instead of tables: one JSON document, or one JSON object
    /// per line for commands that stream (events read/all/tail, bench store/commands).
    #[arg(long, global = true)]
    pub json: bool,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check and print the configuration.
    #[command(
        subcommand,
        after_long_help = "Examples:\n  mammoth config check\n  mammoth config check config/production.tsk --json"
    )]
    Config(config::ConfigCommand),

    /// Append, read, follow and count events.
    #[command(
        subcommand,
        after_long_help = "Examples:\n  mammoth events append order-42 --type OrderCreated --data '{\"total\": 30}'\n  mammoth events read order-42 --json\n  mammoth events read order-42 --decode\n  mammoth events all --type OrderCreated --limit 10\n  mammoth events tail\n  mammoth events stats"
    )]
    Events(events::EventsCommand),

    /// Measure the store beside raw SQLite, and commands beside raw appends, on this machine.
    #[command(
        subcommand,
        after_long_help = "Examples:\n  mammoth bench store --seconds 2\n  mammoth bench store --cases b,c --json\n  mammoth bench commands --quick\n  mammoth bench commands --runs 5 --json"
    )]
    Bench(bench::BenchCommand),

    /// Create or migrate the store's schema, and show its version, counts and size.
    #[command(
        subcommand,
        after_long_help = "Examples:\n  mammoth store init\n  mammoth store status\n  mammoth --config prod.tsk store status --json"
    )]
    Store(store_cmd::StoreCommand),

    /// List, show, replay and discard the message bus's dead letters.
    #[command(
        subcommand,
        after_long_help = "Examples:\n  mammoth dlq list\n  mammoth dlq show 3\n  mammoth dlq replay --group billing\n  mammoth dlq discard 3"
    )]
    Dlq(dlq::DlqCommand),

    /// Inspect the message bus: depth, in flight, retries and dead letters per topic.
    #[command(
        subcommand,
        after_long_help = "Examples:\n  mammoth bus stats\n  mammoth bus stats --json"
    )]
    Bus(bus::BusCommand),

    /// Operate the projections (read models): status, pause, resume, replay, rebuild, verify.
    #[command(
        subcommand,
        after_long_help = "Examples:\n  mammoth projections status\n  mammoth projections replay orders\n  mammoth projections rebuild orders --drop-old\n  mammoth projections verify orders --json"
    )]
    Projections(projections::ProjectionsCommand),

    /// Serve the HTTP API: event store, the built-in app's commands and queries, admin,
    /// /metrics, /health, /ready and /openapi.json; stop with Ctrl-C or SIGTERM.
    #[command(
        after_long_help = "Examples:\n  mammoth serve\n  mammoth serve --listen 127.0.0.1:0\n  curl -s localhost:8080/events?limit=5"
    )]
    Serve(serve::ServeArgs),

    /// Run the seed's order saga end to end on the embedded backends: stock, N concurrent
    /// orders, the saga, the inventory/payment/order services on the bus, the projection and
    /// the relay; a live progress bar, a summary, and invariant checks (exit 1 if one fails).
    #[command(
        after_long_help = "Examples:\n  mammoth demo\n  mammoth demo --orders 200 --payment-failure-rate 0.2 --poison 3\n  mammoth demo --reset --json\n  mammoth demo --data-dir /tmp/demo --payment-deadline 5s"
    )]
    Demo(demo::DemoArgs),

    /// List the sagas (from the saga index, caught up first) and show one saga's timeline.
    #[command(
        subcommand,
        after_long_help = "Examples:\n  mammoth sagas list\n  mammoth sagas list --type order --status compensated --json\n  mammoth sagas show order-42"
    )]
    Sagas(crate::sagas::SagasCommand),

    /// One screen: store head and events, projections and saga runners with their lag, sagas
    /// per type and status, bus depth and dead letters.
    #[command(after_long_help = "Examples:\n  mammoth status\n  mammoth status --json")]
    Status,
}
