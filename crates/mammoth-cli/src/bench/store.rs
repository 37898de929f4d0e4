//! `mammoth bench store`: the store beside raw SQLite on this machine, case by case.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use mammoth_bench::{
    BenchOptions, Case, CaseResult, ChildCommand, DEFAULT_READ_EVENTS, Harness, MedianResult,
};

use super::bar::Bar;
use super::{SynchronousArg, check_seconds, filesystem_of};
use crate::cli::GlobalOptions;
use crate::output::{Columns, Output, thousands};

/// Arguments of `bench store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Seconds each timed side of a case runs (store and raw each).
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    pub seconds: f64,

    /// Events in the log that cases (d) and (f) read. Default: 5,000,000, or 1,000,000 per
    /// second of --seconds when that is less, so quick runs stay quick.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub events: Option<u64>,

    /// Directory for the temporary database files (default: the system's temp directory).
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,

    /// Durability for the store and the raw baseline alike.
    #[arg(long, value_enum, default_value = "full")]
    pub synchronous: SynchronousArg,

    /// How many times to run every case; with more than one, the report gives each number's
    /// median over the runs and the lowest and highest ratio to raw.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub runs: u32,

    /// The cases to run, by letter (a to f), separated by commas.
    #[arg(
        long,
        value_name = "a,b,...",
        value_delimiter = ',',
        default_value = "a,b,c,d,e,f"
    )]
    pub cases: Vec<Case>,
}

/// Runs `bench store`.
///
/// # Errors
/// Bad flags (exit 2) or a failed benchmark.
pub async fn run(args: StoreArgs, global: &GlobalOptions) -> anyhow::Result<()> {
    check_seconds(args.seconds)?;
    let read_events = args
        .events
        .unwrap_or_else(|| DEFAULT_READ_EVENTS.min((args.seconds * 1_000_000.0).ceil() as u64));
    let mut cases = args.cases.clone();
    cases.sort();
    cases.dedup();
    let options = BenchOptions {
        duration: Duration::from_secs_f64(args.seconds),
        read_events,
        dir: args.path.clone(),
        synchronous: args.synchronous.into(),
        child: Some(ChildCommand {
            program: std::env::current_exe()?,
            args: vec!["bench".into(), "read-log".into()],
        }),
    };
    let mut out = Output::new(global.json);
    let bar = Bar::new(!out.is_json() && std::io::stderr().is_terminal());
    let mut harness = Harness::new(options, Arc::new(bar.clone()))?;
    let fs_type = filesystem_of(harness.dir());
    if !out.is_json() {
        out.line(format!(
            "mammoth bench store: synchronous={}, {} s per side, read cases over {} events, files in {}{}",
            mammoth_bench::synchronous_name(args.synchronous.into()).to_uppercase(),
            args.seconds,
            thousands(read_events),
            harness.dir().display(),
            fs_type.map(|fs| format!(" ({fs})")).unwrap_or_default(),
        ))?;
        out.flush()?;
    }
    let mut per_case: Vec<Vec<CaseResult>> = vec![Vec::new(); cases.len()];
    for _ in 0..args.runs {
        for (case, runs) in cases.iter().zip(&mut per_case) {
            let result = harness.run(*case).await?;
            if out.is_json() && args.runs == 1 {
                out.json_line(&result)?;
                out.flush()?;
            }
            runs.push(result);
        }
    }
    bar.finish();
    let medians: Vec<MedianResult> = per_case
        .iter()
        .filter_map(|runs| CaseResult::median_of(runs))
        .collect();
    if out.is_json() {
        if args.runs > 1 {
            for median in &medians {
                out.json_line(median)?;
            }
        }
    } else {
        print_table(&medians, &mut out)?;
        if args.runs > 1 {
            out.line(format!(
                "Medians of {} runs; RATIO shows the lowest and highest run beside the median.",
                args.runs
            ))?;
        }
    }
    out.flush()
}

fn print_table(medians: &[MedianResult], out: &mut Output) -> anyhow::Result<()> {
    let mut rows = vec![
        [
            "CASE",
            "EVENTS",
            "EVENTS/S",
            "RAW/S",
            "RATIO",
            "P50 / P99 us",
            "PEAK RSS MB",
            "TARGET",
            "RESULT",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for median in medians {
        let result = &median.result;
        let latency = match (result.p50_us, result.p99_us) {
            (Some(p50), Some(p99)) => {
                let raw = match (result.raw_p50_us, result.raw_p99_us) {
                    (Some(p50), Some(p99)) => format!(" (raw commit {p50:.0} / {p99:.0})"),
                    _ => String::new(),
                };
                format!("{p50:.0} / {p99:.0}{raw}")
            }
            _ => "-".to_owned(),
        };
        let rss = match (result.peak_rss_mb, result.raw_peak_rss_mb) {
            (Some(store), Some(raw)) => format!("{store:.1} (raw {raw:.1})"),
            (Some(store), None) => format!("{store:.1}"),
            _ => "-".to_owned(),
        };
        rows.push(vec![
            format!("({}) {}", result.case, result.title),
            thousands(result.events),
            thousands(result.events_per_s.round() as u64),
            result
                .raw_events_per_s
                .map_or_else(|| "-".to_owned(), |raw| thousands(raw.round() as u64)),
            match (result.ratio_to_raw, median.ratio_low, median.ratio_high) {
                (Some(ratio), Some(low), Some(high)) if median.runs > 1 => {
                    format!("{ratio:.2}x ({low:.2}-{high:.2})")
                }
                (Some(ratio), _, _) => format!("{ratio:.2}x"),
                _ => "-".to_owned(),
            },
            latency,
            rss,
            result.target.to_owned(),
            match result.pass {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "-",
            }
            .to_owned(),
        ]);
    }
    let columns = Columns::fitting(&rows);
    for row in &rows {
        out.line(columns.row(row))?;
    }
    Ok(())
}
