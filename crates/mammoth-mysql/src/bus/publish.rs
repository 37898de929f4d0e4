//! Publishing into the bus, and the outbox relay's publish-and-checkpoint, inside a
//! transaction the caller commits. Sequence numbers are taken under the topic's head row
//! lock ([`reserve`]), so a topic's messages commit in sequence order.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use mammoth_core::Position;
use mammoth_core::bus::{BusError, OutgoingMessage, Published, Topic};
use mammoth_core::now_micros;
use mysql_async::prelude::Queryable;
use mysql_async::{Transaction, Value};
use uuid::Uuid;

use super::rows::{Fail, corrupt, headers_value, placeholders, to_i64, to_u64};

/// The longest relay name the `bus_relays` table holds, in bytes.
pub const MAX_RELAY_NAME_BYTES: usize = 512;

/// Rows per multi-row statement.
const ROWS_PER_STATEMENT: usize = 128;
/// Payload bytes a multi-row statement stays under (a single larger message goes alone;
/// `MysqlBus` refuses one over `max_allowed_packet` before publishing). Well below the
/// 4 MiB to 64 MiB defaults of MySQL and MariaDB.
const BYTES_PER_STATEMENT: usize = 1 << 20;

fn window_micros(window: Duration) -> i64 {
    i64::try_from(window.as_micros()).unwrap_or(i64::MAX)
}

/// Refuses a relay name the table cannot hold.
pub(crate) fn check_relay_name(name: &str) -> Result<(), BusError> {
    if name.len() > MAX_RELAY_NAME_BYTES {
        return Err(BusError::InvalidInput(format!(
            "relay name {:?}... is {} bytes; the MySQL bus stores names of at most {MAX_RELAY_NAME_BYTES} bytes, so use a shorter name",
            name.chars().take(40).collect::<String>(),
            name.len()
        )));
    }
    Ok(())
}

/// Reserves `n` sequence numbers in `topic`: locks the topic's head row until commit
/// (creating it), moves it up by `n`, and returns the last number taken before. One statement,
/// so the lock is held from here to commit only. Give back what was not used with
/// [`release_unused`].
pub(crate) async fn reserve(
    tx: &mut Transaction<'_>,
    d: &str,
    topic: &str,
    n: usize,
) -> Result<i64, Fail> {
    let n = to_i64(n as u64);
    // ON DUPLICATE KEY takes the row's exclusive lock even when another transaction created
    // it meanwhile (INSERT IGNORE would take a shared one, and two of those upgrading
    // deadlock).
    tx.exec_drop(
        format!(
            "INSERT INTO {d}.bus_topics (topic, last_seq) VALUES (?, ?)
             ON DUPLICATE KEY UPDATE last_seq = LAST_INSERT_ID(last_seq + VALUES(last_seq))"
        ),
        (topic.as_bytes(), n),
    )
    .await?;
    // 1: the row was created at `n`; 2: an existing row moved up to LAST_INSERT_ID().
    if tx.affected_rows() == 1 {
        return Ok(0);
    }
    let end = tx.last_insert_id().ok_or_else(|| {
        corrupt(format!(
            "the head of topic {topic:?} gave no sequence number"
        ))
    })?;
    Ok(to_i64(end).saturating_sub(n))
}

/// Moves the head of `topic` back from `reserved` to `used` (the last number stored) when
/// duplicates left part of a reservation unused, so sequence numbers stay contiguous.
async fn release_unused(
    tx: &mut Transaction<'_>,
    d: &str,
    topic: &str,
    reserved: i64,
    used: i64,
) -> Result<(), Fail> {
    if used < reserved {
        tx.exec_drop(
            format!("UPDATE {d}.bus_topics SET last_seq = ? WHERE topic = ?"),
            (used, topic.as_bytes()),
        )
        .await?;
    }
    Ok(())
}

