//! Statistics per topic and group (`mammoth bus stats`), and garbage collection of messages
//! every group is done with.

use std::collections::BTreeMap;
use std::time::Duration;

use mammoth_core::bus::TopicStats;
use mammoth_core::now_micros;
use mysql_async::Transaction;
use mysql_async::prelude::Queryable;

use super::rows::{Fail, text, to_u64};

/// A group's topic and name, then its new, due, in-flight and retrying counts.
type GroupRow = (Vec<u8>, Vec<u8>, i64, i64, i64, i64);

/// One row per (topic, group), plus one per topic nobody subscribes to.
pub(crate) async fn stats(tx: &mut Transaction<'_>, d: &str) -> Result<Vec<TopicStats>, Fail> {
    let now = now_micros();
    let mut messages: BTreeMap<String, u64> = BTreeMap::new();
    let rows: Vec<(Vec<u8>, i64)> = tx
        .exec(
            format!("SELECT topic, COUNT(*) FROM {d}.bus_messages GROUP BY topic"),
            (),
        )
        .await?;
    for (topic, count) in rows {
        messages.insert(text(topic, "topic")?, to_u64(count));
    }
    let mut dead: BTreeMap<(String, String), u64> = BTreeMap::new();
    let rows: Vec<(Vec<u8>, Vec<u8>, i64)> = tx
        .exec(
            format!(
                "SELECT topic, group_name, COUNT(*) FROM {d}.bus_dead_letters
                 GROUP BY topic, group_name"
            ),
            (),
        )
        .await?;
    for (topic, group, count) in rows {
        dead.insert(
            (text(topic, "topic")?, text(group, "group name")?),
            to_u64(count),
        );
    }
    let rows: Vec<GroupRow> = tx
        .exec(
            format!(
                "SELECT g.topic, g.name,
                    (SELECT COUNT(*) FROM {d}.bus_messages m
                     WHERE m.topic = g.topic AND m.seq >= g.next_seq AND m.only_group IS NULL),
                    (SELECT COUNT(*) FROM {d}.bus_pending p WHERE p.group_id = g.group_id
                     AND p.in_flight = 0 AND p.visible_at <= ?),
                    (SELECT COUNT(*) FROM {d}.bus_pending p WHERE p.group_id = g.group_id
                     AND p.in_flight = 1 AND p.visible_at > ?),
                    (SELECT COUNT(*) FROM {d}.bus_pending p WHERE p.group_id = g.group_id
                     AND p.in_flight = 0 AND p.attempts > 0 AND p.visible_at > ?)
                 FROM {d}.bus_groups g ORDER BY g.topic, g.name"
            ),
            (now, now, now),
        )
        .await?;
    let mut out = Vec::new();
    for (topic, group, fresh, due, in_flight, retrying) in rows {
        let (topic, group) = (text(topic, "topic")?, text(group, "group name")?);
        out.push(TopicStats {
            messages: messages.get(&topic).copied().unwrap_or(0),
            dead_letters: dead.remove(&(topic.clone(), group.clone())).unwrap_or(0),
            topic,
            group: Some(group),
            depth: to_u64(fresh + due),
            in_flight: to_u64(in_flight),
            retrying: to_u64(retrying),
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
pub(crate) async fn collect_garbage(
    tx: &mut Transaction<'_>,
    d: &str,
    window: Duration,
) -> Result<u64, Fail> {
    let cutoff = now_micros().saturating_sub(i64::try_from(window.as_micros()).unwrap_or(0));
    tx.exec_drop(
        format!("DELETE FROM {d}.bus_dedup WHERE published_at < ?"),
        (cutoff,),
    )
    .await?;
    // Per topic, everything below the lowest group cursor and the lowest pending row is
    // done. A group pulling meanwhile only raises its cursor; a replay only adds rows above
    // the topic head, so neither lowers a floor read here.
    let floors: Vec<(Vec<u8>, i64)> = tx
        .exec(
            format!(
                "SELECT g.topic, LEAST(MIN(g.next_seq), COALESCE(MIN(p.low), 9223372036854775807))
                 FROM {d}.bus_groups g
                 LEFT JOIN (SELECT group_id, MIN(seq) AS low FROM {d}.bus_pending GROUP BY group_id) p
                   ON p.group_id = g.group_id
                 GROUP BY g.topic"
            ),
            (),
        )
        .await?;
    let mut deleted = 0;
    for (topic, floor) in floors {
        tx.exec_drop(
            format!("DELETE FROM {d}.bus_messages WHERE topic = ? AND seq < ?"),
            (topic, floor),
        )
        .await?;
        deleted += tx.affected_rows();
    }
    Ok(deleted)
}
