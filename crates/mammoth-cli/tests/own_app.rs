//! A user's own binary (examples/own_binary.rs) served through the library: its command writes,
//! its own projection answers a read-your-writes query, its worker receives what the outbox
//! relay publishes, the admin routes list its projection, and a shutdown stops everything with
//! the checkpoint saved — no line of it specific to the built-in app.

#[allow(dead_code)] // the example's `main` is not called here
#[path = "../examples/own_binary.rs"]
mod own_binary;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

async fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\nx-actor: alice\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The body of `GET path`, as text.
async fn raw(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_app_serves_its_command_projection_worker_and_admin_routes_then_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mammoth.tsk");
    std::fs::write(
        &config,
        format!(
            "[event_store]\ndsn: \"{}\"\n\n[projections.event_counts]\nread_dsn: \"{}\"\n",
            dir.path().join("events.db").display(),
            dir.path().join("read_models.db").display(),
        ),
    )
    .unwrap();
    let audited: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let app = own_binary::app(Arc::clone(&audited));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let config = config.clone();
        async move {
            app.serve(Some(&config), listener, async {
                let _ = stopped.await;
            })
            .await
        }
    });

    let order = r#"{"order_id":"o-7","customer_id":"c-1","items":[{"sku":"A","quantity":1,"unit_price_cents":500}],"total_cents":500}"#;
    let (status, committed) = http(&addr, "POST", "/commands/CreateOrder", Some(order)).await;
    assert_eq!(status, 200, "{committed}");
    let position = committed["position"].as_u64().unwrap();

    // Read-your-writes on the app's own projection.
    let (status, count) = http(
        &addr,
        "GET",
        &format!("/queries/EventCount?event_type=OrderCreated&min_position={position}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{count}");
    assert_eq!(count, 1, "the projection counted the order's event");

    // The relay publishes OrderCreated to the app's topic and its worker receives it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !audited
        .lock()
        .unwrap()
        .iter()
        .any(|key| key.contains("o-7"))
    {
        assert!(
            Instant::now() < deadline,
            "the audit worker never received the order"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The command's append went through the app's own repository, and is counted.
    let metrics = raw(&addr, "/metrics").await;
    let appends = metrics
        .lines()
        .find(|line| line.starts_with("mammoth_appends_total{backend=\"sqlite\"}"))
        .unwrap_or_else(|| panic!("no sqlite appends in /metrics:\n{metrics}"));
    assert!(!appends.ends_with(" 0"), "{appends}");

    // The admin routes know the app's projection by name.
    let (status, projections) = http(&addr, "GET", "/admin/projections", None).await;
    assert_eq!(status, 200, "{projections}");
    assert!(
        projections.to_string().contains("event_counts"),
        "{projections}"
    );
    let (status, unknown) = http(&addr, "GET", "/queries/GetOrderSummary?order_id=o-7", None).await;
    assert_eq!(
        status, 404,
        "the built-in app's projection query is not registered: {unknown}"
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("serve stops after the shutdown signal")
        .unwrap()
        .expect("serve stops cleanly");

    // The checkpoint was committed with the rows: a fresh read of the file shows it.
    let conn = rusqlite::Connection::open(dir.path().join("read_models.db")).unwrap();
    let events: i64 = conn
        .query_row(
            "SELECT events FROM event_counts WHERE event_type = 'OrderCreated'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(events, 1);
}
