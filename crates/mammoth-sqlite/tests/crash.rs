//! Crash safety: a child process appends in a loop and reports every acknowledged append over
//! a pipe; the parent kills it with SIGKILL at random moments (during open, recovery, group
//! commits and fsyncs alike), reopens the store each time and checks that every acknowledged
//! append is present, no append is half-written, and positions and versions stay contiguous.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::TryStreamExt;
use mammoth_core::{
    Direction, EventFilter, EventStore, ExpectedVersion, NewEvent, RecordedEvent, StreamId,
    read_all_pages, read_stream_pages,
};
use mammoth_sqlite::{SqliteEventStore, SqliteOptions};
use uuid::Uuid;

const CHILD_ENV: &str = "MAMMOTH_CRASH_CHILD_DB";
const KILLS: usize = 20;
const TASKS: usize = 8;

/// What the child printed for one acknowledged append.
#[derive(Debug)]
struct Ack {
    stream: String,
    first_version: u64,
    first_position: u64,
    ids: Vec<Uuid>,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut parts = line.strip_prefix("ack ")?.split(' ');
    let stream = parts.next()?.to_owned();
    let first_version = parts.next()?.parse().ok()?;
    let first_position = parts.next()?.parse().ok()?;
    let ids = parts
        .next()?
        .split(',')
        .map(|id| id.parse().ok())
        .collect::<Option<_>>()?;
    Some(Ack {
        stream,
        first_version,
        first_position,
        ids,
    })
}

/// A small xorshift generator; the seed is printed so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Runs only as the child of `acknowledged_appends_survive_repeated_sigkill`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs as the child process of the crash test"]
async fn crash_child_appends_until_killed() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = SqliteEventStore::open(&path, SqliteOptions::default()).expect("child opens store");
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (store, out) = (store.clone(), out.clone());
        tasks.push(tokio::spawn(async move {
            let streams: Vec<StreamId> = (0..3)
                .map(|n| StreamId::new(format!("crash-{task}x{n}")).expect("id"))
                .collect();
            let mut versions = Vec::new();
            for stream in &streams {
                versions.push(store.stream_version(stream).await.expect("version"));
            }
            let mut rng = Rng(task as u64 + 0x9e37_79b9_7f4a_7c15);
            loop {
                let which = rng.below(3) as usize;
                let size = 1 + rng.below(4) as usize;
                let ids: Vec<Uuid> = (0..size).map(|_| Uuid::now_v7()).collect();
                let events = ids
                    .iter()
                    .enumerate()
                    .map(|(index, id)| {
                        let data =
                            serde_json::json!({ "batch": ids[0], "size": size, "index": index });
                        NewEvent::json("Appended", data)
                            .expect("object")
                            .with_id(*id)
                    })
                    .collect();
                let stream = &streams[which];
                let written = store
                    .append(stream, ExpectedVersion::Exact(versions[which]), events)
                    .await
                    .expect("child append");
                versions[which] = written.last_version;
                let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
                let line = format!(
                    "ack {stream} {} {} {}\n",
                    written.first_version,
                    written.first_position,
                    ids.join(",")
                );
                let mut out = out.lock().expect("stdout lock");
                out.write_all(line.as_bytes()).expect("pipe");
                out.flush().expect("pipe");
            }
        }));
    }
    // The tasks loop until the parent kills this process.
    futures_util::future::join_all(tasks).await;
}

async fn verify(path: &Path, acked: &[Ack], round: usize) -> usize {
    let store = SqliteEventStore::open(path, SqliteOptions::default()).expect("reopen after kill");
    let head = store.head_position().await.expect("head");
    let log: Vec<RecordedEvent> = read_all_pages(&store, 1, EventFilter::all(), 1000)
        .try_collect()
        .await
        .expect("read log");
    // Positions: contiguous from 1 to head, no holes and no duplicates.
    for (index, event) in log.iter().enumerate() {
        assert_eq!(
            event.position,
            index as u64 + 1,
            "round {round}: hole or disorder in the global log"
        );
    }
    assert_eq!(
        log.len() as u64,
        head,
        "round {round}: head {head} but {} events in the log",
        log.len()
    );
    // Versions: contiguous per stream, and the stream index agrees with the log.
    let mut by_stream: BTreeMap<String, Vec<&RecordedEvent>> = BTreeMap::new();
    for event in &log {
        by_stream
            .entry(event.stream_id.to_string())
            .or_default()
            .push(event);
    }
    for (stream, events) in &by_stream {
        for (index, event) in events.iter().enumerate() {
            assert_eq!(
                event.version,
                index as u64 + 1,
                "round {round}: stream {stream} has a version gap"
            );
        }
        let id = StreamId::new(stream.as_str()).expect("id");
        let read: Vec<RecordedEvent> = read_stream_pages(&store, id, Direction::Forward, None, 7)
            .try_collect()
            .await
            .expect("read stream");
        let positions: Vec<u64> = read.iter().map(|e| e.position).collect();
        let expected: Vec<u64> = events.iter().map(|e| e.position).collect();
        assert_eq!(
            positions, expected,
            "round {round}: stream index of {stream} disagrees with the log"
        );
    }
    // No half-written append: every batch is complete and at consecutive versions.
    let mut batches: HashMap<String, Vec<&RecordedEvent>> = HashMap::new();
    for event in &log {
        let data = event.data_json().expect("json");
        batches
            .entry(data["batch"].to_string())
            .or_default()
            .push(event);
    }
    for (batch, events) in &batches {
        let size = events[0].data_json().expect("json")["size"]
            .as_u64()
            .expect("size");
        assert_eq!(
            events.len() as u64,
            size,
            "round {round}: batch {batch} is half-written"
        );
        for pair in events.windows(2) {
            assert_eq!(
                pair[1].version,
                pair[0].version + 1,
                "round {round}: batch {batch} is not contiguous"
            );
        }
    }
    // Every acknowledged append is present where the acknowledgement said.
    let by_id: HashMap<Uuid, &RecordedEvent> = log.iter().map(|e| (e.id, e)).collect();
    for ack in acked {
        for (offset, id) in ack.ids.iter().enumerate() {
            let event = by_id.get(id).unwrap_or_else(|| {
                panic!(
                    "round {round}: acknowledged event {id} of {} is lost",
                    ack.stream
                )
            });
            assert_eq!(
                event.stream_id.as_str(),
                ack.stream,
                "round {round}: event {id} moved stream"
            );
            assert_eq!(
                event.version,
                ack.first_version + offset as u64,
                "round {round}: event {id} changed version"
            );
            assert_eq!(
                event.position,
                ack.first_position + offset as u64,
                "round {round}: event {id} changed position"
            );
        }
    }
    store.close().await.expect("close");
    log.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_repeated_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("crash.db");
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
        | 1;
    println!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let mut acked = Vec::new();
    let mut killed_with_acks = 0;
    for round in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "crash_child_appends_until_killed",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| parse_ack(&l))
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(20 + rng.below(400)));
        child.kill().expect("SIGKILL the child");
        child.wait().expect("reap the child");
        let acks = reader.join().expect("reader thread");
        if !acks.is_empty() {
            killed_with_acks += 1;
        }
        acked.extend(acks);
        let events = verify(&path, &acked, round).await;
        println!(
            "round {round}: {events} events, {} acknowledged appends so far",
            acked.len()
        );
    }
    assert!(
        killed_with_acks >= KILLS / 2,
        "only {killed_with_acks} of {KILLS} kills hit a writing child"
    );
}
