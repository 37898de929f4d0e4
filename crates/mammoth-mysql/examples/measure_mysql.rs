//! Measures the MySQL/MariaDB store beside raw mysql_async doing the same work on the same
//! server in the same run, and the cost of the cross-process position order.
//!
//! ```text
//! cargo run --release -p mammoth-mysql --example measure_mysql -- [URL] [SECONDS] [RUNS]
//! ```
//! URL defaults to $MAMMOTH_TEST_MYSQL_URL; SECONDS (per side) to 3; RUNS to 3. Prints each
//! run and the medians. Everything happens in a scratch database dropped at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mammoth_core::{EventFilter, EventStore, ExpectedVersion, NewEvent, StreamId, Subscription};
use mammoth_mysql::{MysqlEventStore, MysqlOptions};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row, Value};
use tokio::sync::Mutex;
use uuid::Uuid;

fn data(n: u64) -> String {
    format!(
        r#"{{"order_id":"order-{n}","customer_id":"customer-{}","total_cents":{},"items":3,"currency":"EUR"}}"#,
        n % 1_000,
        1_000 + n % 9_000
    )
}

fn event(n: u64) -> NewEvent {
    NewEvent::from_json_text("OrderPlaced", data(n))
}

fn stream(n: u64) -> StreamId {
    StreamId::new(format!("order-{n}")).expect("valid stream id")
}

