//! [`SqliteBus`]: the embedded message bus, a durable queue in `bus_*` tables of the event
//! store's SQLite file, on a connection of its own (as the snapshot store does).
//!
//! - One commit thread owns the connection and commits every operation queued meanwhile in
//!   one transaction (`commit.rs`). A publish returns only after an fsync of the WAL that
//!   covers it: a publish that returned survives a power cut, and concurrent publishes share
//!   one fsync. A publish of the outbox relay commits the messages and the relay's checkpoint
//!   in one transaction, so relaying is exactly-once.
//! - Each consumer group has a cursor (`bus_groups.next_seq`) and a pending list
//!   (`bus_pending`, the JetStream "ack pending" set or the Redis PEL): a receive moves new
//!   messages into the pending list and leases the due ones for the visibility timeout.
//!   Acks, nacks and leases need no fsync of their own: a power cut can only bring a message
//!   back (at-least-once), never lose one.
//! - Failed deliveries are retried at the policy's delays, then moved to `bus_dead_letters`
//!   with the message, the last error, the attempt count and the first and last failure
//!   times. A delivery whose lease expires on its last attempt is dead-lettered too.
//! - Consumers in this process are woken by a publish at once; consumers in other processes
//!   poll (every `poll_interval`).
//!
//! See `docs/architecture.md` ("Message bus and outbox relay") for the layout and guarantees.

mod commit;
mod consume;
mod dead;
mod publish;
mod schema;
mod stats;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use mammoth_core::Position;
use mammoth_core::bus::{
    BusError, ConsumerGroup, DeadLetter, DeadLetterFilter, MessageBus, OutgoingMessage, Published,
    RelayTarget, SubscribeOptions, Topic, TopicStats,
};
use rusqlite::Connection;
use tokio::sync::{oneshot, watch};

pub use consume::SqliteConsumer;

use commit::{Job, Operation};
use schema::failed;

/// How to open a [`SqliteBus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqliteBusOptions {
    /// How long a message id is remembered per topic: a publish of the same id within it stores
    /// nothing (JetStream's default duplicate window, 2 minutes).
    pub dedup_window: Duration,
    /// How often a waiting consumer looks for messages published by other processes (and for
    /// retries coming due). Publishes in this process wake consumers at once.
    pub poll_interval: Duration,
}

impl Default for SqliteBusOptions {
    fn default() -> Self {
        Self {
            dedup_window: Duration::from_secs(120),
            poll_interval: Duration::from_millis(50),
        }
    }
}

/// Durability of one bus transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sync {
    /// fsync of the WAL before returning: publishes, replays.
    Full,
    /// No fsync of its own: leases, acks, nacks (losing one only brings a message back).
    Normal,
}

struct Shared {
    path: PathBuf,
    /// The commit thread's queue.
    jobs: Sender<Box<dyn Job>>,
    options: SqliteBusOptions,
    /// Bumped after every commit that may make messages deliverable.
    published: watch::Sender<u64>,
}

