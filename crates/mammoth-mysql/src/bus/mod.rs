//! [`MysqlBus`]: the embedded message bus kept in `bus_*` tables of the event store's
//! MySQL/MariaDB database, on the store's pool (as the checkpoint store is), so every
//! `mammoth serve` process sharing the database shares one bus. The semantics are the SQLite
//! bus's (`mammoth_sqlite::SqliteBus`); what differs is how several writers are kept apart:
//!
//! - Sequence numbers count per topic and are reserved with one statement on the topic's
//!   `bus_topics` row, whose lock every transaction that stores messages in the topic
//!   (publish, relay, replay) takes before storing them and holds until commit, as the event
//!   store's `log_head` is. Messages of a
//!   topic therefore commit in sequence order, and a group cursor that moved past sequence
//!   `n` can never see a smaller one commit later (gap safety).
//! - A receive locks its group's `bus_groups` row first, so the claims of one group run one
//!   at a time across every process: no due delivery is leased to two consumers, and the
//!   cursor moves once per message. Acks, nacks and extends touch single pending rows by key
//!   and do not wait for claims of other rows.
//! - Every transaction runs at READ COMMITTED (no gap locks); one that InnoDB rolls back as a
//!   deadlock victim or after a lock wait timeout is run again, a few times, before the error
//!   is returned (flagged transient).
//! - Publishes through one handle are group-committed (`combine.rs`): those queued while a
//!   transaction runs share the next one, and each returns once it committed.
//! - A message too large for one statement of the server (`max_allowed_packet`) is refused
//!   before anything is written.
//! - Consumers in this process are woken by a publish at once; consumers in other processes
//!   poll (every `poll_interval`).

mod claim;
mod combine;
mod consume;
mod dead;
mod publish;
mod rows;
mod stats;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mammoth_core::bus::{
    BusError, ConsumerGroup, DeadLetter, DeadLetterFilter, MessageBus, OutgoingMessage, Published,
    RelayTarget, SubscribeOptions, Topic, TopicStats,
};
use mammoth_core::{Position, StoreError};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, IsolationLevel, TxOpts};
use tokio::sync::{mpsc, oneshot, watch};

use crate::MysqlEventStore;

pub use consume::MysqlConsumer;
pub use publish::MAX_RELAY_NAME_BYTES;

use rows::BACKEND;

/// Bytes of one message's statement beside its payload, key and headers (the SQL text and
/// the other columns), with room to spare.
const STATEMENT_OVERHEAD: usize = 4096;

/// How often a transaction rolled back by a deadlock or a lock wait timeout is run, in all.
const ATTEMPTS: u32 = 8;

/// Runs `$body` (a future using `$tx: &mut Transaction<'_>`, yielding `Result<T, Fail>`) in a
/// READ COMMITTED transaction on a pooled connection, and again when InnoDB rolled it back
/// as a deadlock victim. Evaluates to `Result<T, BusError>`; returns early from the caller
/// when no connection could be had.
macro_rules! transaction {
    ($bus:expr, $action:expr, |$tx:ident| $body:expr) => {{
        let bus = $bus;
        let action: &'static str = $action;
        let mut conn = bus.conn(action).await?;
        let mut attempt = 1;
        loop {
            let result: Result<_, $crate::bus::rows::Fail> = async {
                let mut $tx = conn.start_transaction($crate::bus::tx_options()).await?;
                let value = {
                    let $tx = &mut $tx;
                    $body.await?
                };
                $tx.commit().await?;
                Ok(value)
            }
            .await;
            match result {
                Ok(value) => break Ok(value),
                Err(fail) if fail.rolled_back() && attempt < $crate::bus::ATTEMPTS => {
                    tracing::debug!(error = %fail, attempt, "{action}: retrying after a deadlock");
                    tokio::time::sleep($crate::bus::backoff(attempt)).await;
                    attempt += 1;
                }
                Err(fail) => break Err(fail.into_bus(action)),
            }
        }
    }};
}
pub(crate) use transaction;

/// The pause before running a deadlock victim again: growing with the attempt, spread by
/// the clock's microseconds so transactions that collided do not collide again in step.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let spread = mammoth_core::now_micros().rem_euclid(500).unsigned_abs();
    Duration::from_micros(200 * u64::from(attempt) + spread)
}

/// Every bus transaction: READ COMMITTED, so range updates take no gap locks.
pub(crate) fn tx_options() -> TxOpts {
    let mut options = TxOpts::default();
    options.with_isolation_level(IsolationLevel::ReadCommitted);
    options
}

