//! Publishing into the bus, and the outbox relay's publish-and-checkpoint, both inside a
//! transaction the caller commits.
//!
//! Every publish locks its topic's `bus_topics` row before it reads the de-duplication table
//! or assigns a sequence number, and holds it until commit: publishes to one topic serialize,
//! so they commit in sequence order and a group cursor never passes a message still to commit.
//! Transactions that publish to several topics lock them in name order, so they cannot
//! deadlock one another.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use deadpool_postgres::Transaction;
use mammoth_core::Position;
use mammoth_core::bus::{BusError, OutgoingMessage, Published, Topic};
use uuid::Uuid;

use super::sql::{BusSql, failed, headers_to_arrays, micros, to_i64, to_u64};

/// Refuses text PostgreSQL cannot store: a NUL character in a key or a header (`text`
/// columns reject it; the payload is `bytea` and takes any bytes).
///
/// # Errors
/// [`BusError::InvalidInput`] naming the message, the field and the fix.
pub(crate) fn check_storable<'a>(
    messages: impl IntoIterator<Item = &'a OutgoingMessage>,
) -> Result<(), BusError> {
    for message in messages {
        let key = message.key.as_deref().filter(|key| key.contains('\0'));
        let header = message
            .headers
            .iter()
            .find(|(name, value)| name.contains('\0') || value.contains('\0'));
        let field = match (key, header) {
            (Some(_), _) => "its key".to_owned(),
            (None, Some((name, _))) => format!("header {name:?}"),
            (None, None) => continue,
        };
        return Err(BusError::InvalidInput(format!(
            "message {}: {field} contains a NUL character, which PostgreSQL text cannot hold; remove it or carry the value in the payload",
            message.id
        )));
    }
    Ok(())
}

/// Locks `topic`'s head row (creating it) and returns its last sequence number.
pub(crate) async fn lock_topic(
    tx: &Transaction<'_>,
    sql: &BusSql,
    topic: &str,
    action: &'static str,
) -> Result<i64, BusError> {
    let statement = tx
        .prepare_cached(&sql.lock_topic)
        .await
        .map_err(failed(action))?;
    let row = tx
        .query_one(&statement, &[&topic])
        .await
        .map_err(failed(action))?;
    Ok(row.get(0))
}

/// Moves `topic`'s head to `last_seq` (its row is locked by [`lock_topic`]) and notifies the
/// bus's listeners of `topic` at commit.
pub(crate) async fn set_topic_head(
    tx: &Transaction<'_>,
    sql: &BusSql,
    topic: &str,
    last_seq: i64,
    action: &'static str,
) -> Result<(), BusError> {
    let statement = tx
        .prepare_cached(&sql.set_topic_head)
        .await
        .map_err(failed(action))?;
    tx.execute(&statement, &[&topic, &last_seq, &sql.channel])
        .await
        .map_err(failed(action))?;
    Ok(())
}

/// Stores `messages` in `topic` unless their id was published there within `window`, after
/// locking the topic.
pub(crate) async fn publish(
    tx: &Transaction<'_>,
    sql: &BusSql,
    topic: &Topic,
    messages: &[&OutgoingMessage],
    window: Duration,
    action: &'static str,
) -> Result<Vec<Published>, BusError> {
    let now = mammoth_core::now_micros();
    let cutoff = now.saturating_sub(micros(window));
    let last = lock_topic(tx, sql, topic.as_str(), action).await?;
    let ids: Vec<Uuid> = messages.iter().map(|message| message.id).collect();
    let statement = tx
        .prepare_cached(&sql.find_duplicates)
        .await
        .map_err(failed(action))?;
    let mut seen: HashMap<Uuid, i64> = tx
        .query(&statement, &[&topic.as_str(), &ids])
        .await
        .map_err(failed(action))?
        .iter()
        .filter(|row| row.get::<_, i64>(2) >= cutoff)
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let mut published = Vec::with_capacity(messages.len());
    let mut fresh: Vec<(i64, &OutgoingMessage)> = Vec::new();
    let mut next = last;
    for message in messages {
        if let Some(&seq) = seen.get(&message.id) {
            published.push(Published {
                sequence: to_u64(seq),
                duplicate: true,
            });
            continue;
        }
        next += 1;
        seen.insert(message.id, next);
        fresh.push((next, message));
        published.push(Published {
            sequence: to_u64(next),
            duplicate: false,
        });
    }
    if fresh.is_empty() {
        return Ok(published);
    }
    insert(tx, sql, topic, &fresh, now, action).await?;
    Ok(published)
}

