//! `mammoth bench commands`: commands through the CommandBus and repository on SQLite beside
//! the raw append rate of the same run, and aggregate loads with and without a snapshot.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use mammoth_bench::{CommandsOptions, CommandsPart, CommandsResult};

use super::bar::Bar;
use super::{SynchronousArg, check_seconds, filesystem_of};
use crate::cli::GlobalOptions;
use crate::output::{Columns, Output, thousands};

/// Arguments of `bench commands`.
#[derive(Debug, Args)]
pub struct CommandsArgs {
    /// Seconds each throughput case runs (raw appends and commands each). Default: 3, or 0.5
    /// with --quick.
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,

    /// How many times the whole benchmark runs; the report gives medians. Default: 3, or 1
    /// with --quick.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=100))]
    pub runs: Option<u16>,

    /// A quick check of a few seconds: one run, 0.5 s per case, 3 timed loads (--seconds and
    /// --runs still apply).
    #[arg(long)]
    pub quick: bool,

    /// Directory for the temporary database files (default: the system's temp directory).
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,

    /// Durability of every store (the targets are set for full).
    #[arg(long, value_enum, default_value = "full")]
    pub synchronous: SynchronousArg,

    /// The parts to run, separated by commas: throughput (commands beside raw appends) and
    /// load (with and without a snapshot).
    #[arg(
        long,
        value_name = "throughput,load",
        value_delimiter = ',',
        default_value = "throughput,load"
    )]
    pub cases: Vec<CommandsPart>,
}

impl CommandsArgs {
    fn options(&self) -> anyhow::Result<CommandsOptions> {
        let mut options = if self.quick {
            CommandsOptions::quick()
        } else {
            CommandsOptions::default()
        };
        if let Some(seconds) = self.seconds {
            check_seconds(seconds)?;
            options.duration = Duration::from_secs_f64(seconds);
        }
        if let Some(runs) = self.runs {
            options.runs = usize::from(runs);
        }
        let mut parts = self.cases.clone();
        parts.sort();
        parts.dedup();
        options.parts = parts;
        options.dir.clone_from(&self.path);
        options.synchronous = self.synchronous.into();
        Ok(options)
    }
}

/// Runs `bench commands`.
///
/// # Errors
/// Bad flags (exit 2) or a failed benchmark.
pub async fn run(args: CommandsArgs, global: &GlobalOptions) -> anyhow::Result<()> {
    let options = args.options()?;
    let mut out = Output::new(global.json);
    let dir = options.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&dir).ok();
    let fs_type = filesystem_of(&dir);
    if !out.is_json() {
        let load = if options.parts.contains(&CommandsPart::Load) {
            format!(
                ", a {}-event load timed {} times per run",
                thousands(options.load_events),
                options.load_repeats
            )
        } else {
            String::new()
        };
        out.line(format!(
            "mammoth bench commands: synchronous={}, {} s per case, {} run{}{load}, files in {}{}",
            mammoth_bench::synchronous_name(options.synchronous).to_uppercase(),
            options.duration.as_secs_f64(),
            options.runs,
            if options.runs == 1 { "" } else { "s (medians)" },
            dir.display(),
            fs_type.map(|fs| format!(" ({fs})")).unwrap_or_default(),
        ))?;
        out.flush()?;
    }
    let bar = Bar::new(!out.is_json() && std::io::stderr().is_terminal());
    let results = mammoth_bench::run_commands(&options, Arc::new(bar.clone())).await;
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

fn print_table(results: &[CommandsResult], out: &mut Output) -> anyhow::Result<()> {
    let mut rows = vec![
        [
            "CASE",
            "COMMANDS/S",
            "RAW APPENDS/S",
            "RATIO",
            "RETRIED",
            "LOAD NO SNAPSHOT / SNAPSHOT",
            "TARGET",
            "RESULT",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let rate = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| thousands(v as u64));
    let micros = |value: Option<f64>| {
        value.map_or_else(|| "-".to_owned(), |v| format!("{} us", thousands(v as u64)))
    };
    for result in results {
        let (ratio, per_run) = match (result.ratio_to_raw, result.snapshot_speedup) {
            (Some(ratio), _) => (format!("{ratio:.2}x"), &result.ratio_per_run),
            (None, Some(speedup)) => (format!("{speedup:.0}x"), &result.speedup_per_run),
            (None, None) => ("-".to_owned(), &None),
        };
        let spread = match per_run.as_deref() {
            Some(values) if values.len() > 1 => {
                let low = values.iter().copied().fold(f64::INFINITY, f64::min);
                let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let digits = usize::from(result.ratio_to_raw.is_some()) * 2;
                format!(" ({low:.digits$}-{high:.digits$})")
            }
            _ => String::new(),
        };
        let load = match (
            result.load_without_snapshot_us,
            result.load_with_snapshot_us,
        ) {
            (None, None) => "-".to_owned(),
            (without, with) => format!("{} / {}", micros(without), micros(with)),
        };
        rows.push(vec![
            result.title.clone(),
            rate(result.commands_per_s),
            rate(result.raw_events_per_s),
            ratio + &spread,
            result
                .conflicts_retried
                .map_or_else(|| "-".to_owned(), thousands),
            load,
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
    if results.iter().any(|result| result.runs > 1) {
        out.line("RATIO is the median over the runs, (lowest-highest) beside it.")?;
    }
    Ok(())
}
