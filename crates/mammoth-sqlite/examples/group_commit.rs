//! Shows group commit at work: N concurrent tasks append one-event batches to their own
//! streams for a few seconds, and the example prints the events per second reached.
//!
//! `cargo run --release -p mammoth-sqlite --example group_commit -- [TASKS] [SECONDS] [EVENTS PER APPEND]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mammoth_core::{EventStore, ExpectedVersion, NewEvent, StoreError, StreamId};
use mammoth_sqlite::{SqliteEventStore, SqliteOptions};

#[tokio::main]
async fn main() -> Result<(), StoreError> {
    let mut args = std::env::args().skip(1);
    let tasks: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let batch: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let dir = std::env::temp_dir().join(format!("mammoth-group-commit-{}", std::process::id()));
    let store = SqliteEventStore::open(
        dir.join("events.db"),
        SqliteOptions {
            synchronous: if std::env::var_os("NORMAL").is_some() {
                mammoth_sqlite::Synchronous::Normal
            } else {
                mammoth_sqlite::Synchronous::Full
            },
            ..SqliteOptions::default()
        },
    )?;
    let written = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = store.clone();
        let written = written.clone();
        handles.push(tokio::spawn(async move {
            let stream = StreamId::new(format!("bench-{task}"))?;
            while Instant::now() < deadline {
                let events = (0..batch)
                    .map(|n| {
                        let data = format!(r#"{{"task":{task},"n":{n},"total_cents":1234}}"#);
                        NewEvent::from_json_text("Ticked", data)
                    })
                    .collect();
                store.append(&stream, ExpectedVersion::Any, events).await?;
                written.fetch_add(batch as u64, Ordering::Relaxed);
            }
            Ok::<(), StoreError>(())
        }));
    }
    for handle in handles {
        handle.await.expect("task panicked")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let events = written.load(Ordering::Relaxed);
    println!(
        "{tasks} tasks: {events} events in {elapsed:.2}s = {:.0} events/s",
        events as f64 / elapsed
    );
    store.close().await?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
