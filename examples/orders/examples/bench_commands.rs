//! Measures commands through the CommandBus + repository on SQLite (synchronous=FULL) beside
//! the raw append rate of the same run, and a 10,000-event aggregate load with and without a
//! snapshot; repeats the whole run and prints the medians.
//!
//! `cargo run --release -p mammoth-example-orders --example bench_commands -- [--runs 3] [--short] [--json]`

use std::collections::BTreeMap;

use mammoth_runtime::bench::{BenchCase, BenchOptions, bench_commands};
use mammoth_sqlite::snapshot::SqliteSnapshotStore;
use mammoth_sqlite::{SqliteEventStore, SqliteOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|arg| arg == "--json");
    let options = if args.iter().any(|arg| arg == "--short") {
        BenchOptions::short()
    } else {
        BenchOptions::default()
    };
    let runs: usize = args
        .iter()
        .position(|arg| arg == "--runs")
        .and_then(|index| args.get(index + 1))
        .map_or(Ok(3), |runs| runs.parse())?;
    let mut all: BTreeMap<(String, usize), Vec<BenchCase>> = BTreeMap::new();
    for run in 1..=runs {
        let dir = tempfile::tempdir()?;
        let path = |case: &str| dir.path().join(format!("{case}.db"));
        let cases = bench_commands(
            |case| SqliteEventStore::open(path(case), SqliteOptions::default()),
            |case| SqliteSnapshotStore::open(path(case)),
            options,
        )
        .await?;
        for case in cases {
            if json {
                println!("{}", serde_json::json!({ "run": run, "result": case }));
            }
            all.entry((case.case.clone(), case.callers))
                .or_default()
                .push(case);
        }
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!("\nmedians of {runs} run(s), SQLite synchronous=FULL:");
    let mut rates = BTreeMap::new();
    for ((case, callers), results) in &all {
        let mut per_second: Vec<f64> = results.iter().map(|r| r.per_second).collect();
        let rate = median(&mut per_second);
        rates.insert((case.clone(), *callers), rate);
        let mut line = format!("  {case:<22} callers {callers:>2}  {rate:>10.0}/s");
        if let Some(raw) = results[0].raw_append_per_second {
            let mut ratios: Vec<f64> = results
                .iter()
                .map(|r| r.per_second / r.raw_append_per_second.unwrap_or(raw))
                .collect();
            line += &format!("  ratio to raw appends {:.2}", median(&mut ratios));
        }
        let retried: u64 = results.iter().map(|r| r.conflicts_retried).sum();
        if retried > 0 {
            line += &format!("  conflicts retried {retried}");
        }
        if results[0].median_load_micros.is_some() {
            let mut loads: Vec<f64> = results
                .iter()
                .filter_map(|r| r.median_load_micros)
                .collect();
            line += &format!("  median load {:.0} µs", median(&mut loads));
        }
        println!("{line}");
    }
    let without = rates.get(&("load_without_snapshot".to_owned(), 1));
    let with = rates.get(&("load_with_snapshot".to_owned(), 1));
    if let (Some(without), Some(with)) = (without, with) {
        println!(
            "  snapshot speed-up of a {}-event load: {:.0}x",
            options.load_events,
            with / without
        );
    }
    Ok(())
}
