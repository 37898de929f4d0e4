//! [`AnyBus`]: the message bus `[message_bus] backend` names, opened for the bus commands
//! (`mammoth bus stats`, `mammoth dlq ...`): the embedded bus in the SQLite event store's file,
//! NATS JetStream, or Redis Streams. The commands work the same on each; the type is erased
//! once, here, as sqlx's `Any` does. It is also the outbox relay's target ([`RelayTarget`]), so
//! `mammoth demo` runs its saga on whichever bus is configured.

use std::time::Duration;

use mammoth_config::{MessageBusBackend, MessageBusConfig};
use mammoth_core::Position;
use mammoth_core::bus::{
    BusConsumer, BusError, ConsumerGroup, DeadLetter, DeadLetterFilter, Delivery, Failure,
    MessageBus, NackOutcome, OutgoingMessage, Published, RelayTarget, SubscribeOptions, Topic,
    TopicStats,
};
use mammoth_nats::{NatsBus, NatsBusOptions};
use mammoth_redis::{RedisBus, RedisBusOptions};
use mammoth_sqlite::SqliteBus;

use crate::exit::ConfigProblem;
use crate::settings::Settings;

/// The configured message bus.
#[derive(Clone, Debug)]
pub enum AnyBus {
    /// The embedded bus, in the event store's SQLite file.
    Sqlite(SqliteBus),
    /// NATS JetStream.
    Nats(NatsBus),
    /// Redis Streams.
    Redis(RedisBus),
}

/// A consumer of an [`AnyBus`].
#[derive(Clone, Debug)]
pub enum AnyConsumer {
    /// Of the embedded bus.
    Sqlite(<SqliteBus as MessageBus>::Consumer),
    /// Of NATS JetStream.
    Nats(<NatsBus as MessageBus>::Consumer),
    /// Of Redis Streams.
    Redis(<RedisBus as MessageBus>::Consumer),
}

impl AnyBus {
    /// The backend's name, as `[message_bus] backend` spells it.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "embedded",
            Self::Nats(_) => "nats",
            Self::Redis(_) => "redis",
        }
    }
}

/// Opens the bus `settings` configure. Commands that only look (`must_exist`) refuse to
/// create an embedded database that is not there.
///
/// # Errors
/// A [`ConfigProblem`] for a section that cannot be used; the driver's error when the broker
/// cannot be reached.
pub async fn open(settings: &Settings, must_exist: bool) -> anyhow::Result<AnyBus> {
    let config = &settings.config.message_bus;
    match config.backend {
        MessageBusBackend::Embedded => Ok(AnyBus::Sqlite(crate::bus::open(settings, must_exist)?)),
        MessageBusBackend::NatsJetstream => {
            let url = broker_url(config)?;
            let options = nats_options(config);
            let bus = NatsBus::connect(&url, options)
                .await
                .map_err(|error| anyhow::anyhow!("message_bus (nats at {url}): {error}"))?;
            Ok(AnyBus::Nats(bus))
        }
        MessageBusBackend::Redis => {
            let url = redis_url(broker_url(config)?, config);
            let options = RedisBusOptions {
                key_prefix: config.queue_prefix.clone(),
                dead_letter: config.dead_letter.destination.clone(),
                ..RedisBusOptions::default()
            };
            let bus = RedisBus::connect(&url, options).await.map_err(|error| {
                anyhow::anyhow!("message_bus (redis at {}): {error}", redacted(&url))
            })?;
            Ok(AnyBus::Redis(bus))
        }
    }
}

/// The NATS options `[message_bus]` gives: `stream`, `subject_prefix`, `credentials` (the text
/// of a `.creds` file, best given as `@secret(...)`), `dead_letter.destination`.
pub fn nats_options(config: &MessageBusConfig) -> NatsBusOptions {
    let defaults = NatsBusOptions::default();
    NatsBusOptions {
        stream: config.stream.clone().unwrap_or(defaults.stream),
        subject_prefix: config
            .subject_prefix
            .clone()
            .unwrap_or(defaults.subject_prefix),
        credentials: config.credentials.as_ref().map(|c| c.expose().clone()),
        dead_letter: config.dead_letter.destination.clone(),
        ..NatsBusOptions::default()
    }
}

