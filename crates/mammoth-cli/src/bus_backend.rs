//! [`AnyBus`]: the message bus `[message_bus] backend` names, opened for the bus commands
//! (`mammoth bus stats`, `mammoth dlq ...`): the embedded bus beside the events (in the SQLite
//! file, or in tables of the PostgreSQL or MySQL store), NATS JetStream, or Redis Streams. The commands work the same on each; the type is erased
//! once, here, as sqlx's `Any` does. It is also the outbox relay's target ([`RelayTarget`]), so
//! `mammoth demo` runs its saga on whichever bus is configured.

use std::time::Duration;

use mammoth_config::{EventStoreBackend, MessageBusBackend, MessageBusConfig};
use mammoth_core::Position;
use mammoth_core::bus::{
    BusConsumer, BusError, ConsumerGroup, DeadLetter, DeadLetterFilter, Delivery, Failure,
    MessageBus, NackOutcome, OutgoingMessage, Published, RelayTarget, SubscribeOptions, Topic,
    TopicStats,
};
use mammoth_mysql::bus::{MysqlBus, MysqlBusOptions};
use mammoth_nats::{NatsBus, NatsBusOptions};
use mammoth_postgres::bus::{PgBus, PgBusOptions};
use mammoth_redis::{RedisBus, RedisBusOptions};
use mammoth_sqlite::SqliteBus;

use crate::exit::ConfigProblem;
use crate::settings::Settings;
use crate::store::{Access, AnyStore};

/// The configured message bus.
#[derive(Clone, Debug)]
pub enum AnyBus {
    /// The embedded bus, in the event store's SQLite file.
    Sqlite(SqliteBus),
    /// The embedded bus, in tables of the PostgreSQL event store's schema.
    Postgres(PgBus),
    /// The embedded bus, in tables of the MySQL event store's database.
    Mysql(MysqlBus),
    /// NATS JetStream.
    Nats(NatsBus),
    /// Redis Streams.
    Redis(RedisBus),
}

/// A consumer of an [`AnyBus`].
#[derive(Clone, Debug)]
pub enum AnyConsumer {
    /// Of the embedded bus in SQLite.
    Sqlite(<SqliteBus as MessageBus>::Consumer),
    /// Of the embedded bus in PostgreSQL.
    Postgres(<PgBus as MessageBus>::Consumer),
    /// Of the embedded bus in MySQL.
    Mysql(<MysqlBus as MessageBus>::Consumer),
    /// Of NATS JetStream.
    Nats(<NatsBus as MessageBus>::Consumer),
    /// Of Redis Streams.
    Redis(<RedisBus as MessageBus>::Consumer),
}

impl AnyBus {
    /// The backend's name, as `[message_bus] backend` spells it.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) | Self::Postgres(_) | Self::Mysql(_) => "embedded",
            Self::Nats(_) => "nats",
            Self::Redis(_) => "redis",
        }
    }

    /// Where the messages are: `embedded (sqlite)`, `embedded (postgres)`, `nats`, ...
    pub fn label(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "embedded (sqlite)",
            Self::Postgres(_) => "embedded (postgres)",
            Self::Mysql(_) => "embedded (mysql)",
            Self::Nats(_) => "nats",
            Self::Redis(_) => "redis",
        }
    }
}

/// Opens the bus `settings` configure. Commands that only look (`must_exist`) refuse to
/// create an embedded database that is not there. The embedded bus beside a PostgreSQL or
/// MySQL store opens the store for it; [`open_on`] shares one already open.
///
/// # Errors
/// A [`ConfigProblem`] for a section that cannot be used; the driver's error when the broker
/// or the database cannot be reached.
pub async fn open(settings: &Settings, must_exist: bool) -> anyhow::Result<AnyBus> {
    let embedded = settings.config.message_bus.backend == MessageBusBackend::Embedded;
    if embedded
        && matches!(
            settings.store.backend,
            EventStoreBackend::Postgres | EventStoreBackend::Mysql
        )
    {
        let access = if must_exist {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        };
        let store = crate::store::open(&settings.store, access).await?;
        return open_on(settings, &store, must_exist).await;
    }
    if embedded {
        return Ok(AnyBus::Sqlite(crate::bus::open(settings, must_exist)?));
    }
    open_broker(&settings.config.message_bus).await
}

/// As [`open`], with the embedded bus in the tables of `store` when it is PostgreSQL or
/// MySQL (sharing its connection pool).
///
/// # Errors
/// As [`open`].
pub async fn open_on(
    settings: &Settings,
    store: &AnyStore,
    must_exist: bool,
) -> anyhow::Result<AnyBus> {
    match (settings.config.message_bus.backend, store) {
        (MessageBusBackend::Embedded, AnyStore::Postgres(pg)) => {
            Ok(AnyBus::Postgres(PgBus::new(pg, PgBusOptions::default())))
        }
        (MessageBusBackend::Embedded, AnyStore::Mysql(mysql)) => Ok(AnyBus::Mysql(MysqlBus::new(
            mysql,
            MysqlBusOptions::default(),
        ))),
        (MessageBusBackend::Embedded, _) => {
            Ok(AnyBus::Sqlite(crate::bus::open(settings, must_exist)?))
        }
        _ => open_broker(&settings.config.message_bus).await,
    }
}

/// Connects to the broker `[message_bus]` names (NATS JetStream or Redis Streams).
async fn open_broker(config: &MessageBusConfig) -> anyhow::Result<AnyBus> {
    match config.backend {
        MessageBusBackend::Embedded => {
            anyhow::bail!("message_bus: the embedded bus is not a broker")
        }
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
            $enum::Postgres($bus) => $call,
            $enum::Mysql($bus) => $call,
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
            Self::Postgres(bus) => {
                AnyConsumer::Postgres(bus.subscribe(topic, group, options).await?)
            }
            Self::Mysql(bus) => AnyConsumer::Mysql(bus.subscribe(topic, group, options).await?),
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
