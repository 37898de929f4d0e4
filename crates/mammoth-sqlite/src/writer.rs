//! The single writer thread and its group commit.
//!
//! Every append goes through one thread that owns the only write connection. It takes one
//! request, drains whatever else has queued up meanwhile, and commits the whole group in one
//! transaction and one fsync. Each append in the group is still checked on its own (expected
//! version against the writer's stream heads, idempotency against stored ids) before any of
//! its rows is inserted, so a conflict or a bad id fails that append alone. If SQLite itself
//! fails mid-group, the group is rolled back and each append is retried in a transaction of
//! its own, so one bad append never fails its neighbours.
//!
//! The writer assigns global positions itself, in commit order, and is the only writer of the
//! file (a lock file keeps other processes out), so readers can never see position p+1
//! before p: the global order has no holes to skip.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use mammoth_core::validate::{PreparedEvent, StoredAt, idempotent_replay};
use mammoth_core::{
    AppendResult, ExpectedVersion, Position, StoreError, StreamId, Version, now_micros,
};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tokio::sync::{oneshot, watch};

use crate::durable::{Acknowledger, Committed, Reply};
use crate::error::{on, sqlite};
use crate::schema::{INDEXED_THROUGH, INSERT_EVENT, INSERT_STREAM};
use crate::tail::SharedTail;

/// Flush the stream index once this many events are unindexed.
const FLUSH_AFTER_EVENTS: usize = 16_384;
/// Flush the stream index when no append has arrived for this long.
const FLUSH_WHEN_IDLE: Duration = Duration::from_millis(100);
/// The most appends one group commit takes.
const MAX_GROUP_APPENDS: usize = 2_048;
/// Forget cached stream heads beyond this many (they reload from the database on demand).
const MAX_CACHED_HEADS: usize = 200_000;

/// What the writer thread is asked to do.
pub(crate) enum Request {
    Append(Append),
    /// Flush the index and stop; the reply is sent once the connection is closed.
    Close(oneshot::Sender<Result<(), StoreError>>),
}

