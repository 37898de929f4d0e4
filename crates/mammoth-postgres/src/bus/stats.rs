//! Statistics per topic and group (`mammoth bus stats`), and garbage collection of messages
//! every group is done with.

use std::collections::BTreeMap;
use std::time::Duration;

use deadpool_postgres::Transaction;
use mammoth_core::bus::{BusError, TopicStats};
use mammoth_core::now_micros;

use super::sql::{BusSql, failed, micros, to_u64};

/// One row per (topic, group), plus one per topic nobody subscribes to.
pub(crate) async fn stats(
    client: &deadpool_postgres::Client,
    sql: &BusSql,
) -> Result<Vec<TopicStats>, BusError> {
    let action = "reading bus statistics";
    let now = now_micros();
    let run = async |text: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]| {
        let statement = client.prepare_cached(text).await?;
        client.query(&statement, params).await
    };
    let messages: BTreeMap<String, u64> = run(&sql.count_messages, &[])
        .await
        .map_err(failed(action))?
        .iter()
        .map(|row| (row.get(0), to_u64(row.get(1))))
        .collect();
    let mut dead: BTreeMap<(String, String), u64> = run(&sql.count_dead, &[])
        .await
        .map_err(failed(action))?
        .iter()
        .map(|row| ((row.get(0), row.get(1)), to_u64(row.get(2))))
        .collect();
    let mut out = Vec::new();
    for row in run(&sql.group_stats, &[&now])
        .await
        .map_err(failed(action))?
    {
        let (topic, group): (String, String) = (row.get(0), row.get(1));
        out.push(TopicStats {
            messages: messages.get(&topic).copied().unwrap_or(0),
            dead_letters: dead.remove(&(topic.clone(), group.clone())).unwrap_or(0),
            depth: to_u64(row.get(2)),
            in_flight: to_u64(row.get(3)),
            retrying: to_u64(row.get(4)),
            topic,
            group: Some(group),
        });
    }
    for (topic, count) in &messages {
        if !out.iter().any(|row| row.topic == *topic) {
            out.push(TopicStats {
                topic: topic.clone(),
                messages: *count,
                depth: *count,
                ..TopicStats::default()
            });
        }
    }
    out.sort_by(|a, b| (&a.topic, &a.group).cmp(&(&b.topic, &b.group)));
    Ok(out)
}

/// Deletes expired de-duplication entries and the messages of each subscribed topic that every
/// group has pulled and none has pending. Returns the messages deleted.
///
/// Safe beside concurrent consumers: cursors only move forward and a pull only adds pending
/// rows at or above the cursor it moves, so a floor read from an older snapshot is never too
/// high.
pub(crate) async fn collect_garbage(
    tx: &Transaction<'_>,
    sql: &BusSql,
    window: Duration,
) -> Result<u64, BusError> {
    let action = "collecting garbage";
    let cutoff = now_micros().saturating_sub(micros(window));
    let statement = tx
        .prepare_cached(&sql.forget_ids)
        .await
        .map_err(failed(action))?;
    tx.execute(&statement, &[&cutoff])
        .await
        .map_err(failed(action))?;
    let statement = tx
        .prepare_cached(&sql.floors)
        .await
        .map_err(failed(action))?;
    let floors: Vec<(String, i64)> = tx
        .query(&statement, &[])
        .await
        .map_err(failed(action))?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let statement = tx
        .prepare_cached(&sql.delete_done)
        .await
        .map_err(failed(action))?;
    let mut deleted = 0;
    for (topic, floor) in floors {
        deleted += tx
            .execute(&statement, &[&topic, &floor])
            .await
            .map_err(failed(action))?;
    }
    Ok(deleted)
}
