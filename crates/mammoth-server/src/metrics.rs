//! Prometheus metrics: one recorder per server (not the process-wide one), so several servers
//! in one process — tests do that — each count their own. Counters and histograms are
//! recorded as requests happen; gauges (projection lag and state, dead-letter depth, bus
//! retries) are read when `/metrics` is scraped.

use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use crate::admin::ProjectionRow;
use mammoth_core::bus::TopicStats;

/// Histogram buckets for latencies, in seconds: 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// A server's metrics recorder.
pub struct Metrics {
    recorder: PrometheusRecorder,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh recorder with latency histograms bucketed (not summarized).
    pub fn new() -> Self {
        let builder = match PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
        {
            Ok(bucketed) => bucketed,
            // Only an empty bucket list fails, and ours is not empty.
            Err(_) => PrometheusBuilder::new(),
        };
        Self {
            recorder: builder.build_recorder(),
        }
    }

    fn record(&self, f: impl FnOnce()) {
        metrics::with_local_recorder(&self.recorder, f);
    }

    /// An append of `events` events took `took` on `backend`.
    pub fn appended(&self, backend: &'static str, events: u64, took: Duration) {
        self.record(|| {
            counter!("mammoth_appends_total", "backend" => backend).increment(1);
            counter!("mammoth_appended_events_total", "backend" => backend).increment(events);
            histogram!("mammoth_append_seconds", "backend" => backend).record(took.as_secs_f64());
        });
    }

    /// `events` events were read from `backend`.
    pub fn read(&self, backend: &'static str, events: u64) {
        self.record(|| {
            counter!("mammoth_events_read_total", "backend" => backend).increment(events);
        });
    }

    /// Command `name` took `took`; `outcome` is `ok` or an error code.
    pub fn command(&self, name: &str, outcome: &'static str, took: Duration) {
        let name = name.to_owned();
        self.record(|| {
            counter!("mammoth_commands_total", "command" => name.clone(), "outcome" => outcome)
                .increment(1);
            histogram!("mammoth_command_seconds", "command" => name).record(took.as_secs_f64());
        });
    }

    /// Query `name` took `took`.
    pub fn query(&self, name: &str, outcome: &'static str, took: Duration) {
        let name = name.to_owned();
        self.record(|| {
            counter!("mammoth_queries_total", "query" => name.clone(), "outcome" => outcome)
                .increment(1);
            histogram!("mammoth_query_seconds", "query" => name).record(took.as_secs_f64());
        });
    }

    /// The projections as they are now: lag and a one-hot state gauge per projection.
    pub fn projections(&self, rows: &[ProjectionRow]) {
        self.record(|| {
            for row in rows {
                let name = row.name.clone();
                gauge!("mammoth_projection_lag", "projection" => name.clone()).set(row.lag as f64);
                gauge!("mammoth_projection_checkpoint", "projection" => name.clone())
                    .set(row.checkpoint as f64);
                for state in ["running", "paused", "rebuilding", "failed", "stopped"] {
                    let value = if row.state.label() == state { 1.0 } else { 0.0 };
                    gauge!("mammoth_projection_state", "projection" => name.clone(), "state" => state)
                        .set(value);
                }
            }
        });
    }

    /// The bus as it is now: depth, retrying and dead letters per topic and group.
    pub fn bus(&self, stats: &[TopicStats]) {
        self.record(|| {
            for row in stats {
                let topic = row.topic.clone();
                let group = row.group.clone().unwrap_or_else(|| "-".to_owned());
                gauge!("mammoth_bus_depth", "topic" => topic.clone(), "group" => group.clone())
                    .set(row.depth as f64);
                gauge!("mammoth_bus_retrying", "topic" => topic.clone(), "group" => group.clone())
                    .set(row.retrying as f64);
                gauge!("mammoth_dead_letters", "topic" => topic, "group" => group)
                    .set(row.dead_letters as f64);
            }
        });
    }

    /// How many sagas of each type are in each status.
    pub fn sagas(&self, counts: &[mammoth_sqlite::saga::SagaCount]) {
        self.record(|| {
            for row in counts {
                gauge!("mammoth_sagas", "saga_type" => row.saga_type.clone(), "status" => row.status.clone())
                    .set(row.count as f64);
            }
        });
    }

    /// The head of the global log.
    pub fn head(&self, backend: &'static str, head: u64) {
        self.record(|| gauge!("mammoth_head_position", "backend" => backend).set(head as f64));
    }

    /// Everything recorded, in the Prometheus text format.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }
}
