//! The writer task and its group commit.
//!
//! Every append of a store handle goes through one tokio task that owns a dedicated
//! connection. It takes one request, drains whatever else has queued meanwhile, checks each
//! append on its own (idempotency against stored ids, expected version against its cached
//! stream heads), and writes every accepted append of the group in one transaction: it first
//! updates the one-row `log_head` (`LAST_INSERT_ID(position + n)` hands back the new head in
//! the same round trip), whose InnoDB row lock serializes position assignment with every
//! other writer of the database until commit, then inserts the rows in multi-row `INSERT`s.
//!
//! The cached stream heads decide conflicts without a round trip. They can be stale only when
//! another process wrote the same stream; then the unique `(stream_id, version)` index rejects
//! the group, the writer rolls back, forgets the group's heads and plans it again. A conflict
//! the cache reports is re-checked against the database before it is returned.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mammoth_core::plan::{GroupAppend, Outcome, Rows, plan, reply_all};
use mammoth_core::validate::{PreparedEvent, StoredAt};
use mammoth_core::{
    AppendResult, ExpectedVersion, Position, StoreError, StreamId, Version, now_micros,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Value};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::error::{BACKEND, is_lost, is_unique_violation, my, on};
use crate::schema::Sql;

/// The most appends one group commit takes.
const MAX_GROUP_APPENDS: usize = 4_096;
/// A group stops taking appends once it holds this many events...
const MAX_GROUP_EVENTS: usize = 16_384;
/// ... or this many bytes of data and metadata.
const MAX_GROUP_BYTES: usize = 32 << 20;
/// Forget cached stream heads beyond this many (they reload on demand).
const MAX_CACHED_HEADS: usize = 200_000;
/// How often a group is planned again after another process's write broke it.
const MAX_ATTEMPTS: usize = 5;
/// The largest multi-row INSERT, in rows (a power of two: statements are cached per size).
const MAX_INSERT_ROWS: usize = 256;
/// Rows per INSERT shrink below that when their payloads pass this many bytes.
const MAX_INSERT_BYTES: usize = 4 << 20;
/// Ids or stream names looked up per query.
const LOOKUP_CHUNK: usize = 1_000;

/// What the writer task is asked to do.
pub(crate) enum Request {
    Append(Append),
    /// Finish the queued appends and stop.
    Close(oneshot::Sender<()>),
}

/// One append, validated by the caller's task before it was queued.
pub(crate) struct Append {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<PreparedEvent>,
    pub reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

impl Append {
    fn bytes(&self) -> usize {
        self.events
            .iter()
            .map(|event| event.data.len() + event.metadata.len())
            .sum()
    }
}

impl GroupAppend for Append {
    fn stream(&self) -> &StreamId {
        &self.stream
    }

    fn expected(&self) -> ExpectedVersion {
        self.expected
    }

    fn events(&self) -> &[PreparedEvent] {
        &self.events
    }
}

/// Why a group failed.
enum GroupError {
    /// Another writer took a stream version or event id first; plan again.
    Unique,
    /// The connection broke: the outcome is unknown.
    Lost(StoreError),
    /// The transaction failed and wrote nothing.
    Failed(StoreError),
}

/// Consecutive yields that bring no new append before a group stops waiting for callers.
const IDLE_YIELDS: usize = 2;
/// The most yields one group waits for callers.
const MAX_YIELDS: usize = 64;

/// Lets the callers the last group answered append again before the next group is drained
/// (the same wait as the PostgreSQL writer's, which explains it): without it closed-loop
/// callers split into two halves that take turns, and each commit carries only half of them.
/// Yields while each yield or the one after it brings more appends and fewer are queued than
/// were answered; no clock is involved.
async fn wait_for_answered(requests: &mpsc::Receiver<Request>, taken: usize, answered: usize) {
    let mut queued = requests.len();
    let mut idle = 0;
    for _ in 0..MAX_YIELDS {
        if taken + queued >= answered || idle >= IDLE_YIELDS {
            return;
        }
        tokio::task::yield_now().await;
        let now = requests.len();
        idle = if now > queued { 0 } else { idle + 1 };
        queued = now;
    }
}

fn classify(error: mysql_async::Error) -> GroupError {
    if is_unique_violation(&error) {
        GroupError::Unique
    } else if is_lost(&error) {
        GroupError::Lost(my("appending events", error))
    } else {
        GroupError::Failed(my("appending events", error))
    }
}

pub(crate) struct Writer {
    opts: Opts,
    conn: Option<Conn>,
    sql: Arc<Sql>,
    heads: HashMap<StreamId, Version>,
    head: Arc<watch::Sender<Position>>,
}

impl Writer {
    pub fn new(opts: Opts, sql: Arc<Sql>, head: Arc<watch::Sender<Position>>) -> Self {
        Self {
            opts,
            conn: None,
            sql,
            heads: HashMap::new(),
            head,
        }
    }

