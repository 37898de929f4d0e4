//! The global-order race: many writers append concurrently while readers tail the global log
//! through [`Subscription`]s. Every reader must see every acknowledged event exactly once, in
//! strictly increasing positions, with each stream's versions contiguous — the failure SQL
//! event stores classically have (a reader passes a position whose transaction has not
//! committed yet, and never looks back).
//!
//! How a broken store fails here: a store that skips a committed event leaves it missing from
//! some reader's set ("reader 1 never saw ..."); one that exposes position p before a lower
//! position commits makes the lower one arrive late ("saw position 17 after 18") or never; one
//! that lets two writers win the same version shows two acknowledged appends claiming it; one
//! that writes part of a conflicting batch shows events nobody acknowledged.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use mammoth_core::{
    AppendResult, EventFilter, EventStore, ExpectedVersion, NewEvent, RecordedEvent, StreamId,
    Subscription, Version,
};
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use crate::StoreFactory;
use crate::support::{append_ok, describe, read_log, sid, version_of};

/// How hard [`concurrent_writers_never_hide_a_commit_from_tailing_readers_with`] pushes.
#[derive(Clone, Debug)]
pub struct RaceConfig {
    /// Writer tasks appending concurrently (default 16; PostgreSQL drivers also run 32).
    pub writers: usize,
    /// Reader tasks tailing the global log (default 2; PostgreSQL drivers also run 4).
    pub readers: usize,
    /// Appends each writer makes, of 1 to 3 events each (default 40).
    pub appends_per_writer: usize,
    /// Streams all writers contend for with `Exact` versions (default 2).
    pub shared_streams: usize,
    /// Every this many appends, a writer appends to a shared stream (default 4); every third
    /// of those deliberately expects a stale version, so conflicts always happen.
    pub shared_every: usize,
    /// How long readers may take to see the end marker once the writers are done.
    pub timeout: Duration,
}

impl Default for RaceConfig {
    fn default() -> Self {
        Self {
            writers: 16,
            readers: 2,
            appends_per_writer: 40,
            shared_streams: 2,
            shared_every: 4,
            timeout: Duration::from_secs(60),
        }
    }
}

/// An append a writer got acknowledged.
#[derive(Clone, Debug)]
struct Ack {
    stream: StreamId,
    result: AppendResult,
    ids: Vec<Uuid>,
}

/// Concurrent writers never hide a commit from tailing readers, at the default
/// [`RaceConfig`] (16 writers, 2 readers).
pub async fn concurrent_writers_never_hide_a_commit_from_tailing_readers<F: StoreFactory>(
    factory: &F,
) {
    concurrent_writers_never_hide_a_commit_from_tailing_readers_with(
        factory,
        RaceConfig::default(),
    )
    .await;
}

