//! Throughput of the Redis bus against the broker's own limit, medians of short runs (the
//! harness of `mammoth bench bus` on Redis and of the `redis_bus_bench` example):
//!
//! - raw: pipelined `XADD`s (512 per round trip) of messages shaped like the bus's, the most a
//!   client can push into one stream;
//! - bus publish: [`RedisBus`] `publish` of batches of 512 built beforehand (the relay's
//!   publish step alone: de-duplication and sequence numbers in one script per batch);
//! - relay: the outbox relay from a SQLite event store (events appended beforehand, not timed)
//!   to the bus: de-duplication, sequence numbers and the checkpoint, in one script per batch;
//!   beside it, the relay's reading side alone (store reads and message building, no bus);
//! - consume: one consumer of a group receiving and acking everything the relay published.
//!
//! Every run uses its own key prefix (under the base options' prefix) and deletes its keys
//! afterwards.

use std::time::{Duration, Instant};

use mammoth_core::bus::{
    BusConsumer, BusError, ConsumerGroup, MessageBus, OutgoingMessage, SubscribeOptions, Topic,
    TopicMap, event_message,
};
use mammoth_core::{EventFilter, EventStore, ExpectedVersion, NewEvent, StoreError, StreamId};
use mammoth_runtime::{Relay, RelayError};
use mammoth_sqlite::{SqliteEventStore, SqliteOptions, Synchronous};
use serde::Serialize;

use crate::{RedisBus, RedisBusOptions};

const BATCH: usize = 512;
const PAYLOAD: &[u8] = br#"{"order":"order-1","total":30,"currency":"EUR","lines":3}"#;

/// What a benchmark measures: how many messages per part, how many runs.
#[derive(Clone, Debug, Serialize)]
pub struct BrokerBenchOptions {
    /// Messages each part (raw, publish, relay, consume) moves per run.
    pub messages: usize,
    /// Runs; the report gives medians.
    pub runs: usize,
}

impl Default for BrokerBenchOptions {
    /// 50,000 messages, 3 runs.
    fn default() -> Self {
        Self {
            messages: 50_000,
            runs: 3,
        }
    }
}

/// The rates of one run (or their medians), in messages per second, and each beside raw.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct BrokerBenchRun {
    /// Raw pipelined `XADD`s, 512 per round trip.
    pub raw_per_sec: f64,
    /// `RedisBus::publish` of batches of 512.
    pub publish_per_sec: f64,
    /// The outbox relay, SQLite store -> bus.
    pub relay_per_sec: f64,
    /// One consumer receiving and acking everything.
    pub consume_per_sec: f64,
    /// The relay's reading side alone (store reads and message building, no bus): the
    /// ceiling the store puts on the relay.
    pub relay_read_per_sec: f64,
    /// `publish_per_sec / raw_per_sec`.
    pub publish_ratio: f64,
    /// `relay_per_sec / raw_per_sec` (target: at least 0.5).
    pub relay_ratio: f64,
    /// `consume_per_sec / raw_per_sec`.
    pub consume_ratio: f64,
}

impl BrokerBenchRun {
    fn new(raw: f64, publish: f64, relay: f64, consume: f64, relay_read: f64) -> Self {
        let ratio = |value: f64| if raw > 0.0 { value / raw } else { 0.0 };
        Self {
            raw_per_sec: raw,
            publish_per_sec: publish,
            relay_per_sec: relay,
            consume_per_sec: consume,
            relay_read_per_sec: relay_read,
            publish_ratio: ratio(publish),
            relay_ratio: ratio(relay),
            consume_ratio: ratio(consume),
        }
    }
}

/// Every run's rates and their medians (ratios of the median rates).
#[derive(Clone, Debug, Serialize)]
pub struct BrokerBenchReport {
    /// `"redis"`.
    pub backend: &'static str,
    /// The options the benchmark ran with.
    pub options: BrokerBenchOptions,
    /// The relay's target, as a fraction of raw: 0.5.
    pub relay_target: f64,
    /// Each run, in order.
    pub runs: Vec<BrokerBenchRun>,
    /// The median of each rate over the runs; the ratios are those of the medians.
    pub median: BrokerBenchRun,
}

