//! The raw SQLite limit on this machine: plain rusqlite inserts into mammoth's schema, one
//! transaction per event, at synchronous=FULL. `mammoth bench store` measures the same thing
//! beside each case; this example is the quick, dependency-free version.
//!
//! `cargo run --release -p mammoth-sqlite --example raw_baseline -- [SECONDS]`

use std::time::{Duration, Instant};

use mammoth_sqlite::Synchronous;
use mammoth_sqlite::schema::{self, INSERT_EVENT, INSERT_STREAM};
use rusqlite::{Connection, params};

fn main() -> rusqlite::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let batch: i64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let synchronous = if std::env::var_os("NORMAL").is_some() {
        Synchronous::Normal
    } else {
        Synchronous::Full
    };
    let dir = std::env::temp_dir().join(format!("mammoth-raw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut conn = Connection::open(dir.join("raw.db"))?;
    schema::configure(&conn, synchronous, 64 * 1024)?;
    let _ = schema::create(&conn)?;
    conn.execute(INSERT_STREAM, params![1, "bench-1", "bench"])?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut position: i64 = 0;
    while Instant::now() < deadline {
        let tx = conn.transaction()?;
        for n in 0..batch {
            position += 1;
            let data = format!(r#"{{"task":1,"n":{n},"total_cents":1234}}"#);
            tx.prepare_cached(INSERT_EVENT)?.execute(params![
                position,
                1,
                position,
                uuid::Uuid::now_v7().as_bytes().as_slice(),
                "Ticked",
                1,
                data,
                "{}",
                0
            ])?;
        }
        tx.commit()?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "raw: {position} one-event transactions in {elapsed:.2}s = {:.0}/s",
        position as f64 / elapsed
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