async fn timed<F, Fut>(tasks: usize, seconds: f64, work: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let work = Arc::new(work);
    let total = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let (work, total) = (work.clone(), total.clone());
            tokio::spawn(async move {
                let mut round = 0;
                while Instant::now() < deadline {
                    total.fetch_add(work(task, round).await, Ordering::Relaxed);
                    round += 1;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("task");
    }
    total.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// A multi-row INSERT of `rows` into `table` (AUTO_INCREMENT positions) with its params.
fn raw_insert(
    table: &str,
    first: u64,
    rows: u64,
    stream_of: &dyn Fn(u64) -> String,
) -> (String, Vec<Value>) {
    let mut sql = format!(
        "INSERT INTO {table} (stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at) VALUES "
    );
    let mut params = Vec::new();
    for n in first..first + rows {
        if n > first {
            sql.push(',');
        }
        sql.push_str("(?,?,?,'OrderPlaced',1,?,'{}',0)");
        params.push(Value::from(stream_of(n).into_bytes()));
        params.push(Value::from(n + 1));
        params.push(Value::from(Uuid::now_v7().as_bytes().to_vec()));
        params.push(Value::from(data(n)));
    }
    (sql, params)
}

#[derive(Default)]
struct Run(Vec<(&'static str, f64)>);

async fn one_run(url: &str, seconds: f64) -> Run {
    let database = format!("mammoth_measure_{}", std::process::id());
    let _ = mammoth_mysql::drop_database(url, &database).await;
    let options = MysqlOptions {
        database: Some(database.clone()),
        pool_size: 8,
        ..MysqlOptions::default()
    };
    let store = MysqlEventStore::open(url, options)
        .await
        .expect("open store");
    let opts = mysql_async::OptsBuilder::from_opts(Opts::from_url(url).expect("url"))
        .db_name(Some(database.clone()));
    let mut conn = Conn::new(opts.clone()).await.expect("raw connection");
    conn.query_drop(
        "CREATE TABLE raw_events (position BIGINT AUTO_INCREMENT PRIMARY KEY,
            stream_id VARBINARY(255) NOT NULL, version BIGINT NOT NULL, event_id BINARY(16) NOT NULL,
            event_type VARCHAR(255) NOT NULL, schema_version BIGINT NOT NULL,
            data LONGTEXT NOT NULL, metadata LONGTEXT NOT NULL, recorded_at BIGINT NOT NULL,
            UNIQUE KEY (stream_id, version), UNIQUE KEY (event_id)) ENGINE = InnoDB",
    )
    .await
    .expect("raw table");
    let raw = Arc::new(Mutex::new(conn));
    let mut run = Run::default();
    let counter = Arc::new(AtomicU64::new(0));

    let s = store.clone();
    let c = counter.clone();
    run.0.push((
        "a store sequential 1-event appends",
        timed(1, seconds, move |_, _| {
            let (s, n) = (s.clone(), c.fetch_add(1, Ordering::Relaxed));
            async move {
                s.append(&stream(n), ExpectedVersion::NoStream, vec![event(n)])
                    .await
                    .expect("append");
                1
            }
        })
        .await,
    ));
    let r = raw.clone();
    run.0.push((
        "a raw one INSERT per transaction",
        timed(1, seconds, move |_, round| {
            let r = r.clone();
            async move {
                let (sql, params) = raw_insert("raw_events", round, 1, &|n| format!("seq-{n}"));
                r.lock()
                    .await
                    .exec_drop(sql, params)
                    .await
                    .expect("raw insert");
                1
            }
        })
        .await,
    ));

    let s = store.clone();
    run.0.push((
        "b store 64 tasks 1-event appends",
        timed(64, seconds, move |task, round| {
            let s = s.clone();
            async move {
                s.append(
                    &stream(1_000_000 + task as u64),
                    ExpectedVersion::Exact(round),
                    vec![event(round)],
                )
                .await
                .expect("append");
                1
            }
        })
        .await,
    ));
    let mut conns = Vec::new();
    for _ in 0..64 {
        conns.push(Mutex::new(
            Conn::new(opts.clone()).await.expect("raw connection"),
        ));
    }
    let conns = Arc::new(conns);
    run.0.push((
        "b raw 64 connections one INSERT per transaction",
        timed(64, seconds, move |task, round| {
            let conns = conns.clone();
            async move {
                let (sql, params) =
                    raw_insert("raw_events", round, 1, &move |_| format!("par-{task}"));
                conns[task]
                    .lock()
                    .await
                    .exec_drop(sql, params)
                    .await
                    .expect("raw insert");
                1
            }
        })
        .await,
    ));

    let s = store.clone();
    run.0.push((
        "c store 100-event appends",
        timed(1, seconds, move |_, round| {
            let s = s.clone();
            async move {
                let events = (0..100).map(|k| event(round * 100 + k)).collect();
                s.append(
                    &stream(2_000_000),
                    ExpectedVersion::Exact(round * 100),
                    events,
                )
                .await
                .expect("append");
                100
            }
        })
        .await,
    ));
    let r = raw.clone();
    run.0.push((
        "c raw multi-row INSERT of 100",
        timed(1, seconds, move |_, round| {
            let r = r.clone();
            async move {
                let (sql, params) =
                    raw_insert("raw_events", round * 100, 100, &|_| "batch-1".to_owned());
                r.lock()
                    .await
                    .exec_drop(sql, params)
                    .await
                    .expect("raw insert");
                100
            }
        })
        .await,
    ));

    let started = Instant::now();
    let mut from = 1;
    let mut read = 0u64;
    loop {
        let page = store
            .read_all(from, &EventFilter::all(), 1000)
            .await
            .expect("read");
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        read += page.len() as u64;
    }
    run.0.push((
        "d store read global log",
        read as f64 / started.elapsed().as_secs_f64(),
    ));
    let started = Instant::now();
    let rows: Vec<Row> = raw
        .lock()
        .await
        .query(format!(
            "SELECT position, stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at FROM `{database}`.events ORDER BY position"
        ))
        .await
        .expect("scan");
    let mut decoded = 0u64;
    for row in rows {
        let (_, stream, _, id, _, _, data, _, _): (
            i64,
            Vec<u8>,
            i64,
            Vec<u8>,
            String,
            i64,
            String,
            String,
            i64,
        ) = mysql_async::from_row_opt(row).expect("row");
        decoded += (stream.len() + id.len() + data.len()).min(1) as u64;
    }
    run.0.push((
        "d raw ordered scan",
        decoded as f64 / started.elapsed().as_secs_f64(),
    ));

    // (e) in-process append -> subscriber, and another handle's append -> subscriber (polling).
    for (label_50, label_99, other) in [
        (
            "e p50 same-handle append->subscriber us",
            "e p99 same-handle append->subscriber us",
            false,
        ),
        (
            "e p50 other-process append->subscriber us",
            "e p99 other-process append->subscriber us",
            true,
        ),
    ] {
        let writer = if other {
            MysqlEventStore::open(
                url,
                MysqlOptions {
                    database: Some(database.clone()),
                    ..MysqlOptions::default()
                },
            )
            .await
            .expect("second handle")
        } else {
            store.clone()
        };
        let head = store.head_position().await.expect("head");
        let mut subscription =
            Subscription::new(Arc::new(store.clone()), head + 1, EventFilter::all());
        let mut latencies = Vec::new();
        for n in 0..200u64 {
            tokio::time::sleep(Duration::from_millis(if other { 20 } else { 0 })).await;
            let sent = Instant::now();
            let id = 3_000_000 + n + if other { 10_000 } else { 0 };
            writer
                .append(&stream(id), ExpectedVersion::NoStream, vec![event(n)])
                .await
                .expect("append");
            subscription.next().await.expect("live event");
            latencies.push(sent.elapsed().as_micros() as f64);
        }
        latencies.sort_by(f64::total_cmp);
        run.0.push((label_50, latencies[latencies.len() / 2]));
        run.0
            .push((label_99, latencies[latencies.len() * 99 / 100]));
    }

    // Technique: one connection committing 64-row groups with and without the log_head lock.
    let group = 64u64;
    let r = raw.clone();
    let d = database.clone();
    run.0.push((
        "T serialized: log_head row lock, 64-row groups",
        timed(1, seconds, move |_, round| {
            let (r, d) = (r.clone(), d.clone());
            async move {
                let mut conn = r.lock().await;
                conn.query_drop("START TRANSACTION").await.expect("begin");
                conn.exec_drop(
                    format!("UPDATE `{d}`.log_head SET position = LAST_INSERT_ID(position + ?)"),
                    (group,),
                )
                .await
                .expect("take positions");
                let base = conn.last_insert_id().unwrap_or(0) - group;
                let mut sql = format!("INSERT INTO `{d}`.events VALUES ");
                let mut params = Vec::new();
                for k in 0..group {
                    if k > 0 {
                        sql.push(',');
                    }
                    sql.push_str("(?,?,1,?,'OrderPlaced',1,?,'{}',0)");
                    params.push(Value::from(base + k + 1));
                    params.push(Value::from(format!("t1-{round}-{k}").into_bytes()));
                    params.push(Value::from(Uuid::now_v7().as_bytes().to_vec()));
                    params.push(Value::from(data(k)));
                }
                conn.exec_drop(sql, params).await.expect("insert");
                conn.query_drop("COMMIT").await.expect("commit");
                group
            }
        })
        .await,
    ));
    let r = raw.clone();
    run.0.push((
        "T unserialized: AUTO_INCREMENT, 64-row groups",
        timed(1, seconds, move |_, round| {
            let r = r.clone();
            async move {
                let (sql, params) = raw_insert("raw_events", round * group, group, &move |n| {
                    format!("t2-{n}")
                });
                let mut conn = r.lock().await;
                conn.query_drop("START TRANSACTION").await.expect("begin");
                conn.exec_drop(sql, params).await.expect("insert");
                conn.query_drop("COMMIT").await.expect("commit");
                group
            }
        })
        .await,
    ));

    store.close().await.expect("close");
    drop(raw);
    mammoth_mysql::drop_database(url, &database)
        .await
        .expect("drop scratch database");
    run
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("MAMMOTH_TEST_MYSQL_URL").ok())
        .unwrap_or_else(|| "mysql://root@127.0.0.1:3306/test".to_owned());
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut all: Vec<Run> = Vec::new();
    for number in 1..=runs {
        let run = one_run(&url, seconds).await;
        println!("run {number}:");
        for (name, value) in &run.0 {
            println!("  {name:<52} {value:>12.0}");
        }
        all.push(run);
    }
    println!("median of {runs} runs (events/s unless noted):");
    for (index, (name, _)) in all[0].0.iter().enumerate() {
        let mut values: Vec<f64> = all.iter().map(|run| run.0[index].1).collect();
        values.sort_by(f64::total_cmp);
        println!("  {name:<52} {:>12.0}", values[values.len() / 2]);
    }
}
