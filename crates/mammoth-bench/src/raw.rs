//! The raw SQLite baseline: plain rusqlite on the store's own schema and settings
//! (`mammoth_sqlite::schema`), inserting the same rows the store's writer inserts into the
//! log (`streams` for a new stream, `events` for each event) with no checks, no queue and no
//! group commit. It is the limit the store is measured against; the store's derived stream
//! index is its own cost and is not written here.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use mammoth_core::now_micros;
use mammoth_sqlite::Synchronous;
use mammoth_sqlite::schema::{self, INSERT_EVENT, INSERT_STREAM};
use rusqlite::{Connection, OpenFlags, params};
use uuid::Uuid;

use crate::workload::{EVENT_TYPE, data, stream_name};
use crate::{BenchError, Progress};

/// The page cache the store's writer uses, so both sides cache alike.
const CACHE_KIB: i64 = 64 * 1024;

/// A raw writer on a fresh file.
pub(crate) struct RawLog {
    conn: Connection,
    next_position: i64,
    next_key: i64,
    /// Stream id -> (stream key, current version).
    streams: HashMap<String, (i64, i64)>,
}

impl RawLog {
    /// Creates the store's schema in a new file at `path`, with the same pragmas.
    pub(crate) fn create(path: &Path, synchronous: Synchronous) -> Result<Self, BenchError> {
        let conn = Connection::open(path)?;
        schema::configure(&conn, synchronous, CACHE_KIB)?;
        if let Err(version) = schema::create(&conn)? {
            return Err(BenchError::Setup(format!(
                "{} already holds schema version {version}",
                path.display()
            )));
        }
        Ok(Self {
            conn,
            next_position: 1,
            next_key: 1,
            streams: HashMap::new(),
        })
    }

    /// Appends events `first..first + count` to `stream` in one transaction.
    pub(crate) fn append(&mut self, stream: u64, first: u64, count: u64) -> Result<(), BenchError> {
        let name = stream_name(stream);
        let tx = self.conn.transaction()?;
        let (key, version) = match self.streams.get(&name) {
            Some(head) => *head,
            None => {
                let key = self.next_key;
                let category = name.split_once('-').map_or(name.as_str(), |(c, _)| c);
                tx.prepare_cached(INSERT_STREAM)?
                    .execute(params![key, name, category])?;
                self.next_key += 1;
                (key, 0)
            }
        };
        let recorded_at = now_micros();
        {
            let mut insert = tx.prepare_cached(INSERT_EVENT)?;
            for offset in 0..count {
                let id = Uuid::now_v7();
                insert.execute(params![
                    self.next_position,
                    key,
                    version + 1 + offset as i64,
                    id.as_bytes().as_slice(),
                    EVENT_TYPE,
                    1,
                    data(first + offset),
                    "{}",
                    recorded_at,
                ])?;
                self.next_position += 1;
            }
        }
        tx.commit()?;
        self.streams.insert(name, (key, version + count as i64));
        Ok(())
    }
}

/// Appends `batch`-event transactions round-robin over `streams` streams for `duration`.
/// Returns the events written and the seconds taken.
pub(crate) fn append_for(
    path: &Path,
    synchronous: Synchronous,
    duration: Duration,
    batch: u64,
    streams: u64,
    progress: &dyn Progress,
) -> Result<(u64, f64), BenchError> {
    let mut raw = RawLog::create(path, synchronous)?;
    let started = Instant::now();
    let mut written = 0u64;
    let mut appends = 0u64;
    while started.elapsed() < duration {
        raw.append(appends % streams, written, batch)?;
        appends += 1;
        written += batch;
        progress.advance(batch);
    }
    Ok((written, started.elapsed().as_secs_f64()))
}

/// Commits one-event transactions at `rate` per second for `duration`; returns each commit's
/// latency in microseconds, the floor under any append-to-subscriber latency.
pub(crate) fn commit_latencies(
    path: &Path,
    synchronous: Synchronous,
    duration: Duration,
    interval: Duration,
    progress: &dyn Progress,
) -> Result<Vec<f64>, BenchError> {
    let mut raw = RawLog::create(path, synchronous)?;
    let started = Instant::now();
    let mut next = started;
    let mut latencies = Vec::new();
    let mut n = 0u64;
    while started.elapsed() < duration {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += interval;
        let begun = Instant::now();
        raw.append(0, n, 1)?;
        latencies.push(begun.elapsed().as_secs_f64() * 1e6);
        n += 1;
        progress.advance(1);
    }
    Ok(latencies)
}

/// Reads every row of the log with a plain `SELECT` in position order, each column into an
/// owned value as an application would. Returns the rows read and the seconds taken.
pub(crate) fn scan(path: &Path, progress: &dyn Progress) -> Result<(u64, f64), BenchError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let started = Instant::now();
    let mut statement = conn.prepare(
        "SELECT position, stream_key, version, event_id, event_type, schema_version, data, \
         metadata, recorded_at FROM events ORDER BY position",
    )?;
    let mut rows = statement.query([])?;
    let mut count = 0u64;
    let mut checksum = 0i64;
    while let Some(row) = rows.next()? {
        let position: i64 = row.get(0)?;
        let _stream_key: i64 = row.get(1)?;
        let _version: i64 = row.get(2)?;
        let _id: [u8; 16] = row.get(3)?;
        let _event_type: String = row.get(4)?;
        let _schema_version: i64 = row.get(5)?;
        let data: String = row.get(6)?;
        let _metadata: String = row.get(7)?;
        let _recorded_at: i64 = row.get(8)?;
        checksum = checksum.wrapping_add(position ^ data.len() as i64);
        count += 1;
        if count & 4095 == 0 {
            progress.advance(4096);
        }
    }
    std::hint::black_box(checksum);
    Ok((count, started.elapsed().as_secs_f64()))
}