/// One append, validated by the caller's task before it was queued.
pub(crate) struct Append {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<PreparedEvent>,
    pub reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

#[derive(Clone, Copy)]
struct Head {
    /// The stream's key, or None for a stream that has no row yet.
    key: Option<i64>,
    version: Version,
}

pub(crate) struct Writer {
    conn: Connection,
    tail: Arc<SharedTail>,
    ack: Acknowledger,
    heads: HashMap<StreamId, Head>,
    next_position: Position,
    next_key: i64,
    groups: u64,
    grouped: u64,
}

/// What one group wrote, applied to the writer's memory only after the commit succeeded.
#[derive(Default)]
struct GroupEffects {
    heads: HashMap<StreamId, Head>,
    entries: Vec<(i64, Version, Position)>,
    next_position: Position,
    next_key: i64,
}

impl Writer {
    /// Prepares the writer for `conn`: finds the head, re-derives the stream index, and, given
    /// the WAL file, starts the sync thread that acknowledges appends only after an fsync.
    pub fn new(
        conn: Connection,
        tail: Arc<SharedTail>,
        head_tx: watch::Sender<Position>,
        wal: Option<std::fs::File>,
    ) -> Result<Self, StoreError> {
        let (max_position, max_key): (Option<i64>, Option<i64>) = conn
            .query_row(
                "SELECT (SELECT max(position) FROM events), (SELECT max(stream_key) FROM streams)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(on("opening the store"))?;
        let head = max_position.unwrap_or(0) as Position;
        let head_tx = Arc::new(head_tx);
        let ack = match wal {
            None => Acknowledger::Immediate(head_tx.clone()),
            Some(wal) => Acknowledger::after_sync(wal, head_tx.clone()).map_err(|error| {
                StoreError::backend("sqlite", "starting the sync thread", error, false)
            })?,
        };
        let mut writer = Self {
            conn,
            tail,
            ack,
            heads: HashMap::new(),
            next_position: head + 1,
            next_key: max_key.unwrap_or(0) + 1,
            groups: 0,
            grouped: 0,
        };
        writer.rebuild_index()?;
        head_tx.send_replace(head);
        Ok(writer)
    }

    /// Re-derives the stream index from the log's tail after a crash or an unclean stop.
    fn rebuild_index(&mut self) -> Result<(), StoreError> {
        let action = "rebuilding the stream index";
        let tx = begin_immediate(&mut self.conn).map_err(on(action))?;
        let indexed: i64 = tx
            .query_row(
                "SELECT value FROM mammoth_meta WHERE key = ?1",
                [INDEXED_THROUGH],
                |row| row.get(0),
            )
            .map_err(on(action))?;
        let head = self.next_position - 1;
        if (indexed as Position) < head {
            index_log(&tx, indexed as Position, head).map_err(on(action))?;
            tx.commit().map_err(on(action))?;
        }
        self.tail.write().indexed_through = head;
        Ok(())
    }

    /// Serves requests until the store closes or every handle is dropped.
    pub fn run(mut self, requests: Receiver<Request>) {
        let mut closing = None;
        loop {
            let first = match requests.recv_timeout(FLUSH_WHEN_IDLE) {
                Ok(request) => request,
                Err(RecvTimeoutError::Timeout) => {
                    self.flush_index_logged();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut group = Vec::new();
            let mut next = Some(first);
            while let Some(request) = next.take() {
                match request {
                    Request::Append(append) => group.push(append),
                    Request::Close(reply) => closing = Some(reply),
                }
                if group.len() < MAX_GROUP_APPENDS && closing.is_none() {
                    next = requests.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.groups += 1;
                self.grouped += group.len() as u64;
                self.commit_group(group);
            }
            if self.tail.read().len >= FLUSH_AFTER_EVENTS {
                self.flush_index_logged();
            }
            if closing.is_some() {
                break;
            }
        }
        tracing::debug!(
            groups = self.groups,
            appends = self.grouped,
            "writer stopped"
        );
        let result = self.flush_index();
        let Self { conn, ack, .. } = self;
        // Send every acknowledgement still waiting for an fsync before saying "closed".
        ack.finish();
        let result = result.and_then(|()| {
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .map_err(on("checkpointing on close"))
        });
        drop(conn);
        // Appends queued behind the close are refused, never silently dropped.
        while let Ok(request) = requests.try_recv() {
            match request {
                Request::Append(append) => {
                    let _ = append.reply.send(Err(StoreError::Closed));
                }
                Request::Close(reply) => {
                    let _ = reply.send(Ok(()));
                }
            }
        }
        if let Some(reply) = closing {
            let _ = reply.send(result);
        }
    }

    fn commit_group(&mut self, group: Vec<Append>) {
        if self.heads.len() > MAX_CACHED_HEADS {
            self.heads.clear();
        }
        if self.ack.has_failed() {
            let replies = group
                .into_iter()
                .map(|append| (append.reply, Err(fsync_failed())))
                .collect();
            self.ack.acknowledge(Committed {
                replies,
                head: None,
            });
            return;
        }
        match self.try_group(&group) {
            Ok((results, effects)) => {
                let head = self.apply(effects);
                let replies = group
                    .into_iter()
                    .map(|append| append.reply)
                    .zip(results)
                    .collect();
                self.ack.acknowledge(Committed { replies, head });
            }
            Err(error) => {
                tracing::warn!(%error, appends = group.len(), "group commit failed; retrying each append alone");
                for append in group {
                    let (result, head) = match self.try_group(std::slice::from_ref(&append)) {
                        Ok((mut results, effects)) => {
                            let head = self.apply(effects);
                            (results.pop().unwrap_or(Err(StoreError::Closed)), head)
                        }
                        Err(error) => (Err(error), None),
                    };
                    let replies: Vec<Reply> = vec![(append.reply, result)];
                    self.ack.acknowledge(Committed { replies, head });
                }
            }
        }
    }

    /// Writes a group in one transaction. `Err` means SQLite failed and nothing was committed.
    fn try_group(
        &mut self,
        group: &[Append],
    ) -> Result<(Vec<Result<AppendResult, StoreError>>, GroupEffects), StoreError> {
        let mut effects = GroupEffects {
            next_position: self.next_position,
            next_key: self.next_key,
            ..GroupEffects::default()
        };
        let recorded_at = now_micros();
        let Self {
            conn, heads, tail, ..
        } = self;
        let tx = begin_immediate(conn).map_err(on("starting a transaction"))?;
        let mut results = Vec::with_capacity(group.len());
        for append in group {
            let current = match effects.heads.get(&append.stream) {
                Some(head) => *head,
                None => load_head(heads, tail, &tx, &append.stream)?,
            };
            let result = append_one(&tx, append, current, recorded_at, &mut effects)?;
            results.push(result);
        }
        tx.commit().map_err(on("committing appends"))?;
        Ok((results, effects))
    }

    /// Makes a committed group's effects the writer's state; returns the new head if it wrote.
    fn apply(&mut self, effects: GroupEffects) -> Option<Position> {
        let written = effects.next_position > self.next_position;
        self.next_position = effects.next_position;
        self.next_key = effects.next_key;
        self.heads.extend(effects.heads);
        if !effects.entries.is_empty() {
            let mut tail = self.tail.write();
            tail.len += effects.entries.len();
            for (key, version, position) in effects.entries {
                tail.by_stream
                    .entry(key)
                    .or_default()
                    .push((version, position));
            }
        }
        written.then(|| self.next_position - 1)
    }

    fn flush_index_logged(&mut self) {
        if let Err(error) = self.flush_index() {
            tracing::warn!(%error, "stream index flush failed; it will be retried");
        }
    }

    /// Writes the unindexed tail into `stream_index` and clears it.
    fn flush_index(&mut self) -> Result<(), StoreError> {
        let after = {
            let tail = self.tail.read();
            if tail.len == 0 {
                return Ok(());
            }
            tail.indexed_through
        };
        let through = self.next_position - 1;
        let tx = begin_immediate(&mut self.conn).map_err(on("flushing the stream index"))?;
        index_log(&tx, after, through).map_err(on("flushing the stream index"))?;
        tx.commit().map_err(on("flushing the stream index"))?;
        let mut tail = self.tail.write();
        tail.by_stream.clear();
        tail.len = 0;
        tail.indexed_through = through;
        Ok(())
    }
}

/// Derives the `stream_index` rows of the events after position `after`, through `through`,
/// from the log itself (sorted, so each stream's rows go in together), and records how far the
/// index now reaches. Used both by the regular flush and by recovery on open.
fn index_log(tx: &Transaction<'_>, after: Position, through: Position) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO stream_index (stream_key, version, position)
         SELECT stream_key, version, position FROM events
         WHERE position > ?1 AND position <= ?2 ORDER BY stream_key, version",
        params![after as i64, through as i64],
    )?;
    tx.execute(
        "UPDATE mammoth_meta SET value = ?1 WHERE key = ?2",
        params![through as i64, INDEXED_THROUGH],
    )?;
    Ok(())
}

/// Checks and inserts one append inside the group's transaction. The outer `Err` is a SQLite
/// failure (the group must roll back); the inner one is this append's own failure, raised
/// before any of its rows was inserted.
fn append_one(
    tx: &Transaction<'_>,
    append: &Append,
    current: Head,
    recorded_at: i64,
    effects: &mut GroupEffects,
) -> Result<Result<AppendResult, StoreError>, StoreError> {
    if append.events.iter().any(|event| event.id_given) {
        let ids: Vec<_> = append.events.iter().map(|event| event.id).collect();
        let mut found = Vec::with_capacity(ids.len());
        let mut lookup = tx
            .prepare_cached(
                "SELECT s.stream_id, e.version, e.position FROM events e
                 JOIN streams s ON s.stream_key = e.stream_key WHERE e.event_id = ?1",
            )
            .map_err(on("checking event ids"))?;
        for event in &append.events {
            let place: Option<StoredAt> = if event.id_given {
                lookup
                    .query_row([event.id.as_bytes().as_slice()], |row| {
                        Ok((
                            row.get(0)?,
                            row.get::<_, i64>(1)? as Version,
                            row.get::<_, i64>(2)? as Position,
                        ))
                    })
                    .optional()
                    .map_err(on("checking event ids"))?
            } else {
                None
            };
            found.push(place);
        }
        match idempotent_replay(&append.stream, &ids, &found) {
            Ok(Some(first)) => return Ok(Ok(first)),
            Ok(None) => {}
            Err(error) => return Ok(Err(error)),
        }
    }
    if !append.expected.is_satisfied_by(current.version) {
        return Ok(Err(StoreError::Conflict {
            stream: append.stream.clone(),
            expected: append.expected,
            actual: current.version,
        }));
    }
    let key = match current.key {
        Some(key) => key,
        None => {
            let key = effects.next_key;
            tx.prepare_cached(INSERT_STREAM)
                .and_then(|mut insert| {
                    insert.execute(params![
                        key,
                        append.stream.as_str(),
                        append.stream.category()
                    ])
                })
                .map_err(|error| sqlite("registering a stream", error))?;
            effects.next_key += 1;
            key
        }
    };
    let mut insert = tx
        .prepare_cached(INSERT_EVENT)
        .map_err(on("appending events"))?;
    let first_position = effects.next_position;
    for (offset, event) in append.events.iter().enumerate() {
        let version = current.version + 1 + offset as Version;
        let position = first_position + offset as Position;
        insert
            .execute(params![
                position as i64,
                key,
                version as i64,
                event.id.as_bytes().as_slice(),
                event.event_type,
                event.schema_version,
                event.data,
                event.metadata,
                recorded_at,
            ])
            .map_err(on("appending events"))?;
        effects.entries.push((key, version, position));
    }
    let count = append.events.len() as u64;
    effects.next_position += count;
    let last_version = current.version + count;
    effects.heads.insert(
        append.stream.clone(),
        Head {
            key: Some(key),
            version: last_version,
        },
    );
    Ok(Ok(AppendResult {
        first_version: current.version + 1,
        last_version,
        first_position,
        last_position: first_position + count - 1,
    }))
}

/// The stream's head: cached, else from the unindexed tail or the stream index.
fn load_head(
    heads: &mut HashMap<StreamId, Head>,
    tail: &SharedTail,
    tx: &Transaction<'_>,
    stream: &StreamId,
) -> Result<Head, StoreError> {
    if let Some(head) = heads.get(stream) {
        return Ok(*head);
    }
    let key: Option<i64> = tx
        .prepare_cached("SELECT stream_key FROM streams WHERE stream_id = ?1")
        .and_then(|mut statement| {
            statement
                .query_row([stream.as_str()], |row| row.get(0))
                .optional()
        })
        .map_err(on("loading a stream head"))?;
    let version = match key {
        None => 0,
        Some(key) => match tail.last_version(key) {
            Some(version) => version,
            None => tx
                .prepare_cached(
                    "SELECT coalesce(max(version), 0) FROM stream_index WHERE stream_key = ?1",
                )
                .and_then(|mut statement| statement.query_row([key], |row| row.get::<_, i64>(0)))
                .map_err(on("loading a stream head"))? as Version,
        },
    };
    let head = Head { key, version };
    heads.insert(stream.clone(), head);
    Ok(head)
}

fn fsync_failed() -> StoreError {
    StoreError::backend(
        "sqlite",
        "appending events",
        "an earlier fsync of the write-ahead log failed; the store refuses appends until it is reopened",
        false,
    )
}

/// Starts a transaction that takes SQLite's write lock at once. A deferred transaction that
/// reads before it writes fails at its first write, without waiting, when another connection
/// (the embedded bus, a checkpoint or snapshot store in the same file) committed in between;
/// an immediate one waits for the lock (busy timeout) instead.
fn begin_immediate(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}
