//! `mammoth demo` with its event store on a SQL server: PostgreSQL (`MAMMOTH_TEST_POSTGRES_URL`)
//! and MariaDB/MySQL (`MAMMOTH_TEST_MYSQL_URL`). The events, snapshots, saga timers and the
//! saga runner's checkpoint and the embedded bus live in the server (each test in a schema or
//! database of its own, dropped at the end); the read models stay in the data directory.
//! Without the URL a test is skipped with a note; under `CI=true` a missing URL fails it.

mod support;

use serde_json::Value;
use support::{Sandbox, service_url};

/// A schema or database name no other test or run uses.
fn unique_name() -> String {
    format!(
        "mdemo_{}_{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// Drops the test's schema or database when the test ends, passed or not.
struct Cleanup {
    drop: Box<dyn Fn()>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        (self.drop)();
    }
}

/// Runs `mammoth demo --json` with 60 orders (one poisoned) in `dir`, asserting it exits 0
/// with every saga ended and every invariant held and `dead_letters` in the data directory's
/// bus (one per run since it was new), and returns the report.
fn demo_ok(sandbox: &Sandbox, dir: &str, dead_letters: u64) -> Value {
    let args = [
        "demo",
        "--orders",
        "60",
        "--payment-deadline",
        "2s",
        "--poison",
        "1",
        "--data-dir",
        dir,
        "--json",
    ];
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
    assert_eq!(confirmed + cancelled, 60, "every order ended: {run:#?}");
    assert!(confirmed > 0, "some orders are confirmed: {run:#?}");
    assert_eq!(
        report["dead_letters"], dead_letters,
        "the poisoned payments of the bus's runs: {run:#?}"
    );
    report
}

/// A first run, a second run reusing the database, then a `--reset` run: all pass with their
/// own run ids, the events stay in the server (the reset keeps them and says so), and the
/// reset run's bus carries none of the earlier runs' commands (one dead letter, its own).
fn demo_runs_twice_and_resets_on(sandbox: &Sandbox, backend: &str, name: &str) {
    let dir = sandbox.path().join("demo");
    let dir = dir.to_str().expect("utf-8 path");
    let first = demo_ok(sandbox, dir, 1);
    let store = first["event_store"].as_str().expect("event_store");
    assert!(
        store.starts_with(backend) && store.contains(name),
        "the events are in the server: {store}"
    );
    assert!(
        !sandbox.path().join("demo").join("mammoth.db").exists(),
        "no SQLite event store is written"
    );
    assert!(
        !sandbox.path().join("demo").join("bus.db").exists(),
        "the embedded bus is in the server, not in a SQLite file"
    );
    let bus = first["message_bus"].as_str().expect("message_bus");
    assert!(
        bus.starts_with(&format!("embedded ({backend})")),
        "the embedded bus is in the server's tables: {bus}"
    );
    let second = demo_ok(sandbox, dir, 2);
    assert_eq!(second["reused"], true);
    assert_ne!(second["run_id"], first["run_id"], "each run has its own id");
    let reset = sandbox.run(&[
        "demo",
        "--orders",
        "60",
        "--payment-deadline",
        "2s",
        "--poison",
        "1",
        "--data-dir",
        dir,
        "--reset",
        "--json",
    ]);
    assert!(
        reset.stderr.contains("are kept"),
        "--reset says the database's events are kept: {reset:#?}"
    );
    let third = reset.json();
    assert_eq!(third["ok"], true, "{reset:#?}");
    assert_eq!(third["dead_letters"], 1, "{reset:#?}");
    let events_before = first["events_written"].as_u64().expect("events")
        + second["events_written"].as_u64().expect("events");
    assert!(events_before > 0);
    assert_ne!(third["run_id"], second["run_id"]);
}

#[test]
fn demo_on_postgres_keeps_every_invariant_across_runs_and_a_reset_keeps_the_database() {
    let Some(url) = service_url("MAMMOTH_TEST_POSTGRES_URL") else {
        return;
    };
    let schema = unique_name();
    let _cleanup = Cleanup {
        drop: Box::new({
            let (url, schema) = (url.clone(), schema.clone());
            move || {
                if let Err(error) = block_on(mammoth_postgres::drop_schema(&url, &schema)) {
                    eprintln!("note: could not drop test schema {schema}: {error}");
                }
            }
        }),
    };
    let sandbox = Sandbox::new();
    sandbox.write(
        "mammoth.tsk",
        &format!("[event_store]\nbackend: \"postgres\"\ndsn: \"{url}\"\nschema: \"{schema}\"\n"),
    );
    demo_runs_twice_and_resets_on(&sandbox, "postgres", &schema);
}

#[test]
fn demo_on_mysql_keeps_every_invariant_across_runs_and_a_reset_keeps_the_database() {
    let Some(url) = service_url("MAMMOTH_TEST_MYSQL_URL") else {
        return;
    };
    let database = unique_name();
    let _cleanup = Cleanup {
        drop: Box::new({
            let (url, database) = (url.clone(), database.clone());
            move || {
                if let Err(error) = block_on(mammoth_mysql::drop_database(&url, &database)) {
                    eprintln!("note: could not drop test database {database}: {error}");
                }
            }
        }),
    };
    let sandbox = Sandbox::new();
    sandbox.write(
        "mammoth.tsk",
        &format!("[event_store]\nbackend: \"mysql\"\ndsn: \"{url}\"\nschema: \"{database}\"\n"),
    );
    demo_runs_twice_and_resets_on(&sandbox, "mysql", &database);
}
