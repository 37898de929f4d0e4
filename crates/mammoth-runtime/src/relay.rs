//! [`Relay`]: the outbox relay, a consumer of the global log that publishes committed events
//! to bus topics. The event store is the outbox: an event is published only after its append
//! committed (the relay reads it from the log), and never lost (the relay's checkpoint moves
//! only when the publish of everything up to it succeeded).
//!
//! Each message carries the event id as its message id and the stream id as its key
//! ([`event_message`]); a [`TopicMap`] picks the topic. On the embedded bus the messages and
//! the checkpoint commit in one transaction, so a restart resumes exactly where the last
//! commit left off: nothing twice, nothing lost. On a broker the checkpoint is saved after
//! the publish, and the broker's de-duplication window drops the re-publishes a crash between
//! the two causes.

use std::future::Future;
use std::time::Duration;

use mammoth_core::bus::{BusError, OutgoingMessage, RelayTarget, Topic, TopicMap, event_message};
use mammoth_core::{EventFilter, EventStore, Position, RecordedEvent, StoreError, Subscription};

use crate::RetryPolicy;

/// The default number of events read and published per batch.
pub const DEFAULT_RELAY_BATCH: usize = 512;

/// Why the relay stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// Reading the event store failed (and kept failing).
    #[error("relay {relay:?}: reading the event store failed: {source}")]
    Store {
        /// The relay.
        relay: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// Publishing to the bus failed (and kept failing).
    #[error("relay {relay:?}: publishing failed: {source}")]
    Bus {
        /// The relay.
        relay: String,
        /// The bus's error.
        #[source]
        source: BusError,
    },
}

/// What one [`Relay::catch_up`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayProgress {
    /// Events read from the log.
    pub events: u64,
    /// Messages published (events the topic map sends nowhere are not published).
    pub published: u64,
    /// The checkpoint now: every event at or below it is handled.
    pub checkpoint: Position,
}

/// The outbox relay from an event store `S` to a bus `T`.
pub struct Relay<S, T> {
    name: String,
    store: S,
    target: T,
    topics: TopicMap,
    batch: usize,
    retry: RetryPolicy,
}

impl<S: EventStore + Clone, T: RelayTarget> Relay<S, T> {
    /// A relay named `name` (its checkpoint's key) from `store` to `target`, routing events
    /// by `topics`.
    pub fn new(name: impl Into<String>, store: S, target: T, topics: TopicMap) -> Self {
        Self {
            name: name.into(),
            store,
            target,
            topics,
            batch: DEFAULT_RELAY_BATCH,
            retry: RetryPolicy {
                max_attempts: 8,
                base: Duration::from_millis(10),
                factor: 2,
                cap: Duration::from_secs(2),
            },
        }
    }

    /// Sets how many events one batch reads and publishes (at least 1).
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Sets how failing reads and publishes are retried before the relay gives up.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The relay's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Publishes every event committed up to the current head, then returns.
    ///
    /// # Errors
    /// [`RelayError`] when reads or publishes keep failing; the checkpoint covers what was
    /// published.
    pub async fn catch_up(&self) -> Result<RelayProgress, RelayError> {
        let head = self.with_retry_store(|| self.store.head_position()).await?;
        let mut progress = RelayProgress {
            checkpoint: self.checkpoint().await?,
            ..RelayProgress::default()
        };
        let all = EventFilter::all();
        let all = &all;
        // A batch is read and its messages built while the previous one is published: neither
        // depends on the publish, and the checkpoint still moves batch by batch, in order.
        let read = |from: Position| async move {
            let events = self
                .with_retry_store(move || self.store.read_all(from, all, self.batch))
                .await?;
            let messages = self.messages(&events);
            Ok::<_, RelayError>((events, messages))
        };
        let (mut events, mut messages) = if progress.checkpoint < head {
            read(progress.checkpoint + 1).await?
        } else {
            (Vec::new(), Vec::new())
        };
        while let Some(last) = events.last().map(|event| event.position) {
            let following = async {
                if last < head {
                    read(last + 1).await
                } else {
                    Ok((Vec::new(), Vec::new()))
                }
            };
            let (published, following) =
                tokio::join!(self.publish(&events, messages, last), following);
            progress.published += published?;
            progress.events += events.len() as u64;
            progress.checkpoint = last;
            (events, messages) = following?;
        }
        Ok(progress)
    }

