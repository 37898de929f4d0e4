//! Every `events` command and `store init/status`, end to end through the built binary, on
//! PostgreSQL and on MySQL/MariaDB: the same scenario the SQLite tests prove, driven only by a
//! mammoth.tsk the test writes. Each test uses a schema (PostgreSQL) or database (MySQL) of
//! its own, dropped afterwards. Needs MAMMOTH_TEST_POSTGRES_URL / MAMMOTH_TEST_MYSQL_URL:
//! skipped with a note without them, a failure under CI=true.

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use support::{Sandbox, serve_runs_the_order_app, service_url};

const POSTGRES_VAR: &str = "MAMMOTH_TEST_POSTGRES_URL";
const MYSQL_VAR: &str = "MAMMOTH_TEST_MYSQL_URL";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A schema or database name no other test or run uses.
fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Drops the test's schema or database when the test ends, passed or failed.
struct DropOnExit {
    url: String,
    name: String,
    postgres: bool,
}

impl Drop for DropOnExit {
    fn drop(&mut self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dropped = runtime.block_on(async {
            if self.postgres {
                mammoth_postgres::drop_schema(&self.url, &self.name).await
            } else {
                mammoth_mysql::drop_database(&self.url, &self.name).await
            }
        });
        if let Err(error) = dropped {
            eprintln!("could not drop {}: {error}", self.name);
        }
    }
}

/// A sandbox whose mammoth.tsk points at a fresh PostgreSQL schema.
fn postgres_sandbox() -> Option<(Sandbox, DropOnExit)> {
    let url = service_url(POSTGRES_VAR)?;
    let schema = unique_name("mammoth_cli");
    let sandbox = Sandbox::new();
    sandbox.write(
        "mammoth.tsk",
        &format!(
            "[event_store]\nbackend: \"postgres\"\ndsn: @env.secure(\"{POSTGRES_VAR}\")\nschema: \"{schema}\"\npool_size: 3\n"
        ),
    );
    let guard = DropOnExit {
        url,
        name: schema,
        postgres: true,
    };
    Some((sandbox, guard))
}

/// A sandbox whose mammoth.tsk points at a fresh MySQL database, written in the seed's PDO
/// form (`mysql:host=…;dbname=…`) with the user and password as separate keys.
fn mysql_sandbox() -> Option<(Sandbox, DropOnExit)> {
    let url = service_url(MYSQL_VAR)?;
    let database = unique_name("mammoth_cli");
    let parsed = MysqlUrl::parse(&url);
    let sandbox = Sandbox::new();
    // The password is a secret read from a file (empty for the CI server's root).
    sandbox.write("mysql-password", &parsed.password);
    sandbox.write(
        "mammoth.tsk",
        &format!(
            "[event_store]\nbackend: \"mysql\"\ndsn: \"mysql:host={};port={};dbname={database}\"\nusername: \"{}\"\npassword: @file.secure(\"mysql-password\")\npool_size: 3\n",
            parsed.host, parsed.port, parsed.user
        ),
    );
    let guard = DropOnExit {
        url,
        name: database,
        postgres: false,
    };
    Some((sandbox, guard))
}

/// Just enough of `mysql://user:password@host:port/db` to write the PDO form.
struct MysqlUrl {
    user: String,
    password: String,
    host: String,
    port: u16,
}

impl MysqlUrl {
    fn parse(url: &str) -> Self {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let rest = rest.split('/').next().unwrap_or(rest);
        let (credentials, address) = rest.rsplit_once('@').unwrap_or(("root", rest));
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let (host, port) = address.split_once(':').unwrap_or((address, "3306"));
        Self {
            user: user.to_owned(),
            password: password.to_owned(),
            host: host.to_owned(),
            port: port.parse().expect("port"),
        }
    }
}

