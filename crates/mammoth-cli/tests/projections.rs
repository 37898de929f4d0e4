//! `mammoth projections ...` and `mammoth bench projections` end to end: the built binary in a
//! temporary directory, order events appended with `mammoth events append` in the shapes of the
//! orders example (`OrderCreated` v2 and v1, `OrderPaid`, `OrderCancelled`), the read model
//! inspected with rusqlite.

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::Sandbox;

/// The read model goes to `rm/read_models.db`; the failure policy is `on_failure`; the
/// `checkpoint` key says `event_store`, which a SQL read model ignores.
fn sandbox(on_failure: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write(
        "mammoth.tsk",
        &format!(
            "# written by the test\n[event_store]\nbackend: \"sqlite\"\ndsn: \"sqlite://./store/events.db\"\n[projections.orders]\nread_dsn: \"sqlite://./rm/read_models.db\"\ncheckpoint: \"event_store\"\non_failure: \"{on_failure}\"\n"
        ),
    );
    std::fs::create_dir_all(sandbox.path().join("rm")).expect("read-model directory");
    sandbox
}

fn read_model(sandbox: &Sandbox) -> PathBuf {
    sandbox.path().join("rm/read_models.db")
}

/// Appends `mammoth events append STREAM --type TYPE --data DATA --schema-version N`.
fn append(sandbox: &Sandbox, stream: &str, event_type: &str, version: u32, data: &str) {
    let version = version.to_string();
    sandbox
        .run(&[
            "events",
            "append",
            stream,
            "--type",
            event_type,
            "--schema-version",
            &version,
            "--data",
            data,
        ])
        .ok();
}

/// Order 1 created (v2) and paid; order 2 created as a v1 event (decimal strings, upcast to
/// cents) and cancelled; one event the projection does not read. Head: 5.
fn orders(sandbox: &Sandbox) {
    append(
        sandbox,
        "order-1",
        "OrderCreated",
        2,
        r#"{"order_id":"1","customer_id":"c1","items":[{"sku":"book","quantity":2,"unit_price_cents":1500}],"total_cents":3000}"#,
    );
    append(
        sandbox,
        "order-1",
        "OrderPaid",
        1,
        r#"{"order_id":"1","payment_id":"p1","amount_cents":3000}"#,
    );
    append(
        sandbox,
        "order-2",
        "OrderCreated",
        1,
        r#"{"order_id":"2","customer_id":"c2","items":[{"sku":"pen","quantity":1,"price":"12.50"}],"total":"12.50"}"#,
    );
    append(
        sandbox,
        "order-2",
        "OrderCancelled",
        1,
        r#"{"order_id":"2","reason":"changed mind"}"#,
    );
    append(sandbox, "cart-1", "ItemAdded", 1, "{}");
}

/// The one status row of `orders` for its active version (or version 0 before any run).
fn status(sandbox: &Sandbox) -> Value {
    let rows = sandbox
        .run(&["projections", "status", "orders", "--json"])
        .json();
    let rows = rows.as_array().expect("rows").clone();
    rows.into_iter()
        .find(|row| row["active"] == true || row["version"] == 0)
        .expect("an active row")
}

