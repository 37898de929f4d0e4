//! The events every case writes, and the store and raw handles that write them. The store and
//! the raw baseline get byte-for-byte the same payloads.

use std::path::Path;

use mammoth_core::{NewEvent, StreamId};
use mammoth_sqlite::{SqliteEventStore, SqliteOptions, Synchronous};

use crate::BenchError;

/// The event type every case writes.
pub(crate) const EVENT_TYPE: &str = "OrderPlaced";

/// The payload of the `n`th event: about 100 bytes, like a small domain event.
pub(crate) fn data(n: u64) -> String {
    format!(
        r#"{{"order_id":"order-{n}","customer_id":"customer-{}","total_cents":{},"items":3,"currency":"EUR"}}"#,
        n % 1_000,
        1_000 + n % 9_000
    )
}

/// The `n`th event as the store takes it.
pub(crate) fn event(n: u64) -> NewEvent {
    NewEvent::from_json_text(EVENT_TYPE, data(n))
}

/// The id of stream number `index`.
pub(crate) fn stream_name(index: u64) -> String {
    format!("order-{index}")
}

/// Stream number `index` as the store takes it.
pub(crate) fn stream(index: u64) -> StreamId {
    StreamId::new(stream_name(index)).expect("`order-<number>` is a valid stream id")
}

/// Opens the store on a fresh file with the case's durability setting.
pub(crate) fn open_store(
    path: &Path,
    synchronous: Synchronous,
) -> Result<SqliteEventStore, BenchError> {
    let options = SqliteOptions {
        synchronous,
        ..SqliteOptions::default()
    };
    Ok(SqliteEventStore::open(path, options)?)
}