    /// Serves requests until the store closes or every handle is dropped.
    pub async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut carry: Vec<Append> = Vec::new();
        let mut closing = None;
        // How many callers the last group answered: most of them append again at once.
        let mut answered = 0;
        loop {
            let mut group = std::mem::take(&mut carry);
            if group.is_empty() && closing.is_none() {
                match requests.recv().await {
                    Some(Request::Append(append)) => group.push(append),
                    Some(Request::Close(reply)) => closing = Some(reply),
                    None => break,
                }
            }
            if closing.is_none() {
                wait_for_answered(&requests, group.len(), answered).await;
            }
            let mut events: usize = group.iter().map(|append| append.events.len()).sum();
            let mut bytes: usize = group.iter().map(Append::bytes).sum();
            while closing.is_none()
                && group.len() < MAX_GROUP_APPENDS
                && events < MAX_GROUP_EVENTS
                && bytes < MAX_GROUP_BYTES
            {
                match requests.try_recv() {
                    Ok(Request::Append(append)) => {
                        events += append.events.len();
                        bytes += append.bytes();
                        group.push(append);
                    }
                    Ok(Request::Close(reply)) => closing = Some(reply),
                    Err(_) => break,
                }
            }
            if group.is_empty() {
                break;
            }
            let size = group.len();
            carry = self.commit_group(group).await;
            answered = size.saturating_sub(carry.len());
        }
        requests.close();
        while let Ok(request) = requests.try_recv() {
            match request {
                Request::Append(append) => {
                    let _ = append.reply.send(Err(StoreError::Closed));
                }
                Request::Close(reply) => {
                    let _ = reply.send(());
                }
            }
        }
        if let Some(reply) = closing {
            let _ = reply.send(());
        }
    }

    /// Commits one group; returns the appends deferred to the next group.
    async fn commit_group(&mut self, group: Vec<Append>) -> Vec<Append> {
        if self.heads.len() > MAX_CACHED_HEADS {
            self.heads.clear();
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Guess new streams only on the first attempt: a retry after a unique violation
            // reads every head it does not have, so a wrong guess costs one retry, not five.
            match self.try_group(&group, attempt == 1).await {
                Ok(outcomes) => {
                    return reply_all(group, outcomes, BACKEND, |append, result| {
                        let _ = append.reply.send(result);
                    });
                }
                Err(GroupError::Unique) if attempt < MAX_ATTEMPTS => {
                    for append in &group {
                        self.heads.remove(&append.stream);
                    }
                }
                Err(GroupError::Unique) => {
                    let error = || {
                        StoreError::backend(
                            BACKEND,
                            "appending events",
                            "other processes kept taking the same stream versions or event ids; nothing was written, retry",
                            true,
                        )
                    };
                    for append in group {
                        let _ = append.reply.send(Err(error()));
                    }
                    return Vec::new();
                }
                Err(GroupError::Lost(error)) => {
                    self.conn = None;
                    self.heads.clear();
                    let message = format!(
                        "{error}; the append may or may not have been written: re-send it with the same event ids to find out"
                    );
                    for append in group {
                        let _ = append.reply.send(Err(StoreError::backend(
                            BACKEND,
                            "appending events",
                            message.clone(),
                            true,
                        )));
                    }
                    return Vec::new();
                }
                Err(GroupError::Failed(error)) if group.len() == 1 => {
                    if let Some(append) = group.into_iter().next() {
                        let _ = append.reply.send(Err(error));
                    }
                    return Vec::new();
                }
                Err(GroupError::Failed(error)) => {
                    tracing::warn!(%error, appends = group.len(), "group commit failed; retrying each append alone");
                    let mut deferred = Vec::new();
                    for append in group {
                        deferred.extend(Box::pin(self.commit_group(vec![append])).await);
                    }
                    return deferred;
                }
            }
        }
    }

