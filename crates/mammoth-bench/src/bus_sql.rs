//! `mammoth bench bus` on the embedded bus in PostgreSQL or MySQL: each part beside a raw
//! baseline of the same work measured in the same run on the same database.
//!
//! - publish: `publishers` tasks each publishing one message at a time for the duration,
//!   beside raw one-row `INSERT` commits from the same number of tasks;
//! - publish batches: `messages` messages in batches of 512, beside raw multi-row `INSERT`s
//!   of the same payloads, one statement (one commit) per batch;
//! - relay: the outbox relay from that store's events (appended beforehand, not timed) to the
//!   bus, publishing and checkpointing in one transaction per batch, beside the same raw
//!   multi-row `INSERT`s (what the relay's writes cost at the least);
//! - consume: one consumer receiving 512 at a time and acking everything the batch part
//!   published, beside raw page reads of the same number of rows, each followed by a commit
//!   of the reader's cursor.
//!
//! Every run creates a schema (PostgreSQL) or database (MySQL) of its own, named
//! `<configured>_bench_<random>`, and drops it afterwards, whether the run succeeded or not.
//! The raw tables live in it beside the bus's.

mod mysql;
mod postgres;

use std::future::Future;
use std::time::{Duration, Instant};

use mammoth_core::bus::{
    BusConsumer as _, ConsumerGroup, MessageBus, OutgoingMessage, RelayTarget, SubscribeOptions,
    Topic, TopicMap,
};
use mammoth_core::{EventStore, now_micros};
use serde::Serialize;

use crate::BenchError;
use crate::bus::{fail, fill_log, relay_on};

/// Messages per batch in the batch, relay and consume parts, as the relay publishes them.
pub const SQL_BUS_BATCH: usize = 512;

/// The payload every message and raw row carries.
const PAYLOAD: &[u8] = br#"{"order":"order-1","total":30,"currency":"EUR","lines":3}"#;

/// Which database the embedded bus runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SqlBusDatabase {
    /// PostgreSQL: a schema per run.
    Postgres,
    /// MySQL/MariaDB: a database per run.
    Mysql,
}

impl SqlBusDatabase {
    /// `postgres` or `mysql`, as `[event_store] backend` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
        }
    }
}

/// How the SQL bus benchmark runs.
#[derive(Clone, Debug)]
pub struct SqlBusBenchOptions {
    /// The database the bus runs in.
    pub database: SqlBusDatabase,
    /// The server's connection URL (credentials included; never printed by this crate).
    pub url: String,
    /// The configured schema or database; each run's own is `<base_name>_bench_<random>`.
    pub base_name: String,
    /// How long the single-message parts (raw commits and bus publishes) each run.
    pub duration: Duration,
    /// How many times the whole benchmark runs (the report gives medians).
    pub runs: usize,
    /// Concurrent publishers (and raw committers).
    pub publishers: usize,
    /// Messages the batch, relay and consume parts each move per run.
    pub messages: u64,
    /// Which topics the relay publishes the events to; `None`: every event to `events`.
    pub topics: Option<TopicMap>,
}

impl SqlBusBenchOptions {
    /// 3 runs of 3 s per timed part, 16 publishers, 50,000 messages per batch part.
    pub fn new(database: SqlBusDatabase, url: String, base_name: String) -> Self {
        Self {
            database,
            url,
            base_name,
            duration: Duration::from_secs(3),
            runs: 3,
            publishers: 16,
            messages: 50_000,
            topics: None,
        }
    }

    /// One short run: 0.5 s per timed part, 5,000 messages per batch part.
    pub fn quick(mut self) -> Self {
        self.duration = Duration::from_millis(500);
        self.runs = 1;
        self.messages = 5_000;
        self
    }
}