/// The race at a chosen size: `config.writers` tasks append (mostly to their own streams, with
/// `Exact` versions to shared ones so that conflicts happen) while `config.readers` tasks tail
/// the global log with [`Subscription`]s of different page sizes, some starting late. Then an
/// end marker is appended; each reader stops when it sees it. Every reader must have seen
/// exactly the acknowledged events, in strictly increasing positions, each stream's versions
/// contiguous, and the log and each stream must hold exactly the acknowledged appends.
pub async fn concurrent_writers_never_hide_a_commit_from_tailing_readers_with<F: StoreFactory>(
    factory: &F,
    config: RaceConfig,
) {
    assert!(
        config.writers >= 1 && config.readers >= 1,
        "the race needs writers and readers: {config:?}"
    );
    let store = Arc::new(factory.fresh().await);
    let end_id = Uuid::now_v7();
    let progress: Arc<Vec<(AtomicUsize, AtomicU64)>> = Arc::new(
        (0..config.readers)
            .map(|_| (AtomicUsize::new(0), AtomicU64::new(0)))
            .collect(),
    );
    // Writers start together when `go` turns true; odd readers subscribe only then.
    let (go, started) = watch::channel(false);
    let mut readers = Vec::new();
    for reader in 0..config.readers {
        let (store, progress, mut started) = (store.clone(), progress.clone(), started.clone());
        let page_size = [7, 512, 1, 64][reader % 4];
        readers.push(tokio::spawn(async move {
            if reader % 2 == 1 {
                // Odd readers subscribe mid-race, so they switch from catch-up to live under load.
                // An error means the sender is gone, which only happens after the race.
                let _ = started.wait_for(|go| *go).await;
                tokio::time::sleep(Duration::from_millis(5 * reader as u64)).await;
            }
            let mut subscription =
                Subscription::new(store, 0, EventFilter::all()).with_page_size(page_size);
            let mut seen = Vec::new();
            loop {
                let event = subscription.next().await.unwrap_or_else(|error| {
                    panic!(
                        "reader {reader}: the subscription failed after {} events: {error}",
                        seen.len()
                    )
                });
                progress[reader].0.fetch_add(1, Ordering::Relaxed);
                progress[reader].1.store(event.position, Ordering::Relaxed);
                if event.id == end_id {
                    return seen;
                }
                seen.push(event);
            }
        }));
    }
    let mut writers = Vec::new();
    for writer in 0..config.writers {
        let (store, mut started, config) = (store.clone(), started.clone(), config.clone());
        writers.push(tokio::spawn(async move {
            let _ = started.wait_for(|go| *go).await;
            write(&*store, writer, &config).await
        }));
    }
    go.send_replace(true);
    let mut acks = Vec::new();
    let mut conflicts = 0;
    for (writer, task) in writers.into_iter().enumerate() {
        let (mine, lost) = task
            .await
            .unwrap_or_else(|error| panic!("writer {writer} panicked: {error}"));
        acks.extend(mine);
        conflicts += lost;
    }
    let end = vec![
        NewEvent::json("RaceEnd", json!({}))
            .expect("end marker builds")
            .with_id(end_id),
    ];
    let end_at = append_ok(
        &*store,
        &sid("race_end-1"),
        ExpectedVersion::NoStream,
        end,
        "appending the end marker",
    )
    .await;
    let acked = check_acks(&acks, end_at.first_position);
    for (reader, task) in readers.into_iter().enumerate() {
        let seen = match tokio::time::timeout(config.timeout, task).await {
            Ok(joined) => {
                joined.unwrap_or_else(|error| panic!("reader {reader} panicked: {error}"))
            }
            Err(_) => panic!(
                "reader {reader} did not reach the end marker at position {} within {:?}: it had seen {} events, the last at position {}; {} events were acknowledged",
                end_at.first_position,
                config.timeout,
                progress[reader].0.load(Ordering::Relaxed),
                progress[reader].1.load(Ordering::Relaxed),
                acked.len()
            ),
        };
        check_sequence(&seen, &acked, &format!("reader {reader}"));
    }
    let mut log = read_log(&*store).await;
    assert!(
        log.last().is_some_and(|last| last.id == end_id),
        "the end marker must be the last event of the log, appended after every writer finished"
    );
    log.pop();
    check_sequence(&log, &acked, "a read of the whole log after the race");
    for stream in acks.iter().map(|ack| &ack.stream).collect::<HashSet<_>>() {
        let last = acks
            .iter()
            .filter(|ack| &ack.stream == stream)
            .map(|ack| ack.result.last_version)
            .max();
        assert_eq!(
            Some(version_of(&*store, stream).await),
            last,
            "stream {stream:?}: version after the race"
        );
    }
    eprintln!(
        "race: {} writers, {} readers, {} events in {} appends, {conflicts} conflicts",
        config.writers,
        config.readers,
        acked.len(),
        acks.len()
    );
}

/// One writer's appends; returns the acknowledged ones and how many conflicted.
async fn write<S: EventStore>(store: &S, writer: usize, config: &RaceConfig) -> (Vec<Ack>, usize) {
    let own = sid(&format!("race-w{writer}"));
    let mut own_version: Version = 0;
    let mut acks = Vec::new();
    let mut conflicts = 0;
    for append in 0..config.appends_per_writer {
        let count = 1 + (writer + append) % 3;
        let ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
        let batch: Vec<NewEvent> = ids
            .iter()
            .enumerate()
            .map(|(k, id)| {
                NewEvent::json(
                    "Raced",
                    json!({ "writer": writer, "append": append, "k": k }),
                )
                .expect("race event builds")
                .with_id(*id)
            })
            .collect();
        let shared = config.shared_streams > 0
            && config.shared_every > 0
            && append % config.shared_every == 0;
        if !shared {
            let what = format!("writer {writer}, append {append} to its own stream");
            let result = append_ok(
                store,
                &own,
                ExpectedVersion::Exact(own_version),
                batch,
                &what,
            )
            .await;
            own_version = result.last_version;
            acks.push(Ack {
                stream: own.clone(),
                result,
                ids,
            });
            continue;
        }
        let stream = sid(&format!(
            "race_shared-{}",
            (writer + append) % config.shared_streams
        ));
        let current = version_of(store, &stream).await;
        let stale = (append / config.shared_every) % 3 == 2 && current > 0;
        let expected = if stale { current - 1 } else { current };
        tokio::task::yield_now().await;
        match store
            .append(&stream, ExpectedVersion::Exact(expected), batch)
            .await
        {
            Ok(result) => {
                assert!(
                    !stale,
                    "writer {writer}: Exact({expected}) succeeded on {stream:?}, which was already at version {current}"
                );
                assert_eq!(
                    result.first_version,
                    expected + 1,
                    "writer {writer}: an append expecting Exact({expected}) to {stream:?} started at version {}",
                    result.first_version
                );
                acks.push(Ack {
                    stream,
                    result,
                    ids,
                });
            }
            Err(mammoth_core::StoreError::Conflict { actual, .. }) => {
                assert_ne!(
                    actual, expected,
                    "writer {writer}: a conflict on {stream:?} reports actual version {actual}, which is what it expected"
                );
                conflicts += 1;
            }
            Err(error) => panic!(
                "writer {writer}: append to {stream:?} expecting Exact({expected}) failed with {error}"
            ),
        }
    }
    (acks, conflicts)
}

