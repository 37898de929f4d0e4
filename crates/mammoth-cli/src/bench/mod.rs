//! `mammoth bench ...`: measurements on this machine, with a progress bar on stderr and a
//! table (or JSON lines) on stdout. The harness is `mammoth-bench`; these modules parse the
//! flags, draw progress and print results. `store` measures the event store beside raw
//! SQLite, `commands` the CQRS layer beside raw appends, `projections` the OrderProjection
//! beside the raw append and scan rates.

mod bar;
mod bus;
mod commands;
mod projections;
mod store;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use mammoth_sqlite::Synchronous;

use crate::cli::GlobalOptions;
use crate::exit::usage_error;
use crate::output::Output;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Measure the embedded SQLite store beside raw SQLite, in the same run.
    ///
    /// Cases: (a) sequential one-event appends; (b) 64 concurrent tasks appending one-event
    /// batches to their own streams; (c) 100-event appends; (d) reading the whole global log;
    /// (e) latency from an append to a live subscriber (p50, p99); (f) peak resident memory of
    /// a fresh process reading the whole log. Each case runs on fresh files in a temporary
    /// directory, and its raw side (plain rusqlite on the same schema, same rows, same
    /// synchronous setting) runs right after it.
    #[command(
        after_long_help = "Examples:\n  mammoth bench store                          # about a minute and a half\n  mammoth bench store --seconds 2              # a quick check of every case\n  mammoth bench store --cases b,e --seconds 10\n  mammoth bench store --synchronous normal --json > bench.jsonl\n\nPut --path on the disk you want to measure: a RAM disk (tmpfs) measures memory."
    )]
    Store(store::StoreArgs),

    /// Measure commands beside raw appends in the same run, and loads with and without a
    /// snapshot.
    ///
    /// Throughput: the same counter command (load, decide, encode, append with an expected
    /// version; Tracing and Idempotency middleware) with 1 and 64 concurrent callers on their
    /// own aggregates and with 64 callers on 16 shared aggregates (conflicts retried), each
    /// beside raw appends of the same events with the same callers. Target: 64 callers reach
    /// at least 0.5x the raw rate. Load: a 10,000-event aggregate loaded without and with a
    /// snapshot. Target: at least 20x faster with one. Every case runs on a fresh SQLite
    /// file; the whole benchmark repeats --runs times and the report gives medians.
    #[command(
        after_long_help = "Examples:\n  mammoth bench commands                       # 3 runs of 3 s per case: about a minute\n  mammoth bench commands --quick               # one short run: a few seconds\n  mammoth bench commands --cases load --runs 5\n  mammoth bench commands --seconds 1 --json > commands.jsonl\n\nPut --path on the disk you want to measure: a RAM disk (tmpfs) measures memory."
    )]
    Commands(commands::CommandsArgs),

    /// Reads a store's whole log and prints this process's peak memory as JSON (used by
    /// `bench store` to measure case (f) in a fresh process).
    #[command(hide = true)]
    ReadLog(ReadLogArgs),

    /// Measure the configured message bus. Embedded: end to end (publish -> handler -> ack:
    /// throughput and p50/p99 latency) and the outbox relay (store -> bus), beside the raw
    /// append rate of the same run, each part on a fresh SQLite file. Embedded beside a
    /// PostgreSQL or MySQL store (`[event_store] backend`): publish (16 tasks, and batches of
    /// --messages), relay and consume + ack, each beside raw SQL of the same work, in a scratch
    /// schema/database dropped afterwards. NATS or Redis (`[message_bus] backend`): raw publish
    /// (async with acks in flight / pipelined XADD), bus publish, relay and consume of
    /// --messages messages, each beside raw, on a fresh stream or key prefix deleted
    /// afterwards. The whole benchmark repeats --runs times and the report gives medians.
    #[command(
        after_long_help = "Examples:\n  mammoth bench bus                            # 3 runs: about half a minute\n  mammoth bench bus --quick                    # one short run\n  mammoth bench bus --runs 5 --json > bus.json\n  mammoth --config pg.tsk bench bus --runs 3      # the embedded bus in PostgreSQL\n  mammoth --config nats.tsk bench bus --messages 50000"
    )]
    Bus(bus::BusArgs),

    /// Measure the seed's OrderProjection on SQLite: catch-up from zero beside the raw append
    /// rate (64 concurrent appenders filling the log) and the raw scan rate (the log read
    /// through the store, nothing applied) of the same run, and live append-to-visible latency
    /// (p50, p99). Targets: catch-up >= 200,000 events/s; live p99 < 5 ms. Every run uses fresh
    /// files; the whole benchmark repeats --runs times and the report gives medians.
    #[command(
        after_long_help = "Examples:\n  mammoth bench projections                    # 3 runs of 300,000 events\n  mammoth bench projections --quick            # one short run\n  mammoth bench projections --seconds 5 --runs 5\n  mammoth bench projections --events 1000000 --json > projections.jsonl\n\nPut --path on the disk you want to measure: a RAM disk (tmpfs) measures memory."
    )]
    Projections(projections::ProjectionsArgs),
}

/// Durability, as the flag spells it.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SynchronousArg {
    /// fsync every commit (the store's default).
    Full,
    /// fsync at WAL checkpoints only.
    Normal,
}

impl From<SynchronousArg> for Synchronous {
    fn from(value: SynchronousArg) -> Self {
        match value {
            SynchronousArg::Full => Synchronous::Full,
            SynchronousArg::Normal => Synchronous::Normal,
        }
    }
}

/// Arguments of the hidden `bench read-log`.
#[derive(Debug, Args)]
pub struct ReadLogArgs {
    /// The database file.
    pub path: PathBuf,
    /// Scan with plain SQL instead of reading through the store.
    #[arg(long)]
    pub raw: bool,
}

/// Runs a bench command.
///
/// # Errors
/// Bad flags (exit 2) or a failed benchmark.
pub async fn run(command: BenchCommand, global: &GlobalOptions) -> anyhow::Result<()> {
    match command {
        BenchCommand::Store(args) => store::run(args, global).await,
        BenchCommand::Commands(args) => commands::run(args, global).await,
        BenchCommand::Bus(args) => bus::run(args, global).await,
        BenchCommand::Projections(args) => projections::run(args, global).await,
        BenchCommand::ReadLog(args) => {
            let report = mammoth_bench::read_log(&args.path, args.raw).await?;
            let mut out = Output::new(true);
            out.json_line(&report)?;
            out.flush()
        }
    }
}

/// Refuses a `--seconds` that is not a sensible duration.
fn check_seconds(seconds: f64) -> anyhow::Result<()> {
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3_600.0) {
        usage_error!("--seconds must be more than 0 and at most 3600, got {seconds}");
    }
    Ok(())
}

/// The file system type of `dir`, warning on stderr when it is a RAM disk (where fsync costs
/// nothing, so durable writes measure memory rather than a disk).
fn filesystem_of(dir: &Path) -> Option<String> {
    let fs_type = mammoth_bench::filesystem_type(dir);
    if matches!(fs_type.as_deref(), Some("tmpfs" | "ramfs")) {
        eprintln!(
            "warning: {} is on a RAM disk ({}); fsync costs nothing there, so the numbers do not describe a disk. Use --path DIR on a disk.",
            dir.display(),
            fs_type.as_deref().unwrap_or("?")
        );
    }
    fs_type
}
