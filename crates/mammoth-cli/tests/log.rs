//! The global log from the command line: `mammoth events all`, `events stats` and
//! `events tail`, against a SQLite store in a temporary directory.

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::Sandbox;

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
