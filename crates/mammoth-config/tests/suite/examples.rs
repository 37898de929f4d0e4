//! The three example files of the format spec, parsed into the expected typed values.
//!
//! Their `@env.secure`/`@file.secure` inputs are supplied here: variables through a map,
//! files in a temporary directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mammoth_config::{
    Backoff, Checkpoint, Config, ConfigError, EventStoreBackend, MessageBusBackend,
};

const DEV: &str = include_str!("../fixtures/dev.tsk");
const PRODUCTION: &str = include_str!("../fixtures/production.tsk");
const GUIDE: &str = include_str!("../fixtures/guide.tsk");

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Writes `text` to `DIR/config/NAME` and the given files under DIR; returns the config path.
fn lay_out(dir: &Path, name: &str, text: &str, files: &[(&str, &str)]) -> PathBuf {
    for (path, content) in files {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap_or(dir)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(full, content).unwrap_or_else(|e| panic!("{e}"));
    }
    let config = dir.join("config").join(name);
    std::fs::create_dir_all(dir.join("config")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    config
}

fn load(path: &Path, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let (config, used) = Config::load_with(Some(path), &env(vars), Path::new("/"))?;
    assert_eq!(used.as_deref(), Some(path));
    Ok(config)
}

#[test]
fn dev_example_is_embedded_sqlite_with_a_key_file_next_to_the_config_dir() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = lay_out(
        dir.path(),
        "dev.tsk",
        DEV,
        &[("dev-secrets/event-key.b64", "a2V5\n")],
    );
    let c = load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (c.app.name.as_str(), c.app.environment.as_str()),
        ("orders", "development")
    );
    assert_eq!(c.event_store.backend, EventStoreBackend::Sqlite);
    assert_eq!(c.event_store.sqlite_path(), Path::new("./data/events.db"));
    assert_eq!(c.message_bus.backend, MessageBusBackend::Embedded);
    let r = &c.message_bus.retry;
    assert_eq!(
        (r.max_attempts, r.backoff, r.multiplier),
        (3, Backoff::Exponential, 2.0)
    );
    assert_eq!(
        (r.base_delay, r.max_delay),
        (Duration::from_millis(100), Duration::from_secs(5))
    );
    assert!(c.message_bus.dead_letter.enabled);
    assert_eq!(c.message_bus.dead_letter.destination, "dead_letter");
    let p = c
        .projections
        .get("order_summary")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        p.event_types,
        strings(&["OrderCreated", "OrderCancelled", "PaymentProcessed"])
    );
    assert_eq!((p.checkpoint, p.batch_size), (Checkpoint::EventStore, 50));
    let s = c.sagas.get("order_fulfilment").cloned().unwrap_or_default();
    assert_eq!(s.start_on.as_deref(), Some("OrderCreated"));
    assert_eq!(
        (s.timeout, s.step_timeout),
        (
            Some(Duration::from_secs(600)),
            Some(Duration::from_secs(30))
        )
    );
    assert_eq!((c.snapshots.every, c.versioning.upcasters), (100, true));
    assert_eq!(
        c.security
            .encryption_key
            .as_ref()
            .map(|k| k.expose().as_str()),
        Some("a2V5")
    );
    assert!(c.security.api_tokens.is_empty());
    assert_eq!(
        (
            c.http.listen.as_str(),
            c.metrics.enabled,
            c.metrics.path.as_str()
        ),
        ("127.0.0.1:8080", true, "/metrics")
    );
    let staging = load(&path, &[("APP_ENV", "staging")]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(staging.app.environment, "staging");
}

#[test]
fn dev_example_without_its_key_file_is_e011_at_the_operator() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = lay_out(dir.path(), "dev.tsk", DEV, &[]);
    let err = load(&path, &[]).expect_err("key file missing");
    assert_eq!(err.code().as_str(), "E011");
    assert_eq!(err.span().map(|s| (s.line, s.col)), Some((29, 17)));
    assert!(err.to_string().contains("../dev-secrets/event-key.b64"));
}

const PRODUCTION_ENV: [(&str, &str); 5] = [
    ("EVENT_STORE_DSN", "postgres://es:pw@db:5432/events"),
    ("EVENT_STORE_POOL_SIZE", "32"),
    ("EVENT_ENCRYPTION_KEY", "enc-key"),
    ("API_TOKEN_ADMIN", "admin-token"),
    ("API_TOKEN_SERVICE", "service-token"),
];

