//! Throughput of the NATS JetStream bus against the broker's own limit, medians of short runs
//! (the harness of `mammoth bench bus` on NATS and of the `nats_bus_bench` example):
//!
//! - raw: JetStream async publishes with a `Nats-Msg-Id`, a window of acknowledgements in
//!   flight, straight from the client (the most a client can push into one stream this way);
//! - bus publish: [`NatsBus`] `publish` of batches of 512 built beforehand (the bus's headers,
//!   the same window of acknowledgements);
//! - relay: the outbox relay from a SQLite event store (events appended beforehand, not timed)
//!   to the bus: read, publish, then save the checkpoint, per batch of 512;
//! - consume: one consumer of a group receiving (up to 512 per fetch) and acking everything the
//!   relay published.
//!
//! Every run uses its own streams (named after the base options' stream and subject prefix)
//! and deletes them afterwards.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use mammoth_core::bus::{
    BusConsumer, BusError, ConsumerGroup, MessageBus, OutgoingMessage, SubscribeOptions, Topic,
    TopicMap,
};
use mammoth_core::{EventStore, ExpectedVersion, NewEvent, StoreError, StreamId};
use mammoth_runtime::{Relay, RelayError};
use mammoth_sqlite::{SqliteEventStore, SqliteOptions, Synchronous};
use serde::Serialize;

use crate::{NatsBus, NatsBusOptions};

const BATCH: usize = 512;
const PAYLOAD: &[u8] = br#"{"order":"order-1","total":30,"currency":"EUR","lines":3}"#;

/// What a benchmark measures: how many messages per part, how many runs.
#[derive(Clone, Debug, Serialize)]
pub struct BrokerBenchOptions {
    /// Messages each part (raw, publish, relay, consume) moves per run.
    pub messages: usize,
    /// Runs; the report gives medians.
    pub runs: usize,
    /// Acknowledgements in flight, for the raw publishes and the bus's publish window.
    pub window: usize,
}

impl Default for BrokerBenchOptions {
    /// 50,000 messages, 3 runs, 256 acknowledgements in flight.
    fn default() -> Self {
        Self {
            messages: 50_000,
            runs: 3,
            window: 256,
        }
    }
}

/// The rates of one run (or their medians), in messages per second, and each beside raw.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct BrokerBenchRun {
    /// Raw JetStream async publishes with a window of acknowledgements in flight.
    pub raw_per_sec: f64,
    /// `NatsBus::publish` of batches of 512.
    pub publish_per_sec: f64,
    /// The outbox relay, SQLite store -> bus.
    pub relay_per_sec: f64,
    /// One consumer receiving and acking everything.
    pub consume_per_sec: f64,
    /// `publish_per_sec / raw_per_sec`.
    pub publish_ratio: f64,
    /// `relay_per_sec / raw_per_sec` (target: at least 0.6).
    pub relay_ratio: f64,
    /// `consume_per_sec / raw_per_sec`.
    pub consume_ratio: f64,
}

impl BrokerBenchRun {
    fn new(raw: f64, publish: f64, relay: f64, consume: f64) -> Self {
        let ratio = |value: f64| if raw > 0.0 { value / raw } else { 0.0 };
        Self {
            raw_per_sec: raw,
            publish_per_sec: publish,
            relay_per_sec: relay,
            consume_per_sec: consume,
            publish_ratio: ratio(publish),
            relay_ratio: ratio(relay),
            consume_ratio: ratio(consume),
        }
    }
}

/// Every run's rates and their medians (ratios of the median rates).
#[derive(Clone, Debug, Serialize)]
pub struct BrokerBenchReport {
    /// `"nats"`.
    pub backend: &'static str,
    /// The options the benchmark ran with.
    pub options: BrokerBenchOptions,
    /// The relay's target, as a fraction of raw: 0.6.
    pub relay_target: f64,
    /// Each run, in order.
    pub runs: Vec<BrokerBenchRun>,
    /// The median of each rate over the runs; the ratios are those of the medians.
    pub median: BrokerBenchRun,
}

/// Why a benchmark run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The bus refused an operation (connecting, publishing, subscribing, deleting).
    #[error("nats bench: {0}")]
    Bus(#[from] BusError),
    /// The SQLite event store the relay reads failed.
    #[error("nats bench: the relay's event store: {0}")]
    Store(#[from] StoreError),
    /// The relay failed.
    #[error("nats bench: relay: {0}")]
    Relay(#[from] RelayError),
    /// The temporary directory of the relay's store could not be created.
    #[error(
        "nats bench: temporary directory for the relay's store: {0} (set TMPDIR to a writable directory)"
    )]
    TempDir(#[source] std::io::Error),
    /// A raw JetStream call failed.
    #[error(
        "nats bench: raw JetStream {step}: {message} (is the server running with JetStream enabled?)"
    )]
    Raw {
        /// What was being done.
        step: &'static str,
        /// The client's error.
        message: String,
    },
    /// The consumer received nothing for a while before it had everything.
    #[error("nats bench: consume stalled at {received} of {expected} messages")]
    Stalled {
        /// Messages received.
        received: usize,
        /// Messages expected.
        expected: usize,
    },
    /// Options that cannot run: no messages or no runs.
    #[error("nats bench: {0} must be at least 1")]
    Invalid(&'static str),
}

