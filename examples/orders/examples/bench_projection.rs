//! OrderProjection on SQLite: catch-up throughput from zero (events/s) and live
//! append-to-visible latency (p50/p99), each in a fresh temporary directory.
//!
//! `cargo run --release -p mammoth-example-orders --example bench_projection -- [EVENTS] [RUNS]`
//! (default 300,000 events, 3 runs; prints each run and the medians).

use std::time::{Duration, Instant};

use mammoth_core::{EventStore, ExpectedVersion, Metadata, NewEvent, StreamId, encode_event};
use mammoth_example_orders::order::{OrderEvent, OrderLine};
use mammoth_example_orders::projection::OrderProjection;
use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
use mammoth_sqlite::{SqliteEventStore, SqliteOptions, SqliteReadModel};

fn event(event: &OrderEvent) -> NewEvent {
    encode_event(event)
        .map(|e| e.into_new_event(Metadata::default()))
        .expect("encodes")
}

fn order(n: usize) -> Vec<NewEvent> {
    let id = n.to_string();
    vec![
        event(&OrderEvent::OrderCreated {
            order_id: id.clone(),
            customer_id: format!("c{}", n % 1000),
            items: vec![OrderLine::new("book", 1, 1500)],
            total_cents: 1500,
        }),
        event(&OrderEvent::OrderPaid {
            order_id: id,
            payment_id: format!("p{n}"),
            amount_cents: 1500,
        }),
    ]
}

async fn fill(store: &SqliteEventStore, events: usize) {
    let mut tasks = Vec::new();
    for worker in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = worker;
            while n * 2 < events {
                let stream = StreamId::new(format!("order-{n}")).expect("id");
                store
                    .append(&stream, ExpectedVersion::NoStream, order(n))
                    .await
                    .expect("append");
                n += 64;
            }
        }));
    }
    for task in tasks {
        task.await.expect("filler");
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let (mut rates, mut p50s, mut p99s) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteEventStore::open(dir.path().join("mammoth.db"), SqliteOptions::default())
            .expect("store");
        fill(&store, events).await;
        let head = store.head_position().await.expect("head");
        let target =
            SqliteReadModel::open(dir.path().join("read_models.db"), OrderProjection::new())
                .expect("rm");
        let mut runner = ProjectionRunner::new(
            store.clone(),
            target,
            ProjectionOptions::default().with_batch_size(2_000),
        );
        let started = Instant::now();
        runner.catch_up(None, |_, _| {}).await.expect("catch up");
        let rate = head as f64 / started.elapsed().as_secs_f64();

        // Live: one order event at a time, time until the checkpoint covers it.
        let handle = runner.spawn();
        let mut latencies = Vec::new();
        for n in 0..1_000 {
            let stream = StreamId::new(format!("order-live{n}")).expect("id");
            let started = Instant::now();
            let written = store
                .append(&stream, ExpectedVersion::NoStream, order(n)[..1].to_vec())
                .await
                .expect("append");
            assert!(
                handle
                    .wait_for(written.last_position, Duration::from_secs(5))
                    .await
            );
            latencies.push(started.elapsed().as_secs_f64() * 1e3);
        }
        handle.stop().await.expect("stop");
        latencies.sort_by(f64::total_cmp);
        let p50 = latencies[latencies.len() / 2];
        let p99 = latencies[latencies.len() * 99 / 100];
        println!(
            "run {run}: catch-up {head} events at {rate:.0} events/s; live append-to-visible p50 {p50:.2} ms, p99 {p99:.2} ms"
        );
        rates.push(rate);
        p50s.push(p50);
        p99s.push(p99);
        store.close().await.expect("close");
    }
    println!(
        "median of {runs}: catch-up {:.0} events/s; live p50 {:.2} ms, p99 {:.2} ms",
        median(rates),
        median(p50s),
        median(p99s)
    );
}
