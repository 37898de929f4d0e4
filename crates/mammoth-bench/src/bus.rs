//! `mammoth bench bus`: the embedded bus end to end (publish → handler → ack: throughput and
//! latency) and the outbox relay (store → bus throughput), each beside the raw append rate of
//! the event store measured in the same run on the same disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mammoth_core::bus::{
    ConsumerGroup, Failure, MessageBus, OutgoingMessage, RelayTarget, RetryPolicy,
    SubscribeOptions, Topic, TopicMap,
};
use mammoth_core::{EventStore, ExpectedVersion, NewEvent, StreamId};
use mammoth_runtime::{BusWorker, Relay};
use mammoth_sqlite::{SqliteBus, SqliteEventStore, SqliteOptions};
use serde::Serialize;

/// How `bench bus` runs.
#[derive(Clone, Debug)]
pub struct BusBenchOptions {
    /// How long each timed part runs.
    pub duration: Duration,
    /// How many times the whole benchmark runs (the report gives medians).
    pub runs: usize,
    /// Concurrent publishers (and appenders for the raw rate).
    pub publishers: usize,
    /// Events appended before the relay part runs.
    pub relay_events: u64,
    /// Directory for the database files (default: the system's temp directory).
    pub dir: Option<PathBuf>,
    /// The retry policy the end-to-end worker subscribes with (`[message_bus.retry]`).
    pub retry: RetryPolicy,
    /// Which topics the relay publishes the events to (`[message_bus.topics]`); `None`:
    /// every event to `events`.
    pub topics: Option<TopicMap>,
}

impl Default for BusBenchOptions {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(3),
            runs: 3,
            publishers: 16,
            relay_events: 100_000,
            dir: None,
            retry: RetryPolicy::default(),
            topics: None,
        }
    }
}

impl BusBenchOptions {
    /// One short run: a few seconds in all.
    pub fn quick() -> Self {
        Self {
            duration: Duration::from_millis(500),
            runs: 1,
            relay_events: 20_000,
            ..Self::default()
        }
    }
}

/// One run's numbers.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct BusRun {
    /// One-event appends per second by `publishers` concurrent appenders (the store's raw rate).
    pub raw_appends_per_sec: f64,
    /// Messages per second published, handled and acknowledged (publish → handler → ack).
    pub bus_messages_per_sec: f64,
    /// Median publish-to-handler latency, microseconds.
    pub bus_p50_us: u64,
    /// 99th percentile publish-to-handler latency, microseconds.
    pub bus_p99_us: u64,
    /// Events per second the relay publishes from the store into the bus.
    pub relay_events_per_sec: f64,
}

/// Every run and the medians.
#[derive(Clone, Debug, Serialize)]
pub struct BusBenchResult {
    /// Each run.
    pub runs: Vec<BusRun>,
    /// The median of each number over the runs.
    pub median: BusRun,
    /// The topics the relay published to (in the last run), by the configured topic map.
    pub relay_topics: Vec<String>,
}

pub(crate) fn fail(what: &str) -> impl Fn(String) -> crate::BenchError + '_ {
    move |error| crate::BenchError::Setup(format!("bench bus: {what}: {error}"))
}

/// Runs the bus benchmark.
///
/// # Errors
/// When a database cannot be created or an operation fails.
pub async fn bench_bus(options: &BusBenchOptions) -> Result<BusBenchResult, crate::BenchError> {
    let mut runs = Vec::new();
    let mut relay_topics = Vec::new();
    for _ in 0..options.runs.max(1) {
        let dir = match &options.dir {
            Some(dir) => tempfile::tempdir_in(dir),
            None => tempfile::tempdir(),
        }
        .map_err(|e| fail("temp dir")(e.to_string()))?;
        let raw = raw_appends(&dir.path().join("raw.db"), options).await?;
        let (bus, p50, p99) = end_to_end(&dir.path().join("bus.db"), options).await?;
        let (relay, topics) = relay(&dir.path().join("relay.db"), options).await?;
        relay_topics = topics;
        runs.push(BusRun {
            raw_appends_per_sec: raw,
            bus_messages_per_sec: bus,
            bus_p50_us: p50,
            bus_p99_us: p99,
            relay_events_per_sec: relay,
        });
    }
    let median = |f: fn(&BusRun) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let median = BusRun {
        raw_appends_per_sec: median(|r| r.raw_appends_per_sec),
        bus_messages_per_sec: median(|r| r.bus_messages_per_sec),
        bus_p50_us: median(|r| r.bus_p50_us as f64) as u64,
        bus_p99_us: median(|r| r.bus_p99_us as f64) as u64,
        relay_events_per_sec: median(|r| r.relay_events_per_sec),
    };
    Ok(BusBenchResult {
        runs,
        median,
        relay_topics,
    })
}