/// How to open a [`MysqlBus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MysqlBusOptions {
    /// How long a message id is remembered per topic: a publish of the same id within it stores
    /// nothing (JetStream's default duplicate window, 2 minutes).
    pub dedup_window: Duration,
    /// How often a waiting consumer looks for messages published by other processes (and for
    /// retries coming due). Publishes through this handle wake its consumers at once.
    pub poll_interval: Duration,
}

impl Default for MysqlBusOptions {
    fn default() -> Self {
        Self {
            dedup_window: Duration::from_secs(120),
            poll_interval: Duration::from_millis(50),
        }
    }
}

/// The database side of a bus: the store whose pool and database it uses.
#[derive(Clone)]
pub(crate) struct Db {
    store: MysqlEventStore,
}

impl Db {
    /// The quoted database name, for statements.
    pub(crate) fn d(&self) -> &str {
        &self.store.sql().d
    }

    /// A pooled connection.
    pub(crate) async fn conn(&self, action: &'static str) -> Result<Conn, BusError> {
        self.store.conn().await.map_err(|error| match error {
            StoreError::Closed => BusError::Closed,
            other => {
                let transient = other.is_transient();
                BusError::backend(BACKEND, action, other, transient)
            }
        })
    }
}

struct Shared {
    db: Db,
    options: MysqlBusOptions,
    /// Bumped after every commit that may make messages deliverable.
    published: watch::Sender<u64>,
    /// The group commit task's queue, started by the first publish.
    publisher: OnceLock<mpsc::UnboundedSender<combine::Job>>,
    /// The server's `max_allowed_packet`, read by the first publish.
    max_packet: OnceLock<u64>,
}

/// The embedded, durable message bus in the tables of a [`MysqlEventStore`]'s database,
/// sharing its pool. Cheap to clone; any number of processes may use the same database.
#[derive(Clone)]
pub struct MysqlBus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MysqlBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlBus")
            .field("database", &self.shared.db.store.database())
            .finish_non_exhaustive()
    }
}

impl MysqlBus {
    /// The bus kept beside `store`'s events (its tables are created by the store's
    /// migrations), sharing the store's pool. Closing the store closes the bus: calls then
    /// fail with [`BusError::Closed`].
    pub fn new(store: &MysqlEventStore, options: MysqlBusOptions) -> Self {
        let (published, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                db: Db {
                    store: store.clone(),
                },
                options,
                published,
                publisher: OnceLock::new(),
                max_packet: OnceLock::new(),
            }),
        }
    }

    /// The database holding the bus tables.
    pub fn database(&self) -> &str {
        self.shared.db.store.database()
    }

    /// The options the bus was opened with.
    pub fn options(&self) -> MysqlBusOptions {
        self.shared.options
    }

    /// The quoted database name, for statements.
    pub(crate) fn d(&self) -> &str {
        self.shared.db.d()
    }

    /// A pooled connection.
    pub(crate) async fn conn(&self, action: &'static str) -> Result<Conn, BusError> {
        self.shared.db.conn(action).await
    }

    /// Refuses, before anything is written, a message too large for one statement of the
    /// server (`max_allowed_packet`, read once): sent anyway, the server would drop the
    /// connection and the caller would see only a broken pipe.
    async fn check_sizes<'a>(
        &self,
        messages: impl IntoIterator<Item = &'a OutgoingMessage>,
    ) -> Result<(), BusError> {
        let max = match self.shared.max_packet.get() {
            Some(max) => *max,
            None => {
                let action = "reading the server's max_allowed_packet";
                let mut conn = self.conn(action).await?;
                let max: Option<u64> = conn
                    .query_first("SELECT @@max_allowed_packet")
                    .await
                    .map_err(|error| rows::Fail::from(error).into_bus(action))?;
                *self
                    .shared
                    .max_packet
                    .get_or_init(|| max.unwrap_or(4 << 20))
            }
        };
        for message in messages {
            let headers: usize = message
                .headers
                .iter()
                .map(|(name, value)| name.len() + value.len() + 8)
                .sum();
            let size = message.payload.len()
                + message.key.as_ref().map_or(0, String::len)
                + headers
                + STATEMENT_OVERHEAD;
            if size as u64 > max {
                return Err(BusError::InvalidInput(format!(
                    "message {}: {size} bytes with its key and headers, more than the {max} bytes the MySQL server accepts in one statement (max_allowed_packet); raise max_allowed_packet on the server, or keep the payload elsewhere and publish a reference to it; nothing was published",
                    message.id
                )));
            }
        }
        Ok(())
    }

    /// Publishes through the group commit task (started on first use), or in a transaction
    /// of its own outside a tokio runtime or when the task is gone (its runtime shut down).
    async fn publish_grouped(
        &self,
        topic: &Topic,
        messages: Vec<OutgoingMessage>,
    ) -> Result<Vec<Published>, BusError> {
        let window = self.shared.options.dedup_window;
        let messages = if tokio::runtime::Handle::try_current().is_ok() {
            let queue = self
                .shared
                .publisher
                .get_or_init(|| combine::spawn(self.shared.db.clone(), window));
            let (reply, result) = oneshot::channel();
            let job = combine::Job {
                topic: topic.clone(),
                messages,
                reply,
            };
            match queue.send(job) {
                Ok(()) => {
                    return result.await.map_err(|_| {
                        BusError::backend(
                            BACKEND,
                            "publishing",
                            "the publish task stopped before replying (its runtime shut down); the messages may or may not be stored, so publish them again with the same ids",
                            true,
                        )
                    })?;
                }
                Err(unsent) => unsent.0.messages,
            }
        } else {
            messages
        };
        transaction!(self, "publishing", |tx| publish::publish(
            tx,
            self.d(),
            topic,
            &messages,
            window
        ))
    }

    /// Wakes this handle's waiting consumers.
    pub(crate) fn wake(&self) {
        self.shared.published.send_modify(|count| *count += 1);
    }

    /// Deletes messages every group of their topic is done with (below every cursor and every
    /// pending row) and expired de-duplication entries. Consumers run it now and then; callers
    /// may run it too. Returns the messages deleted.
    ///
    /// # Errors
    /// [`BusError::Backend`], [`BusError::Closed`].
    pub async fn collect_garbage(&self) -> Result<u64, BusError> {
        let window = self.shared.options.dedup_window;
        transaction!(self, "collecting garbage", |tx| stats::collect_garbage(
            tx,
            self.d(),
            window
        ))
    }
}

