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
    /// `checkpoint` to the given position in the same step when one is given (then
    /// `positions` holds each message's log position, and messages at or below the stored
    /// checkpoint are skipped inside the script).
    async fn publish_batch(
        &self,
        topic: &Topic,
        messages: &[OutgoingMessage],
        positions: Option<&[Position]>,
        checkpoint: Option<(&str, Position)>,
    ) -> Result<Vec<Published>, BusError> {
        let stream = self.stream_key(topic.as_str());
        let script = &self.shared.scripts.publish;
        let (checkpoint_key, through) = checkpoint.unwrap_or_default();
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash())
            .arg(0)
            .arg(&stream)
            .arg(format!("{stream}:seq"))
            .arg(format!("{stream}:dedup:"))
            .arg(dedup_window_millis(self.shared.options.dedup_window))
            .arg(checkpoint_key)
            .arg(through)
            .arg(self.meta_key("topics"))
            .arg(topic.as_str())
            .arg(now_micros());
        let mut id = uuid::Uuid::encode_buffer();
        let mut headers = String::new();
        let mut tag = String::new();
        for (index, message) in messages.iter().enumerate() {
            headers.clear();
            encode_headers(&message.headers, &mut headers);
            tag.clear();
            match message.key.as_deref() {
                Some(key) => {
                    tag.push('+');
                    tag.push_str(key);
                }
                None => tag.push('-'),
            }
            let position = positions
                .and_then(|positions| positions.get(index))
                .copied()
                .unwrap_or(0);
            cmd.arg(&*message.id.hyphenated().encode_lower(&mut id))
                .arg(tag.as_str())
                .arg(message.payload.as_slice())
                .arg(headers.as_str())
                .arg(position);
        }
        let mut conn = self.conn();
        let answer: Result<Vec<u64>, redis::RedisError> = cmd.query_async(&mut conn).await;
        let answer = match answer {
            Err(error)
                if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                let _: String = script
                    .load_async(&mut conn)
                    .await
                    .map_err(failed("publishing"))?;
                cmd.query_async(&mut conn).await
            }
            other => other,
        }
        .map_err(failed("publishing"))?;
        decode_published(&answer, messages.len())
    }
}

/// The de-duplication window in milliseconds as the publish script uses it: at least 1 ms,
/// at most about 34 years (so slot arithmetic stays exact in Lua's doubles).
fn dedup_window_millis(window: Duration) -> u64 {
    millis(window).clamp(1, 1 << 40)
}

/// The headers as a JSON object, as `serde_json` writes a `BTreeMap<String, String>`.
pub(crate) fn encode_headers(
    headers: &std::collections::BTreeMap<String, String>,
    out: &mut String,
) {
    out.push('{');
    for (index, (name, value)) in headers.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        json_string(name, out);
        out.push(':');
        json_string(value, out);
    }
    out.push('}');
}

fn json_string(text: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Decodes the publish script's answer `{base, i1, seq1, ...}` for `count` messages.
pub(crate) fn decode_published(answer: &[u64], count: usize) -> Result<Vec<Published>, BusError> {
    let Some((&base, duplicates)) = answer.split_first() else {
        return Err(corrupt(
            "publishing",
            "the publish script answered nothing".to_owned(),
        ));
    };
    let mut published: Vec<Published> = (1..=count as u64)
        .map(|n| Published {
            sequence: base + n,
            duplicate: false,
        })
        .collect();
    for pair in duplicates.chunks(2) {
        let [index, sequence] = *pair else {
            return Err(corrupt(
                "publishing",
                format!("odd publish answer {answer:?}"),
            ));
        };
        let slot = usize::try_from(index)
            .ok()
            .and_then(|index| index.checked_sub(1))
            .and_then(|index| published.get_mut(index));
        let Some(slot) = slot else {
            return Err(corrupt(
                "publishing",
                format!("publish answer names message {index} of {count}"),
            ));
        };
        *slot = Published {
            sequence,
            duplicate: true,
        };
    }
    Ok(published)
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
        self.publish_batch(topic, &messages, None, None).await
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

    /// Publishes the batch topic by topic, in order, one script call per topic; the last
    /// topic's script also moves the checkpoint, so a batch of one topic (the usual case) is
    /// relayed in one round trip, exactly once. After a failure part-way, the retry
    /// re-publishes with the same ids and de-duplication drops the copies. Each script skips
    /// the events at or below the checkpoint it finds stored.
    async fn relay_publish(
        &self,
        name: &str,
        batch: Vec<(Position, Topic, OutgoingMessage)>,
        through: Position,
    ) -> Result<(), BusError> {
        let checkpoint_key = self.meta_key(&format!("relay:{name}"));
        let mut runs: Vec<(Topic, Vec<Position>, Vec<OutgoingMessage>)> = Vec::new();
        for (position, topic, message) in batch {
            match runs.last_mut() {
                Some((last, positions, messages)) if *last == topic => {
                    positions.push(position);
                    messages.push(message);
                }
                _ => runs.push((topic, vec![position], vec![message])),
            }
        }
        let last = runs.len();
        for (index, (topic, positions, messages)) in runs.iter().enumerate() {
            // Earlier topics' scripts only skip what the checkpoint covers; the last moves it.
            let moves = if index + 1 == last { through } else { 0 };
            self.publish_batch(
                topic,
                messages,
                Some(positions),
                Some((checkpoint_key.as_str(), moves)),
            )
            .await?;
        }
        if last == 0 {
            let done = self.relay_checkpoint(name).await?;
            if through > done {
                let _: () = self
                    .conn()
                    .set(&checkpoint_key, through)
                    .await
                    .map_err(failed("saving a relay checkpoint"))?;
            }
        }
        Ok(())
    }
}
