//! Measuring the memory a reader needs: the read runs in a fresh child process, so the
//! writer that populated the file does not count, and the child reports its own peak
//! resident set (`VmHWM` in `/proc/self/status`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use futures_util::TryStreamExt as _;
use mammoth_core::{EventFilter, read_all_pages};
use serde::{Deserialize, Serialize};

use crate::{BenchError, NoProgress, raw, workload};

/// Events one read of the global log fetches.
pub(crate) const READ_PAGE: usize = 1_000;

/// How to start a process that reads a log and prints a [`ReadReport`]: `program args...
/// PATH`, with `--raw` appended for the plain SQL scan. The `mammoth` binary passes itself
/// (`mammoth bench read-log`).
#[derive(Clone, Debug)]
pub struct ChildCommand {
    /// The executable.
    pub program: PathBuf,
    /// Arguments before the database path.
    pub args: Vec<OsString>,
}

/// What a reading process reports: how much it read, how fast, and its memory.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadReport {
    /// Events read.
    pub events: u64,
    /// Seconds the read took.
    pub seconds: f64,
    /// Resident memory before the read, KiB.
    pub start_rss_kib: u64,
    /// Peak resident memory of the process, KiB (`VmHWM`).
    pub peak_rss_kib: u64,
}

/// Reads the whole global log of the store at `path` in this process, through the store
/// (paged, as every mammoth reader does) or, with `raw`, with one plain SQL scan.
///
/// # Errors
/// The store's or SQLite's error.
pub async fn read_log(path: &Path, raw: bool) -> Result<ReadReport, BenchError> {
    let start_rss_kib = status_kib("VmRSS:").unwrap_or(0);
    let (events, seconds) = if raw {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || raw::scan(&path, &NoProgress))
            .await
            .map_err(|error| BenchError::Setup(error.to_string()))??
    } else {
        let store = workload::open_store(path, mammoth_sqlite::Synchronous::Full)?;
        let started = Instant::now();
        let events = count_log(&store, &NoProgress).await?;
        let seconds = started.elapsed().as_secs_f64();
        store.close().await?;
        (events, seconds)
    };
    Ok(ReadReport {
        events,
        seconds,
        start_rss_kib,
        peak_rss_kib: status_kib("VmHWM:").unwrap_or(0),
    })
}

/// Reads every event of the store's global log through the paged reader; returns the count.
pub(crate) async fn count_log(
    store: &mammoth_sqlite::SqliteEventStore,
    progress: &dyn crate::Progress,
) -> Result<u64, BenchError> {
    let mut events = std::pin::pin!(read_all_pages(store, 1, EventFilter::all(), READ_PAGE));
    let mut count = 0u64;
    let mut checksum = 0u64;
    while let Some(event) = events.try_next().await? {
        checksum = checksum.wrapping_add(event.position ^ event.data.len() as u64);
        count += 1;
        if count & 4095 == 0 {
            progress.advance(4096);
        }
    }
    std::hint::black_box(checksum);
    Ok(count)
}

/// Runs `child` on the file at `path` and returns what it reports.
pub(crate) fn read_in_child(
    child: &ChildCommand,
    path: &Path,
    raw: bool,
) -> Result<ReadReport, BenchError> {
    let mut command = Command::new(&child.program);
    command.args(&child.args).arg(path);
    if raw {
        command.arg("--raw");
    }
    let output = command.output().map_err(|error| {
        BenchError::Child(format!("cannot start {}: {error}", child.program.display()))
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(BenchError::Child(format!(
            "{} exited with {}: {}",
            child.program.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).map_err(|error| {
        BenchError::Child(format!(
            "unexpected report {line:?} from the child: {error}"
        ))
    })
}

/// A `kB` field of `/proc/self/status`, such as `VmHWM:`; `None` where there is no procfs.
pub fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// The file system type holding `dir` (from `/proc/self/mounts`), to warn when a benchmark
/// would measure a RAM disk instead of a disk.
pub fn filesystem_type(dir: &Path) -> Option<String> {
    let dir = dir.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let mount_point = fields.next()?.replace("\\040", " ");
            let fs_type = fields.next()?;
            dir.starts_with(&mount_point)
                .then(|| (mount_point.len(), fs_type.to_owned()))
        })
        .max_by_key(|(length, _)| *length)
        .map(|(_, fs_type)| fs_type)
}
