//! Throughput of the Redis bus against the broker's own limit, medians of short runs:
//!
//! - raw: pipelined `XADD`s (512 per round trip) of messages shaped like the bus's, the most a
//!   client can push into one stream;
//! - bus publish: `RedisBus::publish` of batches of 512 built beforehand (the relay's
//!   publish step alone: de-duplication and sequence numbers in one script per batch);
//! - relay: the outbox relay from a SQLite event store (events appended beforehand, not timed)
//!   to the bus: de-duplication, sequence numbers and the checkpoint, in one script per batch;
//! - consume: one consumer of a group receiving and acking everything the relay published.
//!
//! ```text
//! cargo run --release -p mammoth-redis --example redis_bus_bench -- [redis-url] [messages] [runs]
//! ```
//! Defaults: `$MAMMOTH_TEST_REDIS_URL` or `redis://127.0.0.1:6379`, 50,000 messages, 3 runs.
//! Every run uses its own key prefix and deletes its keys afterwards.

use std::time::{Duration, Instant};

use mammoth_core::bus::{
    BusConsumer, ConsumerGroup, MessageBus, OutgoingMessage, SubscribeOptions, Topic, TopicMap,
    event_message,
};
use mammoth_core::{EventFilter, EventStore, ExpectedVersion, NewEvent, StreamId};
use mammoth_redis::{RedisBus, RedisBusOptions};
use mammoth_runtime::Relay;
use mammoth_sqlite::{SqliteEventStore, SqliteOptions, Synchronous};

type Error = Box<dyn std::error::Error + Send + Sync>;

const BATCH: usize = 512;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| {
        std::env::var("MAMMOTH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    });
    let messages: usize = args.next().map_or(Ok(50_000), |n| n.parse())?;
    let runs: usize = args.next().map_or(Ok(3), |n| n.parse())?;
    println!("redis bus bench: {messages} messages, {runs} runs, {url}");
    let (mut raw, mut publish, mut relay, mut consume) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let prefix = format!("mammoth-bench:{}:", uuid::Uuid::new_v4().simple());
        let result = one_run(&url, &prefix, messages).await;
        cleanup(&url, &prefix).await?;
        let (r, p, l, c) = result?;
        println!(
            "run {run}: raw XADD {r:>9.0}/s   bus publish {p:>9.0}/s   relay {l:>9.0}/s   consume {c:>9.0}/s"
        );
        raw.push(r);
        publish.push(p);
        relay.push(l);
        consume.push(c);
    }
    let (raw, publish, relay, consume) =
        (median(raw), median(publish), median(relay), median(consume));
    println!(
        "median: raw XADD {raw:.0}/s, bus publish {publish:.0}/s ({:.2}x raw), relay {relay:.0}/s ({:.2}x raw), consume {consume:.0}/s ({:.2}x raw)",
        publish / raw,
        relay / raw,
        consume / raw
    );
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

async fn one_run(url: &str, prefix: &str, messages: usize) -> Result<(f64, f64, f64, f64), Error> {
    let payload = br#"{"order":"order-1","total":30,"currency":"EUR","lines":3}"#;
    // Raw: the same fields the bus stores, pipelined.
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
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
                .arg(payload.as_slice())
                .arg("h")
                .arg(r#"{"mammoth-event-type":"OrderPlaced"}"#)
                .arg("at")
                .arg(mammoth_core::now_micros())
                .arg("s")
                .arg(n)
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await?;
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
                .map(|_| OutgoingMessage::new(payload.to_vec()).keyed("order-1"))
                .collect()
        })
        .collect();
    let started = Instant::now();
    for batch in batches {
        bus.publish(&direct, batch).await?;
    }
    let publish = rate(messages, started.elapsed());

    // Relay: store -> bus.
    let dir = tempfile::tempdir()?;
    let options = SqliteOptions {
        synchronous: Synchronous::Normal,
        ..SqliteOptions::default()
    };
    let store = SqliteEventStore::open(dir.path().join("events.db"), options)?;
    for chunk in 0..messages.div_ceil(100) {
        let stream = StreamId::new(format!("order-{chunk}"))?;
        let count = 100.min(messages - chunk * 100);
        let events = (0..count)
            .map(|_| NewEvent::from_json_text("OrderPlaced", String::from_utf8_lossy(payload)))
            .collect();
        store.append(&stream, ExpectedVersion::Any, events).await?;
    }
    // The relay's reading side alone (store reads and message building, no bus), to show
    // how much of the relay's time is not spent publishing.
    let started = Instant::now();
    let mut from = 1;
    loop {
        let events = store.read_all(from, &EventFilter::all(), BATCH).await?;
        let Some(last) = events.last() else { break };
        from = last.position + 1;
        let built: Vec<OutgoingMessage> = events.iter().map(event_message).collect();
        std::hint::black_box(built);
    }
    let read = started.elapsed();
    let topic = Topic::new("events")?;
    let relay =
        Relay::new("bench", store, bus.clone(), TopicMap::all_to(topic.clone())).with_batch(BATCH);
    let started = Instant::now();
    let progress = relay.catch_up().await?;
    let relay_elapsed = started.elapsed();
    let relay_rate = rate(progress.published as usize, relay_elapsed);
    println!(
        "  relay {:.0} ms, of which store reads and message building alone take {:.0} ms",
        relay_elapsed.as_secs_f64() * 1000.0,
        read.as_secs_f64() * 1000.0
    );

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
            return Err(format!("consume stalled at {received} of {messages}").into());
        }
        received += batch.len();
        consumer.ack(&batch).await?;
    }
    let consume = rate(received, started.elapsed());
    Ok((raw, publish, relay_rate, consume))
}

/// Deletes every key of the run.
async fn cleanup(url: &str, prefix: &str) -> Result<(), Error> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let _: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
