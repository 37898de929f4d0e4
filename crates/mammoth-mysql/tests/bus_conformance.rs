//! The bus conformance suite against the MySQL/MariaDB bus: every bus in a database of its
//! own (dropped with its last handle); a reopen opens a new store handle and a new bus on the
//! same database, as a restarted process would. Needs MAMMOTH_TEST_MYSQL_URL (skips with a
//! note without it, fails under CI=true).

// The event store tests' factory: this binary uses only part of it.
#[allow(dead_code)]
#[path = "mysql/common.rs"]
mod common;

use mammoth_core::bus::{
    BusError, ConsumerGroup, DeadLetter, DeadLetterFilter, MessageBus, OutgoingMessage, Published,
    SubscribeOptions, Topic, TopicStats,
};
use mammoth_mysql::bus::{MysqlBus, MysqlBusOptions, MysqlConsumer};
use mammoth_testkit::{BusFactory, StoreFactory};

use common::{MyFactory, TestStore, factory};

/// A bus and the event store (with its schema guard) whose pool it shares.
pub struct TestBus {
    bus: MysqlBus,
    events: TestStore,
}

impl BusFactory for MyFactory {
    type Bus = TestBus;

    async fn fresh(&self) -> TestBus {
        let events = StoreFactory::fresh(self).await;
        let bus = MysqlBus::new(&events.store, MysqlBusOptions::default());
        TestBus { bus, events }
    }

    async fn reopen(&self, bus: TestBus) -> Option<TestBus> {
        let TestBus { bus, events } = bus;
        drop(bus);
        let events = StoreFactory::reopen(self, events)
            .await
            .expect("a MySQL store reopens");
        let bus = MysqlBus::new(&events.store, MysqlBusOptions::default());
        Some(TestBus { bus, events })
    }
}

impl MessageBus for TestBus {
    type Consumer = MysqlConsumer;

    async fn publish(
        &self,
        topic: &Topic,
        messages: Vec<OutgoingMessage>,
    ) -> Result<Vec<Published>, BusError> {
        self.bus.publish(topic, messages).await
    }

    async fn subscribe(
        &self,
        topic: &Topic,
        group: &ConsumerGroup,
        options: SubscribeOptions,
    ) -> Result<MysqlConsumer, BusError> {
        self.bus.subscribe(topic, group, options).await
    }

    async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        self.bus.dead_letters(filter, limit).await
    }

    async fn replay_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, BusError> {
        self.bus.replay_dead_letters(filter).await
    }

    async fn discard_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, BusError> {
        self.bus.discard_dead_letters(filter).await
    }

    async fn stats(&self) -> Result<Vec<TopicStats>, BusError> {
        self.bus.stats().await
    }
}

mod conformance {
    mammoth_testkit::bus_conformance_tests!({
        match super::factory() {
            Some(factory) => factory,
            None => return,
        }
    });
}

/// The store's status reports the schema version that created the bus tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_status_reports_the_schema_version_with_the_bus_tables() {
    let Some(factory) = factory() else { return };
    let bus = BusFactory::fresh(&factory).await;
    let status = bus.events.store.status().await.expect("status");
    assert_eq!(status.schema_version, mammoth_mysql::schema::SCHEMA_VERSION);
    assert_eq!(
        mammoth_mysql::schema::SCHEMA_VERSION,
        mammoth_mysql::schema::MIGRATIONS.len() as i64
    );
    assert!(
        bus.bus
            .stats()
            .await
            .expect("stats on the new tables")
            .is_empty()
    );
}
