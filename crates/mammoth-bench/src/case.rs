//! The benchmark cases, their targets, and what each one reports.

use std::fmt;
use std::str::FromStr;

use mammoth_sqlite::Synchronous;
use serde::Serialize;

use crate::commands::median;

/// One benchmark case. Each runs on fresh SQLite files, beside the raw SQLite limit measured
/// by the same harness in the same run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Case {
    /// (a) One writer appending one event at a time.
    SequentialAppends,
    /// (b) 64 concurrent tasks, each appending one-event batches to its own stream.
    ConcurrentAppends,
    /// (c) One writer appending 100 events at a time.
    BatchAppends,
    /// (d) Reading the whole global log.
    ScanLog,
    /// (e) Latency from the start of an append to a live subscriber receiving the event.
    SubscriberLatency,
    /// (f) Peak memory of a process reading the whole global log.
    ReadMemory,
}

impl Case {
    /// Every case, in report order.
    pub const ALL: [Case; 6] = [
        Case::SequentialAppends,
        Case::ConcurrentAppends,
        Case::BatchAppends,
        Case::ScanLog,
        Case::SubscriberLatency,
        Case::ReadMemory,
    ];

    /// The case's letter, as `--cases` takes it.
    pub fn letter(self) -> &'static str {
        match self {
            Case::SequentialAppends => "a",
            Case::ConcurrentAppends => "b",
            Case::BatchAppends => "c",
            Case::ScanLog => "d",
            Case::SubscriberLatency => "e",
            Case::ReadMemory => "f",
        }
    }

    /// What the case measures, in a few words.
    pub fn title(self) -> &'static str {
        match self {
            Case::SequentialAppends => "sequential 1-event appends",
            Case::ConcurrentAppends => "64 tasks, 1-event appends",
            Case::BatchAppends => "100-event appends",
            Case::ScanLog => "read the global log",
            Case::SubscriberLatency => "append -> live subscriber",
            Case::ReadMemory => "peak RSS reading the log",
        }
    }

    /// The target on the reference machine (2 cores, synchronous=FULL), as text.
    pub fn target(self) -> &'static str {
        match self {
            Case::SequentialAppends => "report only",
            Case::ConcurrentAppends => ">= 150,000 events/s",
            Case::BatchAppends => ">= 0.7x raw",
            Case::ScanLog => ">= 0.5x raw",
            Case::SubscriberLatency => "p99 < 5 ms",
            Case::ReadMemory => "< 100 MB",
        }
    }

    /// Whether `result` meets the target; `None` for a case without one.
    pub fn passes(self, result: &CaseResult) -> Option<bool> {
        match self {
            Case::SequentialAppends => None,
            Case::ConcurrentAppends => Some(result.events_per_s >= 150_000.0),
            Case::BatchAppends => result.ratio_to_raw.map(|ratio| ratio >= 0.7),
            Case::ScanLog => result.ratio_to_raw.map(|ratio| ratio >= 0.5),
            Case::SubscriberLatency => result.p99_us.map(|p99| p99 < 5_000.0),
            Case::ReadMemory => result.peak_rss_mb.map(|mb| mb < 100.0),
        }
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}) {}", self.letter(), self.title())
    }
}

impl FromStr for Case {
    type Err = String;

    /// Parses a case letter, `a` to `f`.
    fn from_str(text: &str) -> Result<Self, String> {
        Case::ALL
            .into_iter()
            .find(|case| case.letter().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| format!("unknown case `{text}`; the cases are a, b, c, d, e and f"))
    }
}

/// What one case measured. `None` fields were not measured by that case (JSON `null`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaseResult {
    /// The case letter, `a` to `f`.
    pub case: &'static str,
    /// What the case measures.
    pub title: &'static str,
    /// Events the store side wrote or read.
    pub events: u64,
    /// Seconds the store side took.
    pub seconds: f64,
    /// The store's rate.
    pub events_per_s: f64,
    /// The raw SQLite rate of the same work, measured in the same run.
    pub raw_events_per_s: Option<f64>,
    /// `events_per_s / raw_events_per_s`.
    pub ratio_to_raw: Option<f64>,
    /// Median latency, microseconds.
    pub p50_us: Option<f64>,
    /// 99th percentile latency, microseconds.
    pub p99_us: Option<f64>,
    /// Raw SQLite median commit latency of one event, microseconds.
    pub raw_p50_us: Option<f64>,
    /// Raw SQLite 99th percentile commit latency of one event, microseconds.
    pub raw_p99_us: Option<f64>,
    /// Peak resident memory of the process reading through the store, MiB.
    pub peak_rss_mb: Option<f64>,
    /// Peak resident memory of a process scanning the same table with plain SQL, MiB.
    pub raw_peak_rss_mb: Option<f64>,
    /// `full` or `normal`.
    pub synchronous: &'static str,
    /// The target, as text.
    pub target: &'static str,
    /// Whether the target was met; `None` for a case without a target.
    pub pass: Option<bool>,
}