/// One run's rates in messages (or rows, or events) per second, and each bus part's ratio
/// to its raw baseline.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct SqlBusRun {
    /// Raw one-row `INSERT` commits from `publishers` tasks.
    pub raw_commits_per_sec: f64,
    /// Bus publishes of one message from `publishers` tasks.
    pub publish_per_sec: f64,
    /// `publish_per_sec / raw_commits_per_sec`.
    pub publish_ratio: f64,
    /// Raw multi-row `INSERT`s of 512 rows, one commit each.
    pub raw_batch_per_sec: f64,
    /// Bus publishes of batches of 512.
    pub publish_batch_per_sec: f64,
    /// `publish_batch_per_sec / raw_batch_per_sec`.
    pub publish_batch_ratio: f64,
    /// The outbox relay, this store's events -> this bus.
    pub relay_per_sec: f64,
    /// `relay_per_sec / raw_batch_per_sec`.
    pub relay_ratio: f64,
    /// Raw reads of 512-row pages, each followed by a cursor commit.
    pub raw_read_per_sec: f64,
    /// One consumer receiving up to 512 and acking them.
    pub consume_per_sec: f64,
    /// `consume_per_sec / raw_read_per_sec`.
    pub consume_ratio: f64,
}

impl SqlBusRun {
    fn new(rates: [f64; 7]) -> Self {
        let [
            raw_commits,
            publish,
            raw_batch,
            publish_batch,
            relay,
            raw_read,
            consume,
        ] = rates;
        let ratio = |value: f64, raw: f64| if raw > 0.0 { value / raw } else { 0.0 };
        Self {
            raw_commits_per_sec: raw_commits,
            publish_per_sec: publish,
            publish_ratio: ratio(publish, raw_commits),
            raw_batch_per_sec: raw_batch,
            publish_batch_per_sec: publish_batch,
            publish_batch_ratio: ratio(publish_batch, raw_batch),
            relay_per_sec: relay,
            relay_ratio: ratio(relay, raw_batch),
            raw_read_per_sec: raw_read,
            consume_per_sec: consume,
            consume_ratio: ratio(consume, raw_read),
        }
    }

    fn rates(&self) -> [f64; 7] {
        [
            self.raw_commits_per_sec,
            self.publish_per_sec,
            self.raw_batch_per_sec,
            self.publish_batch_per_sec,
            self.relay_per_sec,
            self.raw_read_per_sec,
            self.consume_per_sec,
        ]
    }
}

/// Every run and the medians.
#[derive(Clone, Debug, Serialize)]
pub struct SqlBusBenchResult {
    /// `postgres` or `mysql`.
    pub backend: &'static str,
    /// The schemas or databases the runs created (and dropped), in order.
    pub scratch: Vec<String>,
    /// Each run.
    pub runs: Vec<SqlBusRun>,
    /// The median of each rate over the runs; the ratios are those of the median rates.
    pub median: SqlBusRun,
    /// The topics the relay published to (in the last run), by the configured topic map.
    pub relay_topics: Vec<String>,
}

/// One run's schema or database: the store and bus in it, and its raw tables.
trait Scratch: Clone + Send + Sync + 'static {
    type Store: EventStore + Clone + 'static;
    type Bus: MessageBus + RelayTarget + Clone + 'static;

    fn store(&self) -> &Self::Store;

    fn bus(&self) -> &Self::Bus;

    /// Inserts `rows` into the raw table with one statement, committed on its own.
    fn raw_insert(&self, rows: Vec<RawRow>) -> impl Future<Output = Result<(), BenchError>> + Send;

    /// Reads up to `limit` raw rows after `after` in order, then commits the cursor at the
    /// last one. Returns the rows read and the last `seq`.
    fn raw_read(
        &self,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = Result<(usize, i64), BenchError>> + Send;
}

/// One raw row: the columns of a bus message a plain table would keep.
struct RawRow {
    topic: &'static str,
    message_id: uuid::Uuid,
    payload: Vec<u8>,
    published_at: i64,
}

impl RawRow {
    fn new(topic: &'static str) -> Self {
        Self {
            topic,
            message_id: uuid::Uuid::now_v7(),
            payload: PAYLOAD.to_vec(),
            published_at: now_micros(),
        }
    }
}

