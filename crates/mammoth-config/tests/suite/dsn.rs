//! DSN helpers: the seed's PDO DSNs, credentials merged into URLs, the SQLite path.

use std::path::Path;

use mammoth_config::{Config, EventStoreConfig};

use super::{assert_error_at, config, error};

fn store(text: &str) -> EventStoreConfig {
    config(text).unwrap_or_else(|e| panic!("{e}")).event_store
}

fn url(text: &str) -> String {
    store(text)
        .connection_url()
        .unwrap_or_else(|e| panic!("{e}"))
        .expose()
        .clone()
}

#[test]
fn seed_pdo_mysql_dsn_becomes_a_url_with_the_username_and_password() {
    let text = "[event_store]\nbackend: \"mysql\"\ndsn: \"mysql:host=localhost;dbname=event_store\"\nusername: \"root\"\npassword: \"p@ss word\"\n";
    assert_eq!(
        url(text),
        "mysql://root:p%40ss%20word@localhost/event_store"
    );
}

#[test]
fn pdo_pgsql_dsn_keeps_its_port_and_options() {
    let text = "[event_store]\nbackend: \"postgres\"\ndsn: \"pgsql:host=db.internal;port=5433;dbname=es;sslmode=require\"\n";
    assert_eq!(url(text), "postgres://db.internal:5433/es?sslmode=require");
}

#[test]
fn credentials_in_the_url_win_over_the_separate_fields() {
    let text = "[event_store]\nbackend: \"postgres\"\ndsn: \"postgres://app:inner@db/es\"\nusername: \"root\"\npassword: \"outer\"\n";
    assert_eq!(url(text), "postgres://app:inner@db/es");
}

#[test]
fn dsn_naming_another_database_than_the_backend_is_e018_at_the_dsn() {
    let text = "[event_store]\nbackend: \"postgres\"\ndsn: @env.secure(\"DSN\")\n";
    let err = super::config_env(text, &[("DSN", "mysql://u:hunter2@db/es")]).expect_err("mismatch");
    assert_error_at(&err, "E018", 3, 1);
    assert!(
        err.diagnostic()
            .message()
            .contains("`mysql` address but `backend` is `postgres`")
    );
    assert!(!err.to_string().contains("hunter2"));
}

#[test]
fn malformed_pdo_dsn_is_e018_without_echoing_the_dsn() {
    let text = "[event_store]\nbackend: \"mysql\"\ndsn: @env.secure(\"DSN\")\n";
    let env = [("DSN", "mysql:host=db;port=x;password=hunter2")];
    let err = super::config_env(text, &env).expect_err("bad port");
    assert_error_at(&err, "E018", 3, 1);
    assert!(err.diagnostic().message().contains("`port`"));
    assert!(!err.to_string().contains("hunter2"));
}

#[test]
fn sqlite_path_comes_from_each_dsn_form() {
    let cases = [
        ("sqlite://./data/events.db?mode=rwc", "./data/events.db"),
        ("sqlite:/var/lib/es.db", "/var/lib/es.db"),
        ("sqlite:///abs/es.db", "/abs/es.db"),
        ("local/es.db", "local/es.db"),
    ];
    for (dsn, path) in cases {
        let s = store(&format!("[event_store]\ndsn: \"{dsn}\"\n"));
        assert_eq!(s.sqlite_path(), Path::new(path), "{dsn}");
    }
    assert_eq!(
        store("").sqlite_path(),
        Path::new("./mammoth-data/mammoth.db")
    );
}

#[test]
fn sqlite_and_memory_connection_urls() {
    assert_eq!(url(""), "sqlite://./mammoth-data/mammoth.db?mode=rwc");
    assert_eq!(
        url("[event_store]\ndsn: \"sqlite:x.db\"\n"),
        "sqlite://x.db?mode=rwc"
    );
    assert_eq!(url("[event_store]\nbackend: \"memory\"\n"), "memory://");
    assert_error_at(
        &error("[event_store]\ndsn: \"postgres://h/db\"\n"),
        "E018",
        2,
        1,
    );
}

#[test]
fn connection_url_on_a_code_built_config_reports_the_missing_dsn() {
    let mut c = Config::default();
    c.event_store.backend = mammoth_config::EventStoreBackend::Postgres;
    let err = c.event_store.connection_url().expect_err("no dsn");
    assert_eq!(err.code().as_str(), "E018");
    assert!(err.to_string().contains("event_store.dsn"));
}