impl CaseResult {
    /// A result with only the store side filled in.
    pub(crate) fn new(case: Case, synchronous: Synchronous, events: u64, seconds: f64) -> Self {
        Self {
            case: case.letter(),
            title: case.title(),
            events,
            seconds,
            events_per_s: rate(events, seconds),
            raw_events_per_s: None,
            ratio_to_raw: None,
            p50_us: None,
            p99_us: None,
            raw_p50_us: None,
            raw_p99_us: None,
            peak_rss_mb: None,
            raw_peak_rss_mb: None,
            synchronous: synchronous_name(synchronous),
            target: case.target(),
            pass: None,
        }
    }

    /// Adds the raw side's rate and the ratio.
    pub(crate) fn with_raw(mut self, events: u64, seconds: f64) -> Self {
        let raw = rate(events, seconds);
        self.raw_events_per_s = Some(raw);
        self.ratio_to_raw = (raw > 0.0).then(|| self.events_per_s / raw);
        self
    }

    /// Fills in `pass` from the case's target.
    pub(crate) fn judged(mut self, case: Case) -> Self {
        self.pass = case.passes(&self);
        self
    }

    /// The median of several runs of one case: each number is the median of that number over
    /// the runs (so a median ratio is not the ratio of the median rates), judged again against
    /// the target, with `runs` and the lowest and highest ratio seen.
    ///
    /// Returns `None` for an empty slice.
    pub fn median_of(runs: &[CaseResult]) -> Option<MedianResult> {
        let first = runs.first()?;
        let case = Case::ALL
            .into_iter()
            .find(|case| case.letter() == first.case)?;
        let numbers = |pick: fn(&CaseResult) -> Option<f64>| -> Option<f64> {
            median(&runs.iter().filter_map(pick).collect::<Vec<_>>())
        };
        let ratios: Vec<f64> = runs.iter().filter_map(|run| run.ratio_to_raw).collect();
        let result = CaseResult {
            events: numbers(|run| Some(run.events as f64)).map_or(0, |n| n.round() as u64),
            seconds: numbers(|run| Some(run.seconds)).unwrap_or(0.0),
            events_per_s: numbers(|run| Some(run.events_per_s)).unwrap_or(0.0),
            raw_events_per_s: numbers(|run| run.raw_events_per_s),
            ratio_to_raw: numbers(|run| run.ratio_to_raw),
            p50_us: numbers(|run| run.p50_us),
            p99_us: numbers(|run| run.p99_us),
            raw_p50_us: numbers(|run| run.raw_p50_us),
            raw_p99_us: numbers(|run| run.raw_p99_us),
            peak_rss_mb: numbers(|run| run.peak_rss_mb),
            raw_peak_rss_mb: numbers(|run| run.raw_peak_rss_mb),
            pass: None,
            ..first.clone()
        }
        .judged(case);
        Some(MedianResult {
            runs: runs.len(),
            ratio_low: ratios.iter().copied().reduce(f64::min),
            ratio_high: ratios.iter().copied().reduce(f64::max),
            result,
        })
    }
}

/// The medians of several runs of one case, as `mammoth bench store --runs N` reports them.
#[derive(Clone, Debug, Serialize)]
pub struct MedianResult {
    /// How many runs the medians are over.
    pub runs: usize,
    /// The lowest ratio to raw in any run.
    pub ratio_low: Option<f64>,
    /// The highest ratio to raw in any run.
    pub ratio_high: Option<f64>,
    /// The medians, judged against the target.
    #[serde(flatten)]
    pub result: CaseResult,
}

/// Events per second, 0 for an empty interval.
pub(crate) fn rate(events: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    }
}

/// `full` or `normal`, as the reports spell it.
pub fn synchronous_name(synchronous: Synchronous) -> &'static str {
    match synchronous {
        Synchronous::Full => "full",
        Synchronous::Normal => "normal",
    }
}
