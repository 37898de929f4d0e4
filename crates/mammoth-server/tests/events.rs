//! The event store API over real HTTP: appends, conflicts, stream and global reads, and
//! input errors as 4xx JSON that writes nothing.

mod support;

use mammoth_core::{EventStore as _, StreamId};
use serde_json::{Value, json};

use support::start_memory;

#[tokio::test]
async fn append_then_read_forward_and_backward_returns_the_events_with_positions() {
    let (server, _store) = start_memory().await;
    let response = server
        .client
        .post(server.url("/streams/order-1"))
        .json(&json!({ "expected_version": "no_stream", "events": [
            { "type": "OrderCreated", "data": { "total": 30 } },
            { "type": "OrderPaid", "data": { "amount": 30 }, "metadata": { "actor": "alice" } }
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let written: Value = response.json().await.unwrap();
    assert_eq!(written["first_version"], 1);
    assert_eq!(written["last_version"], 2);
    assert_eq!(written["last_position"], 2);

    let page: Value = server
        .client
        .get(server.url("/streams/order-1?limit=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["events"][0]["type"], "OrderCreated");
    assert_eq!(page["events"][0]["data"]["total"], 30);
    assert_eq!(
        page["next"], 2,
        "a full page says where the next one starts"
    );

    let backward: Value = server
        .client
        .get(server.url("/streams/order-1?direction=backward"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = backward["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["OrderPaid", "OrderCreated"]);
    assert_eq!(backward["events"][0]["metadata"]["actor"], "alice");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_stale_expected_version_is_409_with_expected_and_actual_and_writes_nothing() {
    let (server, store) = start_memory().await;
    let append = |expected: &str| {
        server
            .client
            .post(server.url("/streams/order-2"))
            .header("Expected-Version", expected)
            .json(&json!({ "events": [ { "type": "OrderCreated", "data": {} } ] }))
            .send()
    };
    assert_eq!(append("no_stream").await.unwrap().status(), 201);
    let conflict = append("0").await.unwrap();
    assert_eq!(conflict.status(), 409);
    let body: Value = conflict.json().await.unwrap();
    assert_eq!(body["code"], "conflict");
    assert_eq!(body["details"]["expected"], 0);
    assert_eq!(body["details"]["actual"], 1);
    let stream = StreamId::new("order-2").unwrap();
    assert_eq!(store.stream_version(&stream).await.unwrap(), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_global_log_filters_by_type_and_category_and_pages() {
    let (server, _store) = start_memory().await;
    for (stream, event_type) in [
        ("order-1", "OrderCreated"),
        ("payment-1", "PaymentTaken"),
        ("order-2", "OrderCreated"),
        ("order-2", "OrderPaid"),
    ] {
        let status = server
            .client
            .post(server.url(&format!("/streams/{stream}")))
            .json(&json!({ "events": [ { "type": event_type, "data": {} } ] }))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 201);
    }
    let get = |query: &'static str| {
        let request = server.client.get(server.url(&format!("/events{query}")));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let orders = get("?category=order").await;
    assert_eq!(orders["events"].as_array().unwrap().len(), 3);
    assert_eq!(orders["head"], 4);
    let created = get("?type=OrderCreated,PaymentTaken&from=2").await;
    let positions: Vec<u64> = created["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, [2, 3]);
    let first = get("?limit=2").await;
    assert_eq!(first["next"], 3);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn client_mistakes_are_4xx_json_that_name_the_fix_and_write_nothing() {
    let (server, store) = start_memory().await;
    let post = |path: &str, body: &'static str| {
        server
            .client
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases = [
        ("/streams/order-1", "{not json", 400, "invalid_json"),
        (
            "/streams/order-1",
            r#"{"events": [{"type": "A", "data": {}, "colour": 1}]}"#,
            422,
            "invalid_json",
        ),
        (
            "/streams/order-1",
            r#"{"events": [{"type": "A", "data": [1]}]}"#,
            400,
            "invalid_event",
        ),
        (
            "/streams/order-1",
            r#"{"events": []}"#,
            400,
            "invalid_event",
        ),
        (
            "/streams/order-1",
            r#"{"expected_version": "soon", "events": [{"type": "A", "data": {}}]}"#,
            400,
            "invalid_expected_version",
        ),
        (
            "/streams/$saga-1",
            r#"{"events": [{"type": "A", "data": {}}]}"#,
            400,
            "reserved_stream",
        ),
        (
            "/streams/order-1",
            r#"{"events": [{"type": "A", "data": {}, "metadata": {"correlation_id": 7}}]}"#,
            400,
            "invalid_event",
        ),
    ];
    for (path, body, status, code) in cases {
        let response = post(path, body).await.unwrap();
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], code, "{body}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    let bad_read = server
        .client
        .get(server.url("/streams/order-1?limit=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_read.status(), 400);
    let bad_direction = server
        .client
        .get(server.url("/streams/order-1?direction=sideways"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_direction.status(), 400);
    let nowhere = server
        .client
        .get(server.url("/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), 404);
    assert_eq!(nowhere.json::<Value>().await.unwrap()["code"], "no_route");
    let wrong = server
        .client
        .delete(server.url("/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(
        store.head_position().await.unwrap(),
        0,
        "nothing was written"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_writes_nothing() {
    let store = support::memory_store();
    let config = mammoth_server::ServerConfig {
        body_limit: 1_024,
        ..mammoth_server::ServerConfig::default()
    };
    let server = support::start(
        mammoth_server::Server::new(store.clone())
            .backend("memory")
            .config(config),
    )
    .await;
    let big = "x".repeat(4_096);
    let response = server
        .client
        .post(server.url("/streams/order-1"))
        .json(&json!({ "events": [ { "type": "A", "data": { "blob": big } } ] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], "body_too_large");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("http.body_limit")
    );
    assert_eq!(store.head_position().await.unwrap(), 0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_past_the_timeout_and_a_malformed_path_are_json_errors_too() {
    use mammoth_runtime::{CommandContext, CommandError, Committed};
    let registry =
        mammoth_server::AppRegistry::new().command("Never", |_: Value, _: CommandContext| async {
            std::future::pending::<Result<Committed, CommandError<String>>>().await
        });
    let config = mammoth_server::ServerConfig {
        request_timeout: std::time::Duration::from_millis(50),
        ..mammoth_server::ServerConfig::default()
    };
    let server = support::start(
        mammoth_server::Server::new(support::memory_store())
            .app(registry)
            .config(config),
    )
    .await;
    let slow = server
        .client
        .post(server.url("/commands/Never"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 408);
    let error: Value = slow.json().await.unwrap();
    assert_eq!(error["code"], "timeout");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("http.request_timeout")
    );
    let malformed = server
        .client
        .get(server.url("/streams/%FF%FE"))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let error: Value = malformed.json().await.unwrap();
    assert!(!error["message"].as_str().unwrap().is_empty(), "{error}");
    server.stop().await.unwrap();
}