/// `events tail`, killed if the test ends before it exits.
struct Tail(Child);

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The scenario every backend must pass: init, append, read, all, stats, tail, status.
fn append_read_all_stats_tail(sandbox: &Sandbox, backend: &str) {
    let before = sandbox.run(&["store", "status", "--json"]).json();
    assert_eq!(before["backend"], backend);
    assert_eq!(
        before["schema_version"], 0,
        "status creates nothing: {before}"
    );
    let status = sandbox.run(&["store", "status"]);
    assert!(
        status.ok().contains("run `mammoth store init`"),
        "{}",
        status.stdout
    );

    let init = sandbox.run(&["store", "init", "--json"]).json();
    assert_eq!(init["schema_version"], init["latest_schema_version"]);
    assert!(init["schema_version"].as_i64().unwrap() >= 1, "{init}");
    assert_eq!(init["event_count"], 0);
    let again = sandbox.run(&["store", "init", "--json"]).json();
    assert_eq!(
        again["schema_version"], init["schema_version"],
        "init twice"
    );

    let first = sandbox.append("order-1", "OrderCreated", r#"{"total": 30}"#);
    assert_eq!(
        (first["version"].as_u64(), first["position"].as_u64()),
        (Some(1), Some(1))
    );
    sandbox.append("payment-1", "PaymentProcessed", r#"{"amount": 30}"#);
    let third = sandbox.append("order-1", "OrderPaid", r#"{"nested": {"b": 1, "a": 2}}"#);
    assert_eq!(
        (third["version"].as_u64(), third["position"].as_u64()),
        (Some(2), Some(3))
    );

    // A stale expected version is a conflict (exit code 3) and writes nothing.
    let conflict = sandbox.run(&[
        "events",
        "append",
        "order-1",
        "--type",
        "OrderPaid",
        "--data",
        "{}",
        "--expected",
        "1",
    ]);
    let stderr = conflict.failed_with(3);
    assert!(stderr.contains("order-1"), "{stderr}");

    let stream = sandbox
        .run(&["events", "read", "order-1", "--json"])
        .json_lines();
    assert_eq!(stream.len(), 2);
    assert_eq!(stream[0]["type"], "OrderCreated");
    assert_eq!(stream[0]["data"]["total"], 30);
    assert_eq!(stream[1]["id"], third["id"]);
    let table = sandbox.run(&["events", "read", "order-1"]);
    assert!(table.ok().contains("OrderPaid"), "{}", table.stdout);

    let orders = sandbox
        .run(&["events", "all", "--category", "order", "--json"])
        .json_lines();
    let positions: Vec<_> = orders.iter().map(|e| e["position"].as_u64()).collect();
    assert_eq!(positions, [Some(1), Some(3)]);
    let payments = sandbox
        .run(&["events", "all", "--type", "PaymentProcessed", "--json"])
        .json_lines();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["stream"], "payment-1");

    let stats = sandbox.run(&["events", "stats", "--json"]).json();
    assert_eq!(stats["backend"], backend);
    assert_eq!(stats["event_count"], 3);
    assert_eq!(stats["stream_count"], 2);
    assert_eq!(stats["head_position"], 3);
    assert_eq!(stats["events_per_type"].as_array().map(Vec::len), Some(3));
    assert!(stats["size_bytes"].as_u64().unwrap() > 0, "{stats}");

    tail_follows_live_appends(sandbox);

    let after = sandbox.run(&["store", "status", "--json"]).json();
    assert_eq!(after["event_count"], 4);
    assert_eq!(after["stream_count"], 3);
    assert_eq!(after["head_position"], 4);
    assert_eq!(after["schema_version"], init["schema_version"]);
    let human = sandbox.run(&["store", "status"]);
    assert!(human.ok().contains("events          4"), "{}", human.stdout);
}

/// `events tail --from 3` prints the stored event at 3, then one appended while it runs, and
/// exits with code 0 on Ctrl-C.
fn tail_follows_live_appends(sandbox: &Sandbox) {
    let mut tail = Tail(
        sandbox
            .command(&["events", "tail", "--from", "3", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tail"),
    );
    let (lines_tx, lines) = mpsc::channel();
    let stdout = tail.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let next = |what: &str| -> serde_json::Value {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("tail printed no {what}"));
        serde_json::from_str(&line).expect("JSON line")
    };
    let stored = next("stored event");
    assert_eq!(stored["position"], 3);
    sandbox.append("order-2", "OrderCreated", r#"{"live": true}"#);
    let live = next("live event");
    assert_eq!(live["position"], 4);
    assert_eq!(live["data"]["live"], true);

    let interrupt = std::process::Command::new("kill")
        .args(["-INT", &tail.0.id().to_string()])
        .status()
        .expect("send SIGINT");
    assert!(interrupt.success());
    let status = tail.0.wait().expect("tail exits");
    assert_eq!(status.code(), Some(0), "Ctrl-C is a clean exit");
}

#[test]
fn every_events_command_and_store_status_work_on_postgres() {
    let Some((sandbox, _drop)) = postgres_sandbox() else {
        return;
    };
    append_read_all_stats_tail(&sandbox, "postgres");
}

#[test]
fn every_events_command_and_store_status_work_on_mysql_from_a_pdo_dsn() {
    let Some((sandbox, _drop)) = mysql_sandbox() else {
        return;
    };
    append_read_all_stats_tail(&sandbox, "mysql");
}

#[test]
fn an_unreachable_postgres_is_a_runtime_failure_naming_the_store() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "mammoth.tsk",
        "[event_store]\nbackend: \"postgres\"\ndsn: \"postgres://nobody@127.0.0.1:1/none\"\n",
    );
    let stderr = sandbox.run(&["events", "stats"]).failed_with(1).to_owned();
    assert!(stderr.contains("postgres event store"), "{stderr}");
    let stderr = sandbox.run(&["store", "status"]).failed_with(1).to_owned();
    assert!(stderr.contains("postgres event store"), "{stderr}");
}

#[test]
fn a_dsn_for_another_database_is_a_configuration_error() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "mammoth.tsk",
        "[event_store]\nbackend: \"mysql\"\ndsn: \"postgres://postgres@127.0.0.1/postgres\"\n",
    );
    let stderr = sandbox.run(&["events", "stats"]).failed_with(2).to_owned();
    assert!(stderr.contains("backend"), "{stderr}");
    sandbox.run(&["store", "init"]).failed_with(2);
}

