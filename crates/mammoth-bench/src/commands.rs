//! The harness behind `mammoth bench commands`: runs the runtime's command benchmark
//! ([`mammoth_runtime::bench::bench_commands`]: commands through the CommandBus and repository
//! beside raw appends of the same events, and a long aggregate loaded with and without a
//! snapshot) on fresh SQLite files, repeats it, and judges the medians against the targets.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use mammoth_runtime::bench::{BenchCase, BenchOptions as RuntimeOptions, bench_commands};
use mammoth_sqlite::snapshot::SqliteSnapshotStore;
use mammoth_sqlite::{SqliteEventStore, SqliteOptions, Synchronous};
use serde::Serialize;

use crate::counted::{Counted, OpenStores};
use crate::{BenchError, Progress, synchronous_name, temporary_dir, thousands};

/// Commands with 64 callers must reach this fraction of the raw append rate of the same run.
pub const COMMANDS_RATIO_TARGET: f64 = 0.5;
/// A load with a snapshot must be this many times faster than without.
pub const SNAPSHOT_SPEEDUP_TARGET: f64 = 20.0;

/// A part of the command benchmark that `--cases` can select.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CommandsPart {
    /// Raw appends and commands: 1 and 64 callers on their own aggregates, 64 callers on 16
    /// shared aggregates.
    Throughput,
    /// A long aggregate loaded without and with a snapshot.
    Load,
}

impl CommandsPart {
    /// Both parts, in report order.
    pub const ALL: [CommandsPart; 2] = [CommandsPart::Throughput, CommandsPart::Load];

    /// The part's name, as `--cases` takes it.
    pub fn name(self) -> &'static str {
        match self {
            CommandsPart::Throughput => "throughput",
            CommandsPart::Load => "load",
        }
    }
}

impl fmt::Display for CommandsPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CommandsPart {
    type Err = String;

    /// Parses `throughput` or `load`.
    fn from_str(text: &str) -> Result<Self, String> {
        CommandsPart::ALL
            .into_iter()
            .find(|part| part.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| format!("unknown case `{text}`; the cases are throughput and load"))
    }
}

/// How `mammoth bench commands` runs.
#[derive(Clone, Debug)]
pub struct CommandsOptions {
    /// How long each throughput case runs (raw appends and commands each).
    pub duration: Duration,
    /// How many times the whole benchmark runs; the report gives medians.
    pub runs: usize,
    /// Events in the stream of the load case.
    pub load_events: u64,
    /// Loads timed per load case in each run (their median is that run's time).
    pub load_repeats: usize,
    /// Where the temporary files go; `None` for the system's temporary directory.
    pub dir: Option<PathBuf>,
    /// Durability of every store.
    pub synchronous: Synchronous,
    /// The parts to run.
    pub parts: Vec<CommandsPart>,
}

impl Default for CommandsOptions {
    /// The measurement: 3 s per case, 3 runs, a 10,000-event load timed 7 times.
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(3),
            runs: 3,
            load_events: 10_000,
            load_repeats: 7,
            dir: None,
            synchronous: Synchronous::Full,
            parts: CommandsPart::ALL.to_vec(),
        }
    }
}

impl CommandsOptions {
    /// A quick check of a few seconds: one run, 0.5 s per case, 3 timed loads.
    pub fn quick() -> Self {
        Self {
            duration: Duration::from_millis(500),
            runs: 1,
            load_repeats: 3,
            ..Self::default()
        }
    }
}

/// One case of `mammoth bench commands`, as `--json` prints it. Rates and times are medians
/// over the runs; counts and seconds are totals. `None` fields do not apply to the case.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CommandsResult {
    /// `commands_1`, `commands_64`, `commands_64_shared` or `load`.
    pub case: &'static str,
    /// What the case measures.
    pub title: String,
    /// Concurrent callers.
    pub callers: usize,
    /// Distinct aggregates written at once.
    pub aggregates: usize,
    /// Runs measured.
    pub runs: usize,
    /// Commands completed (loads timed, for the load case), all runs together.
    pub operations: u64,
    /// Seconds measured, all runs together.
    pub seconds: f64,
    /// Commands per second through the CommandBus and repository.
    pub commands_per_s: Option<f64>,
    /// Raw appends per second of the same events with the same callers, in the same run.
    pub raw_events_per_s: Option<f64>,
    /// `commands_per_s / raw_events_per_s` (the median of each run's ratio).
    pub ratio_to_raw: Option<f64>,
    /// Each run's ratio to raw.
    pub ratio_per_run: Option<Vec<f64>>,
    /// Conflicts the repository retried, all runs together.
    pub conflicts_retried: Option<u64>,
    /// Events in the loaded stream.
    pub load_events: Option<u64>,
    /// Time of one load without a snapshot, microseconds.
    pub load_without_snapshot_us: Option<f64>,
    /// Time of one load with a snapshot, microseconds.
    pub load_with_snapshot_us: Option<f64>,
    /// How many times faster the load is with a snapshot (the median of each run's).
    pub snapshot_speedup: Option<f64>,
    /// Each run's speed-up.
    pub speedup_per_run: Option<Vec<f64>>,
    /// `full` or `normal`.
    pub synchronous: &'static str,
    /// The target, as text.
    pub target: &'static str,
    /// Whether the median met the target; `None` for a case without a target.
    pub pass: Option<bool>,
}

