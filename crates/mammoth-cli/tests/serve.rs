//! `mammoth serve` as a user runs it: it prints where it listens, serves the orders app over
//! HTTP, and on SIGTERM exits 0 with the projection's checkpoint saved.

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

#[cfg(unix)]
#[test]
fn serve_answers_commands_and_queries_and_sigterm_exits_with_the_checkpoint_saved() {
    let sandbox = Sandbox::new();
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
        first.starts_with("mammoth serve: listening on http://127.0.0.1:"),
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
    assert_eq!(summary["status"], "pending");

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
    assert_eq!(
        orders["checkpoint"], position,
        "the checkpoint was saved: {orders}"
    );
}
