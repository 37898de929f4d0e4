//! `--decode` on `events read`, `events all` and `events tail`: stored events shown as the
//! built-in app (examples/orders) reads them, upcast to their current versions.

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};

use serde_json::Value;
use support::Sandbox;

/// An `OrderCreated` as version 1 stored it: amounts as decimal strings.
const ORDER_CREATED_V1: &str = r#"{"order_id": "7", "customer_id": "ada", "items": [{"sku": "A-1", "quantity": 2, "price": "12.50"}], "total": "25.00"}"#;

/// Appends one event at a given schema version.
fn append_version(sandbox: &Sandbox, stream: &str, event_type: &str, version: &str, data: &str) {
    sandbox
        .run(&[
            "events",
            "append",
            stream,
            "--type",
            event_type,
            "--schema-version",
            version,
            "--data",
            data,
        ])
        .ok();
}

#[test]
fn decode_upcasts_a_stored_order_created_v1_and_shows_its_v2_data() {
    let sandbox = Sandbox::new();
    append_version(&sandbox, "order-7", "OrderCreated", "1", ORDER_CREATED_V1);

    let events = sandbox
        .run(&["events", "read", "order-7", "--decode", "--json"])
        .json_lines();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["status"], "decoded");
    assert_eq!(event["position"], 1);
    assert_eq!(event["stream"], "order-7");
    assert_eq!(event["type"], "OrderCreated");
    assert_eq!(event["schema_version"], 2);
    assert_eq!(event["stored_schema_version"], 1);
    assert_eq!(
        (event["part"].clone(), event["parts"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(event["data"]["total_cents"], 2500);
    assert_eq!(event["data"]["items"][0]["unit_price_cents"], 1250);
    assert!(event["data"].get("total").is_none(), "{event}");
    let typed = event["typed"].as_str().unwrap();
    assert!(
        typed.starts_with("OrderCreated {") && typed.contains("total_cents: 2500"),
        "{typed}"
    );

    let table = sandbox.run(&["events", "read", "order-7", "--decode"]);
    let lines: Vec<&str> = table.ok().lines().collect();
    assert!(
        lines[0].contains("SCHEMA") && lines[0].contains("EVENT"),
        "{lines:?}"
    );
    assert!(lines[1].contains("v2 (from v1)"), "{lines:?}");
    assert!(lines[1].contains("unit_price_cents: 1250"), "{lines:?}");
    assert_eq!(table.stderr, "", "nothing to note");

    // The global log decodes the same way, and without --decode the event is as stored.
    let all = sandbox
        .run(&["events", "all", "--decode", "--json"])
        .json_lines();
    assert_eq!(all[0]["data"], event["data"]);
    let stored = sandbox
        .run(&["events", "read", "order-7", "--json"])
        .json_lines();
    assert_eq!(stored[0]["schema_version"], 1);
    assert_eq!(stored[0]["data"]["total"], "25.00");
}

#[test]
fn decode_shows_a_type_the_app_does_not_register_as_stored_with_a_note() {
    let sandbox = Sandbox::new();
    sandbox.append("order-7", "OrderShipped", r#"{"carrier": "owl"}"#);
    append_version(&sandbox, "order-7", "OrderCreated", "1", ORDER_CREATED_V1);

    let table = sandbox.run(&["events", "read", "order-7", "--decode"]);
    let lines: Vec<&str> = table.ok().lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].contains("OrderShipped") && lines[1].contains("v1 raw, unknown"));
    assert!(lines[1].ends_with(r#"{"carrier": "owl"}"#), "{lines:?}");
    assert!(lines[2].contains("v2 (from v1)"), "{lines:?}");
    assert!(
        table.stderr.contains("does not register") && table.stderr.contains("OrderShipped"),
        "{}",
        table.stderr
    );

    let events = sandbox
        .run(&["events", "read", "order-7", "--decode", "--json"])
        .json_lines();
    assert_eq!(events[0]["status"], "unknown_type");
    assert_eq!(events[0]["data"]["carrier"], "owl");
    assert!(events[0]["typed"].is_null());
    assert_eq!(events[1]["status"], "decoded");
}

#[test]
fn an_event_that_cannot_be_decoded_is_named_on_stderr_the_listing_goes_on_and_exits_1() {
    let sandbox = Sandbox::new();
    append_version(&sandbox, "order-7", "OrderCreated", "1", ORDER_CREATED_V1);
    append_version(
        &sandbox,
        "order-7",
        "OrderCreated",
        "3",
        r#"{"order_id": "7"}"#,
    );
    sandbox.append(
        "order-7",
        "OrderPaid",
        r#"{"order_id": "7", "payment_id": "p-1", "amount_cents": 2500}"#,
    );

    let run = sandbox.run(&["events", "all", "--decode", "--json"]);
    let stderr = run.failed_with(1);
    assert!(
        stderr.contains(r#"stream "order-7" at position 2"#)
            && stderr.contains("OrderCreated v3 is newer than this code's v2"),
        "{stderr}"
    );
    assert!(stderr.contains("1 event could not be decoded"), "{stderr}");
    let events: Vec<Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let statuses: Vec<&str> = events
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["decoded", "error", "decoded"],
        "the listing went on"
    );
    assert_eq!(events[1]["schema_version"], 3);
    assert!(events[1]["error"].as_str().unwrap().contains("position 2"));
    assert_eq!(events[2]["type"], "OrderPaid");

    let table = sandbox.run(&["events", "read", "order-7", "--decode"]);
    table.failed_with(1);
    assert!(table.stdout.contains("v3 raw, error"), "{}", table.stdout);
    assert_eq!(table.stdout.lines().count(), 4, "header and three events");
}

/// A running `mammoth events tail`, killed if the test fails before it exits.
struct Tail(Child);

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn events_tail_decode_upcasts_live_and_exits_1_on_ctrl_c_after_a_decode_error() {
    let sandbox = Sandbox::new();
    append_version(&sandbox, "order-7", "OrderCreated", "1", ORDER_CREATED_V1);
    append_version(
        &sandbox,
        "order-8",
        "OrderCreated",
        "9",
        r#"{"order_id": "8"}"#,
    );
    let mut tail = Tail(
        sandbox
            .command(&["events", "tail", "--from", "1", "--decode", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tail"),
    );
    let mut stdout = BufReader::new(tail.0.stdout.take().expect("stdout"));
    let mut lines = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("an event");
        lines.push(serde_json::from_str::<Value>(&line).expect("JSON line"));
    }
    assert_eq!(lines[0]["data"]["total_cents"], 2500);
    assert_eq!(lines[1]["status"], "error");

    let interrupt = std::process::Command::new("kill")
        .args(["-INT", &tail.0.id().to_string()])
        .status()
        .expect("send SIGINT");
    assert!(interrupt.success());
    let status = tail.0.wait().expect("tail exits");
    assert_eq!(
        status.code(),
        Some(1),
        "a decode error makes the exit code 1"
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut tail.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains(r#"stream "order-8" at position 2: OrderCreated v9"#),
        "{stderr}"
    );
}