impl MessageBus for MysqlBus {
    type Consumer = MysqlConsumer;

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
        self.check_sizes(&messages).await?;
        let published = self.publish_grouped(topic, messages).await?;
        self.wake();
        Ok(published)
    }

    async fn subscribe(
        &self,
        topic: &Topic,
        group: &ConsumerGroup,
        options: SubscribeOptions,
    ) -> Result<MysqlConsumer, BusError> {
        let start = options.start;
        let group_id = transaction!(self, "creating a consumer group", |tx| {
            claim::group_id(tx, self.d(), topic, group, start)
        })?;
        Ok(MysqlConsumer::new(
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
        transaction!(self, "listing dead letters", |tx| dead::list(
            tx,
            self.d(),
            filter,
            limit
        ))
    }

    async fn replay_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, BusError> {
        let replayed = transaction!(self, "replaying dead letters", |tx| dead::replay(
            tx,
            self.d(),
            filter
        ))?;
        self.wake();
        Ok(replayed)
    }

    async fn discard_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, BusError> {
        transaction!(self, "discarding dead letters", |tx| dead::discard(
            tx,
            self.d(),
            filter
        ))
    }

    async fn stats(&self) -> Result<Vec<TopicStats>, BusError> {
        transaction!(self, "reading bus statistics", |tx| stats::stats(
            tx,
            self.d()
        ))
    }
}

impl RelayTarget for MysqlBus {
    async fn relay_checkpoint(&self, name: &str) -> Result<Position, BusError> {
        publish::check_relay_name(name)?;
        transaction!(self, "reading a relay checkpoint", |tx| {
            publish::relay_checkpoint(tx, self.d(), name, false)
        })
    }

    async fn relay_publish(
        &self,
        name: &str,
        batch: Vec<(Position, Topic, OutgoingMessage)>,
        through: Position,
    ) -> Result<(), BusError> {
        publish::check_relay_name(name)?;
        self.check_sizes(batch.iter().map(|(_, _, message)| message))
            .await?;
        let window = self.shared.options.dedup_window;
        transaction!(self, "relaying events", |tx| publish::relay(
            tx,
            self.d(),
            name,
            &batch,
            through,
            window
        ))?;
        self.wake();
        Ok(())
    }
}
