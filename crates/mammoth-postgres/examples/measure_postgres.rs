//! Measures the PostgreSQL store beside raw tokio-postgres doing the same work on the same
//! server in the same run, and the cost of the cross-process position order.
//!
//! ```text
//! cargo run --release -p mammoth-postgres --example measure_postgres -- [URL] [SECONDS] [RUNS]
//! ```
//! URL defaults to $MAMMOTH_TEST_POSTGRES_URL; SECONDS (per side) to 3; RUNS to 3. Prints each
//! run and the medians. Everything happens in a scratch schema that is dropped at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mammoth_core::{EventFilter, EventStore, ExpectedVersion, NewEvent, StreamId, Subscription};
use mammoth_postgres::{PgEventStore, PgOptions};
use tokio_postgres::{Client, NoTls};
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

async fn connect(url: &str) -> Client {
    let (client, connection) = url
        .parse::<tokio_postgres::Config>()
        .expect("URL")
        .connect(NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// Runs `tasks` copies of `work` for `seconds`; each call returns events written.
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

const RAW_TABLE: &str = "CREATE TABLE raw_events (
    position bigint PRIMARY KEY, stream_id text NOT NULL, version bigint NOT NULL,
    event_id uuid NOT NULL, event_type text NOT NULL, schema_version bigint NOT NULL,
    data text NOT NULL, metadata text NOT NULL, recorded_at bigint NOT NULL);
    CREATE UNIQUE INDEX ON raw_events (stream_id, version);
    CREATE UNIQUE INDEX ON raw_events (event_id);
    CREATE SEQUENCE raw_positions;";

async fn raw_table(url: &str, schema: &str) -> Client {
    let client = connect(url).await;
    client
        .batch_execute(&format!(
            "SET search_path = \"{schema}\"; DROP TABLE IF EXISTS raw_events; DROP SEQUENCE IF EXISTS raw_positions; {RAW_TABLE}"
        ))
        .await
        .expect("raw table");
    client
}

const RAW_BATCH: &str = "INSERT INTO raw_events
    SELECT nextval('raw_positions'), s, v, i, 'OrderPlaced', 1, d, '{}', 0
    FROM unnest($1::text[], $2::int8[], $3::uuid[], $4::text[]) AS r(s, v, i, d)";

async fn raw_batch(
    client: &Client,
    first: u64,
    rows: u64,
    stream_of: impl Fn(u64) -> String,
    version_of: impl Fn(u64) -> i64,
) {
    let streams: Vec<String> = (first..first + rows).map(&stream_of).collect();
    let versions: Vec<i64> = (first..first + rows).map(&version_of).collect();
    let ids: Vec<Uuid> = (0..rows).map(|_| Uuid::now_v7()).collect();
    let payloads: Vec<String> = (first..first + rows).map(data).collect();
    client
        .execute(RAW_BATCH, &[&streams, &versions, &ids, &payloads])
        .await
        .expect("raw batch");
}

#[derive(Default, Clone)]
struct Run(Vec<(&'static str, f64)>);

async fn one_run(url: &str, seconds: f64) -> Run {
    let schema = format!("mammoth_measure_{}", std::process::id());
    let _ = mammoth_postgres::drop_schema(url, &schema).await;
    let options = PgOptions {
        schema: schema.clone(),
        pool_size: 8,
        ..PgOptions::default()
    };
    let store = PgEventStore::open(url, options).await.expect("open store");
    let mut run = Run::default();
    let counter = Arc::new(AtomicU64::new(0));

    // (a) sequential 1-event appends, and raw one INSERT per transaction.
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
    let raw = Arc::new(raw_table(url, &schema).await);
    let r = raw.clone();
    run.0.push((
        "a raw one INSERT per transaction",
        timed(1, seconds, move |_, round| {
            let r = r.clone();
            async move {
                raw_batch(&r, round, 1, |n| format!("seq-{n}"), |_| 1).await;
                1
            }
        })
        .await,
    ));

    // (b) 64 tasks, 1-event appends to their own streams; raw: 64 connections, one INSERT
    // per transaction each.
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
    let mut clients = Vec::new();
    for _ in 0..64 {
        let client = connect(url).await;
        client
            .batch_execute(&format!("SET search_path = \"{schema}\""))
            .await
            .expect("path");
        clients.push(client);
    }
    let clients = Arc::new(clients);
    run.0.push((
        "b raw 64 connections one INSERT per transaction",
        timed(64, seconds, move |task, round| {
            let clients = clients.clone();
            async move {
                raw_batch(
                    &clients[task],
                    round,
                    1,
                    move |_| format!("par-{task}"),
                    move |n| n as i64 + 1,
                )
                .await;
                1
            }
        })
        .await,
    ));

    // (c) 100-event appends; raw: one multi-row INSERT of 100 rows per transaction.
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
                raw_batch(
                    &r,
                    round * 100,
                    100,
                    |_| "batch-1".to_owned(),
                    |n| n as i64 + 1,
                )
                .await;
                100
            }
        })
        .await,
    ));

    // (d) read the whole global log; raw: one ordered scan of the same table.
    let head = store.head_position().await.expect("head");
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
    let rows = raw
        .query(&format!("SELECT position, stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at FROM \"{schema}\".events ORDER BY position"), &[])
        .await
        .expect("scan");
    let mut bytes = 0usize;
    for row in &rows {
        let stream: &str = row.get(1);
        let id: Uuid = row.get(3);
        let data: &str = row.get(6);
        bytes += stream.len() + data.len() + id.as_bytes().len();
    }
    assert!(bytes > 0 && rows.len() as u64 >= read.min(head));
    run.0.push((
        "d raw ordered scan",
        rows.len() as f64 / started.elapsed().as_secs_f64(),
    ));

    // (e) append -> live subscriber latency (p50, p99 in microseconds).
    let store_arc = Arc::new(store.clone());
    let start_head = store.head_position().await.expect("head");
    let mut subscription = Subscription::new(store_arc, start_head + 1, EventFilter::all());
    let mut latencies = Vec::new();
    let mut returned = Vec::new();
    for n in 0..300u64 {
        let sent = Instant::now();
        store
            .append(
                &stream(3_000_000 + n),
                ExpectedVersion::NoStream,
                vec![event(n)],
            )
            .await
            .expect("append");
        returned.push(sent.elapsed().as_micros() as f64);
        subscription.next().await.expect("live event");
        latencies.push(sent.elapsed().as_micros() as f64);
    }
    latencies.sort_by(f64::total_cmp);
    returned.sort_by(f64::total_cmp);
    // The append alone: tells the commit's latency from the subscriber's reads.
    run.0
        .push(("e p50 append returns us", returned[returned.len() / 2]));
    run.0.push((
        "e p99 append returns us",
        returned[returned.len() * 99 / 100],
    ));
    // The server's own commit latency at the same moment: one raw INSERT per transaction.
    let mut raw_commits = Vec::new();
    for n in 0..300u64 {
        let sent = Instant::now();
        raw_batch(&raw, 5_000_000 + n, 1, |n| format!("lat-{n}"), |_| 1).await;
        raw_commits.push(sent.elapsed().as_micros() as f64);
    }
    raw_commits.sort_by(f64::total_cmp);
    run.0.push((
        "e p50 raw one-row INSERT commit us",
        raw_commits[raw_commits.len() / 2],
    ));
    run.0.push((
        "e p99 raw one-row INSERT commit us",
        raw_commits[raw_commits.len() * 99 / 100],
    ));
    run.0.push((
        "e p50 append->subscriber us",
        latencies[latencies.len() / 2],
    ));
    run.0.push((
        "e p99 append->subscriber us",
        latencies[latencies.len() * 99 / 100],
    ));

    // Technique: one connection committing groups of 64 rows, three ways.
    let group = 64u64;
    let t = raw.clone();
    let sql = format!(
        "WITH head AS (UPDATE \"{schema}\".log_head SET position = position + $1 RETURNING position - $1 AS base),
         rows AS (INSERT INTO \"{schema}\".events SELECT head.base + r.n, r.s, 1, r.i, 'OrderPlaced', 1, r.d, '{{}}', 0
                  FROM head, unnest($2::text[], $3::uuid[], $4::text[]) WITH ORDINALITY AS r(s, i, d, n) RETURNING 1)
         SELECT head.base, (SELECT count(*) FROM rows) FROM head"
    );
    let sql = Arc::new(sql);
    run.0.push((
        "T serialized: log_head row lock, 64-row groups",
        timed(1, seconds, move |_, round| {
            let (t, sql) = (t.clone(), sql.clone());
            async move {
                let streams: Vec<String> = (0..group).map(|k| format!("t1-{round}-{k}")).collect();
                let ids: Vec<Uuid> = (0..group).map(|_| Uuid::now_v7()).collect();
                let payloads: Vec<String> = (0..group).map(data).collect();
                t.query_one(sql.as_str(), &[&(group as i64), &streams, &ids, &payloads])
                    .await
                    .expect("T1");
                group
            }
        })
        .await,
    ));
    let t = raw.clone();
    run.0.push((
        "T unserialized: sequence positions, 64-row groups",
        timed(1, seconds, move |_, round| {
            let t = t.clone();
            async move {
                raw_batch(&t, round * group, group, move |n| format!("t2-{n}"), |_| 1).await;
                group
            }
        })
        .await,
    ));
    let t = raw.clone();
    let lock_sql = Arc::new(String::from(
        "INSERT INTO raw_events SELECT (SELECT coalesce(max(position), 0) FROM raw_events) + r.n, r.s, 1, r.i, 'OrderPlaced', 1, r.d, '{}', 0
         FROM unnest($1::text[], $2::uuid[], $3::text[]) WITH ORDINALITY AS r(s, i, d, n)"
    ));
    run.0.push((
        "T advisory xact lock + max(position), 64-row groups",
        timed(1, seconds, move |_, round| {
            let (t, lock_sql) = (t.clone(), lock_sql.clone());
            async move {
                let streams: Vec<String> = (0..group).map(|k| format!("t3-{round}-{k}")).collect();
                let ids: Vec<Uuid> = (0..group).map(|_| Uuid::now_v7()).collect();
                let payloads: Vec<String> = (0..group).map(data).collect();
                let begin = t.batch_execute("BEGIN");
                let lock = t.execute("SELECT pg_advisory_xact_lock(42)", &[]);
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                    [&streams, &ids, &payloads];
                let insert = t.execute(lock_sql.as_str(), &params);
                let commit = t.batch_execute("COMMIT");
                let (b, l, i, c) = tokio::join!(begin, lock, insert, commit);
                b.and(l.map(drop)).and(i.map(drop)).and(c).expect("T3");
                group
            }
        })
        .await,
    ));

    store.close().await.expect("close");
    drop(raw);
    mammoth_postgres::drop_schema(url, &schema)
        .await
        .expect("drop scratch schema");
    run
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("MAMMOTH_TEST_POSTGRES_URL").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
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