    async fn connection(&mut self) -> Result<&mut Conn, StoreError> {
        if self.conn.is_none() {
            self.heads.clear();
            let conn = Conn::new(self.opts.clone())
                .await
                .map_err(on("connecting the writer"))?;
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or(StoreError::Closed)
    }

    /// Plans and writes one group. On `Ok`, every append that was written is committed.
    ///
    /// With `guess_new`, a stream whose head is not cached and that every append of the group
    /// expects to be empty (`NoStream`, `Exact(0)`: a new aggregate) is planned at head 0
    /// without reading it. The guess is safe: if the stream has events, its version 1 exists
    /// and the unique `(stream_id, version)` index rejects the group, which is then planned
    /// again from heads read from the database.
    async fn try_group(
        &mut self,
        group: &[Append],
        guess_new: bool,
    ) -> Result<Vec<Outcome>, GroupError> {
        let sql = self.sql.clone();
        let given: Vec<Uuid> = group
            .iter()
            .flat_map(|append| append.events.iter())
            .filter(|event| event.id_given)
            .map(|event| event.id)
            .collect();
        let mut missing: Vec<StreamId> = Vec::new();
        let mut seen = HashSet::new();
        let expect_more: HashSet<&StreamId> = group
            .iter()
            .filter(|append| {
                !matches!(
                    append.expected,
                    ExpectedVersion::NoStream | ExpectedVersion::Exact(0)
                )
            })
            .map(|append| &append.stream)
            .collect();
        for append in group {
            let stream = &append.stream;
            if !self.heads.contains_key(stream)
                && (!guess_new || expect_more.contains(stream))
                && seen.insert(stream)
            {
                missing.push(stream.clone());
            }
        }
        let conn = self.connection().await.map_err(GroupError::Failed)?;
        let found = find_ids(conn, &sql, &given).await.map_err(classify)?;
        let loaded = load_heads(conn, &sql, &missing).await.map_err(classify)?;
        self.heads.extend(loaded);
        let mut fresh: HashSet<StreamId> = missing.into_iter().collect();
        let (outcomes, rows) = loop {
            match plan(group, &self.heads, &fresh, &found) {
                Ok(planned) => break planned,
                Err(stale) => {
                    let conn = self.connection().await.map_err(GroupError::Failed)?;
                    let loaded = load_heads(conn, &sql, &stale).await.map_err(classify)?;
                    self.heads.extend(loaded);
                    fresh.extend(stale);
                }
            }
        };
        if rows.count == 0 {
            return Ok(outcomes);
        }
        let conn = self.connection().await.map_err(GroupError::Failed)?;
        let base = match write_rows(conn, &sql, &rows).await {
            Ok(base) => base,
            Err(error) => {
                if !is_lost(&error) {
                    let _ = conn.query_drop("ROLLBACK").await;
                }
                return Err(classify(error));
            }
        };
        let outcomes = outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Written {
                    first_version,
                    offset,
                    count,
                } => Outcome::Done(Ok(AppendResult {
                    first_version,
                    last_version: first_version + count - 1,
                    first_position: base + offset + 1,
                    last_position: base + offset + count,
                })),
                other => other,
            })
            .collect();
        self.heads.extend(rows.heads);
        let head = base + rows.count as Position;
        self.head.send_if_modified(|current| {
            let newer = head > *current;
            if newer {
                *current = head;
            }
            newer
        });
        Ok(outcomes)
    }
}

