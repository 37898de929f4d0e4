//! `mammoth bench store`: the store beside raw SQLite on this machine, with a progress bar on
//! stderr, a table (or JSON lines) on stdout. The harness is `mammoth-bench`; this module
//! parses the flags, draws progress and prints results.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use mammoth_bench::{
    BenchOptions, Case, CaseResult, ChildCommand, DEFAULT_READ_EVENTS, Harness, Progress,
};
use mammoth_sqlite::Synchronous;

use crate::cli::GlobalOptions;
use crate::exit::usage_error;
use crate::output::{Columns, Output, thousands};

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Measure the embedded SQLite store beside raw SQLite, in the same run.
    ///
    /// Cases: (a) sequential one-event appends; (b) 64 concurrent tasks appending one-event
    /// batches to their own streams; (c) 100-event appends; (d) reading the whole global log;
    /// (e) latency from an append to a live subscriber (p50, p99); (f) peak resident memory of
    /// a fresh process reading the whole log. Each case runs on fresh files in a temporary
    /// directory, and its raw side (plain rusqlite on the same schema, same rows, same
    /// synchronous setting) runs right after it.
    #[command(
        after_long_help = "Examples:\n  mammoth bench store                          # about a minute and a half\n  mammoth bench store --seconds 2              # a quick check of every case\n  mammoth bench store --cases b,e --seconds 10\n  mammoth bench store --synchronous normal --json > bench.jsonl\n\nPut --path on the disk you want to measure: a RAM disk (tmpfs) measures memory."
    )]
    Store(StoreArgs),

    /// Reads a store's whole log and prints this process's peak memory as JSON (used by
    /// `bench store` to measure case (f) in a fresh process).
    #[command(hide = true)]
    ReadLog(ReadLogArgs),
}

/// Durability, as the flag spells it.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SynchronousArg {
    /// fsync every commit (the store's default).
    Full,
    /// fsync at WAL checkpoints only.
    Normal,
}

impl From<SynchronousArg> for Synchronous {
    fn from(value: SynchronousArg) -> Self {
        match value {
            SynchronousArg::Full => Synchronous::Full,
            SynchronousArg::Normal => Synchronous::Normal,
        }
    }
}

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

    /// The cases to run, by letter (a to f), separated by commas.
    #[arg(
        long,
        value_name = "a,b,...",
        value_delimiter = ',',
        default_value = "a,b,c,d,e,f"
    )]
    pub cases: Vec<Case>,
}

/// Arguments of the hidden `bench read-log`.
#[derive(Debug, Args)]
pub struct ReadLogArgs {
    /// The database file.
    pub path: PathBuf,
    /// Scan with plain SQL instead of reading through the store.
    #[arg(long)]
    pub raw: bool,
}

/// Runs a bench command.
///
/// # Errors
/// Bad flags (exit 2) or a failed benchmark.
pub async fn run(command: BenchCommand, global: &GlobalOptions) -> anyhow::Result<()> {
    match command {
        BenchCommand::Store(args) => store(args, global).await,
        BenchCommand::ReadLog(args) => {
            let report = mammoth_bench::read_log(&args.path, args.raw).await?;
            let mut out = Output::new(true);
            out.json_line(&report)?;
            out.flush()
        }
    }
}

async fn store(args: StoreArgs, global: &GlobalOptions) -> anyhow::Result<()> {
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 3_600.0) {
        usage_error!(
            "--seconds must be more than 0 and at most 3600, got {}",
            args.seconds
        );
    }
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
    let fs_type = mammoth_bench::filesystem_type(harness.dir());
    if matches!(fs_type.as_deref(), Some("tmpfs" | "ramfs")) {
        eprintln!(
            "warning: {} is on a RAM disk ({}); fsync costs nothing there, so the numbers do not describe a disk. Use --path DIR on a disk.",
            harness.dir().display(),
            fs_type.as_deref().unwrap_or("?")
        );
    }
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
    let mut results = Vec::new();
    for case in cases {
        let result = harness.run(case).await?;
        if out.is_json() {
            out.json_line(&result)?;
            out.flush()?;
        }
        results.push(result);
    }
    bar.finish();
    if !out.is_json() {
        print_table(&results, &mut out)?;
    }
    out.flush()
}

fn print_table(results: &[CaseResult], out: &mut Output) -> anyhow::Result<()> {
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
    for result in results {
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
            result
                .ratio_to_raw
                .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}x")),
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

/// The progress bar on stderr; hidden under --json or when stderr is not a terminal.
#[derive(Clone)]
struct Bar(ProgressBar);

impl Bar {
    fn new(visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self(ProgressBar::with_draw_target(None, target))
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bar {
    fn phase(&self, label: &str, length: Option<u64>) {
        let template = match length {
            Some(_) => {
                "{spinner} {msg} [{bar:30}] {human_pos}/{human_len} events ({rate}, {eta} left)"
            }
            None => "{spinner} {msg}: {human_pos} events ({rate}, {elapsed})",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            let style = style
                .with_key(
                    "rate",
                    |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                        let _ = write!(out, "{}/s", thousands(state.per_sec() as u64));
                    },
                )
                .progress_chars("=> ");
            self.0.set_style(style);
        }
        self.0.reset();
        self.0.set_length(length.unwrap_or(0));
        if length.is_none() {
            self.0.unset_length();
        }
        self.0.set_message(label.to_owned());
        self.0.enable_steady_tick(Duration::from_millis(120));
    }

    fn advance(&self, units: u64) {
        self.0.inc(units);
    }
}