/// Runs the benchmark `options.runs` times, each in a fresh schema or database dropped
/// afterwards.
///
/// # Errors
/// [`BenchError::Setup`] for options that cannot run, an unreachable server, a failed part,
/// or a scratch schema or database that could not be dropped (named, to drop by hand).
pub async fn bench_bus_sql(options: &SqlBusBenchOptions) -> Result<SqlBusBenchResult, BenchError> {
    if options.messages == 0 || options.publishers == 0 {
        return Err(BenchError::Setup(
            "bench bus: messages and publishers must be at least 1".to_owned(),
        ));
    }
    let mut runs = Vec::new();
    let mut scratch = Vec::new();
    let mut relay_topics = Vec::new();
    for _ in 0..options.runs.max(1) {
        let name = scratch_name(&options.base_name);
        let url = options.url.as_str();
        let result = match options.database {
            SqlBusDatabase::Postgres => postgres::run(url, &name, options).await,
            SqlBusDatabase::Mysql => mysql::run(url, &name, options).await,
        };
        let dropped = match options.database {
            SqlBusDatabase::Postgres => mammoth_postgres::drop_schema(url, &name).await,
            SqlBusDatabase::Mysql => mammoth_mysql::drop_database(url, &name).await,
        };
        let (run, topics) = result?;
        dropped.map_err(|error| {
            BenchError::Setup(format!(
                "bench bus: could not drop {} {name} after the run: {error}; drop it by hand",
                match options.database {
                    SqlBusDatabase::Postgres => "schema",
                    SqlBusDatabase::Mysql => "database",
                }
            ))
        })?;
        scratch.push(name);
        runs.push(run);
        relay_topics = topics;
    }
    let mut medians = [0.0; 7];
    for (index, median) in medians.iter_mut().enumerate() {
        let mut values: Vec<f64> = runs.iter().map(|run| run.rates()[index]).collect();
        values.sort_by(f64::total_cmp);
        *median = values[values.len() / 2];
    }
    Ok(SqlBusBenchResult {
        backend: options.database.name(),
        scratch,
        runs,
        median: SqlBusRun::new(medians),
        relay_topics,
    })
}

/// `<base>_bench_<8 hex digits>`, the base cut so the name fits both servers' 63-character
/// identifiers.
fn scratch_name(base: &str) -> String {
    let base: String = base.chars().take(48).collect();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{base}_bench_{}", &random[..8])
}

/// Every part, in order, on one scratch schema or database.
async fn one_run<S: Scratch>(
    scratch: &S,
    options: &SqlBusBenchOptions,
) -> Result<(SqlBusRun, Vec<String>), BenchError> {
    let raw_commits = concurrent(scratch, options, Part::RawCommits).await?;
    let publish = concurrent(scratch, options, Part::Publish).await?;
    let raw_batch = raw_batches(scratch, options.messages).await?;
    let publish_batch = bus_batches(scratch, options.messages).await?;
    fill_log(scratch.store(), options.messages).await?;
    let (relay, topics) = relay_on(scratch.store(), scratch.bus(), options.topics.as_ref()).await?;
    let raw_read = raw_reads(scratch, options.messages).await?;
    let consume = consume(scratch, options.messages).await?;
    let run = SqlBusRun::new([
        raw_commits,
        publish,
        raw_batch,
        publish_batch,
        relay,
        raw_read,
        consume,
    ]);
    Ok((run, topics))
}

#[derive(Clone, Copy)]
enum Part {
    RawCommits,
    Publish,
}

