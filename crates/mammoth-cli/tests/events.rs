//! `mammoth events ...` end to end: the built binary against a SQLite store in a temporary
//! directory, configured by a mammoth.tsk the test writes.

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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
fn events_all_filters_by_type_and_by_category() {
    let sandbox = Sandbox::new();
    sandbox.append("order-1", "OrderCreated", "{}");
    sandbox.append("payment-1", "PaymentProcessed", "{}");
    sandbox.append("order-2", "OrderCreated", "{}");
    sandbox.append("order-1", "OrderCancelled", "{}");
    let positions = |args: &[&str]| -> Vec<u64> {
        sandbox
            .run(args)
            .json_lines()
            .iter()
            .map(|event| event["position"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(positions(&["events", "all", "--json"]), [1, 2, 3, 4]);
    assert_eq!(
        positions(&["events", "all", "--json", "--type", "OrderCreated"]),
        [1, 3]
    );
    assert_eq!(
        positions(&[
            "events",
            "all",
            "--json",
            "--type",
            "OrderCreated",
            "--type",
            "OrderCancelled"
        ]),
        [1, 3, 4]
    );
    assert_eq!(
        positions(&["events", "all", "--json", "--category", "payment"]),
        [2]
    );
    assert_eq!(
        positions(&[
            "events",
            "all",
            "--json",
            "--category",
            "order",
            "--type",
            "OrderCancelled"
        ]),
        [4]
    );
    assert_eq!(
        positions(&["events", "all", "--json", "--from", "2", "--limit", "2"]),
        [2, 3]
    );

    let table = sandbox.run(&["events", "all", "--category", "payment"]);
    let lines: Vec<&str> = table.ok().lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].contains("payment-1") && lines[1].contains("PaymentProcessed"));
}

#[test]
fn events_stats_counts_the_head_streams_events_per_type_and_size() {
    let sandbox = Sandbox::new();
    let empty = sandbox.run(&["events", "stats", "--json"]).json();
    assert_eq!(empty["head_position"], 0);
    assert_eq!(empty["event_count"], 0);
    sandbox.append("order-1", "OrderCreated", "{}");
    sandbox.append("order-2", "OrderCreated", "{}");
    sandbox.append("order-1", "OrderPaid", "{}");
    let stats = sandbox.run(&["events", "stats", "--json"]).json();
    assert_eq!(stats["backend"], "sqlite");
    assert_eq!(stats["head_position"], 3);
    assert_eq!(stats["stream_count"], 2);
    assert_eq!(stats["event_count"], 3);
    assert_eq!(stats["events_per_type"][0]["type"], "OrderCreated");
    assert_eq!(stats["events_per_type"][0]["events"], 2);
    assert_eq!(stats["events_per_type"][1]["type"], "OrderPaid");
    assert!(stats["size_bytes"].as_u64().unwrap() > 0);

    let table = sandbox.run(&["events", "stats"]);
    let text = table.ok();
    for expected in [
        "head position  3",
        "streams        2",
        "events         3",
        "size on disk",
        "OrderCreated       2",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
}

/// A running `mammoth events tail`, killed when the test ends however it ends.
struct Tail(Child);

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn events_tail_catches_up_from_a_position_then_exits_cleanly_on_ctrl_c() {
    let sandbox = Sandbox::new();
    sandbox.append("order-1", "OrderCreated", "{}");
    sandbox.append("payment-1", "PaymentProcessed", "{}");
    sandbox.append("order-1", "OrderPaid", "{}");
    let mut tail = Tail(
        sandbox
            .command(&[
                "events",
                "tail",
                "--from",
                "2",
                "--category",
                "order",
                "--json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tail"),
    );
    let mut stdout = BufReader::new(tail.0.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("an event");
    let event: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
    assert_eq!(event["position"], 3);
    assert_eq!(event["type"], "OrderPaid");

    let interrupt = std::process::Command::new("kill")
        .args(["-INT", &tail.0.id().to_string()])
        .status()
        .expect("send SIGINT");
    assert!(interrupt.success());
    let status = tail.0.wait().expect("tail exits");
    assert_eq!(status.code(), Some(0), "Ctrl-C is a clean exit");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("rest of stdout");
    assert_eq!(rest, "", "nothing but the matching event was printed");
}

#[test]
#[ignore = "needs a read-only open of the SQLite store: today the tail holds the store's writer lock, so an append from another process cannot open it"]
fn events_tail_prints_events_appended_while_it_runs() {
    let sandbox = Sandbox::new();
    sandbox.append("order-1", "OrderCreated", "{}");
    let mut tail = Tail(
        sandbox
            .command(&["events", "tail", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tail"),
    );
    let (lines_tx, lines) = mpsc::channel();
    let stdout = tail.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    // Tail announces on stderr once it follows the log; events after that must show up.
    let mut stderr = BufReader::new(tail.0.stderr.take().expect("stderr"));
    let mut banner = String::new();
    stderr.read_line(&mut banner).expect("banner");
    assert!(banner.contains("from position 2"), "{banner:?}");

    sandbox.append("order-2", "OrderCreated", r#"{"live": true}"#);
    sandbox.append("order-1", "OrderPaid", "{}");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("tail printed only {seen:?}"));
        seen.push(serde_json::from_str::<serde_json::Value>(&line).expect("JSON line"));
    }
    drop(tail);
    assert_eq!(seen[0]["position"], 2);
    assert_eq!(seen[0]["data"]["live"], true);
    assert_eq!(seen[1]["position"], 3);
    assert_eq!(seen[1]["type"], "OrderPaid");
}

#[test]
fn a_backend_that_is_not_built_yet_names_the_config_key() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "mammoth.tsk",
        "[event_store]\nbackend: \"postgres\"\ndsn: \"postgres://127.0.0.1/test\"\n",
    );
    let run = sandbox.run(&["events", "stats"]);
    let stderr = run.failed_with(2);
    assert!(
        stderr.contains("event_store.backend \"postgres\" is not supported yet"),
        "{stderr}"
    );
}