/// Runs the benchmark `options.runs` times against the server at `url`. Each run uses streams
/// named after `base` (its stream and subject prefix, with a unique suffix; its credentials;
/// the default dead-letter stream inside those names) and deletes them afterwards, whether the
/// run succeeded or not.
///
/// # Errors
/// [`BenchError`] for options that cannot run, an unreachable server or a failed step.
pub async fn run(
    url: &str,
    base: &NatsBusOptions,
    options: &BrokerBenchOptions,
) -> Result<BrokerBenchReport, BenchError> {
    if options.messages == 0 {
        return Err(BenchError::Invalid("messages"));
    }
    if options.runs == 0 {
        return Err(BenchError::Invalid("runs"));
    }
    if options.window == 0 {
        return Err(BenchError::Invalid("window"));
    }
    let mut runs = Vec::with_capacity(options.runs);
    for _ in 0..options.runs {
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let bus_options = NatsBusOptions {
            stream: format!("{}_BENCH_{suffix}", base.stream),
            subject_prefix: format!("{}bench{suffix}", base.subject_prefix),
            credentials: base.credentials.clone(),
            publish_window: options.window,
            ..NatsBusOptions::default()
        };
        let bus = NatsBus::connect(url, bus_options.clone()).await?;
        let result = one_run(&bus, &bus_options, options).await;
        let js = jetstream::new(bus.client().clone());
        let _ = js
            .delete_stream(format!("{}_RAW", bus_options.stream))
            .await;
        bus.destroy().await?;
        runs.push(result?);
    }
    let median = |pick: fn(&BrokerBenchRun) -> f64| median(runs.iter().map(pick).collect());
    let median = BrokerBenchRun::new(
        median(|r| r.raw_per_sec),
        median(|r| r.publish_per_sec),
        median(|r| r.relay_per_sec),
        median(|r| r.consume_per_sec),
    );
    Ok(BrokerBenchReport {
        backend: "nats",
        options: options.clone(),
        relay_target: 0.6,
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

fn raw_error(step: &'static str) -> impl Fn(String) -> BenchError {
    move |message| BenchError::Raw { step, message }
}

async fn one_run(
    bus: &NatsBus,
    bus_options: &NatsBusOptions,
    options: &BrokerBenchOptions,
) -> Result<BrokerBenchRun, BenchError> {
    let messages = options.messages;

    // Raw: async publishes with a message id, a window of acknowledgements in flight.
    let js = jetstream::new(bus.client().clone());
    let raw_subject = format!("{}_raw", bus_options.subject_prefix);
    js.get_or_create_stream(stream::Config {
        name: format!("{}_RAW", bus_options.stream),
        subjects: vec![raw_subject.clone()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|error| raw_error("create stream")(error.to_string()))?;
    let started = Instant::now();
    let mut waiting = VecDeque::new();
    for _ in 0..messages {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", uuid::Uuid::now_v7().to_string());
        let ack = js
            .publish_with_headers(raw_subject.clone(), headers, PAYLOAD.into())
            .await
            .map_err(|error| raw_error("publish")(error.to_string()))?;
        waiting.push_back(ack);
        if waiting.len() >= options.window
            && let Some(ack) = waiting.pop_front()
        {
            ack.await
                .map_err(|error| raw_error("acknowledgement")(error.to_string()))?;
        }
    }
    for ack in waiting {
        ack.await
            .map_err(|error| raw_error("acknowledgement")(error.to_string()))?;
    }
    let raw = rate(messages, started.elapsed());

    // Bus publish: batches built beforehand.
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
    let store_options = SqliteOptions {
        synchronous: Synchronous::Normal,
        ..SqliteOptions::default()
    };
    let store = SqliteEventStore::open(dir.path().join("events.db"), store_options)?;
    for chunk in 0..messages.div_ceil(100) {
        let stream = StreamId::new(format!("order-{chunk}"))?;
        let count = 100.min(messages - chunk * 100);
        let events = (0..count)
            .map(|_| NewEvent::from_json_text("OrderPlaced", String::from_utf8_lossy(PAYLOAD)))
            .collect();
        store.append(&stream, ExpectedVersion::Any, events).await?;
    }
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
        let batch = consumer.receive(BATCH, Duration::from_millis(200)).await?;
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
    Ok(BrokerBenchRun::new(raw, publish, relay_rate, consume))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_ratios_are_those_of_the_median_rates_and_zero_raw_gives_zero_ratios() {
        let run = BrokerBenchRun::new(200.0, 100.0, 150.0, 50.0);
        assert_eq!(run.relay_ratio, 0.75);
        assert_eq!(run.consume_ratio, 0.25);
        assert_eq!(BrokerBenchRun::new(0.0, 1.0, 1.0, 1.0).relay_ratio, 0.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
