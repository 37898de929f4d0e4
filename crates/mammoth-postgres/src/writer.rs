//! The writer task and its group commit.
//!
//! Every append of a store handle goes through one tokio task that owns a dedicated
//! connection. It takes one request, drains whatever else has queued meanwhile, checks each
//! append on its own (idempotency against stored ids, expected version against its cached
//! stream heads), and writes every accepted append of the group with one statement in one
//! transaction: that statement first updates the one-row `log_head`, whose row lock
//! serializes position assignment with every other writer of the database until commit, so
//! commits become visible in position order and readers never skip one.
//!
//! The cached stream heads decide conflicts without a round trip. They can be stale only when
//! another process wrote the same stream; then the unique `(stream_id, version)` index rejects
//! the group, the writer forgets the group's heads and plans it again from fresh ones. A
//! conflict the cache reports is re-checked against the database before it is returned, so a
//! stale cache never refuses an append that is in fact valid. A stream the cache does not know
//! and that the group only expects to be new is not read at all: it is planned at head 0, and
//! the same unique index catches the rare stream that already had events.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mammoth_core::plan::{GroupAppend, Outcome, plan, reply_all};
use mammoth_core::validate::{PreparedEvent, StoredAt};
use mammoth_core::{
    AppendResult, ExpectedVersion, Position, StoreError, StreamId, Version, now_micros,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Statement};
use uuid::Uuid;

use crate::error::{BACKEND, is_unique_violation, on, pg};
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
    /// The statement failed and wrote nothing.
    Failed(StoreError),
}

/// The writer's statement, prepared once per connection. The lookups (`find_ids`,
/// `stream_heads`) are not prepared: a prepared statement soon runs a cached generic plan, and
/// one chosen while the schema was young and small scans `events` for a stream's head and is
/// kept while the table grows (measured: 5 ms per group after 10^5-10^6 appends, case (e)
/// p50 35-41 ms). Sent as unnamed statements with typed parameters (`query_typed`, still one
/// round trip), they are planned for their arguments every time.
struct Prepared {
    append: Statement,
}

pub(crate) struct Writer {
    config: tokio_postgres::Config,
    client: Option<(Arc<Client>, Arc<Prepared>)>,
    sql: Arc<Sql>,
    heads: HashMap<StreamId, Version>,
    head: Arc<watch::Sender<Position>>,
}

impl Writer {
    pub fn new(
        config: tokio_postgres::Config,
        sql: Arc<Sql>,
        head: Arc<watch::Sender<Position>>,
    ) -> Self {
        Self {
            config,
            client: None,
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

    async fn connect(&mut self) -> Result<(Arc<Client>, Arc<Prepared>), StoreError> {
        if let Some((client, prepared)) = &self.client
            && !client.is_closed()
        {
            return Ok((client.clone(), prepared.clone()));
        }
        self.client = None;
        self.heads.clear();
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(on("connecting the writer"))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "the writer's connection ended");
            }
        });
        let action = "preparing the writer's statements";
        let prepared = Arc::new(Prepared {
            append: client.prepare(&self.sql.append).await.map_err(on(action))?,
        });
        let client = Arc::new(client);
        self.client = Some((client.clone(), prepared.clone()));
        Ok((client, prepared))
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
                    self.client = None;
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

    /// Plans and writes one group. On `Ok`, every append that was written is committed.
    ///
    /// With `guess_new`, a stream whose head is not cached and that every append of the group
    /// expects to be empty (`NoStream`, `Exact(0)`: a new aggregate) is planned at head 0
    /// without reading it. The guess is safe: if the stream has events, its version 1 exists
    /// and the unique `(stream_id, version)` index rejects the group, which is then planned
    /// again from heads read from the database. It saves the head lookup's round trip that
    /// otherwise comes before nearly every group when callers keep creating aggregates.
    async fn try_group(
        &mut self,
        group: &[Append],
        guess_new: bool,
    ) -> Result<Vec<Outcome>, GroupError> {
        let (client, prepared) = self.connect().await.map_err(GroupError::Failed)?;
        let given: Vec<Uuid> = group
            .iter()
            .flat_map(|append| append.events.iter())
            .filter(|event| event.id_given)
            .map(|event| event.id)
            .collect();
        let mut missing: Vec<&StreamId> = Vec::new();
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
                missing.push(stream);
            }
        }
        let (found, loaded) = tokio::join!(
            find_ids(&client, &self.sql.find_ids, &given),
            load_heads(&client, &self.sql.stream_heads, &missing)
        );
        let found = found.map_err(classify)?;
        self.heads.extend(loaded.map_err(classify)?);
        let mut fresh: HashSet<StreamId> = missing.into_iter().cloned().collect();
        let (outcomes, rows) = loop {
            match plan(group, &self.heads, &fresh, &found) {
                Ok(planned) => break planned,
                Err(stale) => {
                    let stale: Vec<&StreamId> = stale.iter().collect();
                    let loaded = load_heads(&client, &self.sql.stream_heads, &stale)
                        .await
                        .map_err(classify)?;
                    self.heads.extend(loaded);
                    fresh.extend(stale.into_iter().cloned());
                }
            }
        };
        if rows.count == 0 {
            return Ok(outcomes);
        }
        let recorded_at = now_micros();
        let count = rows.count as i64;
        let row = client
            .query_one(
                &prepared.append,
                &[
                    &count,
                    &rows.streams,
                    &rows.versions,
                    &rows.ids,
                    &rows.types,
                    &rows.schema_versions,
                    &rows.data,
                    &rows.metadata,
                    &recorded_at,
                ],
            )
            .await
            .map_err(classify)?;
        let base: i64 = row.get(0);
        let inserted: i64 = row.get(1);
        if inserted != count {
            return Err(GroupError::Lost(StoreError::backend(
                BACKEND,
                "appending events",
                format!("the database inserted {inserted} of {count} rows"),
                false,
            )));
        }
        let base = base as Position;
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