/// Takes the group's positions under the `log_head` row lock, inserts the rows, commits.
/// Returns the position before the first row.
async fn write_rows(
    conn: &mut Conn,
    sql: &Sql,
    rows: &Rows<'_>,
) -> Result<Position, mysql_async::Error> {
    let count = rows.count;
    conn.query_drop("START TRANSACTION").await?;
    conn.exec_drop(&sql.take_positions, (count,)).await?;
    let head = match conn.last_insert_id() {
        Some(head) if head > 0 => head,
        _ => conn
            .query_first::<u64, _>("SELECT LAST_INSERT_ID()")
            .await?
            .unwrap_or(0),
    };
    let base = head - count;
    let recorded_at = now_micros();
    let mut start = 0;
    while start < rows.streams.len() {
        let mut size = MAX_INSERT_ROWS.min(rows.streams.len() - start);
        // Largest power of two that fits, so at most log2(MAX_INSERT_ROWS) statements are cached.
        size = 1 << (usize::BITS - 1 - size.leading_zeros());
        let mut bytes: usize = (start..start + size)
            .map(|row| rows.data[row].len() + rows.metadata[row].len())
            .sum();
        while size > 1 && bytes > MAX_INSERT_BYTES {
            size /= 2;
            bytes = (start..start + size)
                .map(|row| rows.data[row].len() + rows.metadata[row].len())
                .sum();
        }
        let mut params: Vec<Value> = Vec::with_capacity(size * 9);
        for row in start..start + size {
            params.push(Value::from(base + row as u64 + 1));
            params.push(Value::from(rows.streams[row].as_bytes()));
            params.push(Value::from(rows.versions[row]));
            params.push(Value::from(rows.ids[row].as_bytes().as_slice()));
            params.push(Value::from(rows.types[row]));
            params.push(Value::from(rows.schema_versions[row]));
            params.push(Value::from(rows.data[row]));
            params.push(Value::from(rows.metadata[row]));
            params.push(Value::from(recorded_at));
        }
        conn.exec_drop(sql.insert(size), params).await?;
        start += size;
    }
    conn.query_drop("COMMIT").await?;
    Ok(base)
}

/// Where each of `ids` is stored, for those that are.
async fn find_ids(
    conn: &mut Conn,
    sql: &Sql,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, StoredAt>, mysql_async::Error> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let query = format!(
            "SELECT event_id, stream_id, version, position FROM {}.events WHERE event_id IN ({})",
            sql.d,
            Sql::placeholders(chunk.len())
        );
        let params: Vec<Value> = chunk
            .iter()
            .map(|id| Value::from(id.as_bytes().as_slice()))
            .collect();
        let rows: Vec<(Vec<u8>, Vec<u8>, i64, i64)> = conn.exec(query, params).await?;
        for (id, stream, version, position) in rows {
            if let (Ok(id), Ok(stream)) = (Uuid::from_slice(&id), String::from_utf8(stream)) {
                found.insert(id, (stream, version as Version, position as Position));
            }
        }
    }
    Ok(found)
}

/// The current version of each of `streams` (0 for a stream with no events).
async fn load_heads(
    conn: &mut Conn,
    sql: &Sql,
    streams: &[StreamId],
) -> Result<HashMap<StreamId, Version>, mysql_async::Error> {
    let mut heads: HashMap<StreamId, Version> =
        streams.iter().map(|stream| (stream.clone(), 0)).collect();
    for chunk in streams.chunks(LOOKUP_CHUNK) {
        let query = format!(
            "SELECT stream_id, MAX(version) FROM {}.events WHERE stream_id IN ({}) GROUP BY stream_id",
            sql.d,
            Sql::placeholders(chunk.len())
        );
        let params: Vec<Value> = chunk
            .iter()
            .map(|stream| Value::from(stream.as_str().as_bytes()))
            .collect();
        let rows: Vec<(Vec<u8>, i64)> = conn.exec(query, params).await?;
        for (name, version) in rows {
            if let Some(stream) = String::from_utf8(name)
                .ok()
                .and_then(|name| StreamId::new(name).ok())
            {
                heads.insert(stream, version as Version);
            }
        }
    }
    Ok(heads)
}

#[cfg(test)]
mod tests;
