//! (e): latency from the start of an append to a live subscriber receiving the event.
//!
//! A paced writer appends one event per millisecond, each carrying the time its append began;
//! a [`Subscription`] task records when each event arrives. Pacing keeps the writer below the
//! store's capacity, so the numbers are latency, not queueing. The raw side is the commit
//! latency of a one-event SQLite transaction at the same pace: the floor under any subscriber.

use std::time::{Duration, Instant};

use mammoth_core::{EventFilter, EventStore as _, ExpectedVersion, NewEvent, Subscription};
use serde::Deserialize;

use crate::workload::{EVENT_TYPE, open_store, stream};
use crate::{BenchError, Case, CaseResult, Harness, blocking, raw, remove_database};

/// Time between two appends of the paced writer.
const INTERVAL: Duration = Duration::from_millis(1);
/// How long the subscriber may lag behind the writer's last append before the case fails.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
struct Stamp {
    /// Nanoseconds from the case's origin to the start of the append.
    sent_ns: u64,
}

pub(crate) async fn subscriber(harness: &Harness) -> Result<CaseResult, BenchError> {
    let case = Case::SubscriberLatency;
    let options = harness.options().clone();
    let progress = harness.progress_handle();
    let path = harness.fresh_file(case, "store");
    let store = open_store(&path, options.synchronous)?;
    progress.phase(&format!("{case}: store"), None);

    let origin = Instant::now();
    let (count_tx, count_rx) = tokio::sync::oneshot::channel::<u64>();
    let listener = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut subscription = Subscription::new(store, 1, EventFilter::all());
            let mut latencies = Vec::new();
            let mut count_rx = count_rx;
            let mut expected = None;
            loop {
                if expected.is_some_and(|expected| latencies.len() as u64 >= expected) {
                    return Ok::<Vec<f64>, BenchError>(latencies);
                }
                tokio::select! {
                    event = subscription.next() => {
                        let event = event?;
                        let received = origin.elapsed().as_nanos() as f64;
                        let stamp: Stamp = serde_json::from_str(&event.data)
                            .map_err(|error| BenchError::Setup(error.to_string()))?;
                        latencies.push((received - stamp.sent_ns as f64) / 1_000.0);
                    }
                    count = &mut count_rx, if expected.is_none() => {
                        expected = Some(count.unwrap_or(0));
                    }
                }
            }
        })
    };

    let writer_stream = stream(0);
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < options.duration {
        ticker.tick().await;
        let sent_ns = origin.elapsed().as_nanos() as u64;
        let data = format!(r#"{{"sent_ns":{sent_ns},"order_id":"order-{sent}"}}"#);
        store
            .append(
                &writer_stream,
                ExpectedVersion::Any,
                vec![NewEvent::from_json_text(EVENT_TYPE, data)],
            )
            .await?;
        sent += 1;
        progress.advance(1);
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = count_tx.send(sent);
    let mut latencies = match tokio::time::timeout(DRAIN_TIMEOUT, listener).await {
        Ok(joined) => joined
            .map_err(|error| BenchError::Setup(format!("the subscriber task failed: {error}")))??,
        Err(_) => {
            return Err(BenchError::Setup(format!(
                "the subscriber did not receive all {sent} events within {DRAIN_TIMEOUT:?}"
            )));
        }
    };
    store.close().await?;
    remove_database(&path);

    progress.phase(&format!("{case}: raw SQLite commits"), None);
    let raw_path = harness.fresh_file(case, "raw");
    let mut raw_latencies = blocking({
        let raw_path = raw_path.clone();
        let progress = progress.clone();
        move || {
            raw::commit_latencies(
                &raw_path,
                options.synchronous,
                options.duration,
                INTERVAL,
                progress.as_ref(),
            )
        }
    })
    .await?;
    remove_database(&raw_path);

    let mut result = CaseResult::new(case, options.synchronous, sent, seconds);
    result.p50_us = percentile(&mut latencies, 0.50);
    result.p99_us = percentile(&mut latencies, 0.99);
    result.raw_p50_us = percentile(&mut raw_latencies, 0.50);
    result.raw_p99_us = percentile(&mut raw_latencies, 0.99);
    Ok(result)
}

/// The `p` quantile (0..=1) of `samples` by the nearest-rank method; `None` when empty.
pub(crate) fn percentile(samples: &mut [f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let rank = (p * samples.len() as f64).ceil() as usize;
    Some(samples[rank.clamp(1, samples.len()) - 1])
}
