//! The bus's dead-letter queue: moving a failed message in (`bury`), listing, replaying to the
//! group that failed it, and discarding.

use std::collections::{BTreeMap, BTreeSet};

use deadpool_postgres::Transaction;
use mammoth_core::bus::{BusError, ConsumerGroup, DeadLetter, DeadLetterFilter};
use tokio_postgres::types::ToSql;

use super::publish::{lock_topic, set_topic_head};
use super::sql::{BusSql, failed, message_from_row, to_i64};

/// Moves pending message `seq` of `group` into the dead-letter queue with `error` as its last
/// error, and returns the dead letter's id.
///
/// # Errors
/// [`BusError::Backend`], also when the pending row or its message is missing (the
/// transaction then rolls back and the row stays).
pub(crate) async fn bury(
    tx: &Transaction<'_>,
    sql: &BusSql,
    group: i64,
    seq: i64,
    error: &str,
    now: i64,
) -> Result<i64, BusError> {
    let action = "dead-lettering a message";
    let statement = tx.prepare_cached(&sql.bury).await.map_err(failed(action))?;
    let row = tx
        .query_opt(&statement, &[&group, &seq, &error, &now])
        .await
        .map_err(failed(action))?;
    row.map(|row| row.get(0)).ok_or_else(|| {
        BusError::backend(
            "postgres",
            action,
            format!(
                "pending delivery {seq} of group {group} or its message is missing (deleted by hand?)"
            ),
            false,
        )
    })
}

/// The four filter parameters of the dead-letter statements, in order.
struct Selection {
    id: Option<i64>,
    topic: Option<String>,
    group: Option<String>,
    error_contains: Option<String>,
}

impl Selection {
    fn new(filter: &DeadLetterFilter) -> Self {
        Self {
            // Ids are row numbers; anything else names no dead letter.
            id: filter.id.as_ref().map(|id| id.trim().parse().unwrap_or(-1)),
            topic: filter.topic.as_ref().map(|topic| topic.as_str().to_owned()),
            group: filter.group.as_ref().map(|group| group.as_str().to_owned()),
            error_contains: filter.error_contains.clone(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 4] {
        [&self.id, &self.topic, &self.group, &self.error_contains]
    }
}

/// Up to `limit` dead letters passing `filter`, oldest first.
pub(crate) async fn list(
    client: &deadpool_postgres::Client,
    sql: &BusSql,
    filter: &DeadLetterFilter,
    limit: usize,
) -> Result<Vec<DeadLetter>, BusError> {
    let action = "listing dead letters";
    let selection = Selection::new(filter);
    let limit = to_i64(limit as u64);
    let mut params = selection.params().to_vec();
    params.push(&limit);
    let statement = client
        .prepare_cached(&sql.list_dead)
        .await
        .map_err(failed(action))?;
    let rows = client
        .query(&statement, &params)
        .await
        .map_err(failed(action))?;
    rows.iter()
        .map(|row| {
            Ok(DeadLetter {
                id: row.get::<_, i64>(0).to_string(),
                group: ConsumerGroup::new(row.get::<_, String>(1))?,
                attempts: u32::try_from(row.get::<_, i32>(2)).unwrap_or(0),
                last_error: row.get(3),
                first_failed_at_micros: row.get(4),
                last_failed_at_micros: row.get(5),
                message: message_from_row(row, 6)?,
            })
        })
        .collect()
}

/// Delivers every dead letter passing `filter` to its group again, as a new message only that
/// group sees (a fresh sequence number in its topic), with a fresh attempt count; removes it
/// from the queue. The letters are locked first (two replays take turns and the second finds
/// them gone), then their topics in name order, as publishes lock them.
pub(crate) async fn replay(
    tx: &Transaction<'_>,
    sql: &BusSql,
    filter: &DeadLetterFilter,
) -> Result<u64, BusError> {
    let action = "replaying dead letters";
    let selection = Selection::new(filter);
    let statement = tx
        .prepare_cached(&sql.lock_dead)
        .await
        .map_err(failed(action))?;
    let letters: Vec<(i64, String)> = tx
        .query(&statement, &selection.params())
        .await
        .map_err(failed(action))?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let topics: BTreeSet<&str> = letters.iter().map(|(_, topic)| topic.as_str()).collect();
    let mut heads: BTreeMap<&str, i64> = BTreeMap::new();
    for topic in topics {
        heads.insert(topic, lock_topic(tx, sql, topic, action).await?);
    }
    let statement = tx
        .prepare_cached(&sql.replay_one)
        .await
        .map_err(failed(action))?;
    for (id, topic) in &letters {
        let Some(head) = heads.get_mut(topic.as_str()) else {
            continue;
        };
        *head += 1;
        tx.execute(&statement, &[id, &*head])
            .await
            .map_err(failed(action))?;
    }
    for (topic, head) in heads {
        set_topic_head(tx, sql, topic, head, action).await?;
    }
    Ok(letters.len() as u64)
}

/// Deletes every dead letter passing `filter`.
pub(crate) async fn discard(
    client: &deadpool_postgres::Client,
    sql: &BusSql,
    filter: &DeadLetterFilter,
) -> Result<u64, BusError> {
    let action = "discarding dead letters";
    let selection = Selection::new(filter);
    let statement = client
        .prepare_cached(&sql.discard_dead)
        .await
        .map_err(failed(action))?;
    client
        .execute(&statement, &selection.params())
        .await
        .map_err(failed(action))
}
