//! `mammoth bench bus`: the embedded bus end to end and the outbox relay, beside the raw
//! append rate of the same run. The worker subscribes with `[message_bus.retry]` and the relay
//! publishes by `[message_bus.topics]` of the configuration, as `mammoth serve` would.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use mammoth_bench::{BusBenchOptions, BusRun};

use super::{check_seconds, filesystem_of};
use crate::cli::GlobalOptions;
use crate::output::{Columns, Output, thousands};
use crate::{bus, settings};

/// Arguments of `bench bus`.
#[derive(Debug, Args)]
pub struct BusArgs {
    /// Seconds the raw appends and the bus publishers each run. Default: 3, or 0.5 with
    /// --quick.
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,

    /// How many times the whole benchmark runs; the report gives medians. Default: 3, or 1
    /// with --quick.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=100))]
    pub runs: Option<u16>,

    /// A quick check of a few seconds: one run, 0.5 s per part, 20,000 relayed events.
    #[arg(long)]
    pub quick: bool,

    /// Directory for the temporary database files (default: the system's temp directory).
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
}

/// Runs `bench bus`.
///
/// # Errors
/// Bad flags (exit 2) or a failed benchmark.
pub async fn run(args: BusArgs, global: &GlobalOptions) -> anyhow::Result<()> {
    let mut options = if args.quick {
        BusBenchOptions::quick()
    } else {
        BusBenchOptions::default()
    };
    if let Some(seconds) = args.seconds {
        check_seconds(seconds)?;
        options.duration = Duration::from_secs_f64(seconds);
    }
    if let Some(runs) = args.runs {
        options.runs = usize::from(runs);
    }
    options.dir = args.path;
    let policy = bus::policy(&settings::load(global.config.as_deref())?)?;
    options.retry = policy.retry;
    options.topics = Some(policy.topics);
    let dir = options.dir.clone().unwrap_or_else(std::env::temp_dir);
    let filesystem = filesystem_of(&dir);
    let result = mammoth_bench::bench_bus(&options).await?;
    let mut out = Output::new(global.json);
    if out.is_json() {
        out.json_document(&serde_json::json!({
            "benchmark": "bus",
            "publishers": options.publishers,
            "seconds": options.duration.as_secs_f64(),
            "relay_events": options.relay_events,
            "filesystem": filesystem,
            "retry": options.retry,
            "relay_topics": result.relay_topics,
            "runs": result.runs,
            "median": result.median,
        }))?;
        return out.flush();
    }
    let rate = |value: f64| thousands(value.round() as u64);
    let row = |name: &str, pick: &dyn Fn(&BusRun) -> String| {
        let mut cells = vec![name.to_owned(), pick(&result.median)];
        cells.extend(result.runs.iter().map(pick));
        cells
    };
    let mut header = vec!["".to_owned(), "MEDIAN".to_owned()];
    header.extend((1..=result.runs.len()).map(|n| format!("RUN {n}")));
    let rows = vec![
        header,
        row("raw appends/s (store)", &|r| rate(r.raw_appends_per_sec)),
        row("bus publish->handler->ack msgs/s", &|r| {
            rate(r.bus_messages_per_sec)
        }),
        row("bus latency p50 (us)", &|r| thousands(r.bus_p50_us)),
        row("bus latency p99 (us)", &|r| thousands(r.bus_p99_us)),
        row("relay store->bus events/s", &|r| {
            rate(r.relay_events_per_sec)
        }),
    ];
    let columns = Columns::fitting(&rows);
    for row in &rows {
        out.line(columns.row(row))?;
    }
    out.line(format!(
        "\n{} publishers, one message per publish (each durable before it returns; concurrent publishes share an fsync), one worker acking in batches of up to 256; relay of {} events in batches of 512",
        options.publishers,
        thousands(options.relay_events)
    ))?;
    let retry = &options.retry;
    out.line(format!(
        "configured: retry {} attempts, {:?} x{} up to {:?} ([message_bus.retry]); relay topics {} ([message_bus.topics])",
        retry.max_attempts,
        retry.base,
        retry.factor,
        retry.cap,
        result.relay_topics.join(", ")
    ))?;
    out.flush()
}