#[test]
fn store_status_and_init_on_sqlite_report_schema_version_counts_and_size() {
    let sandbox = Sandbox::new();
    let before = sandbox.run(&["store", "status", "--json"]).json();
    assert_eq!(before["backend"], "sqlite");
    assert_eq!(before["schema_version"], 0);
    assert!(
        !sandbox.path().join("store/events.db").exists(),
        "status creates nothing"
    );
    let init = sandbox.run(&["store", "init", "--json"]).json();
    assert_eq!(init["schema_version"], init["latest_schema_version"]);
    assert!(sandbox.path().join("store/events.db").exists());
    sandbox.append("order-1", "OrderCreated", "{}");
    sandbox.append("order-2", "OrderCreated", "{}");
    let status = sandbox.run(&["store", "status", "--json"]).json();
    assert_eq!(status["event_count"], 2);
    assert_eq!(status["stream_count"], 2);
    assert_eq!(status["head_position"], 2);
    assert!(status["size_bytes"].as_u64().unwrap() > 0, "{status}");
    let human = sandbox.run(&["store", "status"]);
    assert!(human.ok().contains("schema version"), "{}", human.stdout);
}

#[cfg(unix)]
#[test]
fn serve_runs_the_order_saga_on_postgres_with_its_deadlines_and_checkpoint_beside_the_events() {
    let Some((sandbox, _guard)) = postgres_sandbox() else {
        return;
    };
    serve_runs_the_order_app(&sandbox);
    saga_and_bus_state_are_beside_the_events(&sandbox);
    saga_runner_is_on_the_status_screen(&sandbox);
}

/// `mammoth status` finds the saga runner's checkpoint in the server's own table.
fn saga_runner_is_on_the_status_screen(sandbox: &Sandbox) {
    let status = sandbox.run(&["status", "--json"]).json();
    let runner = status["projections"]
        .as_array()
        .expect("projections")
        .iter()
        .find(|row| row["name"] == "saga-order")
        .cloned()
        .unwrap_or_else(|| panic!("the saga runner is listed: {status}"));
    assert_eq!(runner["state"], "saga runner", "{runner}");
    assert!(runner["checkpoint"].as_u64().unwrap_or(0) > 0, "{runner}");
}

#[cfg(unix)]
#[test]
fn serve_runs_the_order_saga_on_mysql_with_its_deadlines_and_checkpoint_beside_the_events() {
    let Some((sandbox, _guard)) = mysql_sandbox() else {
        return;
    };
    serve_runs_the_order_app(&sandbox);
    saga_and_bus_state_are_beside_the_events(&sandbox);
    saga_runner_is_on_the_status_screen(&sandbox);
}

/// The saga runner's checkpoint and deadlines and the embedded bus went to the SQL server's
/// own tables: no SQLite side file holds any of them, and `mammoth bus stats` (which opens the
/// bus in the server) counts the topics the flow used.
fn saga_and_bus_state_are_beside_the_events(sandbox: &Sandbox) {
    let side = sandbox.path().join("mammoth-data").join("mammoth.db");
    if side.exists() {
        let conn = rusqlite::Connection::open(&side).expect("open the side file");
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| row.get(0))
                    .and_then(|rows| rows.collect())
            })
            .expect("list tables");
        for table in ["checkpoints", "saga_timers", "bus_messages"] {
            assert!(
                !tables.iter().any(|name| name == table),
                "{table} is in the side file: {tables:?}"
            );
        }
    }
    let stats = sandbox.run(&["bus", "stats", "--json"]).json();
    let topics = stats.as_array().expect("bus stats is a list");
    assert!(
        topics
            .iter()
            .any(|row| row["messages"].as_u64().unwrap_or(0) > 0),
        "the server's bus tables hold the flow's messages: {stats}"
    );
}

/// Appends `text` to the sandbox's mammoth.tsk.
fn append_config(sandbox: &Sandbox, text: &str) {
    let path = sandbox.path().join("mammoth.tsk");
    let mut config = std::fs::read_to_string(&path).expect("read mammoth.tsk");
    config.push_str(text);
    std::fs::write(&path, config).expect("write mammoth.tsk");
}