#[test]
fn production_example_is_postgres_and_jetstream_with_secrets_from_outside() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let creds = dir.path().join("nats.creds");
    std::fs::write(&creds, "-----BEGIN NATS USER JWT-----\n").unwrap_or_else(|e| panic!("{e}"));
    let text = PRODUCTION.replace("/run/secrets/nats.creds", &creds.display().to_string());
    let path = lay_out(dir.path(), "production.tsk", &text, &[]);
    let c = load(&path, &PRODUCTION_ENV).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (c.snapshots.every, c.http.listen.as_str()),
        (200, "0.0.0.0:8080")
    );
    assert_eq!(
        (c.event_store.backend, c.event_store.pool_size),
        (EventStoreBackend::Postgres, 32)
    );
    let url = c
        .event_store
        .connection_url()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(url.expose(), "postgres://es:pw@db:5432/events");
    let bus = &c.message_bus;
    assert_eq!(bus.backend, MessageBusBackend::NatsJetstream);
    assert_eq!(bus.broker_url().as_deref(), Some("nats://nats:4222"));
    assert_eq!(
        (bus.stream.as_deref(), bus.subject_prefix.as_deref()),
        (Some("EVENTS"), Some("orders.events"))
    );
    let creds = bus.credentials.as_ref().map(|c| c.expose().as_str());
    assert_eq!(creds, Some("-----BEGIN NATS USER JWT-----"));
    assert_eq!(
        (bus.retry.max_attempts, bus.retry.max_delay),
        (5, Duration::from_secs(60))
    );
    assert_eq!(bus.retry.base_delay, Duration::from_millis(500));
    assert_eq!(bus.dead_letter.destination, "orders.dlq");
    let batch = |name: &str| c.projections.get(name).map(|p| p.batch_size);
    assert_eq!(
        (batch("order_summary"), batch("revenue_by_day")),
        (Some(500), Some(1000))
    );
    let revenue = c
        .projections
        .get("revenue_by_day")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        revenue.event_types,
        strings(&["PaymentProcessed", "PaymentRefunded"])
    );
    let saga = c.sagas.get("order_fulfilment").cloned().unwrap_or_default();
    assert_eq!(
        (saga.timeout, saga.step_timeout),
        (
            Some(Duration::from_secs(1800)),
            Some(Duration::from_secs(120))
        )
    );
    let tokens: Vec<&str> = c
        .security
        .api_tokens
        .iter()
        .map(|t| t.expose().as_str())
        .collect();
    assert_eq!(tokens, ["admin-token", "service-token"]);
    for (_, secret) in PRODUCTION_ENV
        .iter()
        .filter(|(k, _)| *k != "EVENT_STORE_POOL_SIZE")
    {
        assert!(!c.render().contains(secret) && !format!("{c:?}").contains(secret));
    }
}

#[test]
fn production_example_without_the_dsn_variable_is_e011_at_line_eight() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = lay_out(dir.path(), "production.tsk", PRODUCTION, &[]);
    let err = load(&path, &[]).expect_err("unset");
    assert_eq!(err.code().as_str(), "E011");
    assert_eq!(err.span().map(|s| (s.line, s.col)), Some((8, 6)));
    assert!(err.to_string().contains("`EVENT_STORE_DSN`"));
}

const GUIDE_ENV: [(&str, &str); 3] = [
    ("EVENT_STORE_PASSWORD", "pw"),
    ("EVENT_ENCRYPTION_KEY", "k"),
    ("API_TOKEN", "t"),
];

#[test]
fn guide_example_is_mysql_and_redis_with_the_guides_defaults() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = lay_out(dir.path(), "guide.tsk", GUIDE, &[]);
    let c = load(&path, &GUIDE_ENV).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.event_store.backend, EventStoreBackend::Mysql);
    assert_eq!(c.event_store.username.as_deref(), Some("root"));
    let url = c
        .event_store
        .connection_url()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(url.expose(), "mysql://root:pw@localhost:3306/event_store");
    let bus = &c.message_bus;
    assert_eq!(
        (bus.backend, bus.port, bus.queue_prefix.as_str()),
        (MessageBusBackend::Redis, Some(6379), "queue:")
    );
    assert_eq!(bus.broker_url().as_deref(), Some("redis://localhost:6379"));
    assert_eq!(
        (bus.retry.base_delay, bus.retry.max_delay),
        (Duration::from_secs(2), Duration::from_secs(300))
    );
    assert_eq!(bus.dead_letter.destination, "dead_letter_queue");
    assert_eq!(
        c.cqrs
            .command_handlers
            .get("CancelOrder")
            .map(String::as_str),
        Some("orders.cancel_order")
    );
    assert_eq!(c.cqrs.query_handlers.len(), 1);
    let p = c
        .projections
        .get("order_projection")
        .cloned()
        .unwrap_or_default();
    assert_eq!((p.checkpoint, p.batch_size), (Checkpoint::ReadModel, 100));
    assert_eq!(
        p.read_dsn.map(|d| d.expose().clone()).as_deref(),
        Some("mysql://localhost:3306/read_models")
    );
    let saga = c.sagas.get("order_saga").cloned().unwrap_or_default();
    assert_eq!(
        (saga.event_types.len(), saga.timeout),
        (4, Some(Duration::from_secs(900)))
    );
    assert_eq!(
        (c.security.api_tokens.len(), c.http.listen.as_str()),
        (1, "0.0.0.0:8080")
    );
}

#[test]
fn guide_example_redis_port_from_env_must_be_an_integer() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = lay_out(dir.path(), "guide.tsk", GUIDE, &[]);
    let mut vars = GUIDE_ENV.to_vec();
    vars.push(("REDIS_PORT", "6380"));
    let c = load(&path, &vars).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.message_bus.port, Some(6380));
    vars.pop();
    vars.push(("REDIS_PORT", "redis-port"));
    let err = load(&path, &vars).expect_err("not an integer");
    assert_eq!(err.code().as_str(), "E012");
    assert_eq!(err.span().map(|s| (s.line, s.col)), Some((11, 8)));
}

#[test]
fn guide_example_with_the_seeds_pdo_dsn_translates_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = lay_out(dir.path(), "guide.tsk", GUIDE, &[]);
    let mut vars = GUIDE_ENV.to_vec();
    vars.push(("EVENT_STORE_DSN", "mysql:host=localhost;dbname=event_store"));
    let c = load(&path, &vars).unwrap_or_else(|e| panic!("{e}"));
    let url = c
        .event_store
        .connection_url()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(url.expose(), "mysql://root:pw@localhost/event_store");
}
