//! The [`MessageBus`] contract: topics, consumer groups, explicit acknowledgement, retries with
//! backoff and a dead-letter queue. Drivers: the embedded bus in `mammoth-sqlite` (a durable
//! queue in the event store's file), and later NATS JetStream and Redis Streams. Every driver
//! runs the bus conformance suite in `mammoth-testkit`.
//!
//! The contract is the common ground of the brokers, so each maps onto their own mechanisms:
//!
//! | contract | JetStream | Redis Streams | embedded |
//! |---|---|---|---|
//! | topic | subject in a stream | stream key (`queue:{topic}`) | `bus_messages.topic` |
//! | message id, dedup window | `Nats-Msg-Id`, `duplicate_window` | `SET NX` id key with TTL, in the `XADD` script | `bus_dedup` rows |
//! | consumer group | durable pull consumer | `XGROUP CREATE` | `bus_groups` cursor |
//! | receive | `fetch` | `XREADGROUP >` plus `XAUTOCLAIM` | claim rows in `bus_pending` |
//! | visibility timeout | `AckWait` | `XAUTOCLAIM` min-idle-time | lease `visible_at` |
//! | attempt | `num_delivered` | pending entry delivery count | `bus_pending.attempts` |
//! | ack | `AckAck` | `XACK` | delete the pending row |
//! | nack with delay | `AckNak(delay)` | `XACK` + delayed `ZADD`, moved back by `XADD` | `visible_at` in the future |
//! | extend | `AckProgress` | `XCLAIM` to itself (resets idle) | push `visible_at` |
//! | max attempts, DLQ | `MaxDeliver` + publish to a DLQ stream, then `AckTerm` | `XADD` to a dead-letter stream, `XACK` | `bus_dead_letters` row |
//!
//! Guarantees every driver gives: a publish that returned is durable; every group gets every
//! message of its topic at least once; a delivery that is neither acknowledged nor failed is
//! delivered again after the visibility timeout; a failed delivery is retried after the policy's
//! delay until `max_attempts`, then dead-lettered with its last error, attempt count and first
//! and last failure times; dead letters are only removed by `replay_dead_letters` (which
//! delivers them to their group again) or `discard_dead_letters`. Nothing is dropped silently.

mod error;
mod retry;
mod topics;
mod types;

use std::future::Future;
use std::time::Duration;

pub use error::BusError;
pub use retry::RetryPolicy;
pub use topics::{HEADER_EVENT_TYPE, HEADER_POSITION, HEADER_STREAM, TopicMap, event_message};
pub use types::{
    ConsumerGroup, DeadLetter, DeadLetterFilter, Delivery, Failure, MAX_GROUP_LEN, MAX_TOPIC_LEN,
    Message, NackAction, NackOutcome, OutgoingMessage, Published, Receipt, StartFrom,
    SubscribeOptions, Topic, TopicStats,
};

use crate::Position;

/// A message bus: durable topics, consumer groups, retries and a dead-letter queue.
pub trait MessageBus: Send + Sync {
    /// A consumer of one group, from [`MessageBus::subscribe`].
    type Consumer: BusConsumer + 'static;

    /// Publishes `messages` to `topic`, in order, durably: when this returns `Ok` every message
    /// is stored (or was a duplicate of one stored within the de-duplication window).
    ///
    /// # Errors
    /// [`BusError::InvalidInput`] for an empty batch; [`BusError::Backend`] (then any subset of
    /// the batch may be stored, and re-publishing with the same ids is safe).
    fn publish(
        &self,
        topic: &Topic,
        messages: Vec<OutgoingMessage>,
    ) -> impl Future<Output = Result<Vec<Published>, BusError>> + Send;

    /// Joins consumer group `group` of `topic`, creating the group (at `options.start`) if it
    /// does not exist. Consumers of one group share its messages; every group gets them all.
    ///
    /// # Errors
    /// [`BusError::Backend`].
    fn subscribe(
        &self,
        topic: &Topic,
        group: &ConsumerGroup,
        options: SubscribeOptions,
    ) -> impl Future<Output = Result<Self::Consumer, BusError>> + Send;

