//! The demo on a SQL server's event store (PostgreSQL, MySQL, or any [`EventStore`] with its
//! side stores): the events, snapshots, saga deadlines and the saga runner's checkpoint live in
//! the server ([`RunStores`]), while the message bus (the data directory's [`setup::BUS_FILE`],
//! or a broker) and the SQLite read models stay in the data directory.
//!
//! The server's log is shared: earlier runs, runs from other data directories and other
//! applications may have written it. So every run gets a run id of its own (`d<head>-<random>`)
//! and reports only its orders; a relay that never ran starts at the log's head, so the bus
//! carries no other run's commands; and `--reset` clears the data directory only, never the
//! database ([`setup::prepare_sql`]).

use mammoth_core::bus::{MessageBus, RelayTarget};
use mammoth_core::saga::TimerStore;
use mammoth_core::{CheckpointStore, EventStore, SnapshotStore};
use mammoth_sqlite::{SqliteBus, SqliteBusOptions};

use super::summary::DemoReport;
use super::{
    BusNames, BusOn, DemoError, DemoOptions, DemoReporter, RunStores, check_options, run_on, setup,
};

/// A fresh run tag: eight random hex digits, so two runs starting at the same head of a
/// shared log (from two data directories) never share order ids.
fn fresh_tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// Runs the demo on `stores` with the embedded bus in the data directory's
/// [`setup::BUS_FILE`]. The caller closes the stores afterwards.
///
/// # Errors
/// As [`super::run`].
pub async fn run_on_store<S, N, T, C>(
    options: DemoOptions,
    stores: RunStores<S, N, T, C>,
    reporter: &dyn DemoReporter,
) -> Result<DemoReport, DemoError>
where
    S: EventStore + Clone + Send + Sync + 'static,
    N: SnapshotStore + Clone + 'static,
    T: TimerStore + 'static,
    C: CheckpointStore + Clone + 'static,
{
    check_options(&options)?;
    let dir = setup::prepare_sql(
        &options.data_dir,
        options.reset,
        &stores.events,
        &stores.label,
    )
    .await?;
    reporter.message(&dir.message);
    let bus = SqliteBus::open(dir.path.join(setup::BUS_FILE), SqliteBusOptions::default())?;
    let on = BusOn {
        bus,
        names: BusNames::embedded(),
        label: format!("embedded ({})", setup::BUS_FILE),
        run_tag: Some(fresh_tag()),
        relay_from_head: true,
    };
    run_on(&options, &dir, stores, on, reporter).await
}

/// Runs the demo on `stores` with the message bus on `bus` (a broker: NATS JetStream, Redis
/// Streams), its topics and relay under the data directory's namespace as in
/// [`super::run_with_bus`]. The caller closes the stores afterwards.
///
/// # Errors
/// As [`super::run`].
pub async fn run_on_store_with_bus<S, N, T, C, B>(
    options: DemoOptions,
    stores: RunStores<S, N, T, C>,
    bus: B,
    label: &str,
    reporter: &dyn DemoReporter,
) -> Result<DemoReport, DemoError>
where
    S: EventStore + Clone + Send + Sync + 'static,
    N: SnapshotStore + Clone + 'static,
    T: TimerStore + 'static,
    C: CheckpointStore + Clone + 'static,
    B: MessageBus + RelayTarget + Clone + 'static,
{
    check_options(&options)?;
    let dir = setup::prepare_sql(
        &options.data_dir,
        options.reset,
        &stores.events,
        &stores.label,
    )
    .await?;
    reporter.message(&dir.message);
    let (namespace, new) = setup::bus_namespace(&dir.path)?;
    reporter.message(&if new {
        format!(
            "message bus {label}: topics and relay checkpoint under the new namespace {namespace}"
        )
    } else {
        format!("message bus {label}: continuing this data directory's namespace {namespace}")
    });
    let on = BusOn {
        bus,
        label: format!("{label} ({namespace})"),
        names: BusNames::namespaced(namespace),
        run_tag: Some(fresh_tag()),
        relay_from_head: true,
    };
    run_on(&options, &dir, stores, on, reporter).await
}