/// Why a benchmark run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The bus refused an operation (connecting, publishing, subscribing).
    #[error("redis bench: {0}")]
    Bus(#[from] BusError),
    /// The SQLite event store the relay reads failed.
    #[error("redis bench: the relay's event store: {0}")]
    Store(#[from] StoreError),
    /// The relay failed.
    #[error("redis bench: relay: {0}")]
    Relay(#[from] RelayError),
    /// The temporary directory of the relay's store could not be created.
    #[error(
        "redis bench: temporary directory for the relay's store: {0} (set TMPDIR to a writable directory)"
    )]
    TempDir(#[source] std::io::Error),
    /// A raw Redis command (the baseline `XADD`s or the clean-up) failed.
    #[error("redis bench: raw {step}: {source} (is the server reachable at the configured url?)")]
    Raw {
        /// What was being done.
        step: &'static str,
        /// The client's error.
        #[source]
        source: redis::RedisError,
    },
    /// The consumer received nothing for a while before it had everything.
    #[error("redis bench: consume stalled at {received} of {expected} messages")]
    Stalled {
        /// Messages received.
        received: usize,
        /// Messages expected.
        expected: usize,
    },
    /// Options that cannot run: no messages or no runs.
    #[error("redis bench: {0} must be at least 1")]
    Invalid(&'static str),
}

/// Runs the benchmark `options.runs` times against the server at `url`. Each run uses the key
/// prefix `{base.key_prefix}bench:{uuid}:` and deletes its keys afterwards, whether the run
/// succeeded or not.
///
/// # Errors
/// [`BenchError`] for options that cannot run, an unreachable server or a failed step.
pub async fn run(
    url: &str,
    base: &RedisBusOptions,
    options: &BrokerBenchOptions,
) -> Result<BrokerBenchReport, BenchError> {
    if options.messages == 0 {
        return Err(BenchError::Invalid("messages"));
    }
    if options.runs == 0 {
        return Err(BenchError::Invalid("runs"));
    }
    let mut runs = Vec::with_capacity(options.runs);
    for _ in 0..options.runs {
        let prefix = format!(
            "{}bench:{}:",
            base.key_prefix,
            uuid::Uuid::new_v4().simple()
        );
        let result = one_run(url, &prefix, options.messages).await;
        cleanup(url, &prefix).await?;
        runs.push(result?);
    }
    let median = |pick: fn(&BrokerBenchRun) -> f64| median(runs.iter().map(pick).collect());
    let median = BrokerBenchRun::new(
        median(|r| r.raw_per_sec),
        median(|r| r.publish_per_sec),
        median(|r| r.relay_per_sec),
        median(|r| r.consume_per_sec),
        median(|r| r.relay_read_per_sec),
    );
    Ok(BrokerBenchReport {
        backend: "redis",
        options: options.clone(),
        relay_target: 0.5,
        runs,
        median,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(f64::EPSILON)
}

fn raw_error(step: &'static str) -> impl Fn(redis::RedisError) -> BenchError {
    move |source| BenchError::Raw { step, source }
}

async fn one_run(url: &str, prefix: &str, messages: usize) -> Result<BrokerBenchRun, BenchError> {
    // Raw: the same fields the bus stores, pipelined.
    let client = redis::Client::open(url).map_err(raw_error("connect"))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(raw_error("connect"))?;
    let raw_key = format!("{prefix}raw");
    let started = Instant::now();
    for chunk in 0..messages.div_ceil(BATCH) {
        let mut pipe = redis::pipe();
        for n in chunk * BATCH..((chunk + 1) * BATCH).min(messages) {
            pipe.cmd("XADD")
                .arg(&raw_key)
                .arg("*")
                .arg("id")
                .arg(uuid::Uuid::now_v7().to_string())
                .arg("p")
                .arg(PAYLOAD)
                .arg("h")
                .arg(r#"{"mammoth-event-type":"OrderPlaced"}"#)
                .arg("at")
                .arg(mammoth_core::now_micros())
                .arg("s")
                .arg(n)
                .ignore();
        }
        let () = pipe
            .query_async(&mut conn)
            .await
            .map_err(raw_error("XADD"))?;
    }
    let raw = rate(messages, started.elapsed());

    // Bus publish: the relay's publish step alone (batches built beforehand).
    let bus_options = RedisBusOptions {
        key_prefix: prefix.to_owned(),
        ..RedisBusOptions::default()
    };
    let bus = RedisBus::connect(url, bus_options).await?;
    let direct = Topic::new("direct")?;
    let batches: Vec<Vec<OutgoingMessage>> = (0..messages.div_ceil(BATCH))
        .map(|chunk| {
            (chunk * BATCH..((chunk + 1) * BATCH).min(messages))
                .map(|_| OutgoingMessage::new(PAYLOAD.to_vec()).keyed("order-1"))
                .collect()
        })
        .collect();
    let started = Instant::now();
    for batch in batches {
        bus.publish(&direct, batch).await?;
    }
    let publish = rate(messages, started.elapsed());

    // Relay: store -> bus.
    let dir = tempfile::tempdir().map_err(BenchError::TempDir)?;
    let options = SqliteOptions {
        synchronous: Synchronous::Normal,
        ..SqliteOptions::default()
    };
    let store = SqliteEventStore::open(dir.path().join("events.db"), options)?;
    for chunk in 0..messages.div_ceil(100) {
        let stream = StreamId::new(format!("order-{chunk}"))?;
        let count = 100.min(messages - chunk * 100);
        let events = (0..count)
            .map(|_| NewEvent::from_json_text("OrderPlaced", String::from_utf8_lossy(PAYLOAD)))
            .collect();
        store.append(&stream, ExpectedVersion::Any, events).await?;
    }
    // The relay's reading side alone (store reads and message building, no bus), to show
    // how much of the relay's time is not spent publishing.
    let started = Instant::now();
    let mut from = 1;
    let mut read = 0;
    loop {
        let events = store.read_all(from, &EventFilter::all(), BATCH).await?;
        let Some(last) = events.last() else { break };
        from = last.position + 1;
        read += events.len();
        let built: Vec<OutgoingMessage> = events.iter().map(event_message).collect();
        std::hint::black_box(built);
    }
    let relay_read = rate(read, started.elapsed());
    let topic = Topic::new("events")?;
    let relay =
        Relay::new("bench", store, bus.clone(), TopicMap::all_to(topic.clone())).with_batch(BATCH);
    let started = Instant::now();
    let progress = relay.catch_up().await?;
    let relay_rate = rate(progress.published as usize, started.elapsed());

    // Consume: one consumer receives and acks everything.
    let consumer = bus
        .subscribe(
            &topic,
            &ConsumerGroup::new("bench")?,
            SubscribeOptions::default(),
        )
        .await?;
    let started = Instant::now();
    let mut received = 0;
    while received < messages {
        let batch = consumer.receive(BATCH, Duration::from_millis(100)).await?;
        if batch.is_empty() {
            return Err(BenchError::Stalled {
                received,
                expected: messages,
            });
        }
        received += batch.len();
        consumer.ack(&batch).await?;
    }
    let consume = rate(received, started.elapsed());
    Ok(BrokerBenchRun::new(
        raw, publish, relay_rate, consume, relay_read,
    ))
}

/// Deletes every key of the run.
async fn cleanup(url: &str, prefix: &str) -> Result<(), BenchError> {
    let clean = raw_error("clean-up (SCAN/UNLINK)");
    let client = redis::Client::open(url).map_err(&clean)?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(&clean)?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(&clean)?;
        if !keys.is_empty() {
            let _: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .map_err(&clean)?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_ratios_are_those_of_the_median_rates_and_zero_raw_gives_zero_ratios() {
        let run = BrokerBenchRun::new(200.0, 100.0, 150.0, 50.0, 400.0);
        assert_eq!(run.relay_ratio, 0.75);
        assert_eq!(run.consume_ratio, 0.25);
        assert_eq!(
            BrokerBenchRun::new(0.0, 1.0, 1.0, 1.0, 1.0).relay_ratio,
            0.0
        );
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