/// Inserts the numbered messages, remembers their ids, moves the topic's head past them and
/// notifies the bus's listeners of the topic at commit, in one statement (the fewer round trips under the topic's lock, the less publishes wait).
async fn insert(
    tx: &Transaction<'_>,
    sql: &BusSql,
    topic: &Topic,
    fresh: &[(i64, &OutgoingMessage)],
    now: i64,
    action: &'static str,
) -> Result<(), BusError> {
    let seqs: Vec<i64> = fresh.iter().map(|(seq, _)| *seq).collect();
    let head = seqs.iter().copied().max().unwrap_or(0);
    let ids: Vec<Uuid> = fresh.iter().map(|(_, message)| message.id).collect();
    let keys: Vec<Option<&str>> = fresh
        .iter()
        .map(|(_, message)| message.key.as_deref())
        .collect();
    let payloads: Vec<&[u8]> = fresh
        .iter()
        .map(|(_, message)| message.payload.as_slice())
        .collect();
    // Headers go as two flat arrays; message n's are the 1-based slice lo..=hi.
    let (mut names, mut values, mut los, mut his) = (Vec::new(), Vec::new(), vec![], vec![]);
    for (_, message) in fresh {
        let (n, v) = headers_to_arrays(&message.headers);
        los.push(i32::try_from(names.len() + 1).unwrap_or(i32::MAX));
        names.extend(n);
        values.extend(v);
        his.push(i32::try_from(names.len()).unwrap_or(i32::MAX));
    }
    let statement = tx
        .prepare_cached(&sql.insert_messages)
        .await
        .map_err(failed(action))?;
    tx.execute(
        &statement,
        &[
            &topic.as_str(),
            &seqs,
            &ids,
            &keys,
            &payloads,
            &names,
            &values,
            &now,
            &los,
            &his,
            &head,
            &sql.channel,
        ],
    )
    .await
    .map_err(failed(action))?;
    Ok(())
}

/// The relay's checkpoint, 0 when it never ran.
pub(crate) async fn relay_checkpoint(
    client: &deadpool_postgres::Client,
    sql: &BusSql,
    name: &str,
) -> Result<Position, BusError> {
    let action = "reading a relay checkpoint";
    let statement = client
        .prepare_cached(&sql.relay_checkpoint)
        .await
        .map_err(failed(action))?;
    let row = client
        .query_opt(&statement, &[&name])
        .await
        .map_err(failed(action))?;
    Ok(row.map_or(0, |row| to_u64(row.get(0))))
}

/// Publishes the batch's messages from events after the stored checkpoint and moves the
/// checkpoint to `through`, in the caller's transaction: both commit, or neither. The relay's
/// row is locked first, so two relays of one name take turns and the second skips what the
/// first published.
pub(crate) async fn relay(
    tx: &Transaction<'_>,
    sql: &BusSql,
    name: &str,
    batch: &[(Position, Topic, OutgoingMessage)],
    through: Position,
    window: Duration,
) -> Result<(), BusError> {
    let action = "relaying events";
    let now = mammoth_core::now_micros();
    let statement = tx
        .prepare_cached(&sql.lock_relay)
        .await
        .map_err(failed(action))?;
    let done = to_u64(
        tx.query_one(&statement, &[&name, &now])
            .await
            .map_err(failed(action))?
            .get(0),
    );
    // By topic in name order (the lock order), each topic's messages in batch order.
    let mut by_topic: BTreeMap<&Topic, Vec<&OutgoingMessage>> = BTreeMap::new();
    for (position, topic, message) in batch {
        // Another relay of the same name got here first: what it published stays once.
        if *position > done {
            by_topic.entry(topic).or_default().push(message);
        }
    }
    for (topic, messages) in by_topic {
        publish(tx, sql, topic, &messages, window, action).await?;
    }
    if through > done {
        let statement = tx
            .prepare_cached(&sql.save_relay)
            .await
            .map_err(failed("saving a relay checkpoint"))?;
        tx.execute(&statement, &[&name, &to_i64(through), &now])
            .await
            .map_err(failed("saving a relay checkpoint"))?;
    }
    Ok(())
}