/// Stores `messages` in `topic` unless their id was published there within `window`.
pub(crate) async fn publish(
    tx: &mut Transaction<'_>,
    d: &str,
    topic: &Topic,
    messages: &[OutgoingMessage],
    window: Duration,
) -> Result<Vec<Published>, Fail> {
    let messages: Vec<&OutgoingMessage> = messages.iter().collect();
    store_in_topic(tx, d, topic.as_str(), &messages, now_micros(), window).await
}

/// Reserves sequence numbers in `topic` (taking its lock until commit) and stores the
/// messages not published there within `window` before `now`, in order.
pub(crate) async fn store_in_topic(
    tx: &mut Transaction<'_>,
    d: &str,
    topic: &str,
    messages: &[&OutgoingMessage],
    now: i64,
    window: Duration,
) -> Result<Vec<Published>, Fail> {
    let cutoff = now.saturating_sub(window_micros(window));
    let last = reserve(tx, d, topic, messages.len()).await?;
    let (published, used) = store_locked(tx, d, topic, messages, last, now, cutoff).await?;
    let reserved = last + to_i64(messages.len() as u64);
    release_unused(tx, d, topic, reserved, used).await?;
    Ok(published)
}

/// Stores the messages whose id is not in the topic's de-duplication window, numbered after
/// `last`; the caller reserved them and holds the topic lock. Returns what happened to each message and the
/// last sequence number taken.
async fn store_locked(
    tx: &mut Transaction<'_>,
    d: &str,
    topic: &str,
    messages: &[&OutgoingMessage],
    mut last: i64,
    now: i64,
    cutoff: i64,
) -> Result<(Vec<Published>, i64), Fail> {
    let mut seen = known_ids(tx, d, topic, messages).await?;
    let mut fresh: Vec<(i64, &OutgoingMessage)> = Vec::with_capacity(messages.len());
    let mut published = Vec::with_capacity(messages.len());
    for message in messages {
        if let Some(&(seq, at)) = seen.get(&message.id)
            && at >= cutoff
        {
            published.push(Published {
                sequence: to_u64(seq),
                duplicate: true,
            });
            continue;
        }
        last += 1;
        seen.insert(message.id, (last, now));
        fresh.push((last, message));
        published.push(Published {
            sequence: to_u64(last),
            duplicate: false,
        });
    }
    let mut start = 0;
    while start < fresh.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < fresh.len() && end - start < ROWS_PER_STATEMENT {
            let size = fresh[end].1.payload.len();
            if end > start && bytes + size > BYTES_PER_STATEMENT {
                break;
            }
            bytes += size;
            end += 1;
        }
        insert_messages(tx, d, topic, &fresh[start..end], now).await?;
        start = end;
    }
    for chunk in fresh.chunks(ROWS_PER_STATEMENT * 4) {
        let mut params = Vec::with_capacity(chunk.len() * 4);
        for (seq, message) in chunk {
            params.push(Value::from(topic.as_bytes()));
            params.push(Value::from(message.id.as_bytes().as_slice()));
            params.push(Value::from(*seq));
            params.push(Value::from(now));
        }
        tx.exec_drop(
            format!(
                "INSERT INTO {d}.bus_dedup (topic, message_id, seq, published_at) VALUES {}
                 ON DUPLICATE KEY UPDATE seq = VALUES(seq), published_at = VALUES(published_at)",
                vec!["(?,?,?,?)"; chunk.len()].join(",")
            ),
            params,
        )
        .await?;
    }
    Ok((published, last))
}

