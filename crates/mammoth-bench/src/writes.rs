//! The write cases: (a) sequential one-event appends, (b) 64 concurrent one-event appenders,
//! (c) 100-event appends. Each side runs for the same duration on its own fresh file.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use mammoth_core::{EventStore as _, ExpectedVersion};

use crate::workload::{event, open_store, stream};
use crate::{BenchError, Case, CaseResult, Harness, blocking, raw, remove_database};

/// Concurrent appenders in case (b), each with its own stream.
const TASKS: u64 = 64;
/// Events per append in case (c).
const BATCH: u64 = 100;
/// Streams the sequential cases rotate over.
const STREAMS: u64 = 64;

/// (a): one writer, one event per append, one stream after another.
pub(crate) async fn sequential(harness: &Harness) -> Result<CaseResult, BenchError> {
    sequential_appends(harness, Case::SequentialAppends, 1).await
}

/// (c): one writer, 100 events per append.
pub(crate) async fn batches(harness: &Harness) -> Result<CaseResult, BenchError> {
    sequential_appends(harness, Case::BatchAppends, BATCH).await
}

async fn sequential_appends(
    harness: &Harness,
    case: Case,
    batch: u64,
) -> Result<CaseResult, BenchError> {
    let options = harness.options();
    let progress = harness.progress();
    let path = harness.fresh_file(case, "store");
    let store = open_store(&path, options.synchronous)?;
    progress.phase(&format!("{case}: store"), None);
    let started = Instant::now();
    let mut written = 0u64;
    let mut appends = 0u64;
    while started.elapsed() < options.duration {
        let events = (written..written + batch).map(event).collect();
        store
            .append(&stream(appends % STREAMS), ExpectedVersion::Any, events)
            .await?;
        appends += 1;
        written += batch;
        progress.advance(batch);
    }
    let seconds = started.elapsed().as_secs_f64();
    store.close().await?;
    remove_database(&path);

    let (raw_events, raw_seconds) = raw_side(harness, case, batch, STREAMS).await?;
    Ok(CaseResult::new(case, options.synchronous, written, seconds)
        .with_raw(raw_events, raw_seconds))
}

/// (b): 64 tasks, each appending one event at a time to its own stream. The raw limit is one
/// event per transaction, since that is what each appender asks for.
pub(crate) async fn concurrent(harness: &Harness) -> Result<CaseResult, BenchError> {
    let case = Case::ConcurrentAppends;
    let options = harness.options();
    let path = harness.fresh_file(case, "store");
    let store = open_store(&path, options.synchronous)?;
    harness.progress().phase(&format!("{case}: store"), None);
    let written = Arc::new(AtomicU64::new(0));
    let duration = options.duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        let written = written.clone();
        let progress = harness.progress_handle();
        tasks.push(tokio::spawn(async move {
            let stream = stream(task);
            let mut n = task << 40;
            let mut unreported = 0;
            while started.elapsed() < duration {
                store
                    .append(&stream, ExpectedVersion::Any, vec![event(n)])
                    .await?;
                n += 1;
                unreported += 1;
                if unreported == 16 {
                    written.fetch_add(unreported, Ordering::Relaxed);
                    progress.advance(unreported);
                    unreported = 0;
                }
            }
            written.fetch_add(unreported, Ordering::Relaxed);
            Ok::<(), BenchError>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|error| BenchError::Setup(format!("an appender task failed: {error}")))??;
    }
    let seconds = started.elapsed().as_secs_f64();
    store.close().await?;
    remove_database(&path);

    let (raw_events, raw_seconds) = raw_side(harness, case, 1, TASKS).await?;
    let written = written.load(Ordering::Relaxed);
    Ok(CaseResult::new(case, options.synchronous, written, seconds)
        .with_raw(raw_events, raw_seconds))
}

/// The raw side of a write case: `batch`-row transactions over `streams` streams.
async fn raw_side(
    harness: &Harness,
    case: Case,
    batch: u64,
    streams: u64,
) -> Result<(u64, f64), BenchError> {
    let options = harness.options().clone();
    let path = harness.fresh_file(case, "raw");
    let progress = harness.progress_handle();
    progress.phase(&format!("{case}: raw SQLite"), None);
    let (events, seconds) = blocking({
        let path = path.clone();
        move || {
            raw::append_for(
                &path,
                options.synchronous,
                options.duration,
                batch,
                streams,
                progress.as_ref(),
            )
        }
    })
    .await?;
    remove_database(&path);
    Ok((events, seconds))
}
