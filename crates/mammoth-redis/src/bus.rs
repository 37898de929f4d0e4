//! [`RedisBus`]: the bus handle (one multiplexed, self-reconnecting connection), publishing,
//! group creation and the outbox relay's target.

use std::sync::Arc;
use std::time::Duration;

use mammoth_core::Position;
use mammoth_core::bus::{
    BusError, ConsumerGroup, DeadLetter, DeadLetterFilter, MessageBus, OutgoingMessage, Published,
    RelayTarget, StartFrom, SubscribeOptions, Topic, TopicStats,
};
use mammoth_core::now_micros;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::consume::RedisConsumer;
use crate::dead;
use crate::scripts::Scripts;

/// How to connect a [`RedisBus`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisBusOptions {
    /// Prepended to every key the bus uses; a topic's stream is `{key_prefix}{topic}`
    /// (default `"queue:"`, the seed's `queue:{topic}`). Buses with different prefixes on one
    /// server never see each other's messages.
    pub key_prefix: String,
    /// How long a message id is remembered per topic: a publish of the same id within it
    /// stores nothing (default 2 minutes, as the embedded bus and JetStream).
    pub dedup_window: Duration,
    /// How often a waiting `receive` asks Redis again when nothing was due (default 10 ms).
    pub poll_interval: Duration,
    /// The name of the dead-letter stream, stored as `{key_prefix}@{dead_letter}` (default
    /// `"dead_letter"`, `[message_bus.dead_letter] destination`).
    pub dead_letter: String,
}

impl Default for RedisBusOptions {
    fn default() -> Self {
        Self {
            key_prefix: "queue:".to_owned(),
            dedup_window: Duration::from_secs(120),
            poll_interval: Duration::from_millis(10),
            dead_letter: "dead_letter".to_owned(),
        }
    }
}

pub(crate) struct Shared {
    pub(crate) conn: ConnectionManager,
    pub(crate) options: RedisBusOptions,
    pub(crate) scripts: Scripts,
}

/// The message bus on Redis Streams. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct RedisBus {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("key_prefix", &self.shared.options.key_prefix)
            .finish_non_exhaustive()
    }
}

/// A closure turning a Redis error into a [`BusError`] for `action`; connection failures are
/// transient (the connection reconnects by itself).
pub(crate) fn failed(action: &'static str) -> impl Fn(redis::RedisError) -> BusError {
    move |error| {
        let transient = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_timeout()
            || matches!(
                error.kind(),
                redis::ErrorKind::Server(
                    redis::ServerErrorKind::TryAgain
                        | redis::ServerErrorKind::BusyLoading
                        | redis::ServerErrorKind::ReadOnly
                )
            );
        BusError::backend("redis", action, error, transient)
    }
}

