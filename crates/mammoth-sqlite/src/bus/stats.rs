//! Statistics per topic and group (`mammoth bus stats`), and garbage collection of messages
//! every group is done with.

use std::collections::BTreeMap;
use std::time::Duration;

use mammoth_core::bus::{BusError, TopicStats};
use mammoth_core::now_micros;
use rusqlite::{Transaction, params};

use super::schema::{failed, to_u64};

/// One row per (topic, group), plus one per topic nobody subscribes to.
pub(crate) fn stats(tx: &Transaction<'_>) -> Result<Vec<TopicStats>, BusError> {
    let now = now_micros();
    let run = || -> rusqlite::Result<Vec<TopicStats>> {
        let mut messages: BTreeMap<String, u64> = BTreeMap::new();
        let mut rows = tx.prepare("SELECT topic, COUNT(*) FROM bus_messages GROUP BY topic")?;
        for row in rows.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))? {
            let (topic, count): (String, i64) = row?;
            messages.insert(topic, to_u64(count));
        }
        let mut dead: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut rows = tx.prepare(
            "SELECT topic, group_name, COUNT(*) FROM bus_dead_letters GROUP BY topic, group_name",
        )?;
        for row in rows.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))? {
            let (topic, group, count): (String, String, i64) = row?;
            dead.insert((topic, group), to_u64(count));
        }
        let mut out = Vec::new();
        let mut groups = tx.prepare(
            "SELECT g.group_id, g.topic, g.name,
                    (SELECT COUNT(*) FROM bus_messages m
                     WHERE m.topic = g.topic AND m.seq >= g.next_seq AND m.only_group IS NULL),
                    (SELECT COUNT(*) FROM bus_pending p WHERE p.group_id = g.group_id
                     AND p.in_flight = 0 AND p.visible_at <= ?1),
                    (SELECT COUNT(*) FROM bus_pending p WHERE p.group_id = g.group_id
                     AND p.in_flight = 1 AND p.visible_at > ?1),
                    (SELECT COUNT(*) FROM bus_pending p WHERE p.group_id = g.group_id
                     AND p.in_flight = 0 AND p.attempts > 0 AND p.visible_at > ?1)
             FROM bus_groups g ORDER BY g.topic, g.name",
        )?;
        let rows = groups.query_map(params![now], |row| {
            Ok((
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)? + row.get::<_, i64>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, i64>(6)?,
            ))
        })?;
        for row in rows {
            let (topic, group, depth, in_flight, retrying) = row?;
            out.push(TopicStats {
                messages: messages.get(&topic).copied().unwrap_or(0),
                dead_letters: dead.remove(&(topic.clone(), group.clone())).unwrap_or(0),
                topic,
                group: Some(group),
                depth: to_u64(depth),
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
    };
    run().map_err(failed("reading bus statistics"))
}

/// Deletes expired de-duplication entries and the messages of each subscribed topic that every
/// group has pulled and none has pending. Returns the messages deleted.
pub(crate) fn collect_garbage(tx: &Transaction<'_>, window: Duration) -> Result<u64, BusError> {
    let cutoff = now_micros().saturating_sub(i64::try_from(window.as_micros()).unwrap_or(0));
    let run = || -> rusqlite::Result<u64> {
        tx.execute("DELETE FROM bus_dedup WHERE published_at < ?1", [cutoff])?;
        // Per topic, everything below the lowest group cursor and the lowest pending row is
        // done; both minimums come straight from an index.
        let floors: Vec<(String, i64)> = tx
            .prepare(
                "SELECT g.topic, MIN(MIN(g.next_seq),
                        COALESCE(MIN((SELECT MIN(p.seq) FROM bus_pending p
                                      WHERE p.group_id = g.group_id)), 9223372036854775807))
                 FROM bus_groups g GROUP BY g.topic",
            )?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut deleted = 0;
        for (topic, floor) in floors {
            deleted += tx.execute(
                "DELETE FROM bus_messages WHERE topic = ?1 AND seq < ?2",
                params![topic, floor],
            )?;
        }
        Ok(deleted as u64)
    };
    run().map_err(failed("collecting garbage"))
}
