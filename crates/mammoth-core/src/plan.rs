//! Group planning for the SQL writers (PostgreSQL, MySQL): the pure part of a group commit.
//!
//! A writer task drains a group of appends, then [`plan`] decides each one against the stream
//! heads it caches and the event ids already stored: an idempotent replay or a bad id is
//! answered at once ([`Outcome::Done`]), an append whose ids an earlier append of the same
//! group is writing waits for the next group ([`Outcome::Deferred`]), a version conflict seen
//! against a cached head sends that stream back to be re-read, and every accepted append
//! becomes consecutive rows of one insert ([`Rows`], as column arrays). The writer does the
//! I/O; [`reply_all`] answers what was decided without writing. [`crate::validate_append`]
//! has checked each append's input before it was queued.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::validate::{PreparedEvent, StoredAt, idempotent_replay};
use crate::{AppendResult, ExpectedVersion, StoreError, StreamId, Version};

/// One queued append, as the planner sees it (the writer's request type implements it).
pub trait GroupAppend {
    /// The stream appended to.
    fn stream(&self) -> &StreamId;
    /// The version the caller expects the stream to be at.
    fn expected(&self) -> ExpectedVersion;
    /// The validated events.
    fn events(&self) -> &[PreparedEvent];
}

/// What planning decided for one append.
#[derive(Debug)]
pub enum Outcome {
    /// Answered without writing: a replay, a conflict, or a bad id.
    Done(Result<AppendResult, StoreError>),
    /// Its ids are being written by an earlier append of the same group: answer it in the
    /// next group, once those rows are committed and can be looked up.
    Deferred,
    /// Written as rows `offset..offset + count` of the group.
    Written {
        /// The stream version of its first event.
        first_version: Version,
        /// Its first row's index among the group's rows.
        offset: u64,
        /// How many rows (events) it wrote.
        count: u64,
    },
}

/// The group's rows as column arrays (for `unnest` or a multi-row insert), and the stream
/// heads they leave.
#[derive(Debug, Default)]
pub struct Rows<'a> {
    /// How many rows.
    pub count: u64,
    /// Each row's stream id.
    pub streams: Vec<&'a str>,
    /// Each row's stream version.
    pub versions: Vec<i64>,
    /// Each row's event id.
    pub ids: Vec<Uuid>,
    /// Each row's event type.
    pub types: Vec<&'a str>,
    /// Each row's schema version.
    pub schema_versions: Vec<i64>,
    /// Each row's data (JSON text).
    pub data: Vec<&'a str>,
    /// Each row's metadata (JSON text).
    pub metadata: Vec<&'a str>,
    /// The head of every stream the rows write, after them.
    pub heads: HashMap<StreamId, Version>,
}

/// Decides each append of `group` against the cached stream `heads` and the stored ids
/// (`found`: where each given id already is). `fresh` names the streams whose heads were just
/// read from the database: a conflict on one of them is final.
///
/// # Errors
/// The streams whose cached head refused an append and must be re-read before a conflict is
/// reported (sorted, once each); plan again with them in `fresh`.
pub fn plan<'a, A: GroupAppend>(
    group: &'a [A],
    heads: &HashMap<StreamId, Version>,
    fresh: &HashSet<StreamId>,
    found: &HashMap<Uuid, StoredAt>,
) -> Result<(Vec<Outcome>, Rows<'a>), Vec<StreamId>> {
    let mut rows = Rows::default();
    let mut outcomes = Vec::with_capacity(group.len());
    let mut written_ids: HashSet<Uuid> = HashSet::new();
    let mut stale = Vec::new();
    for append in group {
        let (stream, events) = (append.stream(), append.events());
        if events.iter().any(|event| event.id_given) {
            if events
                .iter()
                .any(|event| event.id_given && written_ids.contains(&event.id))
            {
                outcomes.push(Outcome::Deferred);
                continue;
            }
            let ids: Vec<Uuid> = events.iter().map(|event| event.id).collect();
            let places: Vec<Option<StoredAt>> = events
                .iter()
                .map(|event| {
                    event
                        .id_given
                        .then(|| found.get(&event.id).cloned())
                        .flatten()
                })
                .collect();
            match idempotent_replay(stream, &ids, &places) {
                Ok(None) => {}
                Ok(Some(first)) => {
                    outcomes.push(Outcome::Done(Ok(first)));
                    continue;
                }
                Err(error) => {
                    outcomes.push(Outcome::Done(Err(error)));
                    continue;
                }
            }
        }
        let current = rows
            .heads
            .get(stream)
            .or_else(|| heads.get(stream))
            .copied()
            .unwrap_or(0);
        let expected = append.expected();
        if !expected.is_satisfied_by(current) {
            if !fresh.contains(stream) && !rows.heads.contains_key(stream) {
                stale.push(stream.clone());
            }
            outcomes.push(Outcome::Done(Err(StoreError::Conflict {
                stream: stream.clone(),
                expected,
                actual: current,
            })));
            continue;
        }
        let offset = rows.count;
        for (index, event) in events.iter().enumerate() {
            rows.streams.push(stream.as_str());
            rows.versions
                .push(i64::try_from(current + 1 + index as Version).unwrap_or(i64::MAX));
            rows.ids.push(event.id);
            rows.types.push(&event.event_type);
            rows.schema_versions.push(i64::from(event.schema_version));
            rows.data.push(&event.data);
            rows.metadata.push(&event.metadata);
            written_ids.insert(event.id);
        }
        let count = events.len() as u64;
        rows.count += count;
        rows.heads.insert(stream.clone(), current + count);
        outcomes.push(Outcome::Written {
            first_version: current + 1,
            offset,
            count,
        });
    }
    if stale.is_empty() {
        Ok((outcomes, rows))
    } else {
        stale.sort_unstable();
        stale.dedup();
        Err(stale)
    }
}

/// Sends every append answered without writing its result through `send`, and returns the
/// deferred ones (for the next group). A [`Outcome::Written`] here is a writer bug: it is
/// answered with an internal `backend` error rather than left without a reply.
pub fn reply_all<A>(
    group: Vec<A>,
    outcomes: Vec<Outcome>,
    backend: &'static str,
    mut send: impl FnMut(A, Result<AppendResult, StoreError>),
) -> Vec<A> {
    let mut deferred = Vec::new();
    for (append, outcome) in group.into_iter().zip(outcomes) {
        match outcome {
            Outcome::Done(result) => send(append, result),
            Outcome::Deferred => deferred.push(append),
            Outcome::Written { .. } => send(
                append,
                Err(StoreError::backend(
                    backend,
                    "appending events",
                    "internal error: a written append has no result",
                    false,
                )),
            ),
        }
    }
    deferred
}

#[cfg(test)]
mod tests;
