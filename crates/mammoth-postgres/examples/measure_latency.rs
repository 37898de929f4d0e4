//! Case (e) alone, on a fresh scratch schema: the latency of single appends (append returns)
//! and of append → live subscriber, p50 and p99 over 300 sequential appends each.
//!
//! ```text
//! cargo run --release -p mammoth-postgres --example measure_latency -- [URL] [RUNS]
//! ```
//! URL defaults to $MAMMOTH_TEST_POSTGRES_URL; RUNS to 3. Prints each run and the medians
//! (microseconds). `measure_postgres` measures (e) after its write phases; this one measures
//! it on an idle schema, so the two tell the store's latency from the server's background work.

use std::sync::Arc;
use std::time::Instant;

use mammoth_core::{EventFilter, EventStore, ExpectedVersion, NewEvent, StreamId, Subscription};
use mammoth_postgres::{PgEventStore, PgOptions};

const APPENDS: u64 = 300;

fn event(n: u64) -> NewEvent {
    NewEvent::from_json_text(
        "OrderPlaced",
        format!(r#"{{"order_id":"order-{n}","total_cents":1000,"items":3}}"#),
    )
}

fn stream(n: u64) -> StreamId {
    StreamId::new(format!("order-{n}")).expect("valid stream id")
}

fn quantiles(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[values.len() / 2], values[values.len() * 99 / 100])
}

async fn one_run(url: &str) -> Vec<(&'static str, f64)> {
    let schema = format!("mammoth_latency_{}", std::process::id());
    let _ = mammoth_postgres::drop_schema(url, &schema).await;
    let options = PgOptions {
        schema: schema.clone(),
        pool_size: 8,
        ..PgOptions::default()
    };
    let store = PgEventStore::open(url, options).await.expect("open store");

    let mut appends = Vec::new();
    for n in 0..APPENDS {
        let sent = Instant::now();
        store
            .append(&stream(n), ExpectedVersion::NoStream, vec![event(n)])
            .await
            .expect("append");
        appends.push(sent.elapsed().as_micros() as f64);
    }

    let start = store.head_position().await.expect("head") + 1;
    let mut subscription = Subscription::new(Arc::new(store.clone()), start, EventFilter::all());
    let mut delivered = Vec::new();
    for n in APPENDS..2 * APPENDS {
        let sent = Instant::now();
        store
            .append(&stream(n), ExpectedVersion::NoStream, vec![event(n)])
            .await
            .expect("append");
        subscription.next().await.expect("live event");
        delivered.push(sent.elapsed().as_micros() as f64);
    }

    store.close().await.expect("close");
    mammoth_postgres::drop_schema(url, &schema)
        .await
        .expect("drop scratch schema");
    let (a50, a99) = quantiles(appends);
    let (d50, d99) = quantiles(delivered);
    vec![
        ("single append p50 us", a50),
        ("single append p99 us", a99),
        ("append->subscriber p50 us", d50),
        ("append->subscriber p99 us", d99),
    ]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("MAMMOTH_TEST_POSTGRES_URL").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut all = Vec::new();
    for number in 1..=runs {
        let run = one_run(&url).await;
        println!("run {number}:");
        for (name, value) in &run {
            println!("  {name:<32} {value:>10.0}");
        }
        all.push(run);
    }
    println!("median of {runs} runs (microseconds):");
    for (index, (name, _)) in all[0].iter().enumerate() {
        let mut values: Vec<f64> = all.iter().map(|run| run[index].1).collect();
        values.sort_by(f64::total_cmp);
        println!("  {name:<32} {:>10.0}", values[values.len() / 2]);
    }
}