/// A decoding failure of something the bus stored.
pub(crate) fn corrupt(action: &'static str, what: String) -> BusError {
    BusError::backend("redis", action, what, false)
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The key tag of an ordering key in script arguments: `-` for none, `+key` for a key.
pub(crate) fn key_tag(key: Option<&str>) -> String {
    key.map_or_else(|| "-".to_owned(), |key| format!("+{key}"))
}

impl RedisBus {
    /// Connects to the Redis server at `url` (`redis://host:port/db`) and checks that it
    /// answers. The connection reconnects by itself after the server restarts; calls made
    /// while it is down fail with a transient [`BusError::Backend`].
    ///
    /// # Errors
    /// [`BusError::InvalidInput`] for a URL Redis cannot use or an empty key prefix;
    /// [`BusError::Backend`] when the server cannot be reached.
    pub async fn connect(url: &str, options: RedisBusOptions) -> Result<Self, BusError> {
        if options.key_prefix.is_empty() {
            return Err(BusError::InvalidInput(
                "the Redis bus needs a key prefix, such as \"queue:\"".to_owned(),
            ));
        }
        let client = redis::Client::open(url).map_err(|error| {
            BusError::InvalidInput(format!(
                "Redis URL {url:?}: {error}; use redis://host:port/db"
            ))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(failed("connecting"))?;
        Ok(Self {
            shared: Arc::new(Shared {
                conn,
                options,
                scripts: Scripts::new(),
            }),
        })
    }

    /// The options the bus was connected with.
    pub fn options(&self) -> &RedisBusOptions {
        &self.shared.options
    }

    pub(crate) fn conn(&self) -> ConnectionManager {
        self.shared.conn.clone()
    }

    /// The stream key of `topic`.
    pub(crate) fn stream_key(&self, topic: &str) -> String {
        format!("{}{topic}", self.shared.options.key_prefix)
    }

    /// A bus-wide key (`{prefix}@{name}`).
    pub(crate) fn meta_key(&self, name: &str) -> String {
        format!("{}@{name}", self.shared.options.key_prefix)
    }

    pub(crate) fn dead_key(&self) -> String {
        self.meta_key(&self.shared.options.dead_letter)
    }

    /// Deletes the entries of `topic`'s stream that every group of the topic has read and
    /// none has pending, as the embedded bus's garbage collection does (`XTRIM MINID`).
    /// Consumers run it every few thousand acks; callers may run it too. A topic nobody
    /// subscribes to keeps everything. Returns how many entries were deleted.
    ///
    /// # Errors
    /// [`BusError::Backend`].
    pub async fn collect_garbage(&self, topic: &Topic) -> Result<u64, BusError> {
        let mut invocation = self.shared.scripts.trim.prepare_invoke();
        invocation
            .arg(self.stream_key(topic.as_str()))
            .arg(self.meta_key(&format!("groups:{topic}")));
        invocation
            .invoke_async(&mut self.conn())
            .await
            .map_err(failed("collecting garbage"))
    }

    /// Publishes `messages` to `topic` in one script call, moving relay checkpoint
    /// `checkpoint` to the given position in the same step when one is given.
    async fn publish_batch(
        &self,
        topic: &Topic,
        messages: &[OutgoingMessage],
        checkpoint: Option<(String, Position)>,
    ) -> Result<Vec<Published>, BusError> {
        let stream = self.stream_key(topic.as_str());
        let mut invocation = self.shared.scripts.publish.prepare_invoke();
        let (checkpoint_key, through) = checkpoint.unwrap_or_default();
        invocation
            .arg(&stream)
            .arg(format!("{stream}:seq"))
            .arg(format!("{stream}:dedup:"))
            .arg(millis(self.shared.options.dedup_window).max(1))
            .arg(checkpoint_key)
            .arg(through)
            .arg(self.meta_key("topics"))
            .arg(topic.as_str());
        let at = now_micros();
        for message in messages {
            let headers = serde_json::to_string(&message.headers).map_err(|error| {
                BusError::backend("redis", "encoding message headers", error, false)
            })?;
            invocation
                .arg(message.id.to_string())
                .arg(key_tag(message.key.as_deref()))
                .arg(message.payload.as_slice())
                .arg(headers)
                .arg(at);
        }
        let results: Vec<(u64, u8)> = invocation
            .invoke_async(&mut self.conn())
            .await
            .map_err(failed("publishing"))?;
        Ok(results
            .into_iter()
            .map(|(sequence, duplicate)| Published {
                sequence,
                duplicate: duplicate == 1,
            })
            .collect())
    }
}

impl MessageBus for RedisBus {
    type Consumer = RedisConsumer;

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
        self.publish_batch(topic, &messages, None).await
    }

    async fn subscribe(
        &self,
        topic: &Topic,
        group: &ConsumerGroup,
        options: SubscribeOptions,
    ) -> Result<RedisConsumer, BusError> {
        let stream = self.stream_key(topic.as_str());
        let retry = format!("{stream}:g:{group}:retry");
        let start = match options.start {
            StartFrom::Earliest => "0",
            StartFrom::Latest => "$",
        };
        let mut pipe = redis::pipe();
        pipe.sadd(self.meta_key("topics"), topic.as_str())
            .ignore()
            .hset(
                self.meta_key(&format!("groups:{topic}")),
                group.as_str(),
                millis(options.visibility_timeout),
            )
            .ignore();
        let mut conn = self.conn();
        let _: () = pipe
            .query_async(&mut conn)
            .await
            .map_err(failed("creating a consumer group"))?;
        for (key, id) in [(&stream, start), (&retry, "0")] {
            let created: Result<(), redis::RedisError> =
                conn.xgroup_create_mkstream(key, group.as_str(), id).await;
            match created {
                Ok(()) => {}
                // An existing group keeps its place.
                Err(error) if error.code() == Some("BUSYGROUP") => {}
                Err(error) => return Err(failed("creating a consumer group")(error)),
            }
        }
        Ok(RedisConsumer::new(
            self.clone(),
            topic.clone(),
            group.clone(),
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
        dead::list(self, filter, limit).await
    }

    async fn replay_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, BusError> {
        dead::replay(self, filter).await
    }

    async fn discard_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, BusError> {
        dead::discard(self, filter).await
    }

    async fn stats(&self) -> Result<Vec<TopicStats>, BusError> {
        dead::stats(self).await
    }
}

impl RelayTarget for RedisBus {
    async fn relay_checkpoint(&self, name: &str) -> Result<Position, BusError> {
        let mut conn = self.conn();
        let stored: Option<u64> = conn
            .get(self.meta_key(&format!("relay:{name}")))
            .await
            .map_err(failed("reading a relay checkpoint"))?;
        Ok(stored.unwrap_or(0))
    }

    /// Publishes the batch topic by topic, in order; the last topic's script also moves the
    /// checkpoint, so a batch of one topic (the usual case) is relayed exactly once. After a
    /// failure part-way, the retry re-publishes with the same ids and de-duplication drops
    /// the copies. Events at or below the stored checkpoint are skipped.
    async fn relay_publish(
        &self,
        name: &str,
        batch: Vec<(Position, Topic, OutgoingMessage)>,
        through: Position,
    ) -> Result<(), BusError> {
        let checkpoint_key = self.meta_key(&format!("relay:{name}"));
        let done = self.relay_checkpoint(name).await?;
        let mut runs: Vec<(Topic, Vec<OutgoingMessage>)> = Vec::new();
        for (position, topic, message) in batch {
            if position <= done {
                continue;
            }
            match runs.last_mut() {
                Some((last, messages)) if *last == topic => messages.push(message),
                _ => runs.push((topic, vec![message])),
            }
        }
        let last = runs.len();
        for (index, (topic, messages)) in runs.iter().enumerate() {
            let checkpoint = (index + 1 == last).then(|| (checkpoint_key.clone(), through));
            self.publish_batch(topic, messages, checkpoint).await?;
        }
        if last == 0 && through > done {
            let _: () = self
                .conn()
                .set(&checkpoint_key, through)
                .await
                .map_err(failed("saving a relay checkpoint"))?;
        }
        Ok(())
    }
}