#[cfg(unix)]
#[test]
fn the_order_read_model_and_saga_index_live_in_postgres_when_read_dsn_names_it() {
    let Some((sandbox, _guard)) = postgres_sandbox() else {
        return;
    };
    let url = service_url(POSTGRES_VAR).expect("checked by the sandbox");
    let schema = unique_name("mammoth_cli_rm");
    let read_dsn = if url.contains('?') {
        format!("{url}&schema={schema}")
    } else {
        format!("{url}?schema={schema}")
    };
    let _read_models = DropOnExit {
        url,
        name: schema.clone(),
        postgres: true,
    };
    append_config(
        &sandbox,
        &format!(
            "\n[projections.orders]\nread_dsn: \"{read_dsn}\"\n[projections.saga_index]\nread_dsn: \"{read_dsn}\"\n"
        ),
    );
    read_models_in_the_server(&sandbox, "postgres", &schema);
}

#[cfg(unix)]
#[test]
fn the_order_read_model_and_saga_index_live_in_mysql_when_read_dsn_names_it() {
    let Some((sandbox, _guard)) = mysql_sandbox() else {
        return;
    };
    let url = service_url(MYSQL_VAR).expect("checked by the sandbox");
    let database = unique_name("mammoth_cli_rm");
    let parsed = MysqlUrl::parse(&url);
    let credentials = if parsed.password.is_empty() {
        parsed.user.clone()
    } else {
        format!("{}:{}", parsed.user, parsed.password)
    };
    let read_dsn = format!(
        "mysql://{credentials}@{}:{}/{database}",
        parsed.host, parsed.port
    );
    let _read_models = DropOnExit {
        url,
        name: database.clone(),
        postgres: false,
    };
    append_config(
        &sandbox,
        &format!(
            "\n[projections.orders]\nread_dsn: \"{read_dsn}\"\n[projections.saga_index]\nread_dsn: \"{read_dsn}\"\n"
        ),
    );
    read_models_in_the_server(&sandbox, "mysql", &database);
}

/// With `[projections.orders]` and `[projections.saga_index] read_dsn` naming the SQL server,
/// `serve` runs the order read model there (the flow's read-your-writes query reads it) and
/// keeps the saga index there (`/admin/sagas` and `mammoth sagas list` read it), and every
/// `projections` command operates the order read model there: list and status say where it is,
/// verify finds it equal to a fresh replay, a blue-green rebuild switches to version 2 and
/// drops version 1, a replay in place keeps it equal. Nothing is written to local SQLite files.
fn read_models_in_the_server(sandbox: &Sandbox, backend: &str, place: &str) {
    serve_runs_the_order_app(sandbox);

    let list = sandbox.run(&["projections", "list", "--json"]).json();
    let orders = list
        .as_array()
        .expect("a list")
        .iter()
        .find(|row| row["name"] == "orders")
        .cloned()
        .unwrap_or_else(|| panic!("orders is listed: {list}"));
    assert_eq!(orders["backend"], backend, "{orders}");
    assert!(
        orders["read_model"].as_str().unwrap_or("").contains(place),
        "{orders}"
    );

    let status = sandbox
        .run(&["projections", "status", "orders", "--json"])
        .json();
    let row = &status.as_array().expect("rows")[0];
    assert_eq!(
        (row["version"].as_u64(), row["active"].as_bool()),
        (Some(1), Some(true)),
        "{status}"
    );
    assert!(row["checkpoint"].as_u64().unwrap_or(0) > 0, "{status}");

    let verified = sandbox.run(&["projections", "verify", "orders"]);
    assert!(
        verified.ok().contains("equals a fresh replay"),
        "{verified:#?}"
    );
    let rebuilt = sandbox.run(&["projections", "rebuild", "orders", "--drop-old"]);
    assert!(
        rebuilt
            .ok()
            .contains("version 2 is now active; version 1 dropped"),
        "{rebuilt:#?}"
    );
    sandbox.run(&["projections", "replay", "orders"]).ok();
    let status = sandbox
        .run(&["projections", "status", "orders", "--json"])
        .json();
    let versions: Vec<u64> = status
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|row| row["version"].as_u64())
        .collect();
    assert_eq!(versions, [2], "only version 2 is left: {status}");
    let verified = sandbox
        .run(&["projections", "verify", "orders", "--json"])
        .json();
    assert_eq!(verified["differences"], serde_json::json!([]), "{verified}");

    let sagas = sandbox
        .run(&["sagas", "list", "--status", "compensated", "--json"])
        .json();
    assert!(
        sagas
            .as_array()
            .is_some_and(|rows| rows.iter().any(|row| row["saga_id"] == "o-1")),
        "the saga index in the server lists the compensated saga: {sagas}"
    );

    for file in ["read_models.db", "mammoth.db"] {
        let local = sandbox.path().join("mammoth-data").join(file);
        assert!(!local.exists(), "nothing is kept in {}", local.display());
    }
}
