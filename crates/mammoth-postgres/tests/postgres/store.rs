//! Driver features outside the shared suite: schema init and status, migrations from an older
//! schema version, snapshots, configuration, and closing.

use mammoth_core::{
    EventStore, ExpectedVersion, NewEvent, Snapshot, SnapshotStore, StoreError, StreamId,
};
use mammoth_postgres::{PgOptions, PgSnapshotStore, schema::SCHEMA_VERSION};
use mammoth_testkit::StoreFactory;

use crate::common::{SchemaGuard, factory, options, unique_schema};

fn event(n: u64) -> NewEvent {
    NewEvent::json("Tested", serde_json::json!({ "n": n })).expect("valid test event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_creates_the_schema_and_status_reports_it() {
    let Some(factory) = factory() else { return };
    let schema = unique_schema();
    let _guard = SchemaGuard {
        url: factory.url.clone(),
        schema: schema.clone(),
    };
    let before = mammoth_postgres::status(&factory.url, &options(&schema))
        .await
        .expect("status of a missing schema");
    assert_eq!(
        before.schema_version, 0,
        "a missing schema reports version 0"
    );
    let created = mammoth_postgres::init(&factory.url, &options(&schema))
        .await
        .expect("init");
    assert_eq!(created.schema_version, SCHEMA_VERSION);
    assert_eq!((created.event_count, created.head_position), (0, 0));
    let again = mammoth_postgres::init(&factory.url, &options(&schema))
        .await
        .expect("init twice is fine");
    assert_eq!(again.schema_version, SCHEMA_VERSION);

    let store = mammoth_postgres::PgEventStore::open(&factory.url, options(&schema))
        .await
        .expect("open after init");
    for n in 0..3 {
        let stream = StreamId::new(format!("order-{n}")).expect("stream id");
        store
            .append(&stream, ExpectedVersion::Any, vec![event(n), event(n + 10)])
            .await
            .expect("append");
    }
    let status = store.status().await.expect("status");
    assert_eq!(status.event_count, 6);
    assert_eq!(status.stream_count, 3);
    assert_eq!(status.head_position, 6);
    assert!(status.size_bytes > 0, "size {}", status.size_bytes);
    store.close().await.expect("close");
    let error = store
        .append(
            &StreamId::new("order-9").expect("id"),
            ExpectedVersion::Any,
            vec![event(1)],
        )
        .await
        .expect_err("append after close");
    assert!(matches!(error, StoreError::Closed), "got {error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_migrates_a_version_1_schema_and_keeps_its_events() {
    let Some(factory) = factory() else { return };
    let schema = unique_schema();
    let _guard = SchemaGuard {
        url: factory.url.clone(),
        schema: schema.clone(),
    };
    let (client, connection) = factory
        .url
        .parse::<tokio_postgres::Config>()
        .expect("url")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let s = format!("\"{schema}\"");
    let (_, v1) = mammoth_postgres::schema::MIGRATIONS[0];
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {s};
             CREATE TABLE {s}.mammoth_meta (key text PRIMARY KEY, value bigint NOT NULL);
             INSERT INTO {s}.mammoth_meta VALUES ('schema_version', 1);
             {}
             UPDATE {s}.log_head SET position = 1;
             INSERT INTO {s}.events VALUES (1, 'order-1', 1, gen_random_uuid(), 'Old', 1, '{{}}', '{{}}', 0);",
            v1.replace("{s}", &s)
        ))
        .await
        .expect("a version 1 schema");
    let store = mammoth_postgres::PgEventStore::open(&factory.url, options(&schema))
        .await
        .expect("open migrates");
    let status = store.status().await.expect("status");
    assert_eq!(status.schema_version, SCHEMA_VERSION);
    assert_eq!(status.event_count, 1);
    let result = store
        .append(
            &StreamId::new("order-1").expect("id"),
            ExpectedVersion::Exact(1),
            vec![event(2)],
        )
        .await
        .expect("append after migrating");
    assert_eq!((result.first_version, result.first_position), (2, 2));
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_version_is_refused() {
    let Some(factory) = factory() else { return };
    let store = factory.fresh().await;
    let schema = store.guard.schema.clone();
    store.store.close().await.expect("close");
    let (client, connection) = factory
        .url
        .parse::<tokio_postgres::Config>()
        .expect("url")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "UPDATE \"{schema}\".mammoth_meta SET value = 999 WHERE key = 'schema_version'"
        ))
        .await
        .expect("bump the version");
    let error = match mammoth_postgres::PgEventStore::open(&factory.url, options(&schema)).await {
        Ok(_) => panic!("a schema from a newer mammoth must be refused"),
        Err(error) => error,
    };
    assert!(error.to_string().contains("999"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_schema_name_is_a_typed_error() {
    let Some(factory) = factory() else { return };
    let options = PgOptions {
        schema: "bad\"name".to_owned(),
        ..PgOptions::default()
    };
    let error = match mammoth_postgres::PgEventStore::open(&factory.url, options).await {
        Ok(_) => panic!("an invalid schema name must be refused"),
        Err(error) => error,
    };
    assert!(error.to_string().contains("schema name"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_keep_the_newest_version() {
    let Some(factory) = factory() else { return };
    let store = factory.fresh().await;
    let snapshots = PgSnapshotStore::new(&store.store);
    let stream = StreamId::new("account-1").expect("id");
    assert_eq!(snapshots.load(&stream).await.expect("load"), None);
    let at = |version, state: &str| Snapshot {
        stream_id: stream.clone(),
        version,
        schema_version: 2,
        state: state.to_owned(),
        taken_at_micros: 1_700_000_000_000_000,
    };
    snapshots.save(&at(5, "{\"v\":5}")).await.expect("save 5");
    snapshots.save(&at(3, "{\"v\":3}")).await.expect("save 3");
    assert_eq!(
        snapshots.load(&stream).await.expect("load"),
        Some(at(5, "{\"v\":5}"))
    );
    snapshots.save(&at(8, "{\"v\":8}")).await.expect("save 8");
    assert_eq!(
        snapshots.load(&stream).await.expect("load"),
        Some(at(8, "{\"v\":8}"))
    );
}

#[test]
fn options_come_from_the_configuration() {
    let config = mammoth_config::EventStoreConfig {
        backend: mammoth_config::EventStoreBackend::Postgres,
        schema: Some("events_prod".to_owned()),
        pool_size: 3,
        ..mammoth_config::EventStoreConfig::default()
    };
    let options = PgOptions::from_config(&config);
    assert_eq!(options.schema, "events_prod");
    assert_eq!(options.pool_size, 3);
    assert!(
        mammoth_postgres::config_url(&config).is_err(),
        "no DSN is a typed error"
    );
}
