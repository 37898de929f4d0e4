//! Group commit for publishes: one task per bus handle takes the publishes queued while its
//! last transaction ran and commits them in one transaction (topics locked in name order),
//! so concurrent single-message publishes share the topic lock, the round trips and the
//! fsync instead of queueing on the topic row one by one. A group that fails is run again
//! one publish per transaction, so one bad publish (a payload over `max_allowed_packet`)
//! fails alone. Each publisher still gets its own results and returns only after its
//! transaction committed.

use std::collections::BTreeMap;
use std::time::Duration;

use mammoth_core::bus::{BusError, OutgoingMessage, Published, Topic};
use mammoth_core::now_micros;
use mysql_async::Transaction;
use tokio::sync::{mpsc, oneshot};

use super::publish::{publish, store_in_topic};
use super::rows::Fail;
use super::{Db, transaction};

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

/// Starts the task on the current tokio runtime; it ends when every sender is dropped.
pub(crate) fn spawn(db: Db, window: Duration) -> mpsc::UnboundedSender<Job> {
    let (jobs, queue) = mpsc::unbounded_channel();
    tokio::spawn(run(db, window, queue));
    jobs
}

async fn run(db: Db, window: Duration, mut queue: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut count = first.messages.len();
        let mut group = vec![first];
        while count < GROUP_MESSAGES {
            let Ok(job) = queue.try_recv() else { break };
            count += job.messages.len();
            group.push(job);
        }
        commit(&db, window, group).await;
    }
}

async fn commit(db: &Db, window: Duration, group: Vec<Job>) {
    if group.len() > 1 {
        match together(db, window, &group).await {
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
        let result = alone(db, window, &job).await;
        let _ = job.reply.send(result);
    }
}

async fn alone(db: &Db, window: Duration, job: &Job) -> Result<Vec<Published>, BusError> {
    transaction!(db, "publishing", |tx| publish(
        tx,
        db.d(),
        &job.topic,
        &job.messages,
        window
    ))
}

async fn together(
    db: &Db,
    window: Duration,
    group: &[Job],
) -> Result<Vec<Vec<Published>>, BusError> {
    transaction!(db, "publishing", |tx| store_group(
        tx,
        db.d(),
        group,
        window
    ))
}

/// Stores every job's messages, topic by topic in name order, each topic's in arrival order
/// (a duplicate id across two publishers is found as within one), and splits the results
/// back per job.
async fn store_group(
    tx: &mut Transaction<'_>,
    d: &str,
    group: &[Job],
    window: Duration,
) -> Result<Vec<Vec<Published>>, Fail> {
    let now = now_micros();
    let mut by_topic: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, job) in group.iter().enumerate() {
        by_topic.entry(job.topic.as_str()).or_default().push(index);
    }
    let mut results = vec![Vec::new(); group.len()];
    for (topic, jobs) in by_topic {
        let messages: Vec<&OutgoingMessage> = jobs
            .iter()
            .flat_map(|&index| group[index].messages.iter())
            .collect();
        let mut published = store_in_topic(tx, d, topic, &messages, now, window)
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
