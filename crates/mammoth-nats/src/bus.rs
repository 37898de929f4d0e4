//! [`NatsBus`]: connecting, the streams and buckets a bus needs, publishing with a window of
//! acknowledgements in flight, subscribing (durable pull consumers) and statistics.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use mammoth_core::bus::{
    BusError, ConsumerGroup, DeadLetter, DeadLetterFilter, MessageBus, OutgoingMessage, Published,
    StartFrom, SubscribeOptions, Topic, TopicStats,
};

use crate::bucket::Bucket;
use crate::consumer::NatsConsumer;
use crate::names::{self, HEADER_ID, HEADER_KEY, Names, RESERVED_PREFIXES};
use crate::order::Gate;

/// How a [`NatsBus`] names and keeps its streams.
#[derive(Clone)]
pub struct NatsBusOptions {
    /// The JetStream stream holding every topic (default `"MAMMOTH"`); the dead-letter stream
    /// is `{stream}_DLQ` (see `dead_letter`) and the key-value buckets `{stream}_RELAY` and
    /// `{stream}_FAILURES`.
    pub stream: String,
    /// The first subject token; topic `T` is subject `{subject_prefix}.T` (default `"mammoth"`).
    pub subject_prefix: String,
    /// The text of a NATS credentials (`.creds`) file, when the server wants one.
    pub credentials: Option<String>,
    /// How long a message id is remembered for de-duplication (default 2 minutes).
    pub duplicate_window: Duration,
    /// Publishes awaiting their acknowledgement at once (default 256).
    pub publish_window: usize,
    /// The dead-letter destination (`[message_bus.dead_letter] destination`, default
    /// `"dead_letter"`, which keeps the dead-letter stream `{stream}_DLQ` over
    /// `{subject_prefix}_dlq.>`). Any other name `D` (ASCII letters, digits, `_`, `-`) puts
    /// the dead letters in stream `{stream}_DLQ_D` over `{subject_prefix}_dlq_D.>`; letters
    /// already in another destination's stream stay there.
    pub dead_letter: String,
}

/// Shows everything but the credentials' text.
impl std::fmt::Debug for NatsBusOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBusOptions")
            .field("stream", &self.stream)
            .field("subject_prefix", &self.subject_prefix)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "[secret]"),
            )
            .field("duplicate_window", &self.duplicate_window)
            .field("publish_window", &self.publish_window)
            .field("dead_letter", &self.dead_letter)
            .finish()
    }
}

impl Default for NatsBusOptions {
    fn default() -> Self {
        Self {
            stream: "MAMMOTH".to_owned(),
            subject_prefix: "mammoth".to_owned(),
            credentials: None,
            duplicate_window: Duration::from_secs(120),
            publish_window: 256,
            dead_letter: names::DEFAULT_DEAD_LETTER.to_owned(),
        }
    }
}

/// The deliveries a bus has handed out and not yet seen completed: `(consumer, stream
/// sequence)` → the latest delivery count. A nack or extend of an older delivery is stale.
pub(crate) type Leases = Arc<Mutex<HashMap<(String, u64), u32>>>;

/// What the bus's parts share.
pub(crate) struct Shared {
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) names: Names,
    pub(crate) messages: stream::Stream,
    pub(crate) dead: stream::Stream,
    pub(crate) relay: Bucket,
    /// The relay checkpoints this bus last read or saved, by relay name, so a relay's
    /// publish does not read its checkpoint back from the bucket every batch.
    pub(crate) relay_checkpoints: Mutex<HashMap<String, u64>>,
    pub(crate) failures: Bucket,
    pub(crate) leases: Leases,
    pub(crate) gates: Mutex<HashMap<String, Gate>>,
    pub(crate) publish_window: usize,
    pub(crate) options: NatsBusOptions,
}

/// A message bus on NATS JetStream. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct NatsBus {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("stream", &self.shared.names.stream)
            .field("subject_prefix", &self.shared.names.prefix)
            .finish_non_exhaustive()
    }
}

/// A backend error of this driver.
pub(crate) fn failed(
    action: &'static str,
    transient: bool,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> BusError {
    move |source| BusError::backend("nats", action, source, transient)
}

/// Maps any error into a transient backend error (a broker that may come back).
pub(crate) fn nats<E: std::error::Error + Send + Sync + 'static>(
    action: &'static str,
) -> impl FnOnce(E) -> BusError {
    move |error| failed(action, true)(Box::new(error))
}

