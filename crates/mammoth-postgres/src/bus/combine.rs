//! Group commit for publishes: one task per bus handle takes the publishes queued while its
//! last transaction ran and commits them in one transaction (topics locked in name order, as
//! every bus transaction locks them), so concurrent publishes share the topic's head row lock,
//! the round trips and the WAL flush instead of queueing on the row one transaction at a time.
//! The head row stays locked until commit, so gap safety is the same as for a lone publish.
//!
//! A group that fails is run again one publish per transaction, so one bad publish fails alone
//! and the others are stored. Each publisher gets its own results and returns only once its
//! messages committed (or failed).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Transaction;
use mammoth_core::bus::{BusError, OutgoingMessage, Published, Topic};
use tokio::sync::{mpsc, oneshot};

use super::publish::publish;
use super::sql::BusSql;
use super::{Sync, transaction};
use crate::PgEventStore;

/// Messages in one group before the task commits what it has.
const GROUP_MESSAGES: usize = 1024;

/// One publish waiting for the task.
pub(crate) struct Job {
    /// Where to publish.
    pub topic: Topic,
    /// What, in order.
    pub messages: Vec<OutgoingMessage>,
    /// The publisher's results, sent once its transaction committed (or failed).
    pub reply: oneshot::Sender<Result<Vec<Published>, BusError>>,
}

/// What the task needs of the bus: not the bus handle itself, whose drop ends the task by
/// dropping the queue's sender.
struct Db {
    store: PgEventStore,
    sql: Arc<BusSql>,
    window: Duration,
}

/// Starts the task on the current tokio runtime; it ends when every sender is dropped.
pub(crate) fn spawn(
    store: PgEventStore,
    sql: Arc<BusSql>,
    window: Duration,
) -> mpsc::UnboundedSender<Job> {
    let (jobs, queue) = mpsc::unbounded_channel();
    tokio::spawn(run(Db { store, sql, window }, queue));
    jobs
}

async fn run(db: Db, mut queue: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut count = first.messages.len();
        let mut group = vec![first];
        while count < GROUP_MESSAGES {
            let Ok(job) = queue.try_recv() else { break };
            count += job.messages.len();
            group.push(job);
        }
        commit(&db, group).await;
    }
}

async fn commit(db: &Db, group: Vec<Job>) {
    if group.len() > 1 {
        match together(db, &group).await {
            Ok(results) => {
                for (job, result) in group.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(result));
                }
                return;
            }
            Err(error) => {
                tracing::debug!(%error, jobs = group.len(), "publishing as a group failed; one by one");
            }
        }
    }
    for job in group {
        let result = alone(&db.store, &db.sql, db.window, &job.topic, &job.messages).await;
        let _ = job.reply.send(result);
    }
}

/// One publish in a transaction of its own: a failed group's publishes, or a publish made
/// where the task cannot run.
pub(crate) async fn alone(
    store: &PgEventStore,
    sql: &BusSql,
    window: Duration,
    topic: &Topic,
    messages: &[OutgoingMessage],
) -> Result<Vec<Published>, BusError> {
    let messages: Vec<&OutgoingMessage> = messages.iter().collect();
    transaction!(store, Sync::Full, "publishing", |tx| publish(
        &tx,
        sql,
        topic,
        &messages,
        window,
        "publishing"
    ))
}

async fn together(db: &Db, group: &[Job]) -> Result<Vec<Vec<Published>>, BusError> {
    transaction!(&db.store, Sync::Full, "publishing", |tx| store_group(
        &tx, db, group
    ))
}

/// Stores every job's messages, topic by topic in name order, each topic's in arrival order
/// (a duplicate id across two publishers is found as within one), and splits the results
/// back per job.
async fn store_group(
    tx: &Transaction<'_>,
    db: &Db,
    group: &[Job],
) -> Result<Vec<Vec<Published>>, BusError> {
    let mut by_topic: BTreeMap<&Topic, Vec<usize>> = BTreeMap::new();
    for (index, job) in group.iter().enumerate() {
        by_topic.entry(&job.topic).or_default().push(index);
    }
    let mut results = vec![Vec::new(); group.len()];
    for (topic, jobs) in by_topic {
        let messages: Vec<&OutgoingMessage> = jobs
            .iter()
            .flat_map(|&index| group[index].messages.iter())
            .collect();
        let mut published = publish(tx, &db.sql, topic, &messages, db.window, "publishing")
            .await?
            .into_iter();
        for index in jobs {
            results[index] = published
                .by_ref()
                .take(group[index].messages.len())
                .collect();
        }
    }
    Ok(results)
}
