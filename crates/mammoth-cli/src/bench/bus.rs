//! `mammoth bench bus`: the embedded bus end to end and the outbox relay, beside the raw
//! append rate of the same run. The worker subscribes with `[message_bus.retry]` and the relay
//! publishes by `[message_bus.topics]` of the configuration, as `mammoth serve` would.
//!
//! With `[message_bus] backend` "nats" or "redis" it runs that driver's benchmark
//! ([`mammoth_nats::bench`], [`mammoth_redis::bench`]) against the configured broker instead:
//! raw publishes, bus publish, relay and consume, each beside the raw rate of the same run.
//!
//! With the embedded bus beside a PostgreSQL or MySQL store it runs
//! [`mammoth_bench::bench_bus_sql`] on that server, in a schema (database) of its own per run,
//! `<configured>_bench_<random>`, dropped afterwards: single and batch publishes, the relay
//! and consume, each beside raw SQL of the same work in the same run.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use mammoth_bench::{BusBenchOptions, BusRun, SqlBusBenchOptions, SqlBusDatabase, SqlBusRun};
use mammoth_config::{EventStoreBackend, MessageBusBackend};
use serde_json::Value;

use super::{check_seconds, filesystem_of};
use crate::bus_backend::{nats_options, redacted};
use crate::cli::GlobalOptions;
use crate::exit::{ConfigProblem, usage_error};
use crate::output::{Columns, Output, thousands};
use crate::settings::Settings;
use crate::{bus, settings};

/// Messages each part of a broker benchmark moves per run, by default and with --quick.
const BROKER_MESSAGES: usize = 50_000;
const BROKER_MESSAGES_QUICK: usize = 5_000;

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

    /// A quick check of a few seconds: one run, 0.5 s per part, 20,000 relayed events (on a
    /// broker: one run of 5,000 messages).
    #[arg(long)]
    pub quick: bool,

    /// On a broker backend (nats, redis), or the embedded bus in PostgreSQL/MySQL: messages
    /// each part moves per run (there: the batch, relay and consume parts). Default: 50,000,
    /// or 5,000 with --quick.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub messages: Option<u64>,

    /// Directory for the temporary database files (default: the system's temp directory).
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
}

