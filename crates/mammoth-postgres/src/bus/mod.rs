//! [`PgBus`]: the embedded message bus kept in `bus_*` tables of the event store's schema
//! (migration 4), on the store's connection pool, so that every process sharing the database
//! shares one bus. The same semantics as `mammoth_sqlite::SqliteBus`, table for table:
//!
//! - Publishing locks the topic's `bus_topics` row first and holds it until commit, so
//!   sequence numbers of one topic commit in order and a group cursor never passes a message
//!   still to commit (`publish.rs`). A publish of the outbox relay commits the messages and
//!   the relay's checkpoint (`bus_relays`) in one transaction, after locking the relay's row:
//!   relaying is exactly-once, even with two relays of one name.
//! - Each consumer group has a cursor (`bus_groups.next_seq`) and a pending list
//!   (`bus_pending`): a receive moves new messages into the pending list and leases the due
//!   ones for the visibility timeout (`consume.rs`). Receives of one group take turns on the
//!   group's row; leased rows are picked `FOR UPDATE SKIP LOCKED`, so no due delivery goes to
//!   two consumers.
//! - Failed deliveries are retried at the policy's delays, then moved to `bus_dead_letters`
//!   (`dead.rs`). A delivery whose lease expires on its last attempt is dead-lettered too.
//! - Deadlocks and serialization failures roll a transaction back whole; the bus runs it
//!   again (a few times, with a short pause) before reporting a transient error.
//! - Publishes through one handle are group-committed (`combine.rs`): those queued while a
//!   transaction runs share the next one, and each returns once it committed; a failed group
//!   runs again one publish per transaction, so a bad publish fails alone.
//! - Consumers on this handle are woken by its publishes at once. Every transaction storing
//!   messages NOTIFYs the schema's bus channel (payload: the topic); a handle LISTENs on it
//!   (`wake.rs`; all but [`PgBus::polling`] ones), so its consumers are woken by publishes of
//!   other handles and processes too. Polling every `poll_interval` stays the safety net.

mod combine;
mod consume;
mod dead;
mod publish;
mod sql;
mod stats;
mod wake;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::Pool;
use mammoth_core::Position;
use mammoth_core::bus::{
    BusError, ConsumerGroup, DeadLetter, DeadLetterFilter, MessageBus, OutgoingMessage, Published,
    RelayTarget, SubscribeOptions, Topic, TopicStats,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::PgEventStore;

pub use consume::PgConsumer;

use sql::{BusSql, pool_failed};

use crate::error::BACKEND;

/// Times a transaction that hit a deadlock or serialization failure is run again.
const CONFLICT_RETRIES: u32 = 5;

/// How durable one bus transaction's commit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sync {
    /// The commit waits for the WAL flush: publishes, relays, replays.
    Full,
    /// `synchronous_commit = off`: leases, acks, nacks. Losing one in a server crash only
    /// brings a message back (at-least-once), as with the SQLite bus's unsynced commits.
    Lazy,
}

/// Runs `$body` (a future of `Result<T, BusError>` using the transaction `$tx`) in a
/// transaction on a pooled connection and commits it at durability `$sync`; runs it again on
/// a deadlock or serialization failure.
macro_rules! transaction {
    ($bus:expr, $sync:expr, $action:expr, |$tx:ident| $body:expr) => {{
        // A `PgBus`, or the `PgEventStore` of the group commit task: anything with `pool()`.
        let bus = $bus;
        let sync: $crate::bus::Sync = $sync;
        let action: &'static str = $action;
        let mut retries = 0;
        loop {
            let result: Result<_, mammoth_core::bus::BusError> = async {
                let mut client = bus
                    .pool()
                    .get()
                    .await
                    .map_err($crate::bus::sql::pool_failed(action))?;
                let $tx = client
                    .transaction()
                    .await
                    .map_err($crate::bus::sql::failed(action))?;
                if sync == $crate::bus::Sync::Lazy {
                    $tx.batch_execute("SET LOCAL synchronous_commit = off")
                        .await
                        .map_err($crate::bus::sql::failed(action))?;
                }
                let value = $body.await?;
                $tx.commit()
                    .await
                    .map_err($crate::bus::sql::failed(action))?;
                Ok(value)
            }
            .await;
            match result {
                Err(error) if $crate::bus::retryable(&error, &mut retries).await => {}
                other => break other,
            }
        }
    }};
}
pub(crate) use transaction;

