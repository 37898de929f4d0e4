//! `stats` of the NATS bus: depth and in-flight counts from each durable consumer's info,
//! retrying from the failures bucket (records whose retry is not due yet), dead letters from
//! the dead-letter stream's per-subject counts, messages from the message stream's.

use std::collections::{BTreeMap, HashMap};

use async_nats::jetstream::{consumer, stream};
use futures_util::TryStreamExt as _;
use mammoth_core::bus::{BusError, TopicStats};

use crate::bus::{NatsBus, nats};
use crate::consumer::FailureRecord;
use crate::names;

impl NatsBus {
    /// `stats`: per topic and group, from the consumers' info, the failures bucket and the
    /// dead-letter stream's subject counts.
    pub(crate) async fn collect_stats(&self) -> Result<Vec<TopicStats>, BusError> {
        let names = &self.shared.names;
        let per_subject =
            subject_counts(&self.shared.messages, &format!("{}.>", names.prefix)).await?;
        let dead_counts =
            subject_counts(&self.shared.dead, &format!("{}.>", names.dead_prefix)).await?;
        let retrying = self.retrying_per_consumer().await?;
        let mut rows: BTreeMap<(String, Option<String>), TopicStats> = BTreeMap::new();
        for (subject, count) in &per_subject {
            if let Some(topic) = names.topic_of(subject) {
                let row = rows.entry((topic.to_string(), None)).or_default();
                row.topic = topic.to_string();
                row.messages = *count;
            }
        }
        let infos: Vec<consumer::Info> = self
            .shared
            .messages
            .consumers()
            .try_collect()
            .await
            .map_err(nats("listing consumers"))?;
        for info in infos {
            let Some((topic, group)) = names::consumer_parts(&info.name) else {
                continue;
            };
            rows.remove(&(topic.to_string(), None));
            let waiting = retrying.get(&info.name).copied().unwrap_or(0);
            let row = TopicStats {
                topic: topic.to_string(),
                group: Some(group.to_string()),
                messages: per_subject
                    .get(&names.subject(&topic))
                    .copied()
                    .unwrap_or(0),
                depth: info.num_pending,
                in_flight: u64::try_from(info.num_ack_pending)
                    .unwrap_or(0)
                    .saturating_sub(waiting),
                retrying: waiting,
                dead_letters: dead_counts
                    .get(&names.dead_subject(&topic, &group))
                    .copied()
                    .unwrap_or(0),
            };
            rows.insert((row.topic.clone(), row.group.clone()), row);
        }
        // Dead letters of a group whose consumer was deleted still show.
        for (subject, count) in &dead_counts {
            if let Some((topic, group)) = names.dead_parts(subject) {
                let key = (topic.to_string(), Some(group.to_string()));
                rows.entry(key).or_insert_with(|| TopicStats {
                    topic: topic.to_string(),
                    group: Some(group.to_string()),
                    dead_letters: *count,
                    ..TopicStats::default()
                });
            }
        }
        Ok(rows.into_values().collect())
    }

    /// Per consumer: the failure records whose retry is not due yet.
    async fn retrying_per_consumer(&self) -> Result<HashMap<String, u64>, BusError> {
        let now = crate::consumer::now_micros();
        let mut counts = HashMap::new();
        for (key, value) in self.shared.failures.entries().await? {
            let Some((consumer, _)) = key.rsplit_once(':') else {
                continue;
            };
            let record = serde_json::from_slice::<FailureRecord>(&value).ok();
            if record.is_some_and(|record| record.due_at_micros > now) {
                *counts.entry(consumer.to_owned()).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }
}

/// Messages per subject of `stream` under `filter`.
async fn subject_counts(
    stream: &stream::Stream,
    filter: &str,
) -> Result<HashMap<String, u64>, BusError> {
    let info = stream
        .info_with_subjects(filter)
        .await
        .map_err(nats("reading stream statistics"))?;
    info.map_ok(|(subject, count)| (subject, u64::try_from(count).unwrap_or(0)))
        .try_collect()
        .await
        .map_err(nats("reading stream statistics"))
}
