//! The values that cross the [`MessageBus`](super::MessageBus) seam: names, messages,
//! deliveries, failures, dead letters and statistics.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{BusError, RetryPolicy};

/// The longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 128;
/// The longest consumer group name, in bytes.
pub const MAX_GROUP_LEN: usize = 64;

/// A topic: where messages are published and what consumer groups subscribe to.
///
/// 1 to 128 bytes of ASCII letters, digits, `_`, `-` and `.`, not starting or ending with `.`
/// and without `..`: the subset every broker accepts unchanged (a NATS subject of dot-separated
/// tokens, a Redis key).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Topic(String);

impl Topic {
    /// A checked topic name.
    ///
    /// # Errors
    /// [`BusError::InvalidName`] naming what is wrong.
    pub fn new(name: impl Into<String>) -> Result<Self, BusError> {
        let name = name.into();
        let reason = if name.is_empty() || name.len() > MAX_TOPIC_LEN {
            Some("use 1 to 128 bytes")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            Some("use ASCII letters, digits, '_', '-' and '.' only, such as \"orders.events\"")
        } else if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
            Some("dots separate non-empty parts, such as \"orders.events\"")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(BusError::InvalidName {
                kind: "topic",
                name,
                reason,
            }),
            None => Ok(Self(name)),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A consumer group: the consumers that share one subscription to a topic. Every group gets
/// every message of the topic; within a group each message goes to one consumer at a time.
///
/// 1 to 64 bytes of ASCII letters, digits, `_` and `-` (a JetStream durable consumer name).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConsumerGroup(String);

impl ConsumerGroup {
    /// A checked group name.
    ///
    /// # Errors
    /// [`BusError::InvalidName`] naming what is wrong.
    pub fn new(name: impl Into<String>) -> Result<Self, BusError> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= MAX_GROUP_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if valid {
            Ok(Self(name))
        } else {
            Err(BusError::InvalidName {
                kind: "consumer group",
                name,
                reason: "use 1 to 64 bytes of ASCII letters, digits, '_' and '-', such as \"billing\"",
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! name_conversions {
    ($($name:ident),*) => {$(
        impl TryFrom<String> for $name {
            type Error = BusError;
            fn try_from(value: String) -> Result<Self, BusError> {
                Self::new(value)
            }
        }
        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
name_conversions!(Topic, ConsumerGroup);

/// A message to publish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    /// The message id. Publishing an id again to the same topic within the bus's
    /// de-duplication window stores nothing (the outbox relay uses the event id).
    pub id: Uuid,
    /// The ordering key (the outbox relay uses the stream id): consumers that ask for ordered
    /// delivery get the messages of one key one at a time, in publish order.
    pub key: Option<String>,
    /// The body.
    pub payload: Vec<u8>,
    /// Small text headers (event type, stream, position, trace context, ...).
    pub headers: BTreeMap<String, String>,
}

impl OutgoingMessage {
    /// A message with a fresh UUID v7 id, no key and no headers.
    pub fn new(payload: impl Into<Vec<u8>>) -> Self {
        Self::with_id(Uuid::now_v7(), payload)
    }

    /// A message with the given id, no key and no headers.
    pub fn with_id(id: Uuid, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            id,
            key: None,
            payload: payload.into(),
            headers: BTreeMap::new(),
        }
    }

    /// Sets the ordering key.
    pub fn keyed(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// A stored message, as consumers and the dead-letter queue see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Where it was published.
    pub topic: Topic,
    /// Its id (given by the publisher).
    pub id: Uuid,
    /// Its ordering key.
    pub key: Option<String>,
    /// Its body.
    pub payload: Vec<u8>,
    /// Its headers.
    pub headers: BTreeMap<String, String>,
    /// The bus's sequence number for it within the topic (JetStream stream sequence, Redis
    /// entry id order, the embedded bus's row id).
    pub sequence: u64,
    /// When it was published, in microseconds since the Unix epoch.
    pub published_at_micros: i64,
}

impl Message {
    /// The payload as UTF-8 text, with invalid bytes replaced.
    pub fn payload_text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// The driver's handle on one delivery: what `ack`, `nack` and `extend` need to find it
/// (a JetStream reply subject, a Redis entry id, a row and lease). Opaque to callers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Receipt(String);

impl Receipt {
    /// A receipt holding the driver's text.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The driver's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One delivery of a message to one consumer of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The message.
    pub message: Message,
    /// The group it was delivered to.
    pub group: ConsumerGroup,
    /// Which delivery this is for the group: 1 the first time, 2 for the first retry, ...
    /// (JetStream `num_delivered`, the Redis pending entry's delivery count).
    pub attempt: u32,
    /// The driver's handle for `ack`, `nack` and `extend`.
    pub receipt: Receipt,
}

/// What the bus did with one published message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The message's sequence number in its topic (for a duplicate: the first copy's, when the
    /// bus knows it, else 0).
    pub sequence: u64,
    /// True when the id was already published to the topic within the de-duplication window,
    /// so nothing was stored.
    pub duplicate: bool,
}

/// Where a new consumer group starts reading its topic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartFrom {
    /// At the oldest message the topic still holds (JetStream `DeliverAll`, Redis `0`).
    #[default]
    Earliest,
    /// After the newest message: only messages published from now on (JetStream `DeliverNew`,
    /// Redis `$`).
    Latest,
}

/// How a consumer group consumes. All consumers of one group should use the same options.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscribeOptions {
    /// Where the group starts if it does not exist yet; an existing group keeps its place.
    pub start: StartFrom,
    /// Deliver the messages of one key one at a time, in publish order: a message is held back
    /// while an earlier one of its key is in flight or waiting for a retry.
    pub ordered_by_key: bool,
    /// How long a delivery stays invisible to the group's other consumers before it is
    /// delivered again (JetStream `AckWait`, Redis `XAUTOCLAIM` min-idle-time). A consumer
    /// that dies mid-handler loses its deliveries to others after this long.
    pub visibility_timeout: Duration,
    /// Retries and dead-lettering of failed deliveries.
    pub retry: RetryPolicy,
}

impl Default for SubscribeOptions {
    /// From the earliest message, unordered, 30 s visibility, the default retry policy.
    fn default() -> Self {
        Self {
            start: StartFrom::Earliest,
            ordered_by_key: false,
            visibility_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// What to do with a delivery whose handler failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NackAction {
    /// Retry after the policy's backoff for this attempt, or dead-letter it when this was the
    /// last attempt.
    Retry,
    /// Retry after this delay (still dead-lettered when this was the last attempt).
    RetryAfter(Duration),
    /// Dead-letter it now: it cannot succeed (a poison message).
    DeadLetter,
}

/// Why a delivery failed and what to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The handler's error, kept with the message (and in the dead-letter queue).
    pub error: String,
    /// Retry or dead-letter.
    pub action: NackAction,
}

impl Failure {
    /// A failure retried by the policy.
    pub fn retry(error: impl std::fmt::Display) -> Self {
        Self {
            error: error.to_string(),
            action: NackAction::Retry,
        }
    }
}

/// What `nack` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NackOutcome {
    /// The message will be delivered again, as attempt `next_attempt`, after `delay`.
    Retrying {
        /// The attempt number of the next delivery.
        next_attempt: u32,
        /// How long until then.
        delay: Duration,
    },
    /// The message is in the dead-letter queue under this id.
    DeadLettered {
        /// The dead letter's id.
        id: String,
    },
    /// The delivery was no longer this consumer's (its visibility timeout expired and the
    /// message was delivered again, or it was acknowledged): nothing changed.
    Stale,
}

/// A message that failed every attempt (or was dead-lettered by its handler) in one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its id in the dead-letter queue.
    pub id: String,
    /// The message, whole.
    pub message: Message,
    /// The group whose handler failed it.
    pub group: ConsumerGroup,
    /// Deliveries made before it was dead-lettered.
    pub attempts: u32,
    /// The last error.
    pub last_error: String,
    /// The first failure, in microseconds since the Unix epoch.
    pub first_failed_at_micros: i64,
    /// The last failure, in microseconds since the Unix epoch.
    pub last_failed_at_micros: i64,
}

/// Which dead letters an operation applies to: those matching every given field (none given:
/// all of them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    /// Exactly this dead letter.
    pub id: Option<String>,
    /// Dead letters of this topic.
    pub topic: Option<Topic>,
    /// Dead letters of this group.
    pub group: Option<ConsumerGroup>,
    /// Dead letters whose last error contains this text.
    pub error_contains: Option<String>,
}

impl DeadLetterFilter {
    /// Every dead letter.
    pub fn all() -> Self {
        Self::default()
    }

    /// One dead letter.
    pub fn id(id: impl Into<String>) -> Self {
        Self {
            id: Some(id.into()),
            ..Self::default()
        }
    }

    /// True when `letter` passes the filter.
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        self.id.as_ref().is_none_or(|id| *id == letter.id)
            && self
                .topic
                .as_ref()
                .is_none_or(|topic| *topic == letter.message.topic)
            && self
                .group
                .as_ref()
                .is_none_or(|group| *group == letter.group)
            && self
                .error_contains
                .as_ref()
                .is_none_or(|text| letter.last_error.contains(text.as_str()))
    }
}

/// The state of one topic for one consumer group (or for no group, when none subscribes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicStats {
    /// The topic.
    pub topic: String,
    /// The group, `None` for a topic nobody subscribes to.
    pub group: Option<String>,
    /// Messages the topic holds.
    pub messages: u64,
    /// Messages waiting for the group: not yet delivered, or due for redelivery.
    pub depth: u64,
    /// Messages delivered and neither acknowledged nor failed yet.
    pub in_flight: u64,
    /// Messages that failed and wait for a retry.
    pub retrying: u64,
    /// Messages in the dead-letter queue.
    pub dead_letters: u64,
}