/// True (after a short pause) when `error` is a conflict worth another try and tries remain.
pub(crate) async fn retryable(error: &BusError, retries: &mut u32) -> bool {
    if *retries >= CONFLICT_RETRIES || !sql::is_conflict(error) {
        return false;
    }
    *retries += 1;
    tokio::time::sleep(Duration::from_millis(2 << *retries)).await;
    true
}

/// How to open a [`PgBus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PgBusOptions {
    /// How long a message id is remembered per topic: a publish of the same id within it stores
    /// nothing (JetStream's default duplicate window, 2 minutes).
    pub dedup_window: Duration,
    /// How often a waiting consumer looks for messages published by other handles and
    /// processes (and for retries coming due). Publishes on this handle wake its consumers at
    /// once, and so do publishes anywhere unless the handle only polls ([`PgBus::polling`]).
    pub poll_interval: Duration,
}

impl Default for PgBusOptions {
    fn default() -> Self {
        Self {
            dedup_window: Duration::from_secs(120),
            poll_interval: Duration::from_millis(50),
        }
    }
}

struct Shared {
    store: PgEventStore,
    sql: Arc<BusSql>,
    options: PgBusOptions,
    /// Bumped after every commit that may make messages deliverable, and by the listener.
    published: Arc<watch::Sender<u64>>,
    /// The group commit task's queue, started by the first publish.
    publisher: OnceLock<mpsc::UnboundedSender<combine::Job>>,
    /// Where the LISTEN connection connects; `None`: consumers only poll for other handles'
    /// publishes.
    listen: Option<tokio_postgres::Config>,
    /// The listener task, started by the first consumer that waits.
    listener: OnceLock<JoinHandle<()>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.get() {
            listener.abort();
        }
    }
}

/// The durable message bus in a [`PgEventStore`]'s schema, sharing its pool. Cheap to clone.
///
/// Any number of handles, in any number of processes, may use the same schema at once: they
/// share topics, groups and dead letters. Closing the event store closes the bus (calls then
/// fail with [`BusError::Closed`]).
#[derive(Clone)]
pub struct PgBus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PgBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBus")
            .field("schema", &self.shared.store.schema())
            .finish_non_exhaustive()
    }
}

impl PgBus {
    /// The bus kept beside `store`'s events (its tables are created by the store's
    /// migrations). The first consumer that waits opens one LISTEN connection (with the store's
    /// connection settings) for the handle, so publishes of other handles and processes wake
    /// its consumers at once; polling every `poll_interval` stays the safety net.
    pub fn new(store: &PgEventStore, options: PgBusOptions) -> Self {
        Self::build(store, options, Some(store.connect_config().clone()))
    }

    /// As [`PgBus::new`], with consumers that only poll for other handles' publishes (no
    /// LISTEN connection).
    pub fn polling(store: &PgEventStore, options: PgBusOptions) -> Self {
        Self::build(store, options, None)
    }

    /// The bus kept beside `store`'s events, whose waiting consumers are also woken by
    /// publishes of other handles and processes: the first consumer that waits opens one
    /// LISTEN connection to `url` (the store's database) for the handle, reconnecting after a
    /// loss; polling stays the safety net.
    ///
    /// # Errors
    /// [`BusError::InvalidInput`] when `url` is not a PostgreSQL connection URL.
    pub fn with_listener(
        store: &PgEventStore,
        options: PgBusOptions,
        url: &str,
    ) -> Result<Self, BusError> {
        let config = url.parse::<tokio_postgres::Config>().map_err(|error| {
            BusError::InvalidInput(format!(
                "the bus listener's connection URL: {error}; write a URL such as postgres://user@host:5432/database"
            ))
        })?;
        Ok(Self::build(store, options, Some(config)))
    }

