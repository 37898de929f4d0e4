//! Driver features outside the shared suite: init and status, migrations from an older
//! schema version, snapshots, configuration, and closing.

use mammoth_core::{
    EventStore, ExpectedVersion, NewEvent, Snapshot, SnapshotStore, StoreError, StreamId,
};
use mammoth_mysql::{MysqlOptions, MysqlSnapshotStore, schema::SCHEMA_VERSION};
use mammoth_testkit::StoreFactory;
use mysql_async::prelude::Queryable;

use crate::common::{SchemaGuard, factory, options, unique_schema};

fn event(n: u64) -> NewEvent {
    NewEvent::json("Tested", serde_json::json!({ "n": n })).expect("valid test event")
}

async fn raw(url: &str) -> mysql_async::Conn {
    mysql_async::Conn::new(mysql_async::Opts::from_url(url).expect("url"))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_creates_the_database_and_status_reports_it() {
    let Some(factory) = factory() else { return };
    let database = unique_schema();
    let _guard = SchemaGuard {
        url: factory.url.clone(),
        schema: database.clone(),
    };
    let before = mammoth_mysql::status(&factory.url, &options(&database))
        .await
        .expect("status of a missing database");
    assert_eq!(before.schema_version, 0);
    let created = mammoth_mysql::init(&factory.url, &options(&database))
        .await
        .expect("init");
    assert_eq!(created.schema_version, SCHEMA_VERSION);
    assert_eq!((created.event_count, created.head_position), (0, 0));
    mammoth_mysql::init(&factory.url, &options(&database))
        .await
        .expect("init twice is fine");
    let store = mammoth_mysql::MysqlEventStore::open(&factory.url, options(&database))
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
    assert_eq!(
        (
            status.event_count,
            status.stream_count,
            status.head_position
        ),
        (6, 3, 6)
    );
    assert!(status.size_bytes > 0);
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
async fn opening_migrates_a_version_1_database_and_keeps_its_events() {
    let Some(factory) = factory() else { return };
    let database = unique_schema();
    let _guard = SchemaGuard {
        url: factory.url.clone(),
        schema: database.clone(),
    };
    let mut conn = raw(&factory.url).await;
    let d = format!("`{database}`");
    conn.query_drop(format!("CREATE DATABASE {d}"))
        .await
        .expect("create");
    conn.query_drop(format!(
        "CREATE TABLE {d}.mammoth_meta (name VARCHAR(64) NOT NULL PRIMARY KEY, value BIGINT NOT NULL)"
    ))
    .await
    .expect("meta");
    conn.query_drop(format!(
        "INSERT INTO {d}.mammoth_meta VALUES ('schema_version', 1)"
    ))
    .await
    .expect("version 1");
    for statement in mammoth_mysql::schema::MIGRATIONS[0].1 {
        conn.query_drop(statement.replace("{d}", &d))
            .await
            .expect("v1 DDL");
    }
    conn.query_drop(format!(
        "UPDATE {d}.log_head SET position = 1; INSERT INTO {d}.events VALUES (1, 'order-1', 1, UNHEX(REPLACE(UUID(), '-', '')), 'Old', 1, '{{}}', '{{}}', 0)"
    ))
    .await
    .expect("an old event");
    let store = mammoth_mysql::MysqlEventStore::open(&factory.url, options(&database))
        .await
        .expect("open migrates");
    let status = store.status().await.expect("status");
    assert_eq!(
        (status.schema_version, status.event_count),
        (SCHEMA_VERSION, 1)
    );
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
    let database = store.guard.schema.clone();
    store.store.close().await.expect("close");
    let mut conn = raw(&factory.url).await;
    conn.query_drop(format!(
        "UPDATE `{database}`.mammoth_meta SET value = 999 WHERE name = 'schema_version'"
    ))
    .await
    .expect("bump the version");
    let error = match mammoth_mysql::MysqlEventStore::open(&factory.url, options(&database)).await {
        Ok(_) => panic!("a database from a newer mammoth must be refused"),
        Err(error) => error,
    };
    assert!(error.to_string().contains("999"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_database_name_is_a_typed_error() {
    let Some(factory) = factory() else { return };
    let options = MysqlOptions {
        database: Some("bad`name".to_owned()),
        ..MysqlOptions::default()
    };
    let error = match mammoth_mysql::MysqlEventStore::open(&factory.url, options).await {
        Ok(_) => panic!("an invalid database name must be refused"),
        Err(error) => error,
    };
    assert!(error.to_string().contains("database name"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_keep_the_newest_version() {
    let Some(factory) = factory() else { return };
    let store = factory.fresh().await;
    let snapshots = MysqlSnapshotStore::new(&store.store);
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
        backend: mammoth_config::EventStoreBackend::Mysql,
        dsn: Some(mammoth_config::Secret::new(
            "mysql:host=localhost;dbname=event_store".to_owned(),
        )),
        pool_size: 3,
        ..mammoth_config::EventStoreConfig::default()
    };
    let options = MysqlOptions::from_config(&config);
    assert_eq!((options.pool_size, options.database), (3, None));
    let url = mammoth_mysql::config_url(&config).expect("the seed's PDO DSN is accepted");
    assert!(
        url.starts_with("mysql://") && url.contains("event_store"),
        "{url}"
    );
}