/// Runs `bench bus`.
///
/// # Errors
/// Bad flags (exit 2) or a failed benchmark.
pub async fn run(args: BusArgs, global: &GlobalOptions) -> anyhow::Result<()> {
    let settings = settings::load(global.config.as_deref())?;
    if settings.config.message_bus.backend != MessageBusBackend::Embedded {
        return run_broker(args, global, &settings).await;
    }
    match settings.store.backend {
        EventStoreBackend::Postgres => {
            return run_sql(args, global, &settings, SqlBusDatabase::Postgres).await;
        }
        EventStoreBackend::Mysql => {
            return run_sql(args, global, &settings, SqlBusDatabase::Mysql).await;
        }
        EventStoreBackend::Sqlite | EventStoreBackend::Memory => {}
    }
    if args.messages.is_some() {
        usage_error!(
            "--messages applies to a broker backend (nats, redis) or the bus in PostgreSQL/MySQL; the embedded bus in SQLite runs for --seconds"
        );
    }
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
    let policy = bus::policy(&settings)?;
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

/// `bench bus` on the embedded bus in the configured PostgreSQL or MySQL server, never in the
/// configured schema or database itself: each run makes its own beside it and drops it.
async fn run_sql(
    args: BusArgs,
    global: &GlobalOptions,
    settings: &Settings,
    database: SqlBusDatabase,
) -> anyhow::Result<()> {
    if args.path.is_some() {
        usage_error!(
            "--path applies to the embedded bus in SQLite; in {} each run uses a schema of its own beside the configured one",
            database.name()
        );
    }
    let config = &settings.store.event_store;
    let (url, base_name) = match database {
        SqlBusDatabase::Postgres => (
            config.connection_url()?.expose().clone(),
            mammoth_postgres::PgOptions::from_config(config).schema,
        ),
        SqlBusDatabase::Mysql => {
            let url = crate::store::mysql_url(&settings.store)?;
            let from_url = mysql_async::Opts::from_url(&url)
                .ok()
                .and_then(|opts| opts.db_name().map(str::to_owned));
            let base = mammoth_mysql::MysqlOptions::from_config(config)
                .database
                .or(from_url)
                .unwrap_or_else(|| "mammoth".to_owned());
            (url, base)
        }
    };
    let mut options = SqlBusBenchOptions::new(database, url.clone(), base_name);
    if args.quick {
        options = options.quick();
    }
    if let Some(seconds) = args.seconds {
        check_seconds(seconds)?;
        options.duration = Duration::from_secs_f64(seconds);
    }
    if let Some(runs) = args.runs {
        options.runs = usize::from(runs);
    }
    if let Some(messages) = args.messages {
        options.messages = messages;
    }
    options.topics = Some(bus::policy(settings)?.topics);
    let result = mammoth_bench::bench_bus_sql(&options)
        .await
        .map_err(|error| anyhow::anyhow!("{error} ({} at {})", database.name(), redacted(&url)))?;
    let mut out = Output::new(global.json);
    if out.is_json() {
        out.json_document(&serde_json::json!({
            "benchmark": "bus",
            "backend": "embedded",
            "database": result.backend,
            "url": redacted(&url),
            "publishers": options.publishers,
            "seconds": options.duration.as_secs_f64(),
            "messages": options.messages,
            "batch": mammoth_bench::SQL_BUS_BATCH,
            "scratch": result.scratch,
            "relay_topics": result.relay_topics,
            "runs": result.runs,
            "median": result.median,
        }))?;
        return out.flush();
    }
    let rate = |value: f64| thousands(value.round() as u64);
    let row = |name: String, pick: fn(&SqlBusRun) -> f64, ratio: Option<fn(&SqlBusRun) -> f64>| {
        let mut cells = vec![
            name,
            rate(pick(&result.median)),
            ratio.map_or_else(String::new, |ratio| {
                format!("{:.2}x", ratio(&result.median))
            }),
        ];
        cells.extend(result.runs.iter().map(|run| rate(pick(run))));
        cells
    };
    let mut header = vec!["".to_owned(), "MEDIAN".to_owned(), "x RAW".to_owned()];
    header.extend((1..=result.runs.len()).map(|n| format!("RUN {n}")));
    let tasks = options.publishers;
    let batch = mammoth_bench::SQL_BUS_BATCH;
    let rows = vec![
        header,
        row(
            format!("raw 1-row INSERT commits/s ({tasks} tasks)"),
            |r| r.raw_commits_per_sec,
            None,
        ),
        row(
            format!("bus publish msgs/s ({tasks} tasks, 1 per publish)"),
            |r| r.publish_per_sec,
            Some(|r| r.publish_ratio),
        ),
        row(
            format!("raw {batch}-row INSERTs rows/s"),
            |r| r.raw_batch_per_sec,
            None,
        ),
        row(
            format!("bus publish msgs/s (batches of {batch})"),
            |r| r.publish_batch_per_sec,
            Some(|r| r.publish_batch_ratio),
        ),
        row(
            "relay store->bus events/s".to_owned(),
            |r| r.relay_per_sec,
            Some(|r| r.relay_ratio),
        ),
        row(
            format!("raw {batch}-row reads + cursor commit rows/s"),
            |r| r.raw_read_per_sec,
            None,
        ),
        row(
            format!("consume + ack msgs/s (up to {batch})"),
            |r| r.consume_per_sec,
            Some(|r| r.consume_ratio),
        ),
    ];
    let columns = Columns::fitting(&rows);
    for row in &rows {
        out.line(columns.row(row))?;
    }
    out.line(format!(
        "\nembedded bus in {} at {}: each run in a {} of its own ({}), dropped afterwards; publishes for {} s per part; {} messages per batch part; the relay's x RAW is against the raw {batch}-row INSERTs; relay topics {} ([message_bus.topics])",
        result.backend,
        redacted(&url),
        match database {
            SqlBusDatabase::Postgres => "schema",
            SqlBusDatabase::Mysql => "database",
        },
        result.scratch.join(", "),
        options.duration.as_secs_f64(),
        thousands(options.messages),
        result.relay_topics.join(", ")
    ))?;
    out.flush()
}

/// `bench bus` on the configured broker: the driver's benchmark against `[message_bus] url`,
/// each run on its own stream or key prefix (under the configured ones), deleted afterwards.
async fn run_broker(
    args: BusArgs,
    global: &GlobalOptions,
    settings: &Settings,
) -> anyhow::Result<()> {
    if args.seconds.is_some() || args.path.is_some() {
        usage_error!(
            "--seconds and --path apply to the embedded bus; on a broker the benchmark moves --messages N per part (default {BROKER_MESSAGES})"
        );
    }
    let config = &settings.config.message_bus;
    let runs = args
        .runs
        .map_or(if args.quick { 1 } else { 3 }, usize::from);
    let messages = match args.messages {
        Some(n) => usize::try_from(n)?,
        None if args.quick => BROKER_MESSAGES_QUICK,
        None => BROKER_MESSAGES,
    };
    let url = config.broker_url().ok_or_else(|| {
        ConfigProblem("message_bus: a broker backend needs url (or host and port)".to_owned())
    })?;
    let (report, target) = match config.backend {
        MessageBusBackend::NatsJetstream => {
            let options = mammoth_nats::bench::BrokerBenchOptions {
                messages,
                runs,
                ..Default::default()
            };
            let report = mammoth_nats::bench::run(&url, &nats_options(config), &options)
                .await
                .map_err(|error| anyhow::anyhow!("{error} (nats at {})", redacted(&url)))?;
            (serde_json::to_value(&report)?, report.relay_target)
        }
        MessageBusBackend::Redis => {
            let url = crate::bus_backend::redis_url(url.clone(), config);
            let base = mammoth_redis::RedisBusOptions {
                key_prefix: config.queue_prefix.clone(),
                ..Default::default()
            };
            let options = mammoth_redis::bench::BrokerBenchOptions { messages, runs };
            let report = mammoth_redis::bench::run(&url, &base, &options)
                .await
                .map_err(|error| anyhow::anyhow!("{error} (redis at {})", redacted(&url)))?;
            (serde_json::to_value(&report)?, report.relay_target)
        }
        MessageBusBackend::Embedded => {
            anyhow::bail!("bench bus: the embedded bus is measured by the embedded benchmark")
        }
    };
    let mut out = Output::new(global.json);
    if out.is_json() {
        out.json_document(&serde_json::json!({
            "benchmark": "bus",
            "backend": report["backend"],
            "url": redacted(&url),
            "messages": messages,
            "relay_target": target,
            "runs": report["runs"],
            "median": report["median"],
        }))?;
        return out.flush();
    }
    let runs = report["runs"].as_array().cloned().unwrap_or_default();
    let median = &report["median"];
    let number = |run: &Value, field: &str| run[field].as_f64().unwrap_or(0.0);
    let mut header = vec![
        "".to_owned(),
        "MEDIAN".to_owned(),
        "x RAW".to_owned(),
        "TARGET".to_owned(),
    ];
    header.extend((1..=runs.len()).map(|n| format!("RUN {n}")));
    let row = |name: &str, rate: &str, ratio: Option<&str>, target: &str| {
        let mut cells = vec![
            name.to_owned(),
            thousands(number(median, rate).round() as u64),
            ratio.map_or_else(String::new, |ratio| {
                format!("{:.2}x", number(median, ratio))
            }),
            target.to_owned(),
        ];
        cells.extend(
            runs.iter()
                .map(|run| thousands(number(run, rate).round() as u64)),
        );
        cells
    };
    let backend = report["backend"].as_str().unwrap_or_default();
    let raw_name = if backend == "nats" {
        "raw JetStream publish msgs/s"
    } else {
        "raw pipelined XADD msgs/s"
    };
    let relay_target = format!(">= {target:.1}x");
    let rows = vec![
        header,
        row(raw_name, "raw_per_sec", None, ""),
        row(
            "bus publish msgs/s",
            "publish_per_sec",
            Some("publish_ratio"),
            "",
        ),
        row(
            "relay store->bus msgs/s",
            "relay_per_sec",
            Some("relay_ratio"),
            &relay_target,
        ),
        row(
            "consume + ack msgs/s",
            "consume_per_sec",
            Some("consume_ratio"),
            "",
        ),
    ];
    let columns = Columns::fitting(&rows);
    for row in &rows {
        out.line(columns.row(row))?;
    }
    out.line(format!(
        "\n{backend} at {}: {} messages per part per run, batches of 512; the relay reads a SQLite store filled beforehand; each run on its own stream or key prefix, deleted afterwards",
        redacted(&url),
        thousands(messages as u64)
    ))?;
    out.flush()
}
