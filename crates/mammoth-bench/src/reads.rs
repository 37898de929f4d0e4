//! The read cases: (d) reading the whole global log, and (f) the peak memory of a process
//! doing it. Both read one log populated for them with 100-event appends; reading leaves it
//! unchanged, so they share it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use mammoth_core::{EventStore as _, ExpectedVersion};

use crate::memory::{count_log, read_in_child, read_log};
use crate::workload::{event, open_store, stream};
use crate::{BenchError, Case, CaseResult, Harness, ReadReport, blocking, raw, thousands};

/// Concurrent writers that populate the log; group commit merges their batches.
const POPULATE_TASKS: u64 = 4;
/// Events per populating append.
const POPULATE_BATCH: u64 = 100;
/// Streams the populated log spreads its events over.
const POPULATE_STREAMS: u64 = 1_000;

/// (d): the store's paged reader against a plain `SELECT` over the same table.
pub(crate) async fn scan(harness: &mut Harness) -> Result<CaseResult, BenchError> {
    let case = Case::ScanLog;
    let (path, expected) = populated(harness).await?;
    let progress = harness.progress_handle();

    progress.phase(&format!("{case}: store"), Some(expected));
    let store = open_store(&path, harness.options().synchronous)?;
    let started = Instant::now();
    let events = count_log(&store, progress.as_ref()).await?;
    let seconds = started.elapsed().as_secs_f64();
    store.close().await?;
    check_count("the store", events, expected)?;

    progress.phase(&format!("{case}: raw SQLite"), Some(expected));
    let (raw_events, raw_seconds) = blocking({
        let progress = progress.clone();
        move || raw::scan(&path, progress.as_ref())
    })
    .await?;
    check_count("the raw scan", raw_events, expected)?;
    Ok(
        CaseResult::new(case, harness.options().synchronous, events, seconds)
            .with_raw(raw_events, raw_seconds),
    )
}

/// (f): a fresh process reads the whole log through the store and reports its peak resident
/// memory; another scans it with plain SQL, for comparison.
pub(crate) async fn memory(harness: &mut Harness) -> Result<CaseResult, BenchError> {
    let case = Case::ReadMemory;
    let (path, expected) = populated(harness).await?;
    let progress = harness.progress_handle();
    progress.phase(&format!("{case}: store, in a child process"), None);
    let store = read_report(harness, &path, false).await?;
    check_count("the store", store.events, expected)?;
    progress.phase(&format!("{case}: raw SQLite, in a child process"), None);
    let raw = read_report(harness, &path, true).await?;
    check_count("the raw scan", raw.events, expected)?;
    let mut result = CaseResult::new(
        case,
        harness.options().synchronous,
        store.events,
        store.seconds,
    )
    .with_raw(raw.events, raw.seconds);
    result.peak_rss_mb = Some(store.peak_rss_kib as f64 / 1024.0);
    result.raw_peak_rss_mb = Some(raw.peak_rss_kib as f64 / 1024.0);
    Ok(result)
}

async fn read_report(
    harness: &Harness,
    path: &std::path::Path,
    raw: bool,
) -> Result<ReadReport, BenchError> {
    match harness.options().child.clone() {
        Some(child) => {
            let path = path.to_path_buf();
            blocking(move || read_in_child(&child, &path, raw)).await
        }
        None => read_log(path, raw).await,
    }
}

fn check_count(reader: &str, read: u64, expected: u64) -> Result<(), BenchError> {
    if read == expected {
        Ok(())
    } else {
        Err(BenchError::Setup(format!(
            "{reader} read {read} events from a log of {expected}"
        )))
    }
}

/// The shared read log, written on first use: `read_events` events in 100-event appends by
/// a few concurrent writers, spread over many streams.
async fn populated(harness: &mut Harness) -> Result<(PathBuf, u64), BenchError> {
    let wanted = harness.options().read_events;
    let reusable = harness
        .populated
        .as_ref()
        .filter(|(_, events)| *events == wanted);
    if let Some((path, events)) = reusable {
        return Ok((path.clone(), *events));
    }
    let path = harness.dir().join("read-log.db");
    crate::remove_database(&path);
    let progress = harness.progress_handle();
    progress.phase(
        &format!("writing a log of {} events to read", thousands(wanted)),
        Some(wanted),
    );
    let store = open_store(&path, harness.options().synchronous)?;
    let appends = wanted.div_ceil(POPULATE_BATCH);
    let next_append = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..POPULATE_TASKS {
        let store = store.clone();
        let next_append = next_append.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let append = next_append.fetch_add(1, Ordering::Relaxed);
                if append >= appends {
                    return Ok::<(), BenchError>(());
                }
                let first = append * POPULATE_BATCH;
                let last = (first + POPULATE_BATCH).min(wanted);
                let events = (first..last).map(event).collect();
                store
                    .append(
                        &stream(append % POPULATE_STREAMS),
                        ExpectedVersion::Any,
                        events,
                    )
                    .await?;
                progress.advance(last - first);
            }
        }));
    }
    for task in tasks {
        task.await
            .map_err(|error| BenchError::Setup(format!("a populating task failed: {error}")))??;
    }
    store.close().await?;
    harness.populated = Some((path.clone(), wanted));
    Ok((path, wanted))
}
