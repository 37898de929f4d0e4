//! Acknowledging appends only once they are durable, without making the writer wait for the
//! disk.
//!
//! With `Synchronous::Full`, SQLite itself runs at `synchronous=NORMAL` (commits reach the OS,
//! WAL checkpoints are fsynced) and this module adds the fsync that makes each commit durable:
//! after a group commits, the writer hands its replies to the sync thread and starts the next
//! group at once; the sync thread calls `fdatasync` on the WAL file and only then sends the
//! replies and advances the head that subscribers follow. One fsync covers every group that
//! committed while the previous fsync ran, so the disk's fsync latency no longer caps the
//! commit rate. No append is acknowledged before the WAL frames holding it are on disk, which
//! is the guarantee `synchronous=FULL` gives.
//!
//! If an fsync fails, the pages it should have written may be gone (Linux drops them), so the
//! store stops accepting appends: every waiting and later append gets an error, and reopening
//! the file recovers whatever the WAL really holds.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mammoth_core::{AppendResult, Position, StoreError};
use tokio::sync::{oneshot, watch};

/// The longest the sync thread waits for resubmitting writers before it starts an fsync.
const GATHER_AT_MOST: Duration = Duration::from_micros(200);

/// A reply waiting to be sent.
pub(crate) type Reply = (
    oneshot::Sender<Result<AppendResult, StoreError>>,
    Result<AppendResult, StoreError>,
);

/// What one commit produced: the replies to send and the head to publish.
pub(crate) struct Committed {
    pub replies: Vec<Reply>,
    /// The global head after this commit, if it wrote anything.
    pub head: Option<Position>,
}

/// Where committed groups go to be acknowledged.
pub(crate) enum Acknowledger {
    /// `Synchronous::Normal`: acknowledge at once.
    Immediate(Arc<watch::Sender<Position>>),
    /// `Synchronous::Full`: acknowledge after the sync thread's fsync.
    AfterSync {
        queue: Sender<Committed>,
        thread: JoinHandle<()>,
        failed: Arc<AtomicBool>,
    },
}

impl Acknowledger {
    /// Starts the sync thread for `wal` (the `-wal` file beside the database).
    pub fn after_sync(wal: File, head: Arc<watch::Sender<Position>>) -> std::io::Result<Self> {
        let failed = Arc::new(AtomicBool::new(false));
        let (queue, receiver) = channel();
        let flag = failed.clone();
        let thread = std::thread::Builder::new()
            .name("mammoth-sqlite-sync".to_owned())
            .spawn(move || sync_loop(&wal, &head, &receiver, &flag))?;
        Ok(Self::AfterSync {
            queue,
            thread,
            failed,
        })
    }

    /// True once an fsync has failed; the writer then refuses appends.
    pub fn has_failed(&self) -> bool {
        match self {
            Self::Immediate(_) => false,
            Self::AfterSync { failed, .. } => failed.load(Ordering::SeqCst),
        }
    }

    /// Acknowledges `committed` now or after the next fsync.
    pub fn acknowledge(&self, committed: Committed) {
        match self {
            Self::Immediate(head) => send(committed, head),
            Self::AfterSync { queue, .. } => {
                if let Err(unsent) = queue.send(committed) {
                    fail(unsent.0, "the sync thread has stopped");
                }
            }
        }
    }

    /// Waits until everything handed over so far is acknowledged.
    pub fn finish(self) {
        if let Self::AfterSync { queue, thread, .. } = self {
            drop(queue);
            let _ = thread.join();
        }
    }
}

fn replies(batch: &[Committed]) -> usize {
    batch.iter().map(|committed| committed.replies.len()).sum()
}

fn send(committed: Committed, head: &watch::Sender<Position>) {
    if let Some(position) = committed.head {
        head.send_replace(position);
    }
    for (reply, result) in committed.replies {
        let _ = reply.send(result);
    }
}

fn fail(committed: Committed, why: &str) {
    for (reply, _) in committed.replies {
        let _ = reply.send(Err(StoreError::backend(
            "sqlite",
            "making appends durable",
            format!("{why}; this append may or may not be on disk (re-send it with the same event ids after reopening to find out), and the store refuses appends until it is reopened"),
            false,
        )));
    }
}

fn sync_loop(
    wal: &File,
    head: &watch::Sender<Position>,
    queue: &Receiver<Committed>,
    failed: &AtomicBool,
) {
    // How many appends the last fsync acknowledged: their writers are resubmitting right now.
    let mut last_acknowledged = 0;
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter());
        // Like PostgreSQL's commit_delay: when the last fsync woke more writers than have come
        // back, wait a moment for them, so one fsync carries the whole crowd rather than half
        // of it (the other half would wait a full extra fsync). A lone writer never waits.
        let deadline = Instant::now() + GATHER_AT_MOST;
        while replies(&batch) < last_acknowledged {
            match queue.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(more) => {
                    batch.push(more);
                    batch.extend(queue.try_iter());
                }
                Err(_) => break,
            }
        }
        last_acknowledged = replies(&batch);
        let synced = if failed.load(Ordering::SeqCst) {
            Err("an earlier fsync failed".to_owned())
        } else {
            wal.sync_data()
                .map_err(|error| format!("fsync of the write-ahead log failed: {error}"))
        };
        match synced {
            Ok(()) => {
                // Publish the newest head once, then wake the writers.
                let newest = batch.iter().filter_map(|committed| committed.head).max();
                if let Some(position) = newest {
                    head.send_replace(position);
                }
                for committed in batch {
                    for (reply, result) in committed.replies {
                        let _ = reply.send(result);
                    }
                }
            }
            Err(why) => {
                tracing::error!(%why, "the store stops accepting appends");
                failed.store(true, Ordering::SeqCst);
                for committed in batch {
                    fail(committed, &why);
                }
            }
        }
    }
}
