//! Durable idempotency keys: the events of a keyed command get ids derived from the key, so
//! the store itself remembers which keys have written (see [`Repository::execute`]).

use mammoth_core::{Aggregate, Direction, EventStore, Position, RecordedEvent, StreamId, Version};
use uuid::Uuid;

use super::{Committed, LOAD_PAGE, Repository};
use crate::error::CommandError;

/// The namespace of event ids derived from idempotency keys.
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6d61_6d6d_6f74_4b65_7900_0000_0000_0001);

/// The id of the `index`th event written by a command with idempotency `key`.
pub fn idempotent_event_id(key: &str, index: usize) -> Uuid {
    Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, format!("{key}/{index}").as_bytes())
}

/// What a load found for an idempotency key: the first write made with it.
pub(super) struct KeyedWrite {
    pub(super) first_version: Version,
    pub(super) last_version: Version,
    pub(super) last_position: Position,
}

/// Follows the ids `key/0`, `key/1`, ... through a stream's events.
pub(super) struct KeyScan<'a> {
    key: &'a str,
    first: Uuid,
    pub(super) found: Option<KeyedWrite>,
    next_index: usize,
}

impl<'a> KeyScan<'a> {
    pub(super) fn new(key: &'a str) -> Self {
        Self {
            key,
            first: idempotent_event_id(key, 0),
            found: None,
            next_index: 0,
        }
    }

    pub(super) fn see(&mut self, event: &RecordedEvent) {
        match &mut self.found {
            None if event.id == self.first => {
                self.found = Some(KeyedWrite {
                    first_version: event.version,
                    last_version: event.version,
                    last_position: event.position,
                });
                self.next_index = 1;
            }
            Some(write)
                if self.next_index > 0
                    && event.id == idempotent_event_id(self.key, self.next_index) =>
            {
                write.last_version = event.version;
                write.last_position = event.position;
                self.next_index += 1;
            }
            Some(_) => self.next_index = 0,
            None => {}
        }
    }
}

impl<A: Aggregate, S: EventStore> Repository<A, S> {
    /// Scans the whole stream for the events of idempotency key `key`.
    pub(super) async fn find_key(
        &self,
        stream: &StreamId,
        key: &str,
    ) -> Result<Option<KeyedWrite>, CommandError<A::Error>> {
        let mut scan = KeyScan::new(key);
        let mut from = 1;
        loop {
            let page = self
                .store
                .read_stream(stream, Direction::Forward, Some(from), LOAD_PAGE)
                .await?;
            for event in &page {
                scan.see(event);
            }
            match page.last() {
                // Go on while nothing is found yet, or the key's events may continue.
                Some(last)
                    if page.len() == LOAD_PAGE && (scan.found.is_none() || scan.next_index > 0) =>
                {
                    from = last.version + 1;
                }
                _ => return Ok(scan.found),
            }
        }
    }
}

pub(super) fn replayed(stream: &StreamId, write: &KeyedWrite, attempts: u32) -> Committed {
    Committed {
        stream_id: stream.clone(),
        version: write.last_version,
        position: write.last_position,
        events: (write.last_version - write.first_version + 1) as usize,
        replayed: true,
        attempts,
    }
}