    /// Follows the log live, publishing each batch as it commits, until `shutdown` resolves
    /// (a batch in progress is finished first). A transient bus error (a broker restarting)
    /// never stops it: the batch is retried with backoff, each failure logged, until the
    /// broker takes it or the shutdown comes; the checkpoint does not move meanwhile.
    ///
    /// # Errors
    /// [`RelayError`] when reads keep failing or a publish fails permanently.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), RelayError> {
        let mut shutdown = std::pin::pin!(shutdown);
        let start = self.checkpoint().await?;
        let mut subscription = Subscription::new(self.store.clone(), start + 1, EventFilter::all())
            .with_page_size(self.batch);
        let mut failures = 0;
        loop {
            let batch = tokio::select! {
                () = &mut shutdown => return Ok(()),
                batch = subscription.next_batch() => batch,
            };
            let events = match batch {
                Ok(events) => events,
                Err(error) => {
                    failures += 1;
                    if self.retry.max_attempts <= failures {
                        return Err(self.store_error(error));
                    }
                    tracing::warn!(relay = %self.name, %error, "relay read failed; retrying");
                    tokio::time::sleep(self.retry.delay(failures)).await;
                    continue;
                }
            };
            failures = 0;
            if let Some(last) = events.last().map(|event| event.position)
                && !self.publish_live(&events, last, &mut shutdown).await?
            {
                return Ok(());
            }
        }
    }

    /// [`Self::publish`] retried for as long as the bus fails transiently; false when the
    /// shutdown came first (the batch unpublished, the checkpoint where it was).
    async fn publish_live<F: Future<Output = ()>>(
        &self,
        events: &[RecordedEvent],
        through: Position,
        shutdown: &mut std::pin::Pin<&mut F>,
    ) -> Result<bool, RelayError> {
        loop {
            match self.publish(events, self.messages(events), through).await {
                Ok(_) => return Ok(true),
                Err(RelayError::Bus { source, .. }) if source.is_transient() => {
                    tracing::warn!(
                        relay = %self.name,
                        error = %source,
                        "relay publish still failing after {} attempts; retrying",
                        self.retry.max_attempts
                    );
                    tokio::select! {
                        () = shutdown.as_mut() => return Ok(false),
                        () = tokio::time::sleep(self.retry.bound(self.retry.max_attempts)) => {}
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The stored checkpoint.
    async fn checkpoint(&self) -> Result<Position, RelayError> {
        self.with_retry_bus(|| self.target.relay_checkpoint(&self.name))
            .await
    }

    /// The messages of the mapped events of `events`, with their positions and topics.
    fn messages(&self, events: &[RecordedEvent]) -> Vec<(Position, Topic, OutgoingMessage)> {
        events
            .iter()
            .filter_map(|event| {
                let topic = self.topics.topic_for(event)?;
                Some((event.position, topic.clone(), event_message(event)))
            })
            .collect()
    }

    /// Publishes `messages` (those of `events`) and moves the checkpoint to `through`,
    /// retrying transient failures by the relay's policy. The first attempt sends the
    /// messages built ahead; a retry builds them again from `events` instead of every
    /// attempt cloning them.
    async fn publish(
        &self,
        events: &[RecordedEvent],
        messages: Vec<(Position, Topic, OutgoingMessage)>,
        through: Position,
    ) -> Result<u64, RelayError> {
        let published = messages.len() as u64;
        let mut first = Some(messages);
        let mut attempt = 1;
        loop {
            let batch = first.take().unwrap_or_else(|| self.messages(events));
            match self.target.relay_publish(&self.name, batch, through).await {
                Ok(()) => return Ok(published),
                Err(error) if error.is_transient() && attempt < self.retry.max_attempts => {
                    tracing::warn!(relay = %self.name, %error, "relay publish failed; retrying");
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                    attempt += 1;
                }
                Err(source) => {
                    return Err(RelayError::Bus {
                        relay: self.name.clone(),
                        source,
                    });
                }
            }
        }
    }

    fn store_error(&self, source: StoreError) -> RelayError {
        RelayError::Store {
            relay: self.name.clone(),
            source,
        }
    }

    async fn with_retry_store<V, F: Future<Output = Result<V, StoreError>>>(
        &self,
        call: impl Fn() -> F,
    ) -> Result<V, RelayError> {
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(error) if attempt < self.retry.max_attempts => {
                    tracing::warn!(relay = %self.name, %error, "relay read failed; retrying");
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                    attempt += 1;
                }
                Err(error) => return Err(self.store_error(error)),
            }
        }
    }

    async fn with_retry_bus<V, F: Future<Output = Result<V, BusError>>>(
        &self,
        call: impl Fn() -> F,
    ) -> Result<V, RelayError> {
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(error) if error.is_transient() && attempt < self.retry.max_attempts => {
                    tracing::warn!(relay = %self.name, %error, "relay publish failed; retrying");
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                    attempt += 1;
                }
                Err(source) => {
                    return Err(RelayError::Bus {
                        relay: self.name.clone(),
                        source,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
