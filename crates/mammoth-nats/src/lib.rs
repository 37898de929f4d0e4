//! mammoth's NATS JetStream message bus: [`NatsBus`] implements the
//! [`MessageBus`](mammoth_core::bus::MessageBus), [`BusConsumer`](mammoth_core::bus::BusConsumer)
//! and [`RelayTarget`](mammoth_core::bus::RelayTarget) contracts on the broker's own
//! mechanisms, and passes the bus conformance suite in `mammoth-testkit`.
//!
//! The mapping (see `docs/architecture.md` for each guarantee):
//!
//! | contract | JetStream |
//! |---|---|
//! | bus | one stream `{stream}` over subjects `{subject_prefix}.>` |
//! | topic `T` | subject `{subject_prefix}.T` |
//! | message id, dedup window | `Nats-Msg-Id`, the stream's `duplicate_window` |
//! | consumer group `G` of `T` | durable pull consumer `G=T` (dots as `=`) filtered on `T`'s subject |
//! | visibility timeout | `ack_wait`; extend is `AckProgress` (resets the full `ack_wait`) |
//! | receive | `no_wait` pull requests answered on one inbox per consumer, polled while the receive waits (never an expiring request: nats-server 2.9 forgets one silently and miscounts the delivery; see `pull.rs`) |
//! | attempt | `num_delivered` of the delivery |
//! | nack with delay | `AckNak` with a delay |
//! | max attempts | checked on receive and nack; `max_deliver` is a backstop above it |
//! | dead-letter queue | stream `{stream}_DLQ` over `{subject_prefix}_dlq.G.T` (destination `D`: `{stream}_DLQ_D` over `{subject_prefix}_dlq_D.G.T`), then `AckTerm` |
//! | replay to one group | re-published to `T` with a `Mammoth-Bus-Replay-Group` header; other groups' consumers acknowledge it unseen |
//! | ordered by key | the bus holds back a busy key's later messages (un-acked, kept alive by `AckProgress`); see `order.rs` |
//! | relay checkpoint | stream `{stream}_RELAY` keeping the last message per subject (a key-value bucket), saved after the publish |
//! | first failure time, retry due time | the same kind of bucket, `{stream}_FAILURES` |

pub mod bench;
mod bucket;
mod bus;
mod consumer;
mod dead;
mod names;
mod order;
mod pull;
mod relay;
mod stats;

pub use bus::{NatsBus, NatsBusOptions};
pub use consumer::NatsConsumer;
