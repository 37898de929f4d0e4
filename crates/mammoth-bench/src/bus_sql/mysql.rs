//! The MySQL side of the SQL bus benchmark: [`MysqlBus`] beside a [`MysqlEventStore`] in a
//! scratch database, and the raw tables (`bench_raw`, `bench_cursor`) on the store's pool.

use mammoth_mysql::bus::{MysqlBus, MysqlBusOptions};
use mammoth_mysql::{MysqlEventStore, MysqlOptions};
use mysql_async::prelude::Queryable as _;
use mysql_async::{Params, Value};

use super::{RawRow, Scratch, SqlBusBenchOptions, SqlBusRun, one_run};
use crate::BenchError;

/// A raw row as read back: seq, topic, message id, payload, published_at.
type RawColumns = (i64, Vec<u8>, Vec<u8>, Vec<u8>, i64);

/// The scratch database's store, bus and quoted name.
#[derive(Clone)]
struct MysqlScratch {
    store: MysqlEventStore,
    bus: MysqlBus,
    quoted: String,
}

fn failed(what: &'static str) -> impl Fn(String) -> BenchError {
    move |error| BenchError::Setup(format!("bench bus (mysql): {what}: {error}"))
}

/// Creates database `name` (the store's tables and the raw ones), runs every part in it and
/// closes the store. The caller drops the database.
pub(super) async fn run(
    url: &str,
    name: &str,
    options: &SqlBusBenchOptions,
) -> Result<(SqlBusRun, Vec<String>), BenchError> {
    let store = MysqlEventStore::open(
        url,
        MysqlOptions {
            database: Some(name.to_owned()),
            ..MysqlOptions::default()
        },
    )
    .await
    .map_err(|e| {
        failed("opening the scratch database")(format!(
            "{e} (is MySQL reachable at the configured dsn, and may its user create databases?)"
        ))
    })?;
    let quoted = format!("`{name}`");
    let result = async {
        let mut conn = store
            .pool()
            .get_conn()
            .await
            .map_err(|e| failed("connecting")(e.to_string()))?;
        for statement in [
            format!(
                "CREATE TABLE {quoted}.bench_raw (
                     seq          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                     topic        VARBINARY(128) NOT NULL,
                     message_id   BINARY(16) NOT NULL,
                     payload      LONGBLOB NOT NULL,
                     published_at BIGINT NOT NULL
                 ) ENGINE = InnoDB"
            ),
            format!("CREATE TABLE {quoted}.bench_cursor (seq BIGINT NOT NULL) ENGINE = InnoDB"),
            format!("INSERT INTO {quoted}.bench_cursor VALUES (0)"),
        ] {
            conn.query_drop(statement)
                .await
                .map_err(|e| failed("creating the raw tables")(e.to_string()))?;
        }
        drop(conn);
        let scratch = MysqlScratch {
            bus: MysqlBus::new(&store, MysqlBusOptions::default()),
            store: store.clone(),
            quoted,
        };
        one_run(&scratch, options).await
    }
    .await;
    store
        .close()
        .await
        .map_err(|e| failed("closing the store")(e.to_string()))?;
    result
}

impl Scratch for MysqlScratch {
    type Store = MysqlEventStore;
    type Bus = MysqlBus;

    fn store(&self) -> &MysqlEventStore {
        &self.store
    }

    fn bus(&self) -> &MysqlBus {
        &self.bus
    }

    async fn raw_insert(&self, rows: Vec<RawRow>) -> Result<(), BenchError> {
        let q = &self.quoted;
        let sql = format!(
            "INSERT INTO {q}.bench_raw (topic, message_id, payload, published_at) VALUES {}",
            vec!["(?, ?, ?, ?)"; rows.len()].join(", ")
        );
        let mut params = Vec::with_capacity(rows.len() * 4);
        for row in rows {
            params.push(Value::Bytes(row.topic.as_bytes().to_vec()));
            params.push(Value::Bytes(row.message_id.as_bytes().to_vec()));
            params.push(Value::Bytes(row.payload));
            params.push(Value::Int(row.published_at));
        }
        let mut conn = self
            .store
            .pool()
            .get_conn()
            .await
            .map_err(|e| failed("connecting")(e.to_string()))?;
        conn.exec_drop(sql, Params::Positional(params))
            .await
            .map_err(|e| failed("raw insert")(e.to_string()))
    }

    async fn raw_read(&self, after: i64, limit: usize) -> Result<(usize, i64), BenchError> {
        let q = &self.quoted;
        let mut conn = self
            .store
            .pool()
            .get_conn()
            .await
            .map_err(|e| failed("connecting")(e.to_string()))?;
        let rows: Vec<RawColumns> = conn
            .exec(
                format!(
                    "SELECT seq, topic, message_id, payload, published_at FROM {q}.bench_raw
                      WHERE seq > ? ORDER BY seq LIMIT ?"
                ),
                (after, limit as u64),
            )
            .await
            .map_err(|e| failed("raw read")(e.to_string()))?;
        let last = rows.last().map_or(after, |row| row.0);
        let count = rows.len();
        std::hint::black_box(rows);
        conn.exec_drop(format!("UPDATE {q}.bench_cursor SET seq = ?"), (last,))
            .await
            .map_err(|e| failed("raw cursor")(e.to_string()))?;
        Ok((count, last))
    }
}
