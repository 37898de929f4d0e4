//! The application API (the orders app), the admin API (SQLite read models, the embedded
//! bus) and the OpenAPI document, over real HTTP.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use mammoth_core::bus::{
    BusConsumer as _, ConsumerGroup, Failure, MessageBus as _, NackAction, OutgoingMessage,
    SubscribeOptions, Topic,
};
use mammoth_example_orders::app::OrdersApp;
use mammoth_example_orders::projection::{self as orders, OrderProjection, OrderSummaries};
use mammoth_runtime::QueryBus;
use mammoth_runtime::projection::{ProjectionOptions, ProjectionRunner};
use mammoth_server::{Server, SqliteProjections, SqliteReadModelEntry};
use mammoth_sqlite::{SqliteBus, SqliteReadModel};
use serde_json::{Value, json};

fn create(order_id: &str, total: u64) -> Value {
    json!({ "order_id": order_id, "customer_id": "c-1",
            "items": [ { "sku": "A", "quantity": 2, "unit_price_cents": 500 } ],
            "total_cents": total })
}

#[tokio::test]
async fn commands_answer_their_position_and_queries_read_their_writes_through_the_projection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("read_models.db");
    let store = support::memory_store();
    let target = SqliteReadModel::open(&path, OrderProjection::new()).unwrap();
    let runner = ProjectionRunner::new(store.clone(), target, ProjectionOptions::default()).spawn();
    let read_model = OrderSummaries::new(&path)
        .register(QueryBus::builder(), runner.progress())
        .build();
    let app = OrdersApp::new(store.clone());
    let registry = mammoth_server::orders::registry(&app, Some(read_model));
    let projections = SqliteProjections::new(store.clone()).with(SqliteReadModelEntry::new(
        orders::NAME,
        orders::TABLES,
        &path,
        ProjectionOptions::default(),
        OrderProjection::new,
    ));
    let server = support::start(
        Server::new(store.clone())
            .backend("memory")
            .app(registry)
            .projections(projections),
    )
    .await;
    let post = |name: &str, body: Value, actor: Option<&str>| {
        let mut request = server
            .client
            .post(server.url(&format!("/commands/{name}")))
            .json(&body);
        if let Some(actor) = actor {
            request = request.header("X-Actor", actor);
        }
        request.send()
    };
    let response = post("CreateOrder", create("o-1", 1_000), Some("alice"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let committed: Value = response.json().await.unwrap();
    assert_eq!(committed["stream_id"], "order-o-1");
    let position = committed["position"].as_u64().unwrap();
    assert!(position >= 1);

    let summary: Value = server
        .client
        .get(server.url(&format!(
            "/queries/GetOrderSummary?order_id=o-1&min_position={position}"
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        summary["status"], "pending",
        "the projection had the write: {summary}"
    );
    assert_eq!(summary["total_cents"], 1_000);

    // Client mistakes, each a 4xx with its own code; nothing is written by any of them.
    let cases = [
        (
            "CreateOrder",
            create("o-2", 999),
            Some("alice"),
            422,
            "rejected",
        ),
        (
            "CreateOrder",
            create("o-3", 1_000),
            None,
            403,
            "unauthorized",
        ),
        (
            "CreateOrder",
            json!({ "order_id": "o-4" }),
            Some("alice"),
            400,
            "invalid_command",
        ),
        (
            "ShipOrder",
            json!({}),
            Some("alice"),
            404,
            "unknown_command",
        ),
        ("bad name!", json!({}), Some("alice"), 400, "invalid_name"),
    ];
    for (name, body, actor, status, code) in cases {
        let response = post(name, body, actor).await.unwrap();
        assert_eq!(response.status(), status, "{name}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], code, "{name}: {error}");
    }
    let unknown_query = server
        .client
        .get(server.url("/queries/Nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_query.status(), 404);
    let bad_param = server
        .client
        .get(server.url("/queries/GetOrder?order_id=o-1&colour=red"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_param.status(), 400);

    // The admin API sees the projection at the command's position.
    let rows: Value = server
        .client
        .get(server.url("/admin/projections"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rows[0]["name"], "orders");
    assert!(rows[0]["checkpoint"].as_u64().unwrap() >= position);
    let verify: Value = server
        .client
        .post(server.url("/admin/projections/orders/verify"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verify["clean"], true, "{verify}");
    let pause = server
        .client
        .post(server.url("/admin/projections/orders/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(pause.status(), 202);
    let unknown = server
        .client
        .post(server.url("/admin/projections/nope/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["code"],
        "unknown_projection"
    );
    server.stop().await.unwrap();
    runner.stop().await.unwrap();
}

#[tokio::test]
async fn dead_letters_are_listed_shown_replayed_and_discarded_and_counted_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let bus = SqliteBus::open_default(dir.path().join("bus.db")).unwrap();
    let topic = Topic::new("orders").unwrap();
    let group = ConsumerGroup::new("billing").unwrap();
    let consumer = bus
        .subscribe(&topic, &group, SubscribeOptions::default())
        .await
        .unwrap();
    bus.publish(
        &topic,
        vec![
            OutgoingMessage::new(b"one".to_vec()),
            OutgoingMessage::new(b"two".to_vec()),
        ],
    )
    .await
    .unwrap();
    let deliveries = consumer.receive(2, Duration::from_secs(5)).await.unwrap();
    assert_eq!(deliveries.len(), 2);
    for delivery in &deliveries {
        let failure = Failure {
            error: "card declined".to_owned(),
            action: NackAction::DeadLetter,
        };
        consumer.nack(delivery, failure).await.unwrap();
    }
    let server = support::start(
        Server::new(support::memory_store())
            .backend("memory")
            .bus(bus),
    )
    .await;
    let list: Value = server
        .client
        .get(server.url("/admin/dead-letters?topic=orders"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let letters = list.as_array().unwrap();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["last_error"], "card declined");
    let first = letters[0]["id"].as_str().unwrap().to_owned();
    let second = letters[1]["id"].as_str().unwrap().to_owned();
    let shown: Value = server
        .client
        .get(server.url(&format!("/admin/dead-letters/{first}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["payload"], "one");
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mammoth_dead_letters{topic=\"orders\",group=\"billing\"} 2"),
        "{metrics}"
    );
    let replayed: Value = server
        .client
        .post(server.url(&format!("/admin/dead-letters/{first}/replay")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replayed["count"], 1);
    let discarded: Value = server
        .client
        .delete(server.url(&format!("/admin/dead-letters/{second}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discarded["count"], 1);
    let gone = server
        .client
        .get(server.url(&format!("/admin/dead-letters/{second}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let stats: Value = server
        .client
        .get(server.url("/admin/bus/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == "billing")
        .unwrap()
        .clone();
    assert_eq!(row["dead_letters"], 0);
    assert_eq!(
        row["depth"], 1,
        "the replayed letter waits for its group again"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn admin_routes_without_a_backend_say_what_is_not_configured() {
    let (server, _) = support::start_memory().await;
    for (path, code) in [
        ("/admin/projections", "projections_not_configured"),
        ("/admin/dead-letters", "bus_not_configured"),
        ("/admin/bus/stats", "bus_not_configured"),
        ("/admin/sagas", "sagas_not_configured"),
    ] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404);
        assert_eq!(response.json::<Value>().await.unwrap()["code"], code);
    }
    server.stop().await.unwrap();
}

/// Every (method, path) the server is meant to serve.
const SERVED: &[(&str, &str)] = &[
    ("post", "/streams/{stream}"),
    ("get", "/streams/{stream}"),
    ("get", "/events"),
    ("get", "/events/subscribe"),
    ("get", "/commands"),
    ("post", "/commands/{name}"),
    ("get", "/queries"),
    ("get", "/queries/{name}"),
    ("get", "/admin/projections"),
    ("post", "/admin/projections/{name}/pause"),
    ("post", "/admin/projections/{name}/resume"),
    ("post", "/admin/projections/{name}/rebuild"),
    ("post", "/admin/projections/{name}/verify"),
    ("get", "/admin/dead-letters"),
    ("get", "/admin/dead-letters/{id}"),
    ("delete", "/admin/dead-letters/{id}"),
    ("post", "/admin/dead-letters/{id}/replay"),
    ("get", "/admin/bus/stats"),
    ("get", "/admin/sagas"),
    ("get", "/admin/sagas/{saga_type}/{saga_id}"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

#[tokio::test]
async fn every_route_served_is_in_the_openapi_document_and_every_documented_route_answers() {
    let (server, _) = support::start_memory().await;
    let document: Value = server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    let served: BTreeSet<(String, String)> = SERVED
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(documented, served);
    // Each documented route is routed: whatever it answers, it is not the router's
    // no-route or wrong-method fallback.
    for (method, path) in &documented {
        if path == "/events/subscribe" {
            continue; // endless; the live tests cover it
        }
        let concrete = path
            .replace("{stream}", "order-1")
            .replace("{name}", "orders")
            .replace("{id}", "1")
            .replace("{saga_type}", "order")
            .replace("{saga_id}", "1");
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = server
            .client
            .request(method.clone(), server.url(&concrete))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("\"no_route\"") && !body.contains("\"method_not_allowed\""),
            "{method} {concrete} is documented but not routed: {status} {body}"
        );
        assert!(
            !status.is_server_error(),
            "{method} {concrete}: {status} {body}"
        );
    }
    server.stop().await.unwrap();
}