/// `publishers` tasks, each committing one row (or publishing one message) at a time for the
/// duration. Returns the rate.
async fn concurrent<S: Scratch>(
    scratch: &S,
    options: &SqlBusBenchOptions,
    part: Part,
) -> Result<f64, BenchError> {
    let topic = Topic::new("single").map_err(|e| fail("topic")(e.to_string()))?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..options.publishers {
        let (scratch, topic, duration) = (scratch.clone(), topic.clone(), options.duration);
        tasks.push(tokio::spawn(async move {
            let mut count = 0u64;
            while started.elapsed() < duration {
                match part {
                    Part::RawCommits => scratch.raw_insert(vec![RawRow::new("single")]).await?,
                    Part::Publish => {
                        scratch
                            .bus()
                            .publish(&topic, vec![OutgoingMessage::new(PAYLOAD.to_vec())])
                            .await
                            .map_err(|e| fail("publish")(e.to_string()))?;
                    }
                }
                count += 1;
            }
            Ok::<u64, BenchError>(count)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task
            .await
            .map_err(|e| fail("publisher task")(e.to_string()))??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// The sizes of the batches that make up `messages`.
fn batches(messages: u64) -> impl Iterator<Item = usize> {
    let batch = SQL_BUS_BATCH as u64;
    (0..messages.div_ceil(batch)).map(move |n| (messages - n * batch).min(batch) as usize)
}

/// `messages` raw rows in multi-row `INSERT`s of 512 (rows built beforehand).
async fn raw_batches<S: Scratch>(scratch: &S, messages: u64) -> Result<f64, BenchError> {
    let rows: Vec<Vec<RawRow>> = batches(messages)
        .map(|size| (0..size).map(|_| RawRow::new("batch")).collect())
        .collect();
    let started = Instant::now();
    for batch in rows {
        scratch.raw_insert(batch).await?;
    }
    Ok(messages as f64 / started.elapsed().as_secs_f64())
}

/// `messages` bus messages published in batches of 512 (built beforehand).
async fn bus_batches<S: Scratch>(scratch: &S, messages: u64) -> Result<f64, BenchError> {
    let topic = Topic::new("batch").map_err(|e| fail("topic")(e.to_string()))?;
    let batches: Vec<Vec<OutgoingMessage>> = batches(messages)
        .map(|size| {
            (0..size)
                .map(|_| OutgoingMessage::new(PAYLOAD.to_vec()))
                .collect()
        })
        .collect();
    let started = Instant::now();
    for batch in batches {
        scratch
            .bus()
            .publish(&topic, batch)
            .await
            .map_err(|e| fail("publish batch")(e.to_string()))?;
    }
    Ok(messages as f64 / started.elapsed().as_secs_f64())
}

/// `messages` raw rows read in pages of 512, committing the cursor after each.
async fn raw_reads<S: Scratch>(scratch: &S, messages: u64) -> Result<f64, BenchError> {
    let started = Instant::now();
    let (mut read, mut after) = (0u64, 0i64);
    while read < messages {
        let limit = (messages - read).min(SQL_BUS_BATCH as u64) as usize;
        let (rows, last) = scratch.raw_read(after, limit).await?;
        if rows == 0 {
            return Err(fail("raw read")(format!("found {read} of {messages} rows")));
        }
        read += rows as u64;
        after = last;
    }
    Ok(read as f64 / started.elapsed().as_secs_f64())
}

/// One consumer receives up to 512 at a time and acks them, until it has every message the
/// batch part published.
async fn consume<S: Scratch>(scratch: &S, messages: u64) -> Result<f64, BenchError> {
    let topic = Topic::new("batch").map_err(|e| fail("topic")(e.to_string()))?;
    let group = ConsumerGroup::new("bench").map_err(|e| fail("group")(e.to_string()))?;
    let consumer = scratch
        .bus()
        .subscribe(&topic, &group, SubscribeOptions::default())
        .await
        .map_err(|e| fail("subscribe")(e.to_string()))?;
    let started = Instant::now();
    let mut received = 0u64;
    while received < messages {
        let batch = consumer
            .receive(SQL_BUS_BATCH, Duration::from_millis(500))
            .await
            .map_err(|e| fail("receive")(e.to_string()))?;
        if batch.is_empty() {
            return Err(fail("consume")(format!(
                "stalled at {received} of {messages} messages"
            )));
        }
        received += batch.len() as u64;
        consumer
            .ack(&batch)
            .await
            .map_err(|e| fail("ack")(e.to_string()))?;
    }
    Ok(received as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_against_each_parts_own_baseline_and_zero_raw_gives_zero() {
        let run = SqlBusRun::new([100.0, 50.0, 1000.0, 800.0, 600.0, 2000.0, 500.0]);
        assert_eq!(run.publish_ratio, 0.5);
        assert_eq!(run.publish_batch_ratio, 0.8);
        assert_eq!(run.relay_ratio, 0.6);
        assert_eq!(run.consume_ratio, 0.25);
        assert_eq!(SqlBusRun::new([0.0; 7]).publish_ratio, 0.0);
    }

    #[test]
    fn batches_cover_every_message_in_pieces_of_at_most_512() {
        assert_eq!(batches(1025).collect::<Vec<_>>(), vec![512, 512, 1]);
        assert_eq!(batches(512).collect::<Vec<_>>(), vec![512]);
        assert_eq!(batches(0).count(), 0);
    }

    #[test]
    fn scratch_names_fit_an_identifier_and_start_with_the_configured_name() {
        let name = scratch_name(&"m".repeat(80));
        assert!(name.len() <= 63, "{name}");
        assert!(
            name.starts_with("mmm") && name.contains("_bench_"),
            "{name}"
        );
        assert_ne!(scratch_name("mammoth"), scratch_name("mammoth"));
    }
}
