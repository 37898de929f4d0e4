//! `mammoth bench bus` with the embedded bus beside a PostgreSQL (`MAMMOTH_TEST_POSTGRES_URL`)
//! or MySQL (`MAMMOTH_TEST_MYSQL_URL`) store: every part runs and reports a rate, each run
//! works in a schema (database) of its own beside the configured one, and none is left behind.
//! Without the URL a test is skipped with a note; under `CI=true` a missing URL fails it.

mod support;

use serde_json::Value;
use support::{Sandbox, service_url, suffix};

/// Every rate and ratio a run reports.
const NUMBERS: [&str; 11] = [
    "raw_commits_per_sec",
    "publish_per_sec",
    "publish_ratio",
    "raw_batch_per_sec",
    "publish_batch_per_sec",
    "publish_batch_ratio",
    "relay_per_sec",
    "relay_ratio",
    "raw_read_per_sec",
    "consume_per_sec",
    "consume_ratio",
];

/// Runs `bench bus --quick --json` with `tsk`, asserts the report's shape and nonzero numbers,
/// and returns the name of the one scratch schema or database the run used.
fn quick_bench_on(tsk: &str, database: &str, configured: &str) -> String {
    let sandbox = Sandbox::new();
    let config = sandbox.write("sql.tsk", tsk);
    let config = config.to_str().expect("utf-8 path");
    let run = sandbox.run(&["--config", config, "bench", "bus", "--quick", "--json"]);
    let report = run.json();
    assert_eq!(report["benchmark"], "bus", "{run:#?}");
    assert_eq!(report["backend"], "embedded", "{run:#?}");
    assert_eq!(report["database"], database, "{run:#?}");
    assert_eq!(report["messages"], 5_000, "{run:#?}");
    assert!(
        !report["url"].as_str().unwrap_or_default().is_empty(),
        "{run:#?}"
    );
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "--quick is one run: {run:#?}");
    for part in [&runs[0], &report["median"]] {
        for number in NUMBERS {
            let value = part[number].as_f64().unwrap_or(0.0);
            assert!(value > 0.0, "{number} is {value}: {run:#?}");
        }
    }
    assert_eq!(report["relay_topics"], serde_json::json!(["events"]));
    let scratch: Vec<&str> = report["scratch"]
        .as_array()
        .expect("scratch")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(scratch.len(), 1, "one scratch per run: {run:#?}");
    assert!(
        scratch[0].starts_with(&format!("{configured}_bench_")),
        "{run:#?}"
    );
    scratch[0].to_owned()
}

/// The schema version PostgreSQL schema or MySQL database `name` holds: 0 when it has no
/// store tables (it was never created, or was dropped).
fn schema_version(url: &str, name: &str, postgres: bool) -> i64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        if postgres {
            let options = mammoth_postgres::PgOptions {
                schema: name.to_owned(),
                ..Default::default()
            };
            mammoth_postgres::status(url, &options)
                .await
                .expect("status")
                .schema_version
        } else {
            let options = mammoth_mysql::MysqlOptions {
                database: Some(name.to_owned()),
                ..Default::default()
            };
            mammoth_mysql::status(url, &options)
                .await
                .expect("status")
                .schema_version
        }
    })
}

#[test]
fn bench_bus_on_postgres_measures_every_part_in_a_schema_of_its_own_and_drops_it() {
    let Some(url) = service_url("MAMMOTH_TEST_POSTGRES_URL") else {
        return;
    };
    let configured = format!("mbench_{}", suffix());
    let scratch = quick_bench_on(
        &format!(
            "[event_store]\nbackend: \"postgres\"\ndsn: @env.secure(\"MAMMOTH_TEST_POSTGRES_URL\")\nschema: \"{configured}\"\n"
        ),
        "postgres",
        &configured,
    );
    assert_eq!(
        schema_version(&url, &scratch, true),
        0,
        "{scratch} was left behind"
    );
    assert_eq!(
        schema_version(&url, &configured, true),
        0,
        "the benchmark wrote into the configured schema {configured}"
    );
}

#[test]
fn bench_bus_on_mysql_measures_every_part_in_a_database_of_its_own_and_drops_it() {
    let Some(url) = service_url("MAMMOTH_TEST_MYSQL_URL") else {
        return;
    };
    let configured = format!("mbench_{}", suffix());
    let scratch = quick_bench_on(
        &format!(
            "[event_store]\nbackend: \"mysql\"\ndsn: @env.secure(\"MAMMOTH_TEST_MYSQL_URL\")\nschema: \"{configured}\"\n"
        ),
        "mysql",
        &configured,
    );
    assert_eq!(
        schema_version(&url, &scratch, false),
        0,
        "{scratch} was left behind"
    );
    assert_eq!(
        schema_version(&url, &configured, false),
        0,
        "the benchmark wrote into the configured database {configured}"
    );
}
