//! Crash safety of SQL read models: a child process appends orders and projects them with the
//! OrderProjection (small batches, so many commits); the parent kills it with SIGKILL at
//! random moments, twelve times, then restarts the projection and checks that the read model
//! equals a fresh replay of the log — no event applied twice, none lost — because each batch
//! and its checkpoint are committed in one transaction.

mod projection_support;

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mammoth_core::{EventStore, ExpectedVersion, StreamId};
use mammoth_example_orders::projection::{NAME, OrderProjection, TABLES};
use mammoth_runtime::projection::{self, ProjectionOptions, ProjectionRunner};
use mammoth_sqlite::{ReadModelAdmin, SqliteEventStore, SqliteOptions, SqliteReadModel};
use projection_support::{order_events, order_rows};

const CHILD_ENV: &str = "MAMMOTH_PROJECTION_CRASH_DIR";
const KILLS: usize = 12;

/// Runs only as the child of `the_read_model_equals_a_fresh_replay_after_repeated_sigkill`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs as the child process of the crash test"]
async fn projection_crash_child_projects_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let store =
        SqliteEventStore::open(dir.join("mammoth.db"), SqliteOptions::default()).expect("store");
    let target = SqliteReadModel::open(dir.join("read_models.db"), OrderProjection::new())
        .expect("read model");
    let options = ProjectionOptions::default().with_batch_size(37);
    let handle = ProjectionRunner::new(store.clone(), target, options).spawn();
    let run = std::process::id();
    for n in 0.. {
        let stream = StreamId::new(format!("order-{run}x{n}")).expect("id");
        let events = order_events(n);
        store
            .append(&stream, ExpectedVersion::NoStream, events)
            .await
            .expect("append");
        if n % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    drop(handle);
}

fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
        | 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_model_equals_a_fresh_replay_after_repeated_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = seed();
    println!("seed {rng}");
    let exe = std::env::current_exe().unwrap();
    for kill in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "projection_crash_child_projects_until_killed",
                "--nocapture",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let wait = 150 + rng % 600;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "kill {kill}: the child ended on its own: {status}"
        );
    }

    let store =
        SqliteEventStore::open(dir.path().join("mammoth.db"), SqliteOptions::default()).unwrap();
    let head = store.head_position().await.unwrap();
    assert!(
        head > 500,
        "the children wrote too little to test anything: {head}"
    );
    let read_path = dir.path().join("read_models.db");
    let checkpoint = ReadModelAdmin::open(&read_path)
        .unwrap()
        .live_checkpoint(NAME)
        .unwrap();
    println!("head {head}, checkpoint after the last kill {checkpoint}");

    // Restart: the projection resumes from its checkpoint.
    let target = SqliteReadModel::open(&read_path, OrderProjection::new()).unwrap();
    let mut runner = ProjectionRunner::new(store.clone(), target, ProjectionOptions::default());
    assert_eq!(runner.catch_up(None, |_, _| {}).await.unwrap(), head);

    // A fresh replay into another file has the same rows.
    let fresh_path = dir.path().join("fresh.db");
    let fresh = SqliteReadModel::open(&fresh_path, OrderProjection::new()).unwrap();
    ProjectionRunner::new(store.clone(), fresh, ProjectionOptions::default())
        .catch_up(None, |_, _| {})
        .await
        .unwrap();
    let (live_rows, fresh_rows) = (order_rows(&read_path), order_rows(&fresh_path));
    assert!(!fresh_rows.is_empty());
    assert!(
        live_rows == fresh_rows,
        "{} live rows vs {} fresh",
        live_rows.len(),
        fresh_rows.len()
    );

    // And verify (shadow rebuild + diff) agrees.
    let shadow = SqliteReadModel::shadow(&read_path, OrderProjection::new()).unwrap();
    let admin = std::cell::RefCell::new(ReadModelAdmin::open(&read_path).unwrap());
    let report = projection::verify(
        store.clone(),
        shadow,
        ProjectionOptions::default(),
        || std::future::ready(admin.borrow().live_checkpoint(NAME)),
        || std::future::ready(admin.borrow_mut().diff_shadow(NAME, TABLES)),
    )
    .await
    .unwrap();
    assert!(report.is_clean(), "{report:?}");
    store.close().await.unwrap();
}
