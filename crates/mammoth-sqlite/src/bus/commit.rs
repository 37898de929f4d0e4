//! The bus's commit thread and its group commit, the way the event store's writer does it.
//!
//! One thread owns the bus's connection. It takes one operation (a publish, a receive's lease,
//! an ack, a nack, ...), drains whatever else has queued up meanwhile, and runs the whole group
//! in one `BEGIN IMMEDIATE` transaction. Each operation runs inside a savepoint, so one that
//! fails is rolled back alone and its neighbours still commit. SQLite runs at
//! `synchronous=NORMAL`; when the group holds an operation that must be durable before it
//! returns ([`Sync::Full`]: publishes, relay batches, replays), the WAL must be fsynced after
//! the commit before anyone is told. A second thread does that: the commit thread hands each
//! committed group over and starts the next one at once; the sync thread takes every group
//! handed over so far, calls `fdatasync` on the WAL once if any of them needs it, and only then
//! replies, in commit order. That is the guarantee `synchronous=FULL` gives, paid once per
//! batch of groups instead of once per publish, and the disk's latency no longer caps the
//! commit rate. A group that needs no fsync (leases, acks, nacks) is answered by the commit
//! thread at once, unless an earlier group is still waiting for its fsync: then it waits
//! behind it, so no reply (a lease, say) reveals a message whose publish is not yet durable.
//!
//! If SQLite fails in a way that ends the whole transaction (a savepoint or the commit itself
//! fails), the group is rolled back and every operation runs again in a transaction of its
//! own, so one bad operation never fails its neighbours. If an fsync fails, Linux may have
//! dropped the unsynced pages, so the bus refuses every later operation until it is reopened.

use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use mammoth_core::bus::BusError;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::Sync;
use super::schema::failed;

/// The most operations one group commit takes.
const MAX_GROUP: usize = 1024;

/// One queued operation: its work, kept result and reply.
pub(crate) trait Job: Send {
    /// How durable the operation must be before it returns.
    fn sync(&self) -> Sync;
    /// Runs the work in `tx` and keeps its result; false when it failed.
    fn run(&mut self, tx: &Transaction<'_>) -> bool;
    /// Sends the kept result, or `error` when the transaction or its fsync failed.
    fn reply(self: Box<Self>, error: Option<String>);
}

/// A [`Job`] returning `T`.
pub(crate) struct Operation<T, F> {
    pub sync: Sync,
    pub action: &'static str,
    pub work: F,
    pub result: Option<Result<T, BusError>>,
    pub reply: oneshot::Sender<Result<T, BusError>>,
}

impl<T, F> Job for Operation<T, F>
where
    T: Send,
    F: FnMut(&Transaction<'_>) -> Result<T, BusError> + Send,
{
    fn sync(&self) -> Sync {
        self.sync
    }

    fn run(&mut self, tx: &Transaction<'_>) -> bool {
        let result = (self.work)(tx);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn reply(self: Box<Self>, error: Option<String>) {
        let result = match (error, self.result) {
            (Some(error), _) => Err(BusError::backend("sqlite", self.action, error, false)),
            (None, Some(result)) => result,
            (None, None) => Err(BusError::backend(
                "sqlite",
                self.action,
                "the operation never ran",
                false,
            )),
        };
        let _ = self.reply.send(result);
    }
}

/// Why a group could not commit together.
enum GroupFailure {
    /// The transaction could not start (another process holds the write lock too long): the
    /// same would happen to each operation alone.
    Begin(BusError),
    /// The transaction ended mid-group: run each operation alone.
    Broken,
}

/// Why the bus refuses operations, once an fsync has failed.
type Failed = Arc<Mutex<Option<String>>>;

fn failure(failed: &Failed) -> Option<String> {
    failed
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

/// The write-ahead log as the sync thread sees it: the file to `fdatasync`. A seam, so tests
/// can give the bus a disk whose fsync fails.
pub(crate) trait Wal: Send + 'static {
    /// Makes everything written to the log so far durable.
    fn sync_data(&self) -> std::io::Result<()>;
}

impl Wal for File {
    fn sync_data(&self) -> std::io::Result<()> {
        File::sync_data(self)
    }
}

/// A committed group on its way to its replies.
struct Committed {
    group: Vec<Box<dyn Job>>,
}

/// Starts the commit thread on `conn` and the sync thread on `wal` (the `-wal` file beside
/// the database). Both stop when every sender is dropped, after replying to everything queued.
pub(crate) fn spawn(conn: Connection, wal: impl Wal) -> std::io::Result<Sender<Box<dyn Job>>> {
    let (jobs, receiver) = channel();
    let (committed, to_sync) = channel();
    let failed = Failed::default();
    let flag = Arc::clone(&failed);
    let outstanding = Arc::new(AtomicUsize::new(0));
    let handed = Arc::clone(&outstanding);
    std::thread::Builder::new()
        .name("mammoth-sqlite-bus-sync".to_owned())
        .spawn(move || sync_loop(&wal, &to_sync, &flag, &handed))?;
    std::thread::Builder::new()
        .name("mammoth-sqlite-bus".to_owned())
        .spawn(move || {
            Committer {
                conn,
                committed,
                failed,
                outstanding,
                groups: 0,
                grouped: 0,
            }
            .run(&receiver);
        })?;
    Ok(jobs)
}

struct Committer {
    conn: Connection,
    /// The sync thread's queue.
    committed: Sender<Committed>,
    /// Set by the sync thread once an fsync failed: every later operation is refused.
    failed: Failed,
    /// Groups handed to the sync thread and not yet replied to.
    outstanding: Arc<AtomicUsize>,
    groups: u64,
    grouped: u64,
}

impl Committer {
    fn run(mut self, jobs: &Receiver<Box<dyn Job>>) {
        while let Ok(first) = jobs.recv() {
            let mut group = vec![first];
            group.extend(jobs.try_iter().take(MAX_GROUP - 1));
            self.groups += 1;
            self.grouped += group.len() as u64;
            self.commit(group);
        }
        tracing::debug!(
            groups = self.groups,
            operations = self.grouped,
            "bus commit thread stopped"
        );
    }

    fn commit(&mut self, mut group: Vec<Box<dyn Job>>) {
        if let Some(why) = failure(&self.failed) {
            group
                .into_iter()
                .for_each(|job| job.reply(Some(why.clone())));
            return;
        }
        match self.run_together(&mut group) {
            Ok(()) => self.acknowledge(group),
            Err(GroupFailure::Begin(error)) => {
                let why = error.to_string();
                group
                    .into_iter()
                    .for_each(|job| job.reply(Some(why.clone())));
            }
            Err(GroupFailure::Broken) => {
                for job in group {
                    self.run_alone(job);
                }
            }
        }
    }

    /// Runs every operation of the group in one transaction, each in its own savepoint.
    fn run_together(&mut self, group: &mut [Box<dyn Job>]) -> Result<(), GroupFailure> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|error| GroupFailure::Begin(failed("starting a bus transaction")(error)))?;
        for job in group.iter_mut() {
            tx.execute_batch("SAVEPOINT job")
                .map_err(|_| GroupFailure::Broken)?;
            let undo = if job.run(&tx) {
                "RELEASE job"
            } else {
                "ROLLBACK TO job; RELEASE job"
            };
            // Some errors (a full disk, out of memory) roll the whole transaction back; then
            // the savepoint is gone and the earlier operations' writes with it.
            tx.execute_batch(undo).map_err(|_| GroupFailure::Broken)?;
            if tx.is_autocommit() {
                return Err(GroupFailure::Broken);
            }
        }
        tx.commit().map_err(|_| GroupFailure::Broken)
    }

    /// Runs one operation in a transaction of its own, after its group failed together.
    fn run_alone(&mut self, mut job: Box<dyn Job>) {
        let outcome = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| {
                if job.run(&tx) {
                    tx.commit()
                } else {
                    // Dropping the transaction rolls it back.
                    Ok(())
                }
            });
        match outcome {
            Ok(()) => self.acknowledge(vec![job]),
            Err(error) => job.reply(Some(error.to_string())),
        }
    }