fn open_store(path: &Path) -> Result<SqliteEventStore, crate::BenchError> {
    SqliteEventStore::open(path, SqliteOptions::default()).map_err(|e| fail("open")(e.to_string()))
}

/// `publishers` tasks appending one-event batches to their own streams for the duration.
async fn raw_appends(path: &Path, options: &BusBenchOptions) -> Result<f64, crate::BenchError> {
    let store = open_store(path)?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..options.publishers {
        let (store, duration) = (store.clone(), options.duration);
        tasks.push(tokio::spawn(async move {
            let stream = StreamId::new(format!("raw-{task}")).map_err(|e| e.to_string())?;
            let mut count = 0u64;
            while started.elapsed() < duration {
                let event = NewEvent::json("Tick", serde_json::json!({ "n": count }))
                    .map_err(|e| e.to_string())?;
                store
                    .append(&stream, ExpectedVersion::Any, vec![event])
                    .await
                    .map_err(|e| e.to_string())?;
                count += 1;
            }
            Ok::<u64, String>(count)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task
            .await
            .map_err(|e| fail("append task")(e.to_string()))?
            .map_err(fail("append"))?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    store
        .close()
        .await
        .map_err(|e| fail("close")(e.to_string()))?;
    Ok(total as f64 / elapsed)
}

/// Publishers send one message at a time for the duration; one worker handles and acks them.
/// Throughput counts from the first publish to the last ack.
async fn end_to_end(
    path: &Path,
    options: &BusBenchOptions,
) -> Result<(f64, u64, u64), crate::BenchError> {
    let bus = SqliteBus::open_default(path).map_err(|e| fail("open bus")(e.to_string()))?;
    end_to_end_on(&bus, options).await
}

/// [`end_to_end`] on any bus: returns messages per second, p50 and p99 in microseconds.
pub(crate) async fn end_to_end_on<B>(
    bus: &B,
    options: &BusBenchOptions,
) -> Result<(f64, u64, u64), crate::BenchError>
where
    B: MessageBus + Clone + 'static,
{
    let topic = Topic::new("bench").map_err(|e| fail("topic")(e.to_string()))?;
    let group = ConsumerGroup::new("bench").map_err(|e| fail("group")(e.to_string()))?;
    let consumer = bus
        .subscribe(
            &topic,
            &group,
            SubscribeOptions {
                retry: options.retry,
                ..SubscribeOptions::default()
            },
        )
        .await
        .map_err(|e| fail("subscribe")(e.to_string()))?;
    let base = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let seen = latencies.clone();
    let worker = BusWorker::new(consumer, move |delivery: mammoth_core::bus::Delivery| {
        let seen = seen.clone();
        async move {
            let sent: [u8; 8] = delivery.message.payload[..8]
                .try_into()
                .map_err(|_| Failure::retry("short payload"))?;
            let sent = Duration::from_nanos(u64::from_le_bytes(sent));
            let latency = base.elapsed().saturating_sub(sent);
            if let Ok(mut seen) = seen.lock() {
                seen.push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
            }
            Ok(())
        }
    })
    .with_batch(256);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        worker
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    let mut tasks = Vec::new();
    for _ in 0..options.publishers {
        let (bus, topic, duration) = (bus.clone(), topic.clone(), options.duration);
        tasks.push(tokio::spawn(async move {
            let mut count = 0u64;
            while base.elapsed() < duration {
                let sent = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
                let mut payload = sent.to_le_bytes().to_vec();
                payload.extend_from_slice(b"{\"type\":\"Tick\"}");
                bus.publish(&topic, vec![OutgoingMessage::new(payload)])
                    .await
                    .map_err(|e| e.to_string())?;
                count += 1;
            }
            Ok::<u64, String>(count)
        }));
    }
    let mut published = 0;
    for task in tasks {
        published += task
            .await
            .map_err(|e| fail("publish task")(e.to_string()))?
            .map_err(fail("publish"))?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let handled = latencies.lock().map(|l| l.len() as u64).unwrap_or(0);
        if handled >= published || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = base.elapsed().as_secs_f64();
    let _ = stop.send(());
    running
        .await
        .map_err(|e| fail("worker")(e.to_string()))?
        .map_err(|e| fail("worker")(e.to_string()))?;
    let mut latencies = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    latencies.sort_unstable();
    let at = |q: f64| {
        let index = ((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(index).copied().unwrap_or(0)
    };
    Ok((latencies.len() as f64 / elapsed, at(0.5), at(0.99)))
}

/// Appends `relay_events` events in 100-event batches, then times one relay catch-up. Returns
/// the rate and the topics that received messages.
async fn relay(
    path: &Path,
    options: &BusBenchOptions,
) -> Result<(f64, Vec<String>), crate::BenchError> {
    let store = open_store(path)?;
    fill_log(&store, options.relay_events).await?;
    let bus = SqliteBus::open_default(path).map_err(|e| fail("open bus")(e.to_string()))?;
    let result = relay_on(&store, &bus, options.topics.as_ref()).await;
    store
        .close()
        .await
        .map_err(|e| fail("close")(e.to_string()))?;
    result
}

/// Appends `events` `OrderPlaced` events (at least 100) in 100-event batches, 100 per stream.
pub(crate) async fn fill_log<S: EventStore>(
    store: &S,
    events: u64,
) -> Result<(), crate::BenchError> {
    let mut appended = 0;
    while appended < events {
        let stream = StreamId::new(format!("order-{}", appended / 100))
            .map_err(|e| fail("stream")(e.to_string()))?;
        let events = (0..100)
            .map(|n| NewEvent::json("OrderPlaced", serde_json::json!({ "n": n, "total": 30 })))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail("event")(e.to_string()))?;
        store
            .append(&stream, ExpectedVersion::Any, events)
            .await
            .map_err(|e| fail("append")(e.to_string()))?;
        appended += 100;
    }
    Ok(())
}

/// Times one relay catch-up from `store` into `bus` by `topics` (`None`: every event to
/// `events`). Returns events per second, the events published and the topics that hold
/// messages afterwards.
pub(crate) async fn relay_on<S, B>(
    store: &S,
    bus: &B,
    topics: Option<&TopicMap>,
) -> Result<(f64, Vec<String>), crate::BenchError>
where
    S: EventStore + Clone,
    B: MessageBus + RelayTarget + Clone,
{
    let topics = match topics {
        Some(topics) => topics.clone(),
        None => TopicMap::all_to(Topic::new("events").map_err(|e| fail("topic")(e.to_string()))?),
    };
    let before = topic_depths(bus).await?;
    let relay = Relay::new("bench", store.clone(), bus.clone(), topics);
    let started = Instant::now();
    let progress = relay
        .catch_up()
        .await
        .map_err(|e| fail("relay")(e.to_string()))?;
    let elapsed = started.elapsed().as_secs_f64();
    // Only the topics the relay grew: the bus may hold other parts' topics.
    let published = topic_depths(bus)
        .await?
        .into_iter()
        .filter(|(topic, messages)| before.get(topic).copied().unwrap_or(0) < *messages)
        .map(|(topic, _)| topic)
        .collect();
    Ok((progress.published as f64 / elapsed, published))
}

/// Messages per topic, by topic name.
async fn topic_depths<B: MessageBus>(bus: &B) -> Result<BTreeMap<String, u64>, crate::BenchError> {
    let mut depths = BTreeMap::new();
    for row in bus
        .stats()
        .await
        .map_err(|e| fail("bus stats")(e.to_string()))?
    {
        let depth = depths.entry(row.topic).or_insert(0);
        *depth = row.messages.max(*depth);
    }
    Ok(depths)
}
