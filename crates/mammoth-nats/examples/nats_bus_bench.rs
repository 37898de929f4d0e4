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
//! Every run uses its own streams and deletes them afterwards. The measuring code is
//! [`mammoth_nats::bench`], which `mammoth bench bus` runs too.

use mammoth_nats::NatsBusOptions;
use mammoth_nats::bench::{self, BrokerBenchOptions};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| {
        std::env::var("MAMMOTH_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
    });
    let defaults = BrokerBenchOptions::default();
    let options = BrokerBenchOptions {
        messages: args.next().map_or(Ok(defaults.messages), |n| n.parse())?,
        runs: args.next().map_or(Ok(defaults.runs), |n| n.parse())?,
        window: std::env::var("NATS_BENCH_WINDOW")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or(defaults.window),
    };
    println!(
        "nats bus bench: {} messages, {} runs, {url}",
        options.messages, options.runs
    );
    let report = bench::run(&url, &NatsBusOptions::default(), &options).await?;
    for (n, r) in report.runs.iter().enumerate() {
        println!(
            "run {}: raw publish {:>9.0}/s   bus publish {:>9.0}/s   relay {:>9.0}/s   consume {:>9.0}/s",
            n + 1,
            r.raw_per_sec,
            r.publish_per_sec,
            r.relay_per_sec,
            r.consume_per_sec
        );
    }
    let m = &report.median;
    println!(
        "median: raw publish {:.0}/s, bus publish {:.0}/s ({:.2}x raw), relay {:.0}/s ({:.2}x raw), consume {:.0}/s ({:.2}x raw)",
        m.raw_per_sec,
        m.publish_per_sec,
        m.publish_ratio,
        m.relay_per_sec,
        m.relay_ratio,
        m.consume_per_sec,
        m.consume_ratio
    );
    Ok(())
}
