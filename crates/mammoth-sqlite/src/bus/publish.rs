//! Publishing into the embedded bus, and the outbox relay's publish-and-checkpoint, both inside
//! a transaction the caller commits.

use std::time::Duration;

use mammoth_core::Position;
use mammoth_core::bus::{BusError, OutgoingMessage, Published, Topic};
use mammoth_core::now_micros;
use rusqlite::{OptionalExtension, Transaction, params};

use super::schema::{failed, headers_to_text, to_i64, to_u64};

fn window_micros(window: Duration) -> i64 {
    i64::try_from(window.as_micros()).unwrap_or(i64::MAX)
}

/// Stores `messages` in `topic` unless their id was published there within `window`.
pub(crate) fn publish(
    tx: &Transaction<'_>,
    topic: &Topic,
    messages: &[OutgoingMessage],
    window: Duration,
) -> Result<Vec<Published>, BusError> {
    let now = now_micros();
    let cutoff = now.saturating_sub(window_micros(window));
    messages
        .iter()
        .map(|message| publish_one(tx, topic, message, now, cutoff))
        .collect::<Result<_, _>>()
        .map_err(failed("publishing"))
}

fn publish_one(
    tx: &Transaction<'_>,
    topic: &Topic,
    message: &OutgoingMessage,
    now: i64,
    cutoff: i64,
) -> rusqlite::Result<Published> {
    let id = message.id.as_bytes().as_slice();
    let seen: Option<(i64, i64)> = tx
        .prepare_cached(
            "SELECT seq, published_at FROM bus_dedup WHERE topic = ?1 AND message_id = ?2",
        )?
        .query_row(params![topic.as_str(), id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    if let Some((seq, published_at)) = seen
        && published_at >= cutoff
    {
        return Ok(Published {
            sequence: to_u64(seq),
            duplicate: true,
        });
    }
    tx.prepare_cached(
        "INSERT INTO bus_messages (topic, message_id, msg_key, payload, headers, published_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        topic.as_str(),
        id,
        message.key,
        message.payload,
        headers_to_text(&message.headers),
        now
    ])?;
    let seq = tx.last_insert_rowid();
    tx.prepare_cached(
        "INSERT INTO bus_dedup (topic, message_id, seq, published_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (topic, message_id) DO UPDATE
         SET seq = excluded.seq, published_at = excluded.published_at",
    )?
    .execute(params![topic.as_str(), id, seq, now])?;
    Ok(Published {
        sequence: to_u64(seq),
        duplicate: false,
    })
}

/// The relay's checkpoint, 0 when it never ran.
pub(crate) fn relay_checkpoint(tx: &Transaction<'_>, name: &str) -> Result<Position, BusError> {
    tx.prepare_cached("SELECT position FROM bus_relays WHERE name = ?1")
        .and_then(|mut statement| {
            statement
                .query_row([name], |row| row.get::<_, i64>(0))
                .optional()
        })
        .map(|position| position.map_or(0, to_u64))
        .map_err(failed("reading a relay checkpoint"))
}

/// Publishes the batch's messages from events after the stored checkpoint and moves the
/// checkpoint to `through`, in the caller's transaction: both commit, or neither.
pub(crate) fn relay(
    tx: &Transaction<'_>,
    name: &str,
    batch: &[(Position, Topic, OutgoingMessage)],
    through: Position,
    window: Duration,
) -> Result<(), BusError> {
    let done = relay_checkpoint(tx, name)?;
    let now = now_micros();
    let cutoff = now.saturating_sub(window_micros(window));
    for (position, topic, message) in batch {
        // Another relay of the same name got here first: what it published stays once.
        if *position > done {
            publish_one(tx, topic, message, now, cutoff).map_err(failed("relaying events"))?;
        }
    }
    if through > done {
        tx.prepare_cached(
            "INSERT INTO bus_relays (name, position, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET position = excluded.position,
                                              updated_at = excluded.updated_at",
        )
        .and_then(|mut statement| statement.execute(params![name, to_i64(through), now]))
        .map_err(failed("saving a relay checkpoint"))?;
    }
    Ok(())
}