    /// Up to `limit` dead letters that pass `filter`, oldest first.
    ///
    /// # Errors
    /// [`BusError::InvalidInput`] for a zero limit; [`BusError::Backend`].
    fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, BusError>> + Send;

    /// Delivers the dead letters that pass `filter` to their group again, as fresh messages
    /// (attempt 1) seen by that group only, and removes them from the queue, atomically per
    /// letter. Returns how many were replayed.
    ///
    /// # Errors
    /// [`BusError::Backend`]; letters not yet replayed stay in the queue.
    fn replay_dead_letters(
        &self,
        filter: &DeadLetterFilter,
    ) -> impl Future<Output = Result<u64, BusError>> + Send;

    /// Removes the dead letters that pass `filter` for good. Returns how many.
    ///
    /// # Errors
    /// [`BusError::Backend`].
    fn discard_dead_letters(
        &self,
        filter: &DeadLetterFilter,
    ) -> impl Future<Output = Result<u64, BusError>> + Send;

    /// Depth, in-flight, retrying and dead-letter counts per topic and group.
    ///
    /// # Errors
    /// [`BusError::Backend`].
    fn stats(&self) -> impl Future<Output = Result<Vec<TopicStats>, BusError>> + Send;
}

/// One consumer of a group. Cheap to clone: clones share the consumer, so several handler
/// tasks can acknowledge what one receive loop fetched.
pub trait BusConsumer: Clone + Send + Sync {
    /// Up to `max` deliveries, waiting up to `wait` for the first one; empty when none came.
    /// Each delivery is invisible to the group's other consumers until it is acknowledged,
    /// failed, or its visibility timeout expires.
    ///
    /// # Errors
    /// [`BusError::InvalidInput`] for `max == 0`; [`BusError::Backend`].
    fn receive(
        &self,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery>, BusError>> + Send;

    /// Acknowledges `deliveries`: their messages are done for this group. Acknowledging a
    /// delivery whose timeout expired still completes the message (a redelivered copy's
    /// later ack is then a no-op), as `XACK` and JetStream do.
    ///
    /// # Errors
    /// [`BusError::Backend`]; an ack that failed leaves the message to be delivered again.
    fn ack(&self, deliveries: &[Delivery]) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Fails `delivery`: it is retried or dead-lettered as `failure.action` and the group's
    /// retry policy say, with `failure.error` recorded.
    ///
    /// # Errors
    /// [`BusError::Backend`]; the delivery then comes back after its visibility timeout.
    fn nack(
        &self,
        delivery: &Delivery,
        failure: Failure,
    ) -> impl Future<Output = Result<NackOutcome, BusError>> + Send;

    /// Keeps `delivery` invisible to others for `by` from now (a slow handler's heartbeat).
    /// Returns false when the delivery is no longer this consumer's.
    ///
    /// # Errors
    /// [`BusError::Backend`].
    fn extend(
        &self,
        delivery: &Delivery,
        by: Duration,
    ) -> impl Future<Output = Result<bool, BusError>> + Send;
}

/// Where the outbox relay publishes and keeps its checkpoint.
///
/// The embedded bus implements it with one transaction per batch (the messages and the new
/// checkpoint commit together: exactly-once relaying). A broker bus pairs `publish` with a
/// checkpoint saved afterwards: after a crash between the two the batch is published again
/// with the same message ids, and the broker's de-duplication window drops the copies.
pub trait RelayTarget: Send + Sync {
    /// The last global position relay `name` has published (0 when it never ran).
    ///
    /// # Errors
    /// [`BusError::Backend`].
    fn relay_checkpoint(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Position, BusError>> + Send;

    /// Publishes `batch` (each message, from the event at the given position, to its topic,
    /// in order) and records that relay `name` has handled every event up to `through`.
    /// Messages at or below the recorded checkpoint are skipped where the target can tell
    /// (the embedded bus checks inside the transaction, so two relays of one name never
    /// publish an event twice).
    ///
    /// # Errors
    /// [`BusError::Backend`]; the checkpoint then did not move.
    fn relay_publish(
        &self,
        name: &str,
        batch: Vec<(Position, Topic, OutgoingMessage)>,
        through: Position,
    ) -> impl Future<Output = Result<(), BusError>> + Send;
}
