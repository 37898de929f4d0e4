//! `mammoth serve` as a user runs it: it prints where it listens, serves the orders app over
//! HTTP with its saga, relay and bus workers running, and on SIGTERM exits 0 with the
//! projection's checkpoint saved.

mod support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::Stdio;

use serde_json::Value;
use support::Sandbox;

/// One HTTP/1.1 exchange on a fresh connection; returns the status and the body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to mammoth serve");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The URL in `var`, or `None` (after printing why) outside CI.
fn broker_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("CI=true but {var} is not set: the broker serve tests cannot be skipped in CI")
        }
        _ => {
            eprintln!("skipped: set {var} to run mammoth serve with its bus on that broker");
            None
        }
    }
}

fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

#[cfg(unix)]
#[test]
fn serve_runs_the_whole_app_answers_commands_and_queries_and_sigterm_exits_with_the_checkpoint_saved()
 {
    serve_runs_the_order_app(&Sandbox::new());
}

#[cfg(unix)]
#[test]
fn serve_runs_the_order_saga_with_its_bus_on_nats() {
    let Some(url) = broker_url("MAMMOTH_TEST_NATS_URL") else {
        return;
    };
    let sandbox = Sandbox::new();
    let suffix = suffix();
    sandbox.write(
        "mammoth.tsk",
        &format!(
            "[event_store]\nbackend: \"sqlite\"\ndsn: \"sqlite://./store/events.db\"\n[message_bus]\nbackend: \"nats\"\nurl: \"{url}\"\nstream: \"MSERVE_{suffix}\"\nsubject_prefix: \"mserve{suffix}\"\n"
        ),
    );
    serve_runs_the_order_app(&sandbox);
}

#[cfg(unix)]
#[test]
fn serve_runs_the_order_saga_with_its_bus_on_redis() {
    let Some(url) = broker_url("MAMMOTH_TEST_REDIS_URL") else {
        return;
    };
    let sandbox = Sandbox::new();
    let suffix = suffix();
    sandbox.write(
        "mammoth.tsk",
        &format!(
            "[event_store]\nbackend: \"sqlite\"\ndsn: \"sqlite://./store/events.db\"\n[message_bus]\nbackend: \"redis\"\nurl: \"{url}\"\nqueue_prefix: \"mserve{suffix}:\"\n"
        ),
    );
    serve_runs_the_order_app(&sandbox);
}

/// Serves the built-in app in `sandbox`: a command and a read-your-writes query answer, the
/// saga, relay and workers carry the order to its end, the saga index lists it, and SIGTERM
/// exits 0 with the projection's checkpoint saved.
fn serve_runs_the_order_app(sandbox: &Sandbox) {
    let mut child = sandbox
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.starts_with("mammoth serve: app orders listening on http://127.0.0.1:"),
        "{first}"
    );
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();

    let json = r#"{"order_id":"o-1","customer_id":"c-1","items":[{"sku":"A","quantity":2,"unit_price_cents":500}],"total_cents":1000}"#;
    let headers = [("content-type", "application/json"), ("x-actor", "alice")];
    let (status, body) = http(&addr, "POST", "/commands/CreateOrder", &headers, json);
    assert_eq!(status, 200, "{body}");
    let committed: Value = serde_json::from_str(&body).unwrap();
    let position = committed["position"].as_u64().unwrap();
    let (status, body) = http(
        &addr,
        "GET",
        &format!("/queries/GetOrderSummary?order_id=o-1&min_position={position}"),
        &[],
        "",
    );
    assert_eq!(status, 200, "{body}");
    let summary: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(summary["id"], "o-1", "{summary}");

    // The order saga runs in the server: the relay hands ReserveInventory to the inventory
    // worker, which rejects it (nothing is stocked), and the saga compensates by cancelling
    // the order. Without the saga, relay or workers running the order stays pending.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        let (code, body) = http(
            &addr,
            "GET",
            "/queries/GetOrderSummary?order_id=o-1",
            &[],
            "",
        );
        assert_eq!(code, 200, "{body}");
        let summary: Value = serde_json::from_str(&body).unwrap();
        if summary["status"] != "pending" || std::time::Instant::now() > deadline {
            break summary["status"].clone();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        status, "cancelled",
        "the saga compensated the unstockable order"
    );
    let (code, body) = http(&addr, "GET", "/admin/sagas?status=compensated", &[], "");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("o-1"),
        "the saga index lists the compensated saga: {body}"
    );

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "SIGTERM is a clean stop: {exit:?}");

    let status = sandbox.run(&["projections", "status", "--json"]).json();
    let orders = status
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == "orders" && row["active"] == true)
        .cloned()
        .unwrap();
    let checkpoint = orders["checkpoint"].as_u64().unwrap();
    assert!(
        checkpoint > position,
        "the checkpoint was saved past the saga's events: {orders} (command at {position})"
    );
}