impl NatsBus {
    /// Connects to the server at `url` (such as `nats://127.0.0.1:4222`) and creates the
    /// streams and buckets the bus needs, or opens them when they exist.
    ///
    /// # Errors
    /// [`BusError::InvalidInput`] for a bad stream name or subject prefix or unreadable
    /// credentials; [`BusError::Backend`] when the server cannot be reached or has no
    /// JetStream (start it with `nats-server -js`).
    pub async fn connect(url: &str, options: NatsBusOptions) -> Result<Self, BusError> {
        let names = Names::new(
            &options.stream,
            &options.subject_prefix,
            &options.dead_letter,
        )?;
        let mut connect = async_nats::ConnectOptions::new()
            .name("mammoth")
            .connection_timeout(Duration::from_secs(5));
        if let Some(credentials) = &options.credentials {
            connect = connect.credentials(credentials).map_err(|error| {
                BusError::InvalidInput(format!(
                    "NATS credentials: {error}; give the text of a .creds file"
                ))
            })?;
        }
        // The first connection fails fast when no server answers; once connected, the client
        // reconnects by itself after a broker restart.
        let client = tokio::time::timeout(Duration::from_secs(10), connect.connect(url))
            .await
            .map_err(nats("connecting (is nats-server running?)"))?
            .map_err(nats("connecting (is nats-server running?)"))?;
        let js = jetstream::new(client.clone());
        let messages = js
            .get_or_create_stream(stream::Config {
                name: names.stream.clone(),
                subjects: vec![format!("{}.>", names.prefix)],
                storage: stream::StorageType::File,
                duplicate_window: options.duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(nats(
                "creating the message stream (is JetStream on: nats-server -js?)",
            ))?;
        let dead = js
            .get_or_create_stream(stream::Config {
                name: names.dead_stream.clone(),
                subjects: vec![format!("{}.>", names.dead_prefix)],
                storage: stream::StorageType::File,
                duplicate_window: options.duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(nats("creating the dead-letter stream"))?;
        let relay = Bucket::open(&js, &names.relay_bucket, &names.relay_subject).await?;
        let failures = Bucket::open(&js, &names.failure_bucket, &names.failure_subject).await?;
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                js,
                names,
                messages,
                dead,
                relay,
                relay_checkpoints: Mutex::default(),
                failures,
                leases: Arc::default(),
                gates: Mutex::default(),
                publish_window: options.publish_window.max(1),
                options,
            }),
        })
    }

    /// Deletes this bus's streams and buckets from the server, with every message, dead
    /// letter and checkpoint in them (tests and benchmarks clean up with it).
    ///
    /// # Errors
    /// [`BusError::Backend`].
    pub async fn destroy(self) -> Result<(), BusError> {
        let names = &self.shared.names;
        for stream in [
            names.stream.clone(),
            names.dead_stream.clone(),
            names.relay_bucket.clone(),
            names.failure_bucket.clone(),
        ] {
            self.shared
                .js
                .delete_stream(&stream)
                .await
                .map_err(nats("deleting a stream"))?;
        }
        Ok(())
    }

    /// The options the bus was opened with (reconnecting with them opens the same data).
    pub fn options(&self) -> &NatsBusOptions {
        &self.shared.options
    }

    /// The underlying client (for flushing or measuring).
    pub fn client(&self) -> &async_nats::Client {
        &self.shared.client
    }

    /// Publishes `(subject, message)` pairs in order with up to `publish_window`
    /// acknowledgements awaited at once.
    pub(crate) async fn publish_subjects(
        &self,
        batch: Vec<(String, OutgoingMessage, Option<String>)>,
    ) -> Result<Vec<Published>, BusError> {
        let mut waiting = VecDeque::new();
        let mut published = Vec::with_capacity(batch.len());
        for (subject, message, msg_id) in batch {
            let headers = headers_of(&message, msg_id)?;
            let ack = self
                .shared
                .js
                .publish_with_headers(subject, headers, message.payload.into())
                .await
                .map_err(nats("publishing"))?;
            waiting.push_back(ack);
            if waiting.len() >= self.shared.publish_window
                && let Some(ack) = waiting.pop_front()
            {
                published.push(acked(ack.await)?);
            }
        }
        while let Some(ack) = waiting.pop_front() {
            published.push(acked(ack.await)?);
        }
        Ok(published)
    }
}

