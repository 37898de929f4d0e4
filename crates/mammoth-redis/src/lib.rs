//! mammoth's Redis Streams message bus: [`RedisBus`] implements
//! [`MessageBus`](mammoth_core::bus::MessageBus) and
//! [`RelayTarget`](mammoth_core::bus::RelayTarget) on Redis's own mechanisms, so several
//! processes share one bus through the broker.
//!
//! | contract | Redis |
//! |---|---|
//! | topic | a stream, `{prefix}{topic}` (the seed's `queue:{topic}` by default) |
//! | publish, de-duplication | one script per batch: `HMGET` of the ids in the current and previous window slot hashes, `XADD` per new message, one `HSET` of the new ids |
//! | consumer group | `XGROUP CREATE` on the topic's stream (at `0` or `$`) |
//! | receive | `XAUTOCLAIM` of entries idle past the visibility timeout, then `XREADGROUP >` |
//! | attempt | the pending entry's delivery count, plus the attempts a retry carried |
//! | ack | `XACK` |
//! | nack with delay | `XACK` + `ZADD` to the group's delayed set (score: due time in ms); when due, `XADD` to the group's own stream |
//! | extend | `XCLAIM` to itself with `JUSTID` (resets the idle time) |
//! | dead letter | `XADD` to the dead-letter stream + `XACK`, in one script |
//!
//! Every operation that moves a message between places (nack, dead-letter, replay, the
//! release of an ordering key) is one Lua script, so Redis runs it atomically: a crash of the
//! client or the server never leaves a message in two places or in none.
//!
//! Key layout for prefix `P`, topic `T`, group `G` (`:` and `@` never occur in a topic or
//! group name, so the keys cannot collide with a topic's stream):
//! - `P T`: the topic's stream; `P T :seq`: its sequence counter; `P T :dedup:<slot>`: the
//!   de-duplication hashes (message id -> sequence), one per window-long time slot; a publish
//!   checks the current and the previous slot, so an id is remembered one to two windows.
//! - `P T :g: G :retry`: the group's own stream (retries and replays only this group sees);
//!   `...:delayed` (ZSET) and `...:wait` (hash): retries waiting for their time;
//!   `...:failed`: first failure times of expired leases; `...:locks`, `...:held:<key>`,
//!   `...:heldn`: ordering keys in flight and the messages held back behind them.
//! - `P @<dead_letter>`: the dead-letter stream; `P @topics`, `P @groups:T`: the registry
//!   `stats` reads; `P @relay:<name>`: relay checkpoints.

pub mod bench;
mod bus;
mod consume;
mod dead;
mod scripts;
#[cfg(test)]
mod tests;

pub use bus::{RedisBus, RedisBusOptions};
pub use consume::RedisConsumer;