fn rows(sandbox: &Sandbox) -> Vec<(String, u64, String)> {
    let conn = rusqlite::Connection::open(read_model(sandbox)).expect("read model");
    let mut select = conn
        .prepare("SELECT id, total_cents, status FROM orders ORDER BY id")
        .expect("select");
    select
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn list_shows_the_orders_projection_its_read_model_and_its_failure_policy() {
    let sandbox = sandbox("park");
    let listed = sandbox.run(&["projections", "list", "--json"]).json();
    assert_eq!(listed[0]["name"], "orders", "{listed}");
    assert_eq!(listed[0]["on_failure"], "park");
    assert_eq!(
        listed[0]["checkpoint"], "read_model",
        "SQL read models ignore the key"
    );
    assert_eq!(listed[0]["tables"][0], "orders");
    let table = sandbox.run(&["projections", "list"]);
    let table = table.ok();
    assert!(
        table.contains("ON FAILURE") && table.contains("park") && table.contains("rm/"),
        "{table}"
    );
    let default = Sandbox::new();
    let listed = default.run(&["projections", "list", "--json"]).json();
    assert_eq!(listed[0]["on_failure"], "stop", "{listed}");
}

#[test]
fn replay_builds_the_read_model_and_lag_follows_the_head() {
    let sandbox = sandbox("stop");
    orders(&sandbox);
    let before = status(&sandbox);
    assert_eq!(
        (before["checkpoint"].as_u64(), before["lag"].as_u64()),
        (Some(0), Some(5)),
        "{before}"
    );

    let replayed = sandbox
        .run(&["projections", "replay", "orders", "--json"])
        .json();
    assert_eq!(replayed["checkpoint"], 5, "{replayed}");
    assert_eq!(
        rows(&sandbox),
        [
            ("1".to_owned(), 3000, "paid".to_owned()),
            ("2".to_owned(), 1250, "cancelled".to_owned()),
        ]
    );
    let after = status(&sandbox);
    assert_eq!(
        (after["checkpoint"].as_u64(), after["lag"].as_u64()),
        (Some(5), Some(0)),
        "{after}"
    );
    assert_eq!(after["version"], 1);

    append(
        &sandbox,
        "order-3",
        "OrderCreated",
        2,
        r#"{"order_id":"3","customer_id":"c3","items":[{"sku":"cup","quantity":1,"unit_price_cents":700}],"total_cents":700}"#,
    );
    let behind = status(&sandbox);
    assert_eq!(
        (behind["head"].as_u64(), behind["lag"].as_u64()),
        (Some(6), Some(1)),
        "{behind}"
    );
    let text = sandbox.run(&["projections", "status"]);
    assert!(text.ok().contains("LAG"), "{text:#?}");

    // A second replay empties the table first: the same rows plus the new order, no doubles.
    sandbox.run(&["projections", "replay", "orders"]).ok();
    assert_eq!(rows(&sandbox).len(), 3);
    assert_eq!(status(&sandbox)["lag"], 0);
}

#[test]
fn pause_and_resume_are_recorded_for_the_runner_to_pick_up() {
    let sandbox = sandbox("stop");
    orders(&sandbox);
    sandbox.run(&["projections", "replay", "orders"]).ok();
    sandbox.run(&["projections", "pause", "orders"]).ok();
    assert_eq!(status(&sandbox)["pause_requested"], true);
    let text = sandbox.run(&["projections", "status"]);
    assert!(text.ok().contains("pause asked"), "{text:#?}");
    sandbox.run(&["projections", "resume", "orders"]).ok();
    assert_eq!(status(&sandbox)["pause_requested"], false);
}

#[test]
fn rebuild_switches_versions_and_verify_finds_a_tampered_row() {
    let sandbox = sandbox("stop");
    orders(&sandbox);
    sandbox.run(&["projections", "replay", "orders"]).ok();
    let clean = sandbox
        .run(&["projections", "verify", "orders", "--json"])
        .json();
    assert_eq!(
        clean["differences"].as_array().map(Vec::len),
        Some(0),
        "{clean}"
    );

    let rebuilt = sandbox
        .run(&["projections", "rebuild", "orders", "--json"])
        .json();
    assert_eq!(rebuilt["checkpoint"], 5, "{rebuilt}");
    let after = status(&sandbox);
    assert_eq!(
        (after["version"].as_u64(), after["lag"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(rows(&sandbox).len(), 2);
    let text = sandbox.run(&["projections", "verify", "orders"]);
    assert!(text.ok().contains("equals a fresh replay"), "{text:#?}");

    let conn = rusqlite::Connection::open(read_model(&sandbox)).expect("read model");
    conn.execute("UPDATE orders_v2 SET total_cents = 1 WHERE id = '1'", [])
        .expect("tamper");
    drop(conn);
    let found = sandbox.run(&["projections", "verify", "orders"]);
    let error = found.failed_with(1);
    assert!(error.contains("differs from a fresh replay"), "{found:#?}");
    assert!(found.stdout.contains("orders"), "{found:#?}");
}

/// Regression: a replay that parked the bad event still showed the failure recorded by the
/// earlier replay that had stopped on it, because nothing cleared the recorded state.
#[test]
fn a_bad_event_stops_the_replay_or_is_parked_as_on_failure_says() {
    let sandbox = sandbox("stop");
    orders(&sandbox);
    // A v1 OrderCreated whose total is no amount: its upcaster refuses it on every attempt.
    append(
        &sandbox,
        "order-9",
        "OrderCreated",
        1,
        r#"{"order_id":"9","customer_id":"c9","items":[],"total":"abc"}"#,
    );
    let stopped = sandbox.run(&["projections", "replay", "orders"]);
    assert!(
        stopped
            .failed_with(1)
            .contains("upcasting OrderCreated v1 failed")
    );
    let failed = status(&sandbox);
    assert_eq!(failed["state"]["state"], "failed", "{failed}");
    assert_eq!(failed["state"]["position"], 6, "{failed}");

    sandbox.write(
        "mammoth.tsk",
        "[event_store]\nbackend: \"sqlite\"\ndsn: \"sqlite://./store/events.db\"\n[projections.orders]\nread_dsn: \"sqlite://./rm/read_models.db\"\non_failure: \"park\"\n",
    );
    sandbox.run(&["projections", "replay", "orders"]).ok();
    let parked = status(&sandbox);
    assert_eq!(
        (parked["checkpoint"].as_u64(), parked["lag"].as_u64()),
        (Some(6), Some(0)),
        "{parked}"
    );
    assert_ne!(parked["state"]["state"], "failed", "{parked}");
    assert_eq!(rows(&sandbox).len(), 2, "the parked order has no row");
    let conn = rusqlite::Connection::open(read_model(&sandbox)).expect("read model");
    let (stream, position): (String, u64) = conn
        .query_row(
            "SELECT stream_id, position FROM projection_dead_letters",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("one dead letter");
    assert_eq!((stream.as_str(), position), ("order-9", 6));
}

#[test]
fn an_unknown_projection_name_is_a_usage_error() {
    let sandbox = sandbox("stop");
    orders(&sandbox);
    for command in ["status", "pause", "resume", "replay", "rebuild", "verify"] {
        let run = sandbox.run(&["projections", command, "order"]);
        let error = run.failed_with(2);
        assert!(
            error.contains("no projection named \"order\"") && error.contains("orders"),
            "{command}: {error}"
        );
    }
}

#[test]
fn bench_projections_quick_json_prints_the_catch_up_and_live_cases() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("bench");
    let run = sandbox.run(&[
        "bench",
        "projections",
        "--quick",
        "--events",
        "2000",
        "--json",
        "--path",
        dir.to_str().expect("utf-8 path"),
    ]);
    let results = run.json_lines();
    let cases: Vec<&str> = results
        .iter()
        .map(|r| r["case"].as_str().expect("case"))
        .collect();
    assert_eq!(cases, ["catch_up", "live"], "{run:#?}");
    let catch_up = &results[0];
    assert_eq!(catch_up["events"], 2000);
    for key in [
        "events_per_s",
        "raw_append_events_per_s",
        "raw_scan_events_per_s",
        "ratio_to_scan",
    ] {
        assert!(
            catch_up[key].as_f64().is_some_and(|v| v > 0.0),
            "{key}: {catch_up}"
        );
    }
    let live = &results[1];
    assert!(live["p99_ms"].as_f64().is_some_and(|v| v > 0.0), "{live}");
    assert!(live["p50_ms"].as_f64().is_some(), "{live}");
    for result in &results {
        assert_eq!(result["runs"], 1);
        assert_eq!(result["synchronous"], "full");
        assert!(
            result["pass"].is_boolean() && result["target"].is_string(),
            "{result}"
        );
    }
    assert!(
        std::fs::read_dir(&dir).expect("bench dir").next().is_none(),
        "temporary files are removed"
    );
}

#[test]
fn status_shows_a_projection_kept_in_its_configured_read_model_file() {
    let sandbox = sandbox("stop");
    orders(&sandbox);
    sandbox.run(&["projections", "replay", "orders"]).ok();
    let status = sandbox.run(&["status", "--json"]).json();
    let projections = status["projections"].as_array().expect("projections");
    let orders = projections
        .iter()
        .find(|row| row["name"] == "orders")
        .unwrap_or_else(|| panic!("orders, in rm/read_models.db, is listed: {status}"));
    assert_eq!(orders["checkpoint"], 5, "{orders}");
    assert_eq!(orders["lag"], 0, "{orders}");
}