/// Runs the command benchmark `options.runs` times, each run on fresh files in a temporary
/// directory removed afterwards, and reports the medians of the selected parts.
///
/// # Errors
/// [`BenchError::Setup`] for zero runs or a directory that cannot be created; the first
/// failure of a store.
pub async fn run_commands(
    options: &CommandsOptions,
    progress: Arc<dyn Progress>,
) -> Result<Vec<CommandsResult>, BenchError> {
    if options.runs == 0 {
        return Err(BenchError::Setup("at least one run is needed".to_owned()));
    }
    let mut runs = Vec::with_capacity(options.runs);
    for run in 1..=options.runs {
        runs.push(one_run(options, run, &progress).await?);
    }
    Ok(summarize(options, &runs))
}

async fn one_run(
    options: &CommandsOptions,
    run: usize,
    progress: &Arc<dyn Progress>,
) -> Result<Vec<BenchCase>, BenchError> {
    let dir = temporary_dir(options.dir.as_deref(), "mammoth-bench-commands-")?;
    let throughput = options.parts.contains(&CommandsPart::Throughput);
    let load = options.parts.contains(&CommandsPart::Load);
    // The runtime's benchmark always runs every case: a part left out runs for no time (zero
    // duration, a one-event load) and its results are dropped.
    let runtime_options = RuntimeOptions {
        duration: if throughput {
            options.duration
        } else {
            Duration::ZERO
        },
        load_events: if load { options.load_events } else { 1 },
        load_repeats: if load { options.load_repeats } else { 1 },
    };
    let sqlite = SqliteOptions {
        synchronous: options.synchronous,
        ..SqliteOptions::default()
    };
    let path = |case: &str| dir.path().join(format!("{case}.db"));
    let open = OpenStores::default();
    let cases = bench_commands(
        |case| {
            open.close_all_blocking()?;
            progress.phase(&phase_label(case, run, options), None);
            let store = SqliteEventStore::open(path(case), sqlite)?;
            open.add(store.clone());
            Ok(Counted {
                store,
                progress: Arc::clone(progress),
                count_reads: case == "load",
            })
        },
        |case| SqliteSnapshotStore::open(path(case)),
        runtime_options,
    )
    .await;
    let closed = open.close_all().await;
    let cases = cases?;
    closed?;
    Ok(cases)
}

/// What the progress bar says while the runtime's case `case` runs.
fn phase_label(case: &str, run: usize, options: &CommandsOptions) -> String {
    let what = match case {
        "raw-1" => "raw appends, 1 caller".to_owned(),
        "commands-1" => "commands, 1 caller".to_owned(),
        "commands-shared" => "commands, 64 callers on 16 shared aggregates".to_owned(),
        "load" => format!(
            "load a {}-event aggregate, with and without a snapshot (events written and read)",
            thousands(options.load_events)
        ),
        other => match other.split_once('-') {
            Some(("raw", callers)) => format!("raw appends, {callers} callers"),
            Some(("commands", callers)) => format!("commands, {callers} callers"),
            _ => other.to_owned(),
        },
    };
    if options.runs > 1 {
        format!("run {run}/{}: {what}", options.runs)
    } else {
        what
    }
}

