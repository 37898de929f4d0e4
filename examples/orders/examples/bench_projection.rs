//! OrderProjection on SQLite: catch-up throughput from zero (events/s, beside the raw append
//! and scan rates of the same run) and live append-to-visible latency (p50/p99), each run in a
//! fresh temporary directory. The measuring lives in `mammoth-bench` (the harness behind
//! `mammoth bench projections`, which also judges the medians against the targets).
//!
//! `cargo run --release -p mammoth-example-orders --example bench_projection -- [EVENTS] [RUNS]`
//! (default 300,000 events, 3 runs; prints each run and the medians).

use std::sync::Arc;

use mammoth_bench::{CatchUpSize, NoProgress, ProjectionsOptions, run_projections_raw};

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(300_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let options = ProjectionsOptions {
        size: CatchUpSize::Events(events),
        runs,
        ..ProjectionsOptions::default()
    };
    let measured = run_projections_raw(&options, Arc::new(NoProgress)).await?;
    for (run, r) in measured.iter().enumerate() {
        println!(
            "run {run}: catch-up {} events at {:.0} events/s (raw appends {:.0}/s, raw scan {:.0}/s); live append-to-visible p50 {:.2} ms, p99 {:.2} ms",
            r.events,
            r.catch_up_events_per_s,
            r.raw_append_events_per_s,
            r.raw_scan_events_per_s,
            r.live_p50_ms,
            r.live_p99_ms
        );
    }
    let pick = |f: fn(&mammoth_bench::ProjectionsRun) -> f64| measured.iter().map(f).collect();
    println!(
        "median of {runs}: catch-up {:.0} events/s; live p50 {:.2} ms, p99 {:.2} ms",
        median(pick(|r| r.catch_up_events_per_s)),
        median(pick(|r| r.live_p50_ms)),
        median(pick(|r| r.live_p99_ms))
    );
    Ok(())
}
