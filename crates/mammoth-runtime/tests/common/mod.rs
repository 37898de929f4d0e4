//! A small bank account aggregate and store wrappers that make conflicts and failures happen
//! on demand.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use mammoth_core::{
    Aggregate, AppendResult, Direction, DomainEvent, EventFilter, EventStore, ExpectedVersion,
    InMemoryEventStore, NewEvent, Position, RecordedEvent, Snapshot, SnapshotStore, StoreError,
    StreamId, Version,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountCommand {
    Deposit(i64),
    Withdraw(i64),
    Nothing,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountEvent {
    Deposited { amount: i64 },
    Withdrew { amount: i64 },
}

impl DomainEvent for AccountEvent {
    fn schema_version(event_type: &str) -> Option<u32> {
        matches!(event_type, "Deposited" | "Withdrew").then_some(1)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("balance {balance} is below {wanted}")]
pub struct Insufficient {
    pub balance: i64,
    pub wanted: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub balance: i64,
    pub events: u64,
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = Insufficient;

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, Insufficient> {
        match command {
            AccountCommand::Deposit(amount) => {
                Ok(vec![AccountEvent::Deposited { amount: *amount }])
            }
            AccountCommand::Withdraw(amount) if *amount > self.balance => Err(Insufficient {
                balance: self.balance,
                wanted: *amount,
            }),
            AccountCommand::Withdraw(amount) => {
                Ok(vec![AccountEvent::Withdrew { amount: *amount }])
            }
            AccountCommand::Nothing => Ok(vec![]),
        }
    }

    fn evolve(mut self, event: &AccountEvent) -> Self {
        match event {
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrew { amount } => self.balance -= amount,
        }
        self.events += 1;
        self
    }
}

/// How a [`TestStore`] misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Yields before every append, so concurrent commands interleave between load and append.
    YieldBeforeAppend,
    /// Appends a rival event to the stream before every append, so every append conflicts.
    AlwaysConflict,
}

/// An in-memory store that counts appends and misbehaves as told.
#[derive(Clone)]
pub struct TestStore {
    pub inner: Arc<InMemoryEventStore>,
    pub appends: Arc<AtomicU32>,
    behaviour: Behaviour,
}

impl TestStore {
    pub fn new(behaviour: Behaviour) -> Self {
        Self {
            inner: Arc::new(InMemoryEventStore::new()),
            appends: Arc::new(AtomicU32::new(0)),
            behaviour,
        }
    }

    pub fn appends(&self) -> u32 {
        self.appends.load(Ordering::SeqCst)
    }

    pub async fn events(&self, stream: &str) -> Vec<RecordedEvent> {
        let stream = StreamId::new(stream).unwrap();
        self.inner
            .read_stream(&stream, Direction::Forward, None, 100_000)
            .await
            .unwrap()
    }
}

impl EventStore for TestStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        match self.behaviour {
            Behaviour::YieldBeforeAppend => tokio::task::yield_now().await,
            Behaviour::AlwaysConflict => {
                let rival = NewEvent::from_json_text("Deposited", r#"{"amount":1}"#);
                self.inner
                    .append(stream, ExpectedVersion::Any, vec![rival])
                    .await?;
            }
        }
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: Option<Version>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, direction, from, limit).await
    }

    async fn read_all(
        &self,
        from: Position,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from, filter, limit).await
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        self.inner.head_position().await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version, StoreError> {
        self.inner.stream_version(stream).await
    }

    async fn wait_for_append(&self, after: Position) -> Result<(), StoreError> {
        self.inner.wait_for_append(after).await
    }
}

/// A snapshot store whose every call fails, as a dropped table or a full disk would.
#[derive(Clone, Default)]
pub struct BrokenSnapshots {
    pub calls: Arc<AtomicU32>,
}

impl SnapshotStore for BrokenSnapshots {
    async fn load(&self, _: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(StoreError::backend(
            "test",
            "loading a snapshot",
            "no such table: snapshots",
            false,
        ))
    }

    async fn save(&self, _: &Snapshot) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(StoreError::backend(
            "test",
            "saving a snapshot",
            "no such table: snapshots",
            false,
        ))
    }
}
