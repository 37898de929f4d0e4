//! Crash safety of the whole order flow: a child process runs the demo engine (the saga
//! runner, the relay, the inventory, payment and order services, the projection) over one
//! data directory while many sagas are in flight; the parent kills it with SIGKILL at random
//! moments, at least ten times. Each child starts a fresh batch of orders (its own run id), so
//! every kill lands while new sagas are in flight however fast the machine is, and continues
//! the sagas the earlier kills interrupted (the saga runner, relay and workers follow the whole
//! log). Finally every run is restarted in this process and goes to completion (a restarted
//! run re-sends its orders under the same idempotency keys), and the invariants are read back
//! from the store per run: every saga ended, inventory conserved and never negative, no order
//! paid twice (nor a cancelled one charged), and the OrderProjection equal to a fresh replay.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mammoth_example_orders::demo::{self, DemoOptions, Quiet};

const CHILD_ENV: &str = "MAMMOTH_SAGA_CRASH_DIR";
const CHILD_RUN_ENV: &str = "MAMMOTH_SAGA_CRASH_RUN";
const KILLS: usize = 10;
/// Orders per child run.
const ORDERS: usize = 120;

fn options(dir: &std::path::Path, run_id: &str) -> DemoOptions {
    DemoOptions {
        data_dir: dir.to_path_buf(),
        run_id: Some(run_id.to_owned()),
        orders: ORDERS,
        payment_failure_rate: 0.2,
        poison: 2,
        payment_deadline: Duration::from_secs(2),
        timeout: Duration::from_secs(600),
        ..DemoOptions::default()
    }
}

/// Runs only as the child of `after_repeated_sigkill_every_saga_ends_and_nothing_is_lost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs as the child process of the crash test"]
async fn saga_crash_child_runs_the_demo_until_killed() {
    let (Some(dir), Ok(run_id)) = (std::env::var_os(CHILD_ENV), std::env::var(CHILD_RUN_ENV))
    else {
        return;
    };
    let _ = demo::run(options(std::path::Path::new(&dir), &run_id), &Quiet).await;
}

fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
        | 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_repeated_sigkill_every_saga_ends_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = seed();
    println!("seed {rng}");
    let exe = std::env::current_exe().unwrap();
    let mut kills = 0;
    let mut finished_alone = 0;
    let mut runs = Vec::new();
    while kills < KILLS {
        let run_id = format!("crash{}", runs.len());
        runs.push(run_id.clone());
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "saga_crash_child_runs_the_demo_until_killed",
            ])
            .env(CHILD_ENV, dir.path())
            .env(CHILD_RUN_ENV, &run_id)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        tokio::time::sleep(Duration::from_millis(400 + rng % 1_600)).await;
        if child.try_wait().unwrap().is_some() {
            // The run finished before the kill: nothing was in flight to test.
            finished_alone += 1;
            assert!(
                finished_alone < 5,
                "the child keeps finishing its {ORDERS} orders before it is killed; raise ORDERS"
            );
            continue;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }

    // Restart every run and take it to completion: every saga the kills interrupted must end.
    // Some invariants look at every saga in the store, so they are checked once all runs ended.
    println!("{kills} kills over {} runs", runs.len());
    let (mut confirmed, mut cancelled) = (0, 0);
    for run_id in &runs {
        let report = demo::run(options(dir.path(), run_id), &Quiet)
            .await
            .unwrap();
        println!(
            "run {run_id}: {} confirmed, {} cancelled, sagas {:?}, {} dead letters",
            report.confirmed, report.cancelled, report.sagas_by_status, report.dead_letters
        );
        assert_eq!(
            report.confirmed + report.cancelled,
            ORDERS as u64,
            "run {run_id}: every order ended confirmed or cancelled"
        );
        confirmed += report.confirmed;
        cancelled += report.cancelled;
    }
    assert!(confirmed > 0 && cancelled > 0);
    for run_id in &runs {
        let report = demo::run(options(dir.path(), run_id), &Quiet)
            .await
            .unwrap();
        for invariant in &report.invariants {
            assert!(
                invariant.ok,
                "run {run_id}: {}: {}",
                invariant.name, invariant.detail
            );
        }
        assert!(report.ok, "run {run_id}: {report:?}");
    }
}
