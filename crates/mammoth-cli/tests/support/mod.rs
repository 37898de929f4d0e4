//! Runs the built `mammoth` binary in a temporary directory of its own, with a mammoth.tsk the
//! test writes, and captures what it prints.

#![allow(dead_code)] // each test binary uses its own part of the helpers

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

/// The service URL in `var` (`MAMMOTH_TEST_{POSTGRES,MYSQL,NATS,REDIS}_URL`), or `None` after
/// printing why the test is skipped; under `CI=true` a missing URL fails the test instead.
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!(
                "CI=true but {var} is not set (.ci/run exports it): this test cannot be skipped in CI"
            )
        }
        _ => {
            eprintln!(
                "skipped: set {var} to run this test against that service (.ci/run shows the local URLs)"
            );
            None
        }
    }
}

/// A random suffix for stream, subject and key names no other run uses.
pub fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// The binary under test.
pub const MAMMOTH: &str = env!("CARGO_BIN_EXE_mammoth");

/// A working directory with a configuration that puts the store in `store/events.db`.
pub struct Sandbox {
    dir: TempDir,
}

/// What one run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts exit code 0 and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success, got {self:#?}");
        &self.stdout
    }

    /// Asserts `code` and returns stderr.
    pub fn failed_with(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "expected exit code {code}, got {self:#?}");
        &self.stderr
    }

    /// stdout as JSON lines.
    pub fn json_lines(&self) -> Vec<Value> {
        self.ok()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
            .collect()
    }

    /// stdout as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("{self:#?}: {e}"))
    }
}

impl Sandbox {
    /// A fresh directory holding `mammoth.tsk` that points the SQLite store at
    /// `store/events.db`.
    pub fn new() -> Self {
        let sandbox = Self {
            dir: tempfile::tempdir().expect("temporary directory"),
        };
        sandbox.write(
            "mammoth.tsk",
            "# written by the test\n[event_store]\nbackend: \"sqlite\"\ndsn: \"sqlite://./store/events.db\"\n",
        );
        sandbox
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file in the directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// A `mammoth` command running in the directory, isolated from the caller's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(MAMMOTH);
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("MAMMOTH_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        command
    }

    /// Runs `mammoth args...` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        run(self.command(args))
    }

    /// Appends one event and returns the JSON the command printed.
    pub fn append(&self, stream: &str, event_type: &str, data: &str) -> Value {
        let run = self.run(&[
            "events", "append", stream, "--type", event_type, "--data", data, "--json",
        ]);
        run.json()
    }

    /// The number of events in the store.
    pub fn event_count(&self) -> u64 {
        self.run(&["events", "stats", "--json"]).json()["event_count"]
            .as_u64()
            .expect("event_count")
    }
}

/// Runs a prepared command to completion.
pub fn run(mut command: Command) -> Run {
    let output = command.output().expect("run mammoth");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// One HTTP/1.1 exchange on a fresh connection; returns the status and the body.
pub fn http(
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
/// Serves the built-in app in `sandbox`: a command and a read-your-writes query answer, the
/// saga, relay and workers carry the order to its end, the saga index lists it, and SIGTERM
/// exits 0 with the projection's checkpoint saved.
pub fn serve_runs_the_order_app(sandbox: &Sandbox) {
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
    // The saga records its end after the order's cancellation, so the index may lag a step.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (code, body) = http(&addr, "GET", "/admin/sagas?status=compensated", &[], "");
        assert_eq!(code, 200, "{body}");
        if body.contains("o-1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the saga index lists the compensated saga: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // The admin routes operate the order read model wherever it lives.
    let (code, body) = http(&addr, "GET", "/admin/projections", &[], "");
    assert_eq!(code, 200, "{body}");
    let rows: Value = serde_json::from_str(&body).unwrap();
    assert!(
        rows.as_array().is_some_and(|rows| rows
            .iter()
            .any(|row| row["name"] == "orders" && row["checkpoint"].as_u64() > Some(0))),
        "/admin/projections lists the running order read model: {body}"
    );
    let (code, body) = http(&addr, "POST", "/admin/projections/orders/verify", &[], "");
    assert_eq!(code, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["clean"], true, "{report}");

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