/// Consecutive yields that bring no new append before a group stops waiting for callers.
const IDLE_YIELDS: usize = 2;
/// The most yields one group waits for callers.
const MAX_YIELDS: usize = 64;

/// Lets the callers the last group answered append again before the next group is drained.
///
/// Without it, closed-loop callers split into two halves that take turns: while one half's
/// group commits, the other half queues, and the group drained right after a commit holds
/// only the queued half, because the callers just answered have not been scheduled yet. Each
/// commit (one WAL flush) then carries half the callers, and each caller waits for two. The
/// writer yields to the scheduler instead, as long as each yield or the one after it brings
/// more appends and fewer are queued than were answered: a caller that is reading or sleeping
/// before its next append is not waited for, and no clock is involved.
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

fn classify(error: tokio_postgres::Error) -> GroupError {
    if is_unique_violation(&error) {
        return GroupError::Unique;
    }
    let lost = error.is_closed()
        || error
            .code()
            .is_none_or(|code| matches!(&code.code()[..2], "08" | "57"));
    let error = pg("appending events", error);
    if lost {
        GroupError::Lost(error)
    } else {
        GroupError::Failed(error)
    }
}

/// Where each of `ids` is stored, for those that are.
async fn find_ids(
    client: &Client,
    sql: &str,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, StoredAt>, tokio_postgres::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = client.query_typed(sql, &[(&ids, Type::UUID_ARRAY)]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let place: StoredAt = (
                row.get(1),
                row.get::<_, i64>(2) as Version,
                row.get::<_, i64>(3) as Position,
            );
            (row.get(0), place)
        })
        .collect())
}

/// The current version of each of `streams` (0 for a stream with no events).
async fn load_heads(
    client: &Client,
    sql: &str,
    streams: &[&StreamId],
) -> Result<HashMap<StreamId, Version>, tokio_postgres::Error> {
    if streams.is_empty() {
        return Ok(HashMap::new());
    }
    let names: Vec<&str> = streams.iter().map(|stream| stream.as_str()).collect();
    let rows = client
        .query_typed(sql, &[(&names, Type::TEXT_ARRAY)])
        .await?;
    let mut heads: HashMap<StreamId, Version> = streams
        .iter()
        .map(|stream| ((*stream).clone(), 0))
        .collect();
    for row in rows {
        let name: &str = row.get(0);
        if let Ok(stream) = StreamId::new(name) {
            heads.insert(stream, row.get::<_, i64>(1) as Version);
        }
    }
    Ok(heads)
}

#[cfg(test)]
mod tests;