    fn build(
        store: &PgEventStore,
        options: PgBusOptions,
        listen: Option<tokio_postgres::Config>,
    ) -> Self {
        let (published, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                sql: Arc::new(BusSql::new(store.schema())),
                store: store.clone(),
                options,
                published: Arc::new(published),
                publisher: OnceLock::new(),
                listen,
                listener: OnceLock::new(),
            }),
        }
    }

    /// The schema holding the bus tables.
    pub fn schema(&self) -> &str {
        self.shared.store.schema()
    }

    fn pool(&self) -> &Pool {
        self.shared.store.pool()
    }

    fn sql(&self) -> &BusSql {
        &self.shared.sql
    }

    async fn client(&self, action: &'static str) -> Result<deadpool_postgres::Client, BusError> {
        self.pool().get().await.map_err(pool_failed(action))
    }

    /// Starts the handle's LISTEN task if it has a listener and none runs yet (inside a tokio
    /// runtime only; outside one, consumers poll).
    fn listen(&self) {
        let Some(config) = &self.shared.listen else {
            return;
        };
        if self.shared.listener.get().is_some() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        self.shared.listener.get_or_init(|| {
            tokio::spawn(wake::run(
                config.clone(),
                self.sql().channel.clone(),
                self.shared.published.clone(),
            ))
        });
    }

    /// Publishes through the group commit task (started on first use), or in a transaction
    /// of its own outside a tokio runtime or when the task is gone (its runtime shut down).
    async fn publish_grouped(
        &self,
        topic: &Topic,
        messages: Vec<OutgoingMessage>,
    ) -> Result<Vec<Published>, BusError> {
        let shared = &self.shared;
        let window = shared.options.dedup_window;
        let messages = if tokio::runtime::Handle::try_current().is_ok() {
            let queue = shared
                .publisher
                .get_or_init(|| combine::spawn(shared.store.clone(), shared.sql.clone(), window));
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
        combine::alone(&shared.store, &shared.sql, window, topic, &messages).await
    }

    /// Wakes the waiting consumers of this handle.
    fn wake(&self) {
        self.shared.published.send_modify(|count| *count += 1);
    }

    /// Deletes messages every group of their topic is done with and expired de-duplication
    /// entries. Consumers run it now and then (every 8192 acks); callers may run it too.
    /// Returns the messages deleted.
    ///
    /// # Errors
    /// [`BusError::Backend`].
    pub async fn collect_garbage(&self) -> Result<u64, BusError> {
        let window = self.shared.options.dedup_window;
        transaction!(self, Sync::Lazy, "collecting garbage", |tx| {
            stats::collect_garbage(&tx, self.sql(), window)
        })
    }
}

impl MessageBus for PgBus {
    type Consumer = PgConsumer;

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
        publish::check_storable(&messages)?;
        let published = self.publish_grouped(topic, messages).await?;
        self.wake();
        Ok(published)
    }

    async fn subscribe(
        &self,
        topic: &Topic,
        group: &ConsumerGroup,
        options: SubscribeOptions,
    ) -> Result<PgConsumer, BusError> {
        let client = self.client("creating a consumer group").await?;
        let group_id = consume::group_id(&client, self, topic, group, options.start).await?;
        Ok(PgConsumer::new(
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
        let client = self.client("listing dead letters").await?;
        dead::list(&client, self.sql(), filter, limit).await
    }

    async fn replay_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, BusError> {
        let replayed = transaction!(self, Sync::Full, "replaying dead letters", |tx| {
            dead::replay(&tx, self.sql(), filter)
        })?;
        self.wake();
        Ok(replayed)
    }

    async fn discard_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, BusError> {
        let client = self.client("discarding dead letters").await?;
        dead::discard(&client, self.sql(), filter).await
    }

    async fn stats(&self) -> Result<Vec<TopicStats>, BusError> {
        let client = self.client("reading bus statistics").await?;
        stats::stats(&client, self.sql()).await
    }
}

impl RelayTarget for PgBus {
    async fn relay_checkpoint(&self, name: &str) -> Result<Position, BusError> {
        let client = self.client("reading a relay checkpoint").await?;
        publish::relay_checkpoint(&client, self.sql(), name).await
    }

    async fn relay_publish(
        &self,
        name: &str,
        batch: Vec<(Position, Topic, OutgoingMessage)>,
        through: Position,
    ) -> Result<(), BusError> {
        publish::check_storable(batch.iter().map(|(_, _, message)| message))?;
        let window = self.shared.options.dedup_window;
        transaction!(self, Sync::Full, "relaying events", |tx| publish::relay(
            &tx,
            self.sql(),
            name,
            &batch,
            through,
            window
        ))?;
        self.wake();
        Ok(())
    }
}
