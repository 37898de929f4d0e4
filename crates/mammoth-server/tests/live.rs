//! Live behaviour over real HTTP: SSE subscriptions that resume without gap or duplicate,
//! graceful shutdown with a request in flight, and per-server metrics.

mod support;

use std::sync::Arc;

use futures_util::StreamExt as _;
use mammoth_core::{ExpectedVersion, NewEvent, StreamId};
use mammoth_runtime::{CommandContext, CommandError, Committed};
use mammoth_server::{AppRegistry, Server};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// Reads SSE frames until `count` events arrived; returns their `id:`s (positions).
async fn read_events(response: reqwest::Response, count: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut buffer = String::new();
    let mut body = response.bytes_stream();
    while ids.len() < count {
        let chunk = body.next().await.expect("stream ended early").unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let id = frame
                .lines()
                .find_map(|line| line.strip_prefix("id:"))
                .map(|id| id.trim().parse::<u64>().unwrap());
            let data = frame.lines().find_map(|line| line.strip_prefix("data:"));
            if let (Some(id), Some(data)) = (id, data) {
                let event: Value = serde_json::from_str(data.trim()).unwrap();
                assert_eq!(event["position"], id, "the SSE id is the global position");
                ids.push(id);
            }
        }
    }
    ids
}

async fn append(store: &impl mammoth_core::EventStore, stream: &str, count: usize) {
    let events = (0..count)
        .map(|i| NewEvent::json("Tick", json!({ "i": i })).unwrap())
        .collect();
    store
        .append(
            &StreamId::new(stream).unwrap(),
            ExpectedVersion::Any,
            events,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_subscription_resumed_with_last_event_id_has_no_gap_and_no_duplicate() {
    let (server, store) = support::start_memory().await;
    append(store.as_ref(), "clock-1", 3).await;
    append(store.as_ref(), "other-1", 1).await;
    let first = server
        .client
        .get(server.url("/events/subscribe?category=clock"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let seen = read_events(first, 2).await;
    assert_eq!(seen, [1, 2]);
    // The client drops the connection after two events; more are written meanwhile.
    append(store.as_ref(), "clock-1", 2).await;
    let resumed = server
        .client
        .get(server.url("/events/subscribe?category=clock"))
        .header("Last-Event-ID", seen[1].to_string())
        .send()
        .await
        .unwrap();
    let reader = tokio::spawn(read_events(resumed, 4));
    // One more after the client is live again: catch-up and live meet without a seam.
    append(store.as_ref(), "clock-1", 1).await;
    let rest = reader.await.unwrap();
    // Position 4 is other-1, filtered out.
    assert_eq!(rest, [3, 5, 6, 7]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight_ends_subscriptions_and_stops_accepting() {
    let store = support::memory_store();
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (inside, gate) = (entered.clone(), release.clone());
    let registry = AppRegistry::new().command("Slow", move |_: Value, _: CommandContext| {
        let (inside, gate) = (inside.clone(), gate.clone());
        async move {
            inside.notify_one();
            gate.notified().await;
            Ok::<_, CommandError<String>>(Committed {
                stream_id: StreamId::new("slow-1").unwrap(),
                version: 1,
                position: 1,
                events: 1,
                replayed: false,
                attempts: 1,
            })
        }
    });
    let mut server = support::start(Server::new(store).backend("memory").app(registry)).await;
    let subscription = server
        .client
        .get(server.url("/events/subscribe"))
        .send()
        .await
        .unwrap();
    let in_flight = tokio::spawn(
        server
            .client
            .post(server.url("/commands/Slow"))
            .json(&json!({}))
            .send(),
    );
    entered.notified().await;
    server.signal_stop();
    // The subscription ends on its own: an endless response must not hold the shutdown.
    let mut body = subscription.bytes_stream();
    while let Some(chunk) = body.next().await {
        if chunk.is_err() {
            break;
        }
    }
    release.notify_one();
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200, "the request in flight was answered");
    let committed: Value = response.json().await.unwrap();
    assert_eq!(committed["position"], 1);
    let addr = server.addr;
    server.stop().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "a stopped server accepts nothing"
    );
}

#[tokio::test]
async fn metrics_count_appends_per_server_and_health_and_ready_answer() {
    let (one, _) = support::start_memory().await;
    let (two, _) = support::start_memory().await;
    for stream in ["order-1", "order-2"] {
        let status = one
            .client
            .post(one.url(&format!("/streams/{stream}")))
            .json(&json!({ "events": [ { "type": "A", "data": {} } ] }))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 201);
    }
    let text = one
        .client
        .get(one.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("mammoth_appends_total{backend=\"memory\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("mammoth_append_seconds_bucket{backend=\"memory\""),
        "{text}"
    );
    assert!(
        text.contains("mammoth_head_position{backend=\"memory\"} 2"),
        "{text}"
    );
    let other = two
        .client
        .get(two.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !other.contains("mammoth_appends_total"),
        "each server has its own recorder: {other}"
    );
    let health = one.client.get(one.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: Value = one
        .client
        .get(one.url("/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    one.stop().await.unwrap();
    two.stop().await.unwrap();
}