    /// Replies to a committed group: at once when it needs no fsync and nothing handed to the
    /// sync thread is still waiting (so no earlier publish can be revealed before it is
    /// durable), else through the sync thread.
    fn acknowledge(&mut self, group: Vec<Box<dyn Job>>) {
        let durable = group.iter().any(|job| job.sync() == Sync::Full);
        if !durable && self.outstanding.load(Ordering::SeqCst) == 0 {
            let error = failure(&self.failed);
            group.into_iter().for_each(|job| job.reply(error.clone()));
            return;
        }
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        if let Err(unsent) = self.committed.send(Committed { group }) {
            self.outstanding.fetch_sub(1, Ordering::SeqCst);
            for job in unsent.0.group {
                job.reply(Some("the bus's sync thread stopped".to_owned()));
            }
        }
    }
}

/// Replies to committed groups in commit order, each batch after one fsync of the WAL when any
/// of its operations needs one.
///
/// After a failed fsync it never tries again: Linux may have marked the lost pages clean, so a
/// second fsync could succeed without the data ever reaching the disk.
fn sync_loop(
    wal: &impl Wal,
    queue: &Receiver<Committed>,
    failed: &Failed,
    outstanding: &AtomicUsize,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter());
        let durable = batch
            .iter()
            .flat_map(|committed| &committed.group)
            .any(|job| job.sync() == Sync::Full);
        let error = match failure(failed) {
            Some(why) => Some(why),
            None if durable => wal.sync_data().err().map(|error| {
                let why = format!(
                    "fsync of the write-ahead log failed: {error}; what this operation wrote may or may not be on disk, and the bus refuses operations until it is reopened"
                );
                tracing::error!(%why, "the bus stops");
                *failed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) =
                    Some(why.clone());
                why
            }),
            None => None,
        };
        let groups = batch.len();
        for job in batch.into_iter().flat_map(|committed| committed.group) {
            job.reply(error.clone());
        }
        outstanding.fetch_sub(groups, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod fsync_tests;
#[cfg(test)]
mod tests;