/// `url` with `[message_bus] credentials` as its password when it names none.
pub(crate) fn redis_url(url: String, config: &MessageBusConfig) -> String {
    if let Some(password) = &config.credentials
        && !url.contains('@')
        && let Some((scheme, rest)) = url.split_once("://")
    {
        return format!("{scheme}://:{}@{rest}", password.expose());
    }
    url
}

fn broker_url(config: &MessageBusConfig) -> anyhow::Result<String> {
    config.broker_url().ok_or_else(|| {
        ConfigProblem("message_bus: a broker backend needs url (or host and port)".to_owned())
            .into()
    })
}

/// `url` without a password, for messages.
pub(crate) fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://***@{host}"),
        _ => url.to_owned(),
    }
}

/// Calls the same method on whichever bus or consumer `$self` holds.
macro_rules! each {
    ($enum:ident, $self:expr, $bus:ident => $call:expr) => {
        match $self {
            $enum::Sqlite($bus) => $call,
            $enum::Nats($bus) => $call,
            $enum::Redis($bus) => $call,
        }
    };
}

impl MessageBus for AnyBus {
    type Consumer = AnyConsumer;

    async fn publish(
        &self,
        topic: &Topic,
        messages: Vec<OutgoingMessage>,
    ) -> Result<Vec<Published>, BusError> {
        each!(AnyBus, self, bus => bus.publish(topic, messages).await)
    }

    async fn subscribe(
        &self,
        topic: &Topic,
        group: &ConsumerGroup,
        options: SubscribeOptions,
    ) -> Result<AnyConsumer, BusError> {
        Ok(match self {
            Self::Sqlite(bus) => AnyConsumer::Sqlite(bus.subscribe(topic, group, options).await?),
            Self::Nats(bus) => AnyConsumer::Nats(bus.subscribe(topic, group, options).await?),
            Self::Redis(bus) => AnyConsumer::Redis(bus.subscribe(topic, group, options).await?),
        })
    }

    async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        each!(AnyBus, self, bus => bus.dead_letters(filter, limit).await)
    }

    async fn replay_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, BusError> {
        each!(AnyBus, self, bus => bus.replay_dead_letters(filter).await)
    }

    async fn discard_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, BusError> {
        each!(AnyBus, self, bus => bus.discard_dead_letters(filter).await)
    }

    async fn stats(&self) -> Result<Vec<TopicStats>, BusError> {
        each!(AnyBus, self, bus => bus.stats().await)
    }
}

impl RelayTarget for AnyBus {
    async fn relay_checkpoint(&self, name: &str) -> Result<Position, BusError> {
        each!(AnyBus, self, bus => bus.relay_checkpoint(name).await)
    }

    async fn relay_publish(
        &self,
        name: &str,
        batch: Vec<(Position, Topic, OutgoingMessage)>,
        through: Position,
    ) -> Result<(), BusError> {
        each!(AnyBus, self, bus => bus.relay_publish(name, batch, through).await)
    }
}

impl BusConsumer for AnyConsumer {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        each!(AnyConsumer, self, consumer => consumer.receive(max, wait).await)
    }

    async fn ack(&self, deliveries: &[Delivery]) -> Result<(), BusError> {
        each!(AnyConsumer, self, consumer => consumer.ack(deliveries).await)
    }

    async fn nack(&self, delivery: &Delivery, failure: Failure) -> Result<NackOutcome, BusError> {
        each!(AnyConsumer, self, consumer => consumer.nack(delivery, failure).await)
    }

    async fn extend(&self, delivery: &Delivery, by: Duration) -> Result<bool, BusError> {
        each!(AnyConsumer, self, consumer => consumer.extend(delivery, by).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_options_carry_the_configured_dead_letter_destination_and_names() {
        let mut config = MessageBusConfig::default();
        assert_eq!(nats_options(&config).dead_letter, "dead_letter");
        config.dead_letter.destination = "poison".to_owned();
        config.stream = Some("ORDERS".to_owned());
        let options = nats_options(&config);
        assert_eq!(options.dead_letter, "poison");
        assert_eq!(options.stream, "ORDERS");
    }
}