/// The de-duplication rows (sequence, publish time) of the messages' ids in `topic`.
async fn known_ids(
    tx: &mut Transaction<'_>,
    d: &str,
    topic: &str,
    messages: &[&OutgoingMessage],
) -> Result<HashMap<Uuid, (i64, i64)>, Fail> {
    let mut ids: Vec<Uuid> = messages.iter().map(|message| message.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut seen = HashMap::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT * 4) {
        let mut params = vec![Value::from(topic.as_bytes())];
        params.extend(chunk.iter().map(|id| Value::from(id.as_bytes().as_slice())));
        let rows: Vec<(Vec<u8>, i64, i64)> = tx
            .exec(
                format!(
                    "SELECT message_id, seq, published_at FROM {d}.bus_dedup
                     WHERE topic = ? AND message_id IN ({})",
                    placeholders(chunk.len())
                ),
                params,
            )
            .await?;
        for (id, seq, at) in rows {
            if let Ok(id) = Uuid::from_slice(&id) {
                seen.insert(id, (seq, at));
            }
        }
    }
    Ok(seen)
}

async fn insert_messages(
    tx: &mut Transaction<'_>,
    d: &str,
    topic: &str,
    rows: &[(i64, &OutgoingMessage)],
    now: i64,
) -> Result<(), Fail> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut params = Vec::with_capacity(rows.len() * 7);
    for (seq, message) in rows {
        params.push(Value::from(topic.as_bytes()));
        params.push(Value::from(*seq));
        params.push(Value::from(message.id.as_bytes().as_slice()));
        params.push(message.key.as_deref().map_or(Value::NULL, Value::from));
        params.push(Value::from(message.payload.as_slice()));
        params.push(headers_value(&message.headers));
        params.push(Value::from(now));
    }
    tx.exec_drop(
        format!(
            "INSERT INTO {d}.bus_messages
                (topic, seq, message_id, msg_key, payload, headers, published_at) VALUES {}",
            vec!["(?,?,?,?,?,?,?)"; rows.len()].join(",")
        ),
        params,
    )
    .await?;
    Ok(())
}

/// The relay's checkpoint, 0 when it never ran; with `lock`, the relay's row is locked until
/// commit (created at 0 if missing), so two relays of one name take turns.
pub(crate) async fn relay_checkpoint(
    tx: &mut Transaction<'_>,
    d: &str,
    name: &str,
    lock: bool,
) -> Result<Position, Fail> {
    let select = format!(
        "SELECT position FROM {d}.bus_relays WHERE name = ?{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    if let Some(position) = tx
        .exec_first::<i64, _, _>(&select, (name.as_bytes(),))
        .await?
    {
        return Ok(to_u64(position));
    }
    if !lock {
        return Ok(0);
    }
    tx.exec_drop(
        format!(
            "INSERT INTO {d}.bus_relays (name, position, updated_at) VALUES (?, 0, ?)
             ON DUPLICATE KEY UPDATE name = name"
        ),
        (name.as_bytes(), now_micros()),
    )
    .await?;
    let position: Option<i64> = tx.exec_first(&select, (name.as_bytes(),)).await?;
    Ok(position.map_or(0, to_u64))
}

/// Publishes the batch's messages from events after the stored checkpoint and moves the
/// checkpoint to `through`, in the caller's transaction: both commit, or neither.
pub(crate) async fn relay(
    tx: &mut Transaction<'_>,
    d: &str,
    name: &str,
    batch: &[(Position, Topic, OutgoingMessage)],
    through: Position,
    window: Duration,
) -> Result<(), Fail> {
    // Another relay of the same name waits here until this one commits, then skips what
    // this one published.
    let done = relay_checkpoint(tx, d, name, true).await?;
    let now = now_micros();
    let mut by_topic: BTreeMap<&str, Vec<&OutgoingMessage>> = BTreeMap::new();
    for (position, topic, message) in batch {
        if *position > done {
            by_topic.entry(topic.as_str()).or_default().push(message);
        }
    }
    // Topics are locked in name order, so relays and publishers never wait in a cycle.
    for (topic, messages) in &by_topic {
        store_in_topic(tx, d, topic, messages, now, window).await?;
    }
    if through > done {
        tx.exec_drop(
            format!("UPDATE {d}.bus_relays SET position = ?, updated_at = ? WHERE name = ?"),
            (to_i64(through), now, name.as_bytes()),
        )
        .await?;
    }
    Ok(())
}