/// Where each acknowledged event must be: id -> (stream, version, lowest and highest position).
type Acked = HashMap<Uuid, (StreamId, Version, u64, u64)>;

/// Checks the acknowledged appends among themselves (no version claimed twice, each below the
/// end marker) and indexes their events by id.
fn check_acks(acks: &[Ack], end_position: u64) -> Acked {
    let mut claimed: HashMap<(&StreamId, Version), usize> = HashMap::new();
    let mut acked = Acked::new();
    for (index, ack) in acks.iter().enumerate() {
        let AppendResult {
            first_version,
            last_version,
            first_position,
            last_position,
        } = ack.result;
        assert_eq!(
            last_version - first_version + 1,
            ack.ids.len() as Version,
            "acknowledged append {ack:?}: versions do not match its event count"
        );
        assert!(
            last_position < end_position,
            "acknowledged append {ack:?} has a position above the end marker at {end_position}, appended after it was acknowledged"
        );
        for (offset, id) in ack.ids.iter().enumerate() {
            let version = first_version + offset as Version;
            if let Some(other) = claimed.insert((&ack.stream, version), index) {
                panic!(
                    "two acknowledged appends claim {:?} version {version}: {:?} and {ack:?}",
                    ack.stream, acks[other]
                );
            }
            acked.insert(
                *id,
                (ack.stream.clone(), version, first_position, last_position),
            );
        }
    }
    acked
}

/// Checks one reader's sequence against the acknowledged events.
fn check_sequence(seen: &[RecordedEvent], acked: &Acked, who: &str) {
    let mut last_version: HashMap<&StreamId, Version> = HashMap::new();
    let mut ids = HashSet::new();
    for (index, event) in seen.iter().enumerate() {
        if index > 0 {
            let before = &seen[index - 1];
            assert!(
                event.position > before.position,
                "{who} saw position {} after {} ({} after {})",
                event.position,
                before.position,
                describe(event),
                describe(before)
            );
        }
        assert!(
            ids.insert(event.id),
            "{who} saw event {} twice",
            describe(event)
        );
        let Some((stream, version, low, high)) = acked.get(&event.id) else {
            panic!(
                "{who} saw {}, which no writer got acknowledged (a failed append wrote it?)",
                describe(event)
            );
        };
        assert!(
            &event.stream_id == stream
                && event.version == *version
                && (*low..=*high).contains(&event.position),
            "{who} saw {} but its append was acknowledged as {stream:?} version {version} at positions {low}..={high}",
            describe(event)
        );
        let previous = last_version
            .insert(&event.stream_id, event.version)
            .unwrap_or(0);
        assert_eq!(
            event.version,
            previous + 1,
            "{who} saw stream {:?} at version {} right after version {previous}",
            event.stream_id,
            event.version
        );
    }
    if ids.len() != acked.len() {
        let mut missing: Vec<(&StreamId, Version, u64)> = acked
            .iter()
            .filter(|(id, _)| !ids.contains(*id))
            .map(|(_, (stream, version, low, _))| (stream, *version, *low))
            .collect();
        missing.sort_by_key(|(_, _, position)| *position);
        missing.truncate(10);
        panic!(
            "{who} saw {} of {} acknowledged events; it never saw (stream, version, position of its append), first 10: {missing:?}",
            ids.len(),
            acked.len()
        );
    }
}
