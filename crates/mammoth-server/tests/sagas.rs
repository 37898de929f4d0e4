//! Saga admin over real HTTP: list by type and status from the saga index, one saga's
//! timeline from its stream, and saga counts in `/metrics`.

mod support;

use mammoth_core::saga::{SAGA_STEPPED, saga_stream};
use mammoth_core::{EventStore as _, ExpectedVersion, NewEvent};
use mammoth_server::{Server, SqliteSagas};
use serde_json::{Value, json};

async fn step(store: &mammoth_core::InMemoryEventStore, saga_id: &str, status: &str, version: u64) {
    let stepped = json!({
        "saga_type": "order", "saga_id": saga_id, "input_id": uuid::Uuid::new_v4(),
        "input_kind": "event", "input": "OrderCreated", "state": {}, "status": status, "started_micros": 1_000, "steps": version + 1,
    });
    let expected = if version == 0 {
        ExpectedVersion::NoStream
    } else {
        ExpectedVersion::Exact(version)
    };
    store
        .append(
            &saga_stream("order", saga_id).unwrap(),
            expected,
            vec![NewEvent::json(SAGA_STEPPED, stepped).unwrap()],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn sagas_are_listed_by_status_shown_as_a_timeline_and_counted_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::memory_store();
    step(&store, "1", "running", 0).await;
    step(&store, "1", "completed", 1).await;
    step(&store, "2", "running", 0).await;
    let sagas = SqliteSagas::new(store.clone(), dir.path().join("read_models.db"));
    let server = support::start(Server::new(store.clone()).backend("memory").sagas(sagas)).await;
    let get = |path: &str| server.client.get(server.url(path)).send();

    let running: Value = get("/admin/sagas?type=order&status=running")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(running.is_array(), "{running}");
    let ids: Vec<&str> = running
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["saga_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["2"]);
    let all: Value = get("/admin/sagas").await.unwrap().json().await.unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);

    let timeline: Value = get("/admin/sagas/order/1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(timeline["events"].as_array().unwrap().len(), 2);
    assert_eq!(timeline["events"][1]["data"]["status"], "completed");

    let missing = get("/admin/sagas/order/404").await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["code"],
        "unknown_saga"
    );
    let bad = get("/admin/sagas?status=sleeping").await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["code"], "invalid_status");

    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("mammoth_sagas{saga_type=\"order\",status=\"completed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mammoth_sagas{saga_type=\"order\",status=\"running\"} 1"),
        "{metrics}"
    );
    server.stop().await.unwrap();
}
