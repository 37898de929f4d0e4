//! The bus on a disk whose fsync fails: no operation waiting for the failed fsync is answered
//! Ok, and the bus refuses every later operation (with an error that says to reopen it)
//! instead of acknowledging data that may not be on disk.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mammoth_core::bus::{BusError, ConsumerGroup, MessageBus, OutgoingMessage, Topic};
use rusqlite::{Connection, Transaction};
use tokio::sync::{oneshot, watch};

use super::{Job, Operation, Wal, spawn};
use crate::bus::{Shared, SqliteBus, SqliteBusOptions, Sync, schema};

/// A log whose fsyncs answer what the test scripts, one at a time: each sync says it has
/// started, then waits for its result.
struct ScriptedWal {
    started: Sender<()>,
    results: Mutex<Receiver<io::Result<()>>>,
    syncs: Arc<AtomicUsize>,
}

impl Wal for ScriptedWal {
    fn sync_data(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        let _ = self.started.send(());
        let results = self.results.lock().unwrap_or_else(|p| p.into_inner());
        results
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the test stopped scripting fsyncs")))
    }
}

struct Script {
    started: Receiver<()>,
    results: Sender<io::Result<()>>,
    syncs: Arc<AtomicUsize>,
}

fn scripted() -> (ScriptedWal, Script) {
    let (started, started_rx) = mpsc::channel();
    let (results_tx, results) = mpsc::channel();
    let syncs = Arc::new(AtomicUsize::new(0));
    let wal = ScriptedWal {
        started,
        results: Mutex::new(results),
        syncs: syncs.clone(),
    };
    let script = Script {
        started: started_rx,
        results: results_tx,
        syncs,
    };
    (wal, script)
}

/// An injected EIO, as a failing disk reports it.
fn eio() -> io::Error {
    io::Error::other("injected EIO")
}

fn queue(
    jobs: &Sender<Box<dyn Job>>,
    sync: Sync,
    x: i64,
) -> oneshot::Receiver<Result<(), BusError>> {
    let (reply, result) = oneshot::channel();
    let work = move |tx: &Transaction<'_>| {
        tx.execute("INSERT INTO t (x) VALUES (?1)", [x])
            .map(drop)
            .map_err(schema::failed("inserting"))
    };
    jobs.send(Box::new(Operation {
        sync,
        action: "testing",
        work,
        result: None,
        reply,
    }))
    .unwrap();
    result
}

fn committed(path: &std::path::Path) -> Vec<i64> {
    let conn = Connection::open(path).unwrap();
    let mut statement = conn.prepare("SELECT x FROM t ORDER BY x").unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn assert_fsync_error(result: Result<(), BusError>, what: &str) {
    let error = result.expect_err(what).to_string();
    assert!(
        error.contains("fsync") && error.contains("reopened"),
        "{what}: the error names the fsync and the way out: {error}"
    );
}

#[tokio::test]
async fn a_failed_fsync_fails_every_operation_waiting_for_it_and_every_later_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fsync.db");
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch("CREATE TABLE t (x INTEGER UNIQUE)")
        .unwrap();
    let (wal, script) = scripted();
    let jobs = spawn(conn, wal).unwrap();

    let first = queue(&jobs, Sync::Full, 1);
    script
        .started
        .recv_timeout(Duration::from_secs(10))
        .expect("the first publish's fsync starts");
    // Committed while the first fsync hangs: two more publishes, and a lease-like operation
    // that must not be answered before the publishes ahead of it are durable.
    let second = queue(&jobs, Sync::Full, 2);
    let third = queue(&jobs, Sync::Full, 3);
    let lease = queue(&jobs, Sync::Normal, 4);
    for _ in 0..2_000 {
        if committed(&path) == [1, 2, 3, 4] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        committed(&path),
        [1, 2, 3, 4],
        "all four committed, unsynced"
    );

    script.results.send(Err(eio())).unwrap();
    assert_fsync_error(first.await.unwrap(), "the publish whose fsync failed");
    assert_fsync_error(second.await.unwrap(), "a publish committed behind it");
    assert_fsync_error(third.await.unwrap(), "another publish committed behind it");
    assert_fsync_error(lease.await.unwrap(), "an operation that waited behind them");

    assert_fsync_error(
        queue(&jobs, Sync::Full, 5).await.unwrap(),
        "a publish after the failure",
    );
    assert_fsync_error(
        queue(&jobs, Sync::Normal, 6).await.unwrap(),
        "an ack after the failure",
    );
    assert_eq!(
        committed(&path),
        [1, 2, 3, 4],
        "nothing is written once the bus refuses"
    );
    assert_eq!(
        script.syncs.load(Ordering::SeqCst),
        1,
        "no second fsync: after a failure a retry can succeed without the data on disk"
    );
}

/// A [`SqliteBus`] on `path` whose log is `wal` (what `SqliteBus::open` builds, with the
/// injected log in place of the file).
fn bus_with_wal(path: &std::path::Path, wal: impl Wal) -> SqliteBus {
    drop(SqliteBus::open_default(path).unwrap());
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    let (published, _) = watch::channel(0);
    SqliteBus {
        shared: Arc::new(Shared {
            path: path.to_path_buf(),
            jobs: spawn(conn, wal).unwrap(),
            options: SqliteBusOptions::default(),
            published,
        }),
    }
}

#[tokio::test]
async fn a_bus_whose_fsync_fails_acknowledges_no_publish_and_works_again_once_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus.db");
    let (wal, script) = scripted();
    script.results.send(Err(eio())).unwrap();
    let bus = bus_with_wal(&path, wal);
    let topic = Topic::new("orders").unwrap();

    let error = bus
        .publish(&topic, vec![OutgoingMessage::new("lost?")])
        .await
        .expect_err("a publish whose fsync failed is not acknowledged");
    assert!(error.to_string().contains("fsync"), "{error}");
    let error = bus
        .publish(&topic, vec![OutgoingMessage::new("later")])
        .await
        .expect_err("the bus refuses later publishes");
    assert!(error.to_string().contains("reopened"), "{error}");
    let group = ConsumerGroup::new("billing").unwrap();
    assert!(
        bus.subscribe(&topic, &group, Default::default())
            .await
            .is_err(),
        "and every other write"
    );
    drop(bus);

    let bus = SqliteBus::open_default(&path).unwrap();
    let message = OutgoingMessage::new("after the reopen");
    let published = bus.publish(&topic, vec![message]).await.unwrap();
    assert!(!published[0].duplicate, "a reopened bus publishes again");
}
