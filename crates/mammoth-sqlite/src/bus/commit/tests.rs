//! The commit thread's group commit: an operation that fails is rolled back alone, one that
//! breaks the whole transaction sends its neighbours to transactions of their own, and
//! concurrent publishes all survive a reopen.

use std::collections::HashSet;
use std::fs::File;
use std::sync::mpsc::Sender;
use std::time::Duration;

use mammoth_core::bus::{BusConsumer, BusError, ConsumerGroup, MessageBus, OutgoingMessage, Topic};
use rusqlite::{Connection, Transaction};
use tokio::sync::oneshot;

use super::{Job, Operation, spawn};
use crate::SqliteBus;
use crate::bus::{Sync, schema::failed};

fn open(dir: &tempfile::TempDir) -> (Sender<Box<dyn Job>>, std::path::PathBuf) {
    let path = dir.path().join("commit.db");
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch("CREATE TABLE t (x INTEGER UNIQUE)")
        .unwrap();
    let wal = File::options()
        .read(true)
        .write(true)
        .open(dir.path().join("commit.db-wal"))
        .unwrap();
    (spawn(conn, wal).unwrap(), path)
}

/// Queues `work` and returns where its result will arrive.
fn queue(
    jobs: &Sender<Box<dyn Job>>,
    work: impl FnMut(&Transaction<'_>) -> Result<(), BusError> + Send + 'static,
) -> oneshot::Receiver<Result<(), BusError>> {
    let (reply, result) = oneshot::channel();
    jobs.send(Box::new(Operation {
        sync: Sync::Full,
        action: "testing",
        work,
        result: None,
        reply,
    }))
    .unwrap();
    result
}

fn insert(x: i64) -> impl FnMut(&Transaction<'_>) -> Result<(), BusError> + Send + 'static {
    move |tx| {
        tx.execute("INSERT INTO t (x) VALUES (?1)", [x])
            .map(drop)
            .map_err(failed("inserting"))
    }
}

/// A first operation that holds the thread while the rest queue up behind it, so they form
/// one group.
fn hold(jobs: &Sender<Box<dyn Job>>) -> oneshot::Receiver<Result<(), BusError>> {
    queue(jobs, |_| {
        std::thread::sleep(Duration::from_millis(100));
        Ok(())
    })
}

fn stored(path: &std::path::Path) -> Vec<i64> {
    let conn = Connection::open(path).unwrap();
    let mut statement = conn.prepare("SELECT x FROM t ORDER BY x").unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn a_failing_operation_is_rolled_back_alone_and_its_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (jobs, path) = open(&dir);
    let held = hold(&jobs);
    let first = queue(&jobs, insert(1));
    let duplicate = queue(&jobs, insert(1));
    let second = queue(&jobs, insert(2));
    held.await.unwrap().unwrap();
    first.await.unwrap().unwrap();
    assert!(duplicate.await.unwrap().is_err());
    second.await.unwrap().unwrap();
    assert_eq!(stored(&path), [1, 2]);
}

#[tokio::test]
async fn an_operation_that_ends_the_transaction_sends_its_neighbours_to_their_own() {
    // What SQLite does on a full disk or out of memory: the whole transaction is rolled back
    // under the group's feet, earlier operations' writes included.
    let dir = tempfile::tempdir().unwrap();
    let (jobs, path) = open(&dir);
    let held = hold(&jobs);
    let before = queue(&jobs, insert(10));
    let breaker = queue(&jobs, |tx| {
        tx.execute_batch("ROLLBACK").map_err(failed("breaking"))?;
        Err(BusError::InvalidInput("rolled back".to_owned()))
    });
    let after = queue(&jobs, insert(11));
    held.await.unwrap().unwrap();
    before.await.unwrap().unwrap();
    assert!(breaker.await.unwrap().is_err());
    after.await.unwrap().unwrap();
    assert_eq!(stored(&path), [10, 11]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishes_are_all_stored_once_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus.db");
    let topic = Topic::new("orders").unwrap();
    let bus = SqliteBus::open_default(&path).unwrap();
    let publishers: Vec<_> = (0..32)
        .map(|_| {
            let (bus, topic) = (bus.clone(), topic.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..25 {
                    let message = OutgoingMessage::new(format!("{n}"));
                    ids.push(message.id);
                    let published = bus.publish(&topic, vec![message]).await.unwrap();
                    assert!(!published[0].duplicate);
                }
                ids
            })
        })
        .collect();
    let mut sent = HashSet::new();
    for publisher in publishers {
        sent.extend(publisher.await.unwrap());
    }
    drop(bus);
    let bus = SqliteBus::open_default(&path).unwrap();
    let consumer = bus
        .subscribe(
            &topic,
            &ConsumerGroup::new("check").unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
    let mut received = HashSet::new();
    loop {
        let batch = consumer
            .receive(300, Duration::from_millis(50))
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        consumer.ack(&batch).await.unwrap();
        for delivery in batch {
            assert!(received.insert(delivery.message.id), "delivered twice");
        }
    }
    assert_eq!(received, sent);
}
