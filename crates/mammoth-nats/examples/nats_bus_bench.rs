//! Throughput of the NATS JetStream bus against the broker's own limit, medians of short runs:
//!
//! - raw: JetStream async publishes with a `Nats-Msg-Id`, 256 acknowledgements in flight,
//!   straight from the client (the most a client can push into one stream this way);
//! - bus publish: `NatsBus::publish` of batches of 512 built beforehand (the bus's headers, the
//!   same window of acknowledgements);
//! - relay: the outbox relay from a SQLite event store (events appended beforehand, not timed)
//!   to the bus: read, publish, then save the checkpoint, per batch of 512;
//! - consume: one consumer of a group receiving (up to 512 per fetch) and acking everything the
//!   relay published.
//!
//! ```text
//! cargo run --release -p mammoth-nats --example nats_bus_bench -- [nats-url] [messages] [runs]
//! ```
//! Defaults: `$MAMMOTH_TEST_NATS_URL` or `nats://127.0.0.1:4222`, 50,000 messages, 3 runs.
//! `NATS_BENCH_WINDOW` sets the bus's publish window (default 256 acknowledgements in flight).
//! Every run uses its own streams and deletes them afterwards.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use mammoth_core::bus::{
    BusConsumer, ConsumerGroup, MessageBus, OutgoingMessage, SubscribeOptions, Topic, TopicMap,
};
use mammoth_core::{EventStore, ExpectedVersion, NewEvent, StreamId};
use mammoth_nats::{NatsBus, NatsBusOptions};
use mammoth_runtime::Relay;
use mammoth_sqlite::{SqliteEventStore, SqliteOptions, Synchronous};

type Error = Box<dyn std::error::Error + Send + Sync>;

const BATCH: usize = 512;
const WINDOW: usize = 256;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| {
        std::env::var("MAMMOTH_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
    });
    let messages: usize = args.next().map_or(Ok(50_000), |n| n.parse())?;
    let runs: usize = args.next().map_or(Ok(3), |n| n.parse())?;
    println!("nats bus bench: {messages} messages, {runs} runs, {url}");
    let (mut raw, mut publish, mut relay, mut consume) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let options = NatsBusOptions {
            stream: format!("BENCH_{suffix}"),
            subject_prefix: format!("bench{suffix}"),
            publish_window: std::env::var("NATS_BENCH_WINDOW")
                .ok()
                .and_then(|w| w.parse().ok())
                .unwrap_or(256),
            ..NatsBusOptions::default()
        };
        let bus = NatsBus::connect(&url, options.clone()).await?;
        let result = one_run(&bus, &options, messages).await;
        let js = jetstream::new(bus.client().clone());
        let _ = js.delete_stream(format!("{}_RAW", options.stream)).await;
        bus.destroy().await?;
        let (r, p, l, c) = result?;
        println!(
            "run {run}: raw publish {r:>9.0}/s   bus publish {p:>9.0}/s   relay {l:>9.0}/s   consume {c:>9.0}/s"
        );
        raw.push(r);
        publish.push(p);
        relay.push(l);
        consume.push(c);
    }
    let (raw, publish, relay, consume) =
        (median(raw), median(publish), median(relay), median(consume));
    println!(
        "median: raw publish {raw:.0}/s, bus publish {publish:.0}/s ({:.2}x raw), relay {relay:.0}/s ({:.2}x raw), consume {consume:.0}/s ({:.2}x raw)",
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

async fn one_run(
    bus: &NatsBus,
    options: &NatsBusOptions,
    messages: usize,
) -> Result<(f64, f64, f64, f64), Error> {
    let payload = br#"{"order":"order-1","total":30,"currency":"EUR","lines":3}"#;

    // Raw: async publishes with a message id, a window of acknowledgements in flight.
    let js = jetstream::new(bus.client().clone());
    let raw_subject = format!("{}_raw", options.subject_prefix);
    js.get_or_create_stream(stream::Config {
        name: format!("{}_RAW", options.stream),
        subjects: vec![raw_subject.clone()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let started = Instant::now();
    let mut waiting = VecDeque::new();
    for _ in 0..messages {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", uuid::Uuid::now_v7().to_string());
        let ack = js
            .publish_with_headers(raw_subject.clone(), headers, payload.as_slice().into())
            .await?;
        waiting.push_back(ack);
        if waiting.len() >= WINDOW
            && let Some(ack) = waiting.pop_front()
        {
            ack.await?;
        }
    }
    for ack in waiting {
        ack.await?;
    }
    let raw = rate(messages, started.elapsed());

    // Bus publish: batches built beforehand.
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
    let store_options = SqliteOptions {
        synchronous: Synchronous::Normal,
        ..SqliteOptions::default()
    };
    let store = SqliteEventStore::open(dir.path().join("events.db"), store_options)?;
    for chunk in 0..messages.div_ceil(100) {
        let stream = StreamId::new(format!("order-{chunk}"))?;
        let count = 100.min(messages - chunk * 100);
        let events = (0..count)
            .map(|_| NewEvent::from_json_text("OrderPlaced", String::from_utf8_lossy(payload)))
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
            return Err(format!("consume stalled at {received} of {messages}").into());
        }
        received += batch.len();
        consumer.ack(&batch).await?;
    }
    let consume = rate(received, started.elapsed());
    Ok((raw, publish, relay_rate, consume))
}