/// The cases of every run, gathered per reported case, medians taken and targets judged.
fn summarize(options: &CommandsOptions, runs: &[Vec<BenchCase>]) -> Vec<CommandsResult> {
    let find = |name: &str, callers: usize| -> Vec<&BenchCase> {
        runs.iter()
            .filter_map(|cases| {
                cases
                    .iter()
                    .find(|case| case.case == name && case.callers == callers)
            })
            .collect()
    };
    let mut results = Vec::new();
    if options.parts.contains(&CommandsPart::Throughput) {
        for (case, name, callers, title, target) in [
            (
                "commands_1",
                "commands_own",
                1,
                "1 caller, own aggregates",
                "report only",
            ),
            (
                "commands_64",
                "commands_own",
                64,
                "64 callers, own aggregates",
                ">= 0.5x raw",
            ),
            (
                "commands_64_shared",
                "commands_shared",
                64,
                "64 callers, 16 shared aggregates",
                "report only",
            ),
        ] {
            let measured = find(name, callers);
            if !measured.is_empty() {
                results.push(throughput_result(case, title, target, options, &measured));
            }
        }
    }
    if options.parts.contains(&CommandsPart::Load) {
        let without = find("load_without_snapshot", 1);
        let with = find("load_with_snapshot", 1);
        if !without.is_empty() && without.len() == with.len() {
            results.push(load_result(options, &without, &with));
        }
    }
    results
}

fn throughput_result(
    case: &'static str,
    title: &str,
    target: &'static str,
    options: &CommandsOptions,
    measured: &[&BenchCase],
) -> CommandsResult {
    let rates: Vec<f64> = measured.iter().map(|run| run.per_second).collect();
    let raws: Vec<f64> = measured
        .iter()
        .filter_map(|run| run.raw_append_per_second)
        .collect();
    let ratios: Vec<f64> = measured
        .iter()
        .filter_map(|run| {
            let raw = run.raw_append_per_second?;
            (raw > 0.0).then(|| run.per_second / raw)
        })
        .collect();
    let ratio_to_raw = median(&ratios);
    CommandsResult {
        case,
        title: title.to_owned(),
        callers: measured[0].callers,
        aggregates: measured[0].aggregates,
        runs: measured.len(),
        operations: measured.iter().map(|run| run.operations).sum(),
        seconds: measured.iter().map(|run| run.seconds).sum(),
        commands_per_s: median(&rates),
        raw_events_per_s: median(&raws),
        ratio_to_raw,
        ratio_per_run: Some(ratios),
        conflicts_retried: Some(measured.iter().map(|run| run.conflicts_retried).sum()),
        load_events: None,
        load_without_snapshot_us: None,
        load_with_snapshot_us: None,
        snapshot_speedup: None,
        speedup_per_run: None,
        synchronous: synchronous_name(options.synchronous),
        target,
        pass: (case == "commands_64")
            .then(|| ratio_to_raw.is_some_and(|ratio| ratio >= COMMANDS_RATIO_TARGET)),
    }
}

fn load_result(
    options: &CommandsOptions,
    without: &[&BenchCase],
    with: &[&BenchCase],
) -> CommandsResult {
    let micros = |runs: &[&BenchCase]| -> Vec<f64> {
        runs.iter()
            .filter_map(|run| run.median_load_micros)
            .collect()
    };
    let (without_us, with_us) = (micros(without), micros(with));
    let speedups: Vec<f64> = without_us
        .iter()
        .zip(&with_us)
        .filter(|(_, with)| **with > 0.0)
        .map(|(without, with)| without / with)
        .collect();
    let snapshot_speedup = median(&speedups);
    let both = without.iter().chain(with);
    CommandsResult {
        case: "load",
        title: format!("load a {}-event aggregate", thousands(options.load_events)),
        callers: 1,
        aggregates: 1,
        runs: without.len(),
        operations: both.clone().map(|run| run.operations).sum(),
        seconds: both.map(|run| run.seconds).sum(),
        commands_per_s: None,
        raw_events_per_s: None,
        ratio_to_raw: None,
        ratio_per_run: None,
        conflicts_retried: None,
        load_events: Some(options.load_events),
        load_without_snapshot_us: median(&without_us),
        load_with_snapshot_us: median(&with_us),
        snapshot_speedup,
        speedup_per_run: Some(speedups),
        synchronous: synchronous_name(options.synchronous),
        target: ">= 20x faster with a snapshot",
        pass: Some(snapshot_speedup.is_some_and(|speedup| speedup >= SNAPSHOT_SPEEDUP_TARGET)),
    }
}

/// The median (the mean of the middle two for an even count); `None` for no values.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[middle]),
        _ => Some((sorted[middle - 1] + sorted[middle]) / 2.0),
    }
}