/// The embedded, durable message bus in the SQLite file at a path. Cheap to clone.
#[derive(Clone)]
pub struct SqliteBus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SqliteBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBus")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl SqliteBus {
    /// Opens the bus in the SQLite file at `path` (the event store's file), creating the file
    /// and the bus tables if needed. Any number of processes may open the same file.
    ///
    /// # Errors
    /// [`BusError::Backend`] when the file cannot be opened.
    pub fn open(path: impl AsRef<Path>, options: SqliteBusOptions) -> Result<Self, BusError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|error| {
                BusError::backend("sqlite", "creating the bus directory", error, false)
            })?;
        }
        let conn = Connection::open(&path).map_err(failed("opening the bus"))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(failed("configuring the bus"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(failed("configuring the bus"))?;
        // Durable operations get an fsync of the WAL from the commit thread instead.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(failed("configuring the bus"))?;
        schema::create(&conn)?;
        // The connection has read the database in WAL mode, so the log file exists now.
        let mut wal_path = path.clone().into_os_string();
        wal_path.push("-wal");
        let wal = File::options()
            .read(true)
            .write(true)
            .open(&wal_path)
            .map_err(|error| {
                BusError::backend("sqlite", "opening the bus's write-ahead log", error, false)
            })?;
        let jobs = commit::spawn(conn, wal).map_err(|error| {
            BusError::backend("sqlite", "starting the bus's commit thread", error, false)
        })?;
        let (published, _) = watch::channel(0);
        Ok(Self {
            shared: Arc::new(Shared {
                path,
                jobs,
                options,
                published,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Opens the bus with default options.
    ///
    /// # Errors
    /// As [`SqliteBus::open`].
    pub fn open_default(path: impl AsRef<Path>) -> Result<Self, BusError> {
        Self::open(path, SqliteBusOptions::default())
    }

    /// Runs `work` on the commit thread, in a savepoint of the group's `BEGIN IMMEDIATE`
    /// transaction (rolled back alone if `work` fails), and returns once the group committed
    /// at `sync` durability. `work` may run twice: again in a transaction of its own when its
    /// group could not commit together.
    async fn transaction<T: Send + 'static>(
        &self,
        sync: Sync,
        action: &'static str,
        work: impl FnMut(&rusqlite::Transaction<'_>) -> Result<T, BusError> + Send + 'static,
    ) -> Result<T, BusError> {
        let (reply, result) = oneshot::channel();
        let job = Box::new(Operation {
            sync,
            action,
            work,
            result: None,
            reply,
        });
        self.shared
            .jobs
            .send(job)
            .map_err(|_| BusError::backend("sqlite", action, "the commit thread stopped", false))?;
        result
            .await
            .map_err(|_| BusError::backend("sqlite", action, "the commit thread stopped", false))?
    }

    /// Wakes this process's waiting consumers.
    fn wake(&self) {
        self.shared.published.send_modify(|count| *count += 1);
    }

    /// Deletes messages every group of their topic is done with and expired de-duplication
    /// entries. Runs on its own now and then; callers may run it too. Returns the messages
    /// deleted.
    ///
    /// # Errors
    /// [`BusError::Backend`].
    pub async fn collect_garbage(&self) -> Result<u64, BusError> {
        let window = self.shared.options.dedup_window;
        self.transaction(Sync::Normal, "collecting garbage", move |tx| {
            stats::collect_garbage(tx, window)
        })
        .await
    }
}

impl MessageBus for SqliteBus {
    type Consumer = SqliteConsumer;

    async fn publish(
        &self,
        topic: &Topic,
        messages: Vec<OutgoingMessage>,
    ) -> Result<Vec<Published>, BusError> {
        if messages.is_empty() {
            return Err(BusError::InvalidInput(
                "publish needs at least one message".to_owned(),
            ));
        }
        let topic = topic.clone();
        let window = self.shared.options.dedup_window;
        let published = self
            .transaction(Sync::Full, "publishing", move |tx| {
                publish::publish(tx, &topic, &messages, window)
            })
            .await?;
        self.wake();
        Ok(published)
    }

    async fn subscribe(
        &self,
        topic: &Topic,
        group: &ConsumerGroup,
        options: SubscribeOptions,
    ) -> Result<SqliteConsumer, BusError> {
        let (topic_, group_, start) = (topic.clone(), group.clone(), options.start);
        let group_id = self
            .transaction(Sync::Full, "creating a consumer group", move |tx| {
                consume::group_id(tx, &topic_, &group_, start)
            })
            .await?;
        Ok(SqliteConsumer::new(
            self.clone(),
            topic.clone(),
            group.clone(),
            group_id,
            options,
        ))
    }

    async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        if limit == 0 {
            return Err(BusError::InvalidInput(
                "the limit must be at least 1".to_owned(),
            ));
        }
        let filter = filter.clone();
        self.transaction(Sync::Normal, "listing dead letters", move |tx| {
            dead::list(tx, &filter, limit)
        })
        .await
    }

    async fn replay_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, BusError> {
        let filter = filter.clone();
        let replayed = self
            .transaction(Sync::Full, "replaying dead letters", move |tx| {
                dead::replay(tx, &filter)
            })
            .await?;
        self.wake();
        Ok(replayed)
    }

    async fn discard_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, BusError> {
        let filter = filter.clone();
        self.transaction(Sync::Full, "discarding dead letters", move |tx| {
            dead::discard(tx, &filter)
        })
        .await
    }

    async fn stats(&self) -> Result<Vec<TopicStats>, BusError> {
        self.transaction(Sync::Normal, "reading bus statistics", |tx| {
            stats::stats(tx)
        })
        .await
    }
}

impl RelayTarget for SqliteBus {
    async fn relay_checkpoint(&self, name: &str) -> Result<Position, BusError> {
        let name = name.to_owned();
        self.transaction(Sync::Normal, "reading a relay checkpoint", move |tx| {
            publish::relay_checkpoint(tx, &name)
        })
        .await
    }

    async fn relay_publish(
        &self,
        name: &str,
        batch: Vec<(Position, Topic, OutgoingMessage)>,
        through: Position,
    ) -> Result<(), BusError> {
        let name = name.to_owned();
        let window = self.shared.options.dedup_window;
        self.transaction(Sync::Full, "relaying events", move |tx| {
            publish::relay(tx, &name, &batch, through, window)
        })
        .await?;
        self.wake();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
