//! `mammoth demo` end to end at a small size: the `--json` summary's shape and values, the
//! exit code, the reuse/reset messages, and a clear error when another process holds the
//! demo's store.

mod support;

use support::Sandbox;

fn demo_args<'a>(dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "demo",
        "--orders",
        "50",
        "--payment-deadline",
        "2s",
        "--poison",
        "1",
        "--data-dir",
        dir,
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn demo_json_reports_every_saga_ended_and_every_invariant_held() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("demo");
    let dir = dir.to_str().unwrap();
    let run = sandbox.run(&demo_args(dir, &["--json"]));
    run.ok();
    let report = run.json();
    assert_eq!(report["orders"], 50, "{run:#?}");
    assert_eq!(report["ok"], true, "{run:#?}");
    let confirmed = report["confirmed"].as_u64().unwrap();
    let cancelled = report["cancelled"].as_u64().unwrap();
    assert_eq!(confirmed + cancelled, 50, "{run:#?}");
    assert_eq!(report["dead_letters"], 1, "the poisoned payment: {run:#?}");
    assert_eq!(
        report["sagas_by_status"]["completed"].as_u64(),
        Some(confirmed)
    );
    let names: Vec<&str> = report["invariants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| {
            assert_eq!(check["ok"], true, "{check}");
            check["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            "every_saga_terminal",
            "inventory_conserved",
            "no_double_payment",
            "projection_equals_replay"
        ]
    );
    assert!(report["sagas_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["confirmation_latency"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(report["stages"].as_array().unwrap().len(), 7);

    // A second run reuses the store and says so; --reset wipes it and says so.
    let again = sandbox.run(&demo_args(dir, &["--json"]));
    again.ok();
    assert_eq!(again.json()["reused"], true);
    assert!(
        again.stderr.contains("reusing the demo store"),
        "{again:#?}"
    );
    let reset = sandbox.run(&demo_args(dir, &["--json", "--reset"]));
    reset.ok();
    assert_eq!(reset.json()["reused"], false);
    assert!(reset.stderr.contains("--reset: removed"), "{reset:#?}");
}

#[test]
fn demo_refuses_a_store_another_process_holds() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("held");
    let store = mammoth_sqlite::SqliteEventStore::open(
        dir.join("mammoth.db"),
        mammoth_sqlite::SqliteOptions::default(),
    )
    .unwrap();
    let run = sandbox.run(&demo_args(dir.to_str().unwrap(), &[]));
    let stderr = run.failed_with(1);
    assert!(stderr.contains("open in another process"), "{run:#?}");
    drop(store);
}
