//! `[message_bus]`: which bus carries events to handlers, how failed deliveries are retried,
//! and where messages that keep failing go.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The bus backend, chosen by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageBusBackend {
    /// A durable queue inside the event store's database (the default).
    #[default]
    Embedded,
    /// NATS JetStream (also written `"nats"`).
    #[serde(alias = "nats")]
    NatsJetstream,
    /// Redis Streams.
    Redis,
}

/// How the delay between retries grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// `base_delay * multiplier^(attempt-1)`, capped at `max_delay` (the default).
    #[default]
    Exponential,
    /// `base_delay` every time.
    Fixed,
}

/// `[message_bus.retry]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Deliveries before a message is dead-lettered (default 3, at least 1).
    pub max_attempts: u32,
    /// How the delay grows (default exponential).
    pub backoff: Backoff,
    /// The bound of the first retry's delay (default 2s, the seed's).
    #[serde(with = "crate::units::duration")]
    pub base_delay: Duration,
    /// Growth factor for exponential backoff (default 2.0, at least 1.0).
    pub multiplier: f64,
    /// The longest delay (default 5m, not below `base_delay`).
    #[serde(with = "crate::units::duration")]
    pub max_delay: Duration,
    /// Randomise each delay to spread retries (default true).
    pub jitter: bool,
}

/// The defaults are the seed's policy and `mammoth_core::bus::RetryPolicy::default()`: 3
/// attempts, 2 s doubling (2 s, then 4 s), capped at 5 minutes, with full jitter.
impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::Exponential,
            base_delay: Duration::from_secs(2),
            multiplier: 2.0,
            max_delay: Duration::from_secs(300),
            jitter: true,
        }
    }
}

impl RetryConfig {
    /// The delay before retry number `attempt` (1 for the first retry), without jitter.
    pub fn delay_for(&self, attempt: u32) -> Duration {
        let delay = match self.backoff {
            Backoff::Fixed => self.base_delay,
            Backoff::Exponential => {
                let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
                let factor = self.multiplier.powi(exponent);
                let secs = self.base_delay.as_secs_f64() * factor;
                Duration::try_from_secs_f64(secs).unwrap_or(self.max_delay)
            }
        };
        delay.min(self.max_delay)
    }
}

/// `[message_bus.dead_letter]`.
///
/// A message that fails its last attempt always becomes a dead letter (listed, replayed and
/// discarded with `mammoth dlq`): `enabled: false` is rejected when the configuration is
/// loaded, because there is nowhere else for such a message to go and mammoth never drops one
/// silently. To retry longer, raise `[message_bus.retry] max_attempts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    /// Keep messages that exhausted their retries (default true; false is an error, see the
    /// type's documentation).
    pub enabled: bool,
    /// Where they go on a broker bus: a queue, subject or stream name (default
    /// `"dead_letter"`). The embedded bus keeps them in its `bus_dead_letters` table.
    pub destination: String,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            destination: "dead_letter".to_owned(),
        }
    }
}

/// `[message_bus.topics]`: where the outbox relay publishes each committed event. A rule for
/// the event type wins over one for the stream category, which wins over `default`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// The topic of events no rule names (default `"events"`, as in the seed); `""` publishes
    /// only the events a rule names.
    pub default: String,
    /// Stream category → topic, such as `{ order: "orders" }`.
    pub categories: BTreeMap<String, String>,
    /// Event type → topic, such as `{ PaymentFailed: "payments" }`.
    pub types: BTreeMap<String, String>,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            default: "events".to_owned(),
            categories: BTreeMap::new(),
            types: BTreeMap::new(),
        }
    }
}

/// `[message_bus]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessageBusConfig {
    /// The backend (default embedded).
    pub backend: MessageBusBackend,
    /// The broker URL (`nats://…`, `redis://…`); see [`MessageBusConfig::broker_url`].
    pub url: Option<String>,
    /// The broker host, when `url` is not given.
    pub host: Option<String>,
    /// The broker port, when `url` is not given.
    pub port: Option<u16>,
    /// The JetStream stream name.
    pub stream: Option<String>,
    /// Prefix of the subjects events are published on.
    pub subject_prefix: Option<String>,
    /// Prefix of Redis queue keys (default `"queue:"`).
    pub queue_prefix: String,
    /// Broker credentials (a NATS creds file's text, a Redis password).
    pub credentials: Option<Secret<String>>,
    /// Retry policy for failed deliveries.
    pub retry: RetryConfig,
    /// Where messages go after their last failed attempt.
    pub dead_letter: DeadLetterConfig,
    /// Which topic the outbox relay publishes each event to.
    pub topics: TopicsConfig,
}

impl Default for MessageBusConfig {
    fn default() -> Self {
        Self {
            backend: MessageBusBackend::Embedded,
            url: None,
            host: None,
            port: None,
            stream: None,
            subject_prefix: None,
            queue_prefix: "queue:".to_owned(),
            credentials: None,
            retry: RetryConfig::default(),
            dead_letter: DeadLetterConfig::default(),
            topics: TopicsConfig::default(),
        }
    }
}

impl MessageBusConfig {
    /// The broker URL: `url` if given, else built from `host` and `port` with the backend's
    /// defaults (`nats://localhost:4222`, `redis://localhost:6379`); `None` for the embedded bus.
    pub fn broker_url(&self) -> Option<String> {
        let (scheme, default_port) = match self.backend {
            MessageBusBackend::Embedded => return None,
            MessageBusBackend::NatsJetstream => ("nats", 4222),
            MessageBusBackend::Redis => ("redis", 6379),
        };
        if let Some(url) = &self.url {
            return Some(url.clone());
        }
        let host = self.host.as_deref().unwrap_or("localhost");
        let port = self.port.unwrap_or(default_port);
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        Some(format!("{scheme}://{host}:{port}"))
    }
}