fn acked(
    ack: Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
) -> Result<Published, BusError> {
    let ack = ack.map_err(nats("waiting for a publish acknowledgement"))?;
    Ok(Published {
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    })
}

/// The NATS headers of `message`: its own headers, its id and key, and `Nats-Msg-Id` (the
/// message id unless `msg_id` overrides it, as a replay does).
pub(crate) fn headers_of(
    message: &OutgoingMessage,
    msg_id: Option<String>,
) -> Result<HeaderMap, BusError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &message.headers {
        let bad_name = name.is_empty()
            || name.contains([':', ' ', '\r', '\n'])
            || RESERVED_PREFIXES.iter().any(|p| name.starts_with(p));
        if bad_name || value.contains(['\r', '\n']) {
            return Err(BusError::InvalidInput(format!(
                "header {name:?}: NATS headers need a name without ':', spaces or line breaks (and not starting with \"Nats-\" or \"Mammoth-Bus-\") and a one-line value"
            )));
        }
        headers.insert(name.as_str(), value.as_str());
    }
    let id = message.id.to_string();
    headers.insert(HEADER_ID, id.as_str());
    if let Some(key) = &message.key {
        if key.contains(['\r', '\n']) {
            return Err(BusError::InvalidInput(format!(
                "message key {key:?}: a NATS header value must be one line"
            )));
        }
        headers.insert(HEADER_KEY, key.as_str());
    }
    headers.insert("Nats-Msg-Id", msg_id.unwrap_or(id));
    Ok(headers)
}

/// The message's own headers (without the broker's and this driver's).
pub(crate) fn user_headers(headers: Option<&HeaderMap>) -> BTreeMap<String, String> {
    let Some(headers) = headers else {
        return BTreeMap::new();
    };
    headers
        .iter()
        .filter(|(name, _)| {
            !RESERVED_PREFIXES
                .iter()
                .any(|p| AsRef::<str>::as_ref(name).starts_with(p))
        })
        .filter_map(|(name, values)| {
            let value = values.first()?;
            Some((name.to_string(), value.as_str().to_owned()))
        })
        .collect()
}

impl MessageBus for NatsBus {
    type Consumer = NatsConsumer;

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
        let subject = self.shared.names.subject(topic);
        let batch = messages
            .into_iter()
            .map(|message| (subject.clone(), message, None))
            .collect();
        self.publish_subjects(batch).await
    }

    async fn subscribe(
        &self,
        topic: &Topic,
        group: &ConsumerGroup,
        options: SubscribeOptions,
    ) -> Result<NatsConsumer, BusError> {
        let name = names::consumer_name(topic, group);
        let max_attempts = options.retry.max_attempts.max(1);
        let config = consumer::pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: self.shared.names.subject(topic),
            deliver_policy: match options.start {
                StartFrom::Earliest => consumer::DeliverPolicy::All,
                StartFrom::Latest => consumer::DeliverPolicy::New,
            },
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: options.visibility_timeout,
            // The policy's limit is enforced by this driver, which dead-letters a delivery
            // past it (JetStream would stop redelivering silently); MaxDeliver is a backstop
            // a few deliveries above it.
            max_deliver: i64::from(max_attempts) + 3,
            max_ack_pending: 20_000,
            ..Default::default()
        };
        let consumer: consumer::PullConsumer = self
            .shared
            .messages
            .get_or_create_consumer(&name, config)
            .await
            .map_err(nats("creating the group's consumer"))?;
        Ok(NatsConsumer::new(
            self.clone(),
            consumer,
            name,
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
                "list at least one dead letter (limit 0)".to_owned(),
            ));
        }
        self.scan_dead_letters(filter, limit).await
    }

    async fn replay_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, BusError> {
        let letters = self.scan_dead_letters(filter, usize::MAX).await?;
        let mut replayed = 0;
        for letter in letters {
            self.replay_one(letter).await?;
            replayed += 1;
        }
        Ok(replayed)
    }

    async fn discard_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, BusError> {
        let letters = self.scan_dead_letters(filter, usize::MAX).await?;
        let mut discarded = 0;
        for letter in letters {
            if self.delete_dead_letter(&letter.id).await? {
                discarded += 1;
            }
        }
        Ok(discarded)
    }

    async fn stats(&self) -> Result<Vec<TopicStats>, BusError> {
        self.collect_stats().await
    }
}
