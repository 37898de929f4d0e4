//! `mammoth demo` with its message bus on a broker: NATS JetStream (`MAMMOTH_TEST_NATS_URL`)
//! and Redis Streams (`MAMMOTH_TEST_REDIS_URL`), the store staying embedded SQLite. Each test
//! runs on its own stream, subject prefix or key prefix; without the URL it is skipped with a
//! note, and under `CI=true` a missing URL fails it.

mod support;

use serde_json::Value;
use support::{Sandbox, service_url, suffix};

/// Runs `mammoth demo --json` with 50 orders (one poisoned) in `dir`, asserting it exits 0
/// with every saga ended and every invariant held, and returns the report.
fn demo_ok(sandbox: &Sandbox, dir: &str, extra: &[&str]) -> Value {
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
        "--json",
    ];
    args.extend_from_slice(extra);
    let run = sandbox.run(&args);
    let report = run.json();
    assert_eq!(report["ok"], true, "{run:#?}");
    let invariants = report["invariants"].as_array().expect("invariants");
    assert_eq!(invariants.len(), 4, "{run:#?}");
    for check in invariants {
        assert_eq!(check["ok"], true, "{check}");
    }
    let confirmed = report["confirmed"].as_u64().expect("confirmed");
    let cancelled = report["cancelled"].as_u64().expect("cancelled");
    assert_eq!(confirmed + cancelled, 50, "every order ended: {run:#?}");
    assert!(confirmed > 0, "some orders are confirmed: {run:#?}");
    assert_eq!(
        report["dead_letters"], 1,
        "the poisoned payment of this data directory only: {run:#?}"
    );
    report
}

/// A first run, then a `--reset` run in the same data directory on the same broker: both pass,
/// and the second uses a new namespace, so neither the first run's messages nor its dead
/// letter nor its relay checkpoint reach it.
fn demo_runs_and_resets_on(sandbox: &Sandbox, backend: &str) {
    let dir = sandbox.path().join("demo");
    let dir = dir.to_str().expect("utf-8 path");
    let first = demo_ok(sandbox, dir, &[]);
    let bus = first["message_bus"]
        .as_str()
        .expect("message_bus")
        .to_owned();
    assert!(bus.starts_with(backend), "{bus}");
    let second = demo_ok(sandbox, dir, &["--reset"]);
    let again = second["message_bus"].as_str().expect("message_bus");
    assert!(again.starts_with(backend), "{again}");
    assert_ne!(again, bus, "a reset data directory gets a new namespace");
}

#[test]
fn demo_on_nats_keeps_every_invariant_and_a_reset_run_sees_nothing_of_the_first() {
    let Some(url) = service_url("MAMMOTH_TEST_NATS_URL") else {
        return;
    };
    let suffix = suffix();
    let sandbox = Sandbox::new();
    sandbox.write(
        "mammoth.tsk",
        &format!(
            "[event_store]\nbackend: \"sqlite\"\ndsn: \"sqlite://./store/events.db\"\n[message_bus]\nbackend: \"nats\"\nurl: \"{url}\"\nstream: \"MDEMO_{suffix}\"\nsubject_prefix: \"mdemo{suffix}\"\n"
        ),
    );
    demo_runs_and_resets_on(&sandbox, "nats");
}

#[test]
fn demo_on_redis_keeps_every_invariant_and_a_reset_run_sees_nothing_of_the_first() {
    let Some(url) = service_url("MAMMOTH_TEST_REDIS_URL") else {
        return;
    };
    let suffix = suffix();
    let sandbox = Sandbox::new();
    sandbox.write(
        "mammoth.tsk",
        &format!(
            "[event_store]\nbackend: \"sqlite\"\ndsn: \"sqlite://./store/events.db\"\n[message_bus]\nbackend: \"redis\"\nurl: \"{url}\"\nqueue_prefix: \"mdemo{suffix}:\"\n"
        ),
    );
    demo_runs_and_resets_on(&sandbox, "redis");
}

#[test]
fn demo_refuses_a_memory_store_naming_the_durable_ones() {
    let sandbox = Sandbox::new();
    sandbox.write("mammoth.tsk", "[event_store]\nbackend: \"memory\"\n");
    let run = sandbox.run(&["demo", "--orders", "5"]);
    let stderr = run.failed_with(2);
    for backend in ["\"sqlite\"", "\"postgres\"", "\"mysql\""] {
        assert!(stderr.contains(backend), "{stderr}");
    }
}
