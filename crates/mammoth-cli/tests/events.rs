//! `mammoth events append` and `mammoth events read` end to end: the built binary against a
//! SQLite store in a temporary directory, configured by a mammoth.tsk the test writes.

mod support;

use support::Sandbox;

#[test]
fn an_appended_event_reads_back_as_a_table_and_as_json() {
    let sandbox = Sandbox::new();
    let first = sandbox.run(&[
        "events",
        "append",
        "order-42",
        "--type",
        "OrderCreated",
        "--data",
        r#"{"total": 30}"#,
    ]);
    let table = first.ok();
    assert!(table.contains("stream    order-42"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("version") && l.ends_with(" 1")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("position") && l.ends_with(" 1")),
        "{table}"
    );
    assert!(
        sandbox.path().join("store/events.db").exists(),
        "the dsn in mammoth.tsk is used"
    );

    let second = sandbox.append(
        "order-42",
        "OrderPaid",
        r#"{"amount": 30, "nested": {"b": 1, "a": 2}}"#,
    );
    assert_eq!(second["stream"], "order-42");
    assert_eq!(second["version"], 2);
    assert_eq!(second["position"], 2);

    let read = sandbox.run(&["events", "read", "order-42"]);
    let lines: Vec<&str> = read.ok().lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("POSITION") && lines[0].contains("TYPE"),
        "{lines:?}"
    );
    assert!(lines[1].contains("OrderCreated") && lines[1].contains(r#"{"total": 30}"#));
    assert!(lines[2].contains("OrderPaid"));

    let events = sandbox
        .run(&["events", "read", "order-42", "--json"])
        .json_lines();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["type"], "OrderCreated");
    assert_eq!(events[0]["data"]["total"], 30);
    assert_eq!(events[0]["version"], 1);
    assert_eq!(events[1]["id"], second["id"]);
    assert_eq!(events[1]["schema_version"], 1);
    // Data comes back exactly as stored, key order included.
    let line = sandbox.run(&["events", "read", "order-42", "--json", "--from", "2"]);
    assert!(
        line.ok()
            .contains(r#""data":{"amount": 30, "nested": {"b": 1, "a": 2}}"#),
        "{}",
        line.stdout
    );
}

#[test]
fn reads_go_backward_from_a_version_with_a_limit() {
    let sandbox = Sandbox::new();
    for n in 1..=5 {
        sandbox.append("cart-7", "ItemAdded", &format!(r#"{{"n": {n}}}"#));
    }
    let latest = sandbox.run(&[
        "events",
        "read",
        "cart-7",
        "--backward",
        "--limit",
        "1",
        "--json",
    ]);
    let latest = latest.json_lines();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0]["version"], 5);

    let middle = sandbox.run(&[
        "events",
        "read",
        "cart-7",
        "--backward",
        "--from",
        "4",
        "--limit",
        "2",
        "--json",
    ]);
    let versions: Vec<u64> = middle
        .json_lines()
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [4, 3]);

    let forward = sandbox.run(&["events", "read", "cart-7", "--from", "4", "--json"]);
    let versions: Vec<u64> = forward
        .json_lines()
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [4, 5]);

    let missing = sandbox.run(&["events", "read", "cart-8"]);
    assert_eq!(missing.ok(), "");
    assert!(missing.stderr.contains("no events"), "{missing:#?}");
}

#[test]
fn a_conflict_exits_3_and_names_the_expected_and_actual_versions() {
    let sandbox = Sandbox::new();
    sandbox.append("order-1", "OrderCreated", "{}");
    sandbox.append("order-1", "OrderPaid", "{}");
    let stale = sandbox.run(&[
        "events",
        "append",
        "order-1",
        "--type",
        "OrderShipped",
        "--data",
        "{}",
        "--expected",
        "1",
    ]);
    let message = stale.failed_with(3);
    assert!(message.contains("expected version 1"), "{message}");
    assert!(message.contains("found version 2"), "{message}");
    assert!(message.contains("order-1"), "{message}");

    let fresh = sandbox.run(&[
        "events",
        "append",
        "order-1",
        "--type",
        "OrderCreated",
        "--data",
        "{}",
        "--expected",
        "no-stream",
    ]);
    assert!(
        fresh.failed_with(3).contains("expected no stream"),
        "{fresh:#?}"
    );
    assert_eq!(sandbox.event_count(), 2, "a conflict writes nothing");

    let right = sandbox.run(&[
        "events",
        "append",
        "order-1",
        "--type",
        "OrderShipped",
        "--data",
        "{}",
        "--expected",
        "2",
        "--json",
    ]);
    assert_eq!(right.json()["version"], 3);
}

#[test]
fn bad_input_is_refused_with_exit_2_and_a_clear_message_and_nothing_is_written() {
    let sandbox = Sandbox::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "events",
                "append",
                "order-1",
                "--type",
                "T",
                "--data",
                "{not json",
            ],
            "--data is not valid JSON",
        ),
        (
            &[
                "events", "append", "order-1", "--type", "T", "--data", "[1, 2]",
            ],
            "must be a JSON object",
        ),
        (
            &[
                "events",
                "append",
                "order-1",
                "--type",
                "T",
                "--data",
                "{}",
                "--metadata",
                "7",
            ],
            "--metadata must be a JSON object",
        ),
        (
            &["events", "append", "", "--type", "T", "--data", "{}"],
            "invalid stream id",
        ),
        (
            &[
                "events",
                "append",
                "order\u{7}1",
                "--type",
                "T",
                "--data",
                "{}",
            ],
            "control character",
        ),
        (
            &["events", "append", "$saga-9", "--type", "T", "--data", "{}"],
            "is reserved",
        ),
        (
            &[
                "events", "append", "order-1", "--type", "9Lives", "--data", "{}",
            ],
            "invalid event type",
        ),
        (
            &[
                "events",
                "append",
                "order-1",
                "--type",
                "T",
                "--data",
                "{}",
                "--expected",
                "soon",
            ],
            "expected version `soon` is not valid",
        ),
        (
            &[
                "events",
                "append",
                "order-1",
                "--type",
                "T",
                "--data",
                "{}",
                "--schema-version",
                "0",
            ],
            "--schema-version",
        ),
    ];
    for (args, message) in cases {
        let run = sandbox.run(args);
        let stderr = run.failed_with(2);
        assert!(
            stderr.contains(message),
            "{args:?}: expected {message:?} in {stderr:?}"
        );
        assert_eq!(run.stdout, "", "{args:?} printed data");
    }
    assert_eq!(sandbox.event_count(), 0);
}

#[test]
fn re_sending_an_event_id_prints_the_first_result_and_writes_nothing() {
    let sandbox = Sandbox::new();
    let id = "0190c1d2-0000-7000-8000-000000000001";
    let args = [
        "events",
        "append",
        "order-5",
        "--type",
        "OrderCreated",
        "--data",
        "{}",
        "--id",
        id,
        "--json",
    ];
    let first = sandbox.run(&args).json();
    let again = sandbox.run(&args).json();
    assert_eq!(first, again);
    assert_eq!(first["id"], id);
    assert_eq!(sandbox.event_count(), 1);
}

#[test]
fn a_server_backend_without_a_dsn_names_the_config_key() {
    let sandbox = Sandbox::new();
    sandbox.write("mammoth.tsk", "[event_store]\nbackend: \"postgres\"\n");
    let run = sandbox.run(&["events", "stats"]);
    let stderr = run.failed_with(2);
    assert!(stderr.contains("needs `event_store.dsn`"), "{stderr}");
}
