//! The demo engine end to end on the embedded backends, in a temporary directory: every saga
//! ends, the invariants hold (computed from the store), the declined and poisoned payments
//! are compensated, and a second run reuses the store (or resets it) as asked.

use std::time::Duration;

use mammoth_example_orders::demo::{self, DemoOptions, Quiet};

fn options(dir: &std::path::Path, orders: usize) -> DemoOptions {
    DemoOptions {
        data_dir: dir.to_path_buf(),
        orders,
        payment_failure_rate: 0.2,
        poison: 1,
        payment_deadline: Duration::from_secs(2),
        timeout: Duration::from_secs(90),
        ..DemoOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_run_ends_every_saga_and_keeps_every_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let report = demo::run(options(dir.path(), 60), &Quiet).await.unwrap();
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    for invariant in &report.invariants {
        assert!(invariant.ok, "{}: {}", invariant.name, invariant.detail);
    }
    assert!(report.ok);
    assert_eq!(report.confirmed + report.cancelled, 60, "every order ended");
    assert!(report.confirmed > 0, "some orders are confirmed");
    assert!(
        report.cancelled >= 1,
        "the poisoned and declined orders are cancelled"
    );
    assert_eq!(
        report.dead_letters, 1,
        "the poisoned payment is a dead letter"
    );
    let compensated = report
        .sagas_by_status
        .get("compensated")
        .copied()
        .unwrap_or(0);
    assert_eq!(compensated, report.cancelled);
    assert_eq!(
        report.sagas_by_status.get("completed").copied(),
        Some(report.confirmed)
    );
    assert!(report.confirmation_latency.count > 0);
    assert!(!report.reused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_reuses_the_store_unless_told_to_reset_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = options(dir.path(), 10);
    first.poison = 0;
    let report = demo::run(first.clone(), &Quiet).await.unwrap();
    assert!(report.ok && !report.reused);

    let again = demo::run(first.clone(), &Quiet).await.unwrap();
    assert!(again.reused, "the second run reuses the store");
    assert_ne!(again.run_id, report.run_id, "a new run gets new order ids");
    assert!(again.ok, "{:?}", again.invariants);

    let mut reset = first;
    reset.reset = true;
    let fresh = demo::run(reset, &Quiet).await.unwrap();
    assert!(!fresh.reused, "--reset starts from an empty store");
    assert_eq!(
        fresh.run_id, report.run_id,
        "an empty store starts at the same head"
    );
}
