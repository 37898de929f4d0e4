//! # mammoth-bench
//!
//! The harness behind `mammoth bench store`: each case runs the embedded SQLite store on a
//! fresh file and, in the same run and by the same code, the raw SQLite limit of the same work
//! (plain rusqlite on the same schema, same rows, same `synchronous` setting), so every number
//! comes with the ratio that says what it is worth on this machine.
//!
//! And the harness behind `mammoth bench commands` ([`run_commands`]): commands through the
//! CommandBus and repository on SQLite beside the raw append rate of the same run, and a long
//! aggregate loaded with and without a snapshot, repeated and reported as medians.
//!
//! And the harness behind `mammoth bench projections` ([`run_projections`]): the seed's
//! OrderProjection catching up on SQLite beside the raw append and scan rates of the same run,
//! and live append-to-visible latency.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mammoth_bench::{BenchOptions, Case, Harness, NoProgress};
//! # async fn demo() -> Result<(), mammoth_bench::BenchError> {
//! let mut harness = Harness::new(BenchOptions::quick(), Arc::new(NoProgress))?;
//! let result = harness.run(Case::ConcurrentAppends).await?;
//! println!("{} events/s, {:.1}x raw", result.events_per_s, result.ratio_to_raw.unwrap_or(0.0));
//! # Ok(()) }
//! ```

mod bus;
mod bus_sql;
mod case;
mod commands;
mod counted;
mod latency;
mod memory;
mod projections;
mod raw;
mod reads;
mod workload;
mod writes;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mammoth_core::StoreError;
use mammoth_sqlite::Synchronous;
use tempfile::TempDir;

pub use bus::{BusBenchOptions, BusBenchResult, BusRun, bench_bus};
pub use bus_sql::{
    SQL_BUS_BATCH, SqlBusBenchOptions, SqlBusBenchResult, SqlBusDatabase, SqlBusRun, bench_bus_sql,
};
pub use case::{Case, CaseResult, MedianResult, synchronous_name};
pub use commands::{
    COMMANDS_RATIO_TARGET, CommandsOptions, CommandsPart, CommandsResult, SNAPSHOT_SPEEDUP_TARGET,
    run_commands,
};
pub use memory::{ChildCommand, ReadReport, filesystem_type, read_log, status_kib};
pub use projections::{
    CATCH_UP_TARGET, CatchUpSize, LIVE_P99_TARGET_MS, ProjectionsOptions, ProjectionsResult,
    ProjectionsRun, run_projections, run_projections_raw,
};

/// The number of events the read cases (d) and (f) read, as the issue sets it.
pub const DEFAULT_READ_EVENTS: u64 = 5_000_000;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The store failed.
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    /// The raw SQLite baseline failed.
    #[error("the raw SQLite baseline failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Preparing the files or tasks failed.
    #[error("benchmark setup failed: {0}")]
    Setup(String),
    /// The memory-measuring child process failed.
    #[error("the reading child process failed: {0}")]
    Child(String),
}

/// How the harness runs.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// How long each timed side of a case runs (store and raw each).
    pub duration: Duration,
    /// Events in the log the read cases (d) and (f) read.
    pub read_events: u64,
    /// Where the temporary files go; `None` for the system's temporary directory.
    pub dir: Option<PathBuf>,
    /// Durability for the store and the raw baseline alike.
    pub synchronous: Synchronous,
    /// The process that measures (f); `None` reads in this process (less precise: the
    /// writer's memory counts too).
    pub child: Option<ChildCommand>,
}

impl BenchOptions {
    /// Small sizes for a smoke test: a fraction of a second per side, 20,000 events to read.
    pub fn quick() -> Self {
        Self {
            duration: Duration::from_millis(300),
            read_events: 20_000,
            dir: None,
            synchronous: Synchronous::Full,
            child: None,
        }
    }
}

/// Reports progress to whoever shows it (the CLI draws a bar). Calls come from many tasks.
pub trait Progress: Send + Sync {
    /// A new phase begins, `length` units long when known.
    fn phase(&self, label: &str, length: Option<u64>);
    /// `units` more units (events) of the current phase are done.
    fn advance(&self, units: u64);
}

/// Progress reporting that shows nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _label: &str, _length: Option<u64>) {}
    fn advance(&self, _units: u64) {}
}

/// Runs cases in one temporary directory, removed when the harness is dropped.
pub struct Harness {
    options: BenchOptions,
    dir: TempDir,
    progress: Arc<dyn Progress>,
    /// The populated log the read cases share: (path, events). Reading leaves it unchanged,
    /// so (d) and (f) read the same file rather than each writing millions of events.
    populated: Option<(PathBuf, u64)>,
}

impl Harness {
    /// A harness writing into a new temporary directory.
    ///
    /// # Errors
    /// [`BenchError::Setup`] when the directory cannot be created.
    pub fn new(options: BenchOptions, progress: Arc<dyn Progress>) -> Result<Self, BenchError> {
        let dir = temporary_dir(options.dir.as_deref(), "mammoth-bench-")?;
        Ok(Self {
            options,
            dir,
            progress,
            populated: None,
        })
    }

    /// The temporary directory the files go to.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The options the harness runs with.
    pub fn options(&self) -> &BenchOptions {
        &self.options
    }

    /// Runs one case, store side and raw side, and judges it against its target.
    ///
    /// # Errors
    /// Any failure of the store, SQLite, the files or the child process.
    pub async fn run(&mut self, case: Case) -> Result<CaseResult, BenchError> {
        let result = match case {
            Case::SequentialAppends => writes::sequential(self).await,
            Case::ConcurrentAppends => writes::concurrent(self).await,
            Case::BatchAppends => writes::batches(self).await,
            Case::ScanLog => reads::scan(self).await,
            Case::SubscriberLatency => latency::subscriber(self).await,
            Case::ReadMemory => reads::memory(self).await,
        }?;
        Ok(result.judged(case))
    }

    /// A path for a fresh file of `case`, removing any leftover of an earlier run.
    pub(crate) fn fresh_file(&self, case: Case, side: &str) -> PathBuf {
        let path = self.dir().join(format!("{}-{side}.db", case.letter()));
        remove_database(&path);
        path
    }

    pub(crate) fn progress(&self) -> &dyn Progress {
        self.progress.as_ref()
    }

    pub(crate) fn progress_handle(&self) -> Arc<dyn Progress> {
        self.progress.clone()
    }
}

/// A new temporary directory named `prefix...` in `parent` (created if missing), or in the
/// system's temporary directory.
pub(crate) fn temporary_dir(parent: Option<&Path>, prefix: &str) -> Result<TempDir, BenchError> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    match parent {
        Some(parent) => {
            std::fs::create_dir_all(parent).map_err(|error| {
                BenchError::Setup(format!("cannot create {}: {error}", parent.display()))
            })?;
            builder.tempdir_in(parent)
        }
        None => builder.tempdir(),
    }
    .map_err(|error| BenchError::Setup(format!("cannot create a temporary directory: {error}")))
}

/// Removes a database file and the files SQLite and the store keep beside it.
pub(crate) fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal", ".lock"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        // Missing files are the normal case.
        let _ = std::fs::remove_file(file);
    }
}

/// An integer with `,` between groups of three digits, as the reports print counts.
pub(crate) fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        let remaining = digits.len() - index;
        if index > 0 && remaining / 3 * 3 == remaining {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Runs blocking work (the raw baseline) on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BenchError> + Send + 'static,
) -> Result<T, BenchError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| BenchError::Setup(format!("a benchmark thread failed: {error}")))?
}

#[cfg(test)]
mod tests;
