//! What a demo run reports: counts, invariants, throughput, latencies and the per-stage
//! breakdown of where an order's time goes. One [`DemoReport`] serves the CLI's table and its
//! `--json` object.

use std::collections::BTreeMap;

use serde::Serialize;

/// The outcome of one invariant check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Invariant {
    /// Its name, e.g. `inventory_conserved`.
    pub name: String,
    /// True when it holds.
    pub ok: bool,
    /// What was checked, or the first violations when it failed.
    pub detail: String,
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// How many samples.
    pub count: u64,
    /// The median.
    pub p50_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
    /// The slowest.
    pub max_ms: f64,
}

impl Latency {
    /// The percentiles of `micros` (sorted here).
    pub fn of(mut micros: Vec<i64>) -> Self {
        if micros.is_empty() {
            return Self::default();
        }
        micros.sort_unstable();
        let at = |quantile: f64| {
            let index = ((micros.len() as f64 - 1.0) * quantile).round() as usize;
            micros[index.min(micros.len() - 1)] as f64 / 1000.0
        };
        Self {
            count: micros.len() as u64,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// One stage of an order's way through the system, with its latency over this run's orders.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stage {
    /// From which event to which, and who does the work in between.
    pub stage: String,
    /// The time between the two events' commits.
    pub latency: Latency,
}

/// What the services did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServiceCounts {
    /// Commands handled (events written, or found written by an earlier delivery).
    pub handled: u64,
    /// Of those, redeliveries that wrote nothing.
    pub replayed: u64,
    /// Commands the domain rejected.
    pub rejected: u64,
    /// Deliveries retried after a conflict or store failure.
    pub retried: u64,
    /// Poisoned payment deliveries failed on purpose.
    pub poisoned: u64,
}

/// Everything a demo run reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DemoReport {
    /// The run's id: the prefix of its order ids.
    pub run_id: String,
    /// The data directory.
    pub data_dir: String,
    /// True when an existing store was reused.
    pub reused: bool,
    /// Where the events, snapshots, saga deadlines and the saga runner's checkpoint live:
    /// `sqlite` (the data directory's `mammoth.db`), or the SQL server with its schema or
    /// database.
    pub event_store: String,
    /// The message bus the run used: `embedded`, or the broker with the run's topic prefix.
    pub message_bus: String,
    /// Orders sent.
    pub orders: u64,
    /// This run's orders now confirmed.
    pub confirmed: u64,
    /// This run's orders now cancelled.
    pub cancelled: u64,
    /// This run's sagas per status (`completed`, `compensated`, `failed`, `running`, ...).
    pub sagas_by_status: BTreeMap<String, u64>,
    /// Events this run appended (the log's head now minus at the start).
    pub events_written: u64,
    /// The OrderProjection's lag (head minus checkpoint) at the end.
    pub projection_lag: u64,
    /// Dead letters in the bus (all groups; on a broker, of this data directory's topics),
    /// e.g. the poisoned payments.
    pub dead_letters: u64,
    /// Seconds from the first CreateOrder to the last saga ending.
    pub elapsed_secs: f64,
    /// Sagas that ended per second of `elapsed_secs`.
    pub sagas_per_sec: f64,
    /// From sending CreateOrder to the OrderConfirmed commit, for confirmed orders.
    pub confirmation_latency: Latency,
    /// Where the time goes, stage by stage.
    pub stages: Vec<Stage>,
    /// What the services did.
    pub services: ServiceCounts,
    /// The invariant checks, computed from the store.
    pub invariants: Vec<Invariant>,
    /// True when every invariant holds and every saga of the run ended.
    pub ok: bool,
}

impl DemoReport {
    /// The invariants that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Invariant> {
        self.invariants.iter().filter(|invariant| !invariant.ok)
    }
}
