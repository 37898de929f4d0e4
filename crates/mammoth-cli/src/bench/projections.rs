//! `mammoth bench projections`: the seed's OrderProjection catching up on SQLite beside the
//! raw append and scan rates of the same run, and live append-to-visible latency.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use mammoth_bench::{CatchUpSize, ProjectionsOptions, ProjectionsResult};

use super::bar::Bar;
use super::{check_seconds, filesystem_of};
use crate::cli::GlobalOptions;
use crate::exit::usage_error;
use crate::output::{Columns, Output, thousands};

/// Arguments of `bench projections`.
#[derive(Debug, Args)]
pub struct ProjectionsArgs {
    /// Fill the log for this many seconds (64 concurrent appenders) instead of to --events.
    #[arg(long, value_name = "S", conflicts_with = "events")]
    pub seconds: Option<f64>,

    /// Events in the log the projection catches up on. Default: 300,000, or 20,000 with
    /// --quick.
    #[arg(long, value_name = "N")]
    pub events: Option<u64>,

    /// How many times the whole benchmark runs; the report gives medians. Default: 3, or 1
    /// with --quick.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=100))]
    pub runs: Option<u16>,

    /// A quick check of a few seconds: one run, 20,000 events, 200 live appends (--seconds,
    /// --events and --runs still apply).
    #[arg(long)]
    pub quick: bool,

    /// Directory for the temporary database files (default: the system's temp directory).
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
}

impl ProjectionsArgs {
    fn options(&self) -> anyhow::Result<ProjectionsOptions> {
        let mut options = if self.quick {
            ProjectionsOptions::quick()
        } else {
            ProjectionsOptions::default()
        };
        if let Some(seconds) = self.seconds {
            check_seconds(seconds)?;
            options.size = CatchUpSize::Duration(Duration::from_secs_f64(seconds));
        }
        if let Some(events) = self.events {
            if events < 2 {
                usage_error!("--events must be at least 2 (an order is two events), got {events}");
            }
            options.size = CatchUpSize::Events(events);
        }
        if let Some(runs) = self.runs {
            options.runs = usize::from(runs);
        }
        options.dir.clone_from(&self.path);
        Ok(options)
    }
}

/// Runs `bench projections`.
///
/// # Errors
/// Bad flags (exit 2) or a failed benchmark.
pub async fn run(args: ProjectionsArgs, global: &GlobalOptions) -> anyhow::Result<()> {
    let options = args.options()?;
    let mut out = Output::new(global.json);
    let dir = options.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&dir).ok();
    let fs_type = filesystem_of(&dir);
    if !out.is_json() {
        let size = match options.size {
            CatchUpSize::Events(events) => format!("{} events", thousands(events)),
            CatchUpSize::Duration(duration) => {
                format!("a log filled for {} s", duration.as_secs_f64())
            }
        };
        out.line(format!(
            "mammoth bench projections: OrderProjection on SQLite (synchronous=FULL), {size}, {} live appends, {} run{}, files in {}{}",
            thousands(options.live_appends as u64),
            options.runs,
            if options.runs == 1 { "" } else { "s (medians)" },
            dir.display(),
            fs_type.map(|fs| format!(" ({fs})")).unwrap_or_default(),
        ))?;
        out.flush()?;
    }
    let bar = Bar::new(!out.is_json() && std::io::stderr().is_terminal());
    let results = mammoth_bench::run_projections(&options, Arc::new(bar.clone())).await;
    bar.finish();
    let results = results?;
    if out.is_json() {
        for result in &results {
            out.json_line(result)?;
        }
    } else {
        print_table(&results, &mut out)?;
    }
    out.flush()
}

fn print_table(results: &[ProjectionsResult], out: &mut Output) -> anyhow::Result<()> {
    let mut rows = vec![
        [
            "CASE",
            "EVENTS/S",
            "RAW APPENDS/S",
            "RAW SCAN/S",
            "RATIO TO SCAN",
            "P50 / P99",
            "TARGET",
            "RESULT",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let rate = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| thousands(v as u64));
    let spread = |values: Option<&[f64]>, show: &dyn Fn(f64) -> String| match values {
        Some(values) if values.len() > 1 => {
            let low = values.iter().copied().fold(f64::INFINITY, f64::min);
            let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!(" ({}-{})", show(low), show(high))
        }
        _ => String::new(),
    };
    for result in results {
        let events = match result.events_per_s {
            Some(value) => {
                rate(Some(value))
                    + &spread(result.events_per_s_per_run.as_deref(), &|v| {
                        thousands(v as u64)
                    })
            }
            None => "-".to_owned(),
        };
        let latency = match (result.p50_ms, result.p99_ms) {
            (Some(p50), Some(p99)) => {
                format!("{p50:.2} / {p99:.2} ms")
                    + &spread(result.p99_ms_per_run.as_deref(), &|v| format!("{v:.2}"))
            }
            _ => "-".to_owned(),
        };
        rows.push(vec![
            result.title.clone(),
            events,
            rate(result.raw_append_events_per_s),
            rate(result.raw_scan_events_per_s),
            result
                .ratio_to_scan
                .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}x")),
            latency,
            result.target.to_owned(),
            if result.pass { "PASS" } else { "MISS" }.to_owned(),
        ]);
    }
    let columns = Columns::fitting(&rows);
    for row in &rows {
        out.line(columns.row(row))?;
    }
    if results.iter().any(|result| result.runs > 1) {
        out.line("Medians over the runs, (lowest-highest) beside them.")?;
    }
    out.line(
        "RAW APPENDS/S: 64 concurrent appenders filling the log; RAW SCAN/S: the same log read through the store with the projection's filter, nothing applied.",
    )?;
    Ok(())
}
