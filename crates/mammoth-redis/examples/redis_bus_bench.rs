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
//! Every run uses its own key prefix and deletes its keys afterwards. The measuring code is
//! [`mammoth_redis::bench`], which `mammoth bench bus` runs too.

use mammoth_redis::RedisBusOptions;
use mammoth_redis::bench::{self, BrokerBenchOptions};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| {
        std::env::var("MAMMOTH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    });
    let defaults = BrokerBenchOptions::default();
    let options = BrokerBenchOptions {
        messages: args.next().map_or(Ok(defaults.messages), |n| n.parse())?,
        runs: args.next().map_or(Ok(defaults.runs), |n| n.parse())?,
    };
    println!(
        "redis bus bench: {} messages, {} runs, {url}",
        options.messages, options.runs
    );
    let base = RedisBusOptions {
        key_prefix: "mammoth-".to_owned(),
        ..RedisBusOptions::default()
    };
    let report = bench::run(&url, &base, &options).await?;
    for (n, r) in report.runs.iter().enumerate() {
        println!(
            "run {}: raw XADD {:>9.0}/s   bus publish {:>9.0}/s   relay {:>9.0}/s   consume {:>9.0}/s   (store reads and message building alone {:>9.0}/s)",
            n + 1,
            r.raw_per_sec,
            r.publish_per_sec,
            r.relay_per_sec,
            r.consume_per_sec,
            r.relay_read_per_sec
        );
    }
    let m = &report.median;
    println!(
        "median: raw XADD {:.0}/s, bus publish {:.0}/s ({:.2}x raw), relay {:.0}/s ({:.2}x raw), consume {:.0}/s ({:.2}x raw)",
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
