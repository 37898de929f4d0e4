//! The PostgreSQL side of the SQL bus benchmark: [`PgBus`] beside a [`PgEventStore`] in a
//! scratch schema, and the raw tables (`bench_raw`, `bench_cursor`) on the store's pool.

use mammoth_postgres::bus::{PgBus, PgBusOptions};
use mammoth_postgres::{PgEventStore, PgOptions};
use tokio_postgres::types::ToSql;

use super::{RawRow, Scratch, SqlBusBenchOptions, SqlBusRun, one_run};
use crate::BenchError;

/// The scratch schema's store, bus and quoted name.
#[derive(Clone)]
struct PgScratch {
    store: PgEventStore,
    bus: PgBus,
    quoted: String,
}

fn failed(what: &'static str) -> impl Fn(String) -> BenchError {
    move |error| BenchError::Setup(format!("bench bus (postgres): {what}: {error}"))
}

/// Creates schema `name` (the store's tables and the raw ones), runs every part in it and
/// closes the store. The caller drops the schema.
pub(super) async fn run(
    url: &str,
    name: &str,
    options: &SqlBusBenchOptions,
) -> Result<(SqlBusRun, Vec<String>), BenchError> {
    let store = PgEventStore::open(
        url,
        PgOptions {
            schema: name.to_owned(),
            ..PgOptions::default()
        },
    )
    .await
    .map_err(|e| {
        failed("opening the scratch schema")(format!(
            "{e} (is PostgreSQL reachable at the configured dsn, and may its user create schemas?)"
        ))
    })?;
    let quoted = format!("\"{name}\"");
    let result = async {
        let client = store
            .pool()
            .get()
            .await
            .map_err(|e| failed("connecting")(e.to_string()))?;
        client
            .batch_execute(&format!(
                "CREATE TABLE {quoted}.bench_raw (
                     seq          bigserial PRIMARY KEY,
                     topic        text NOT NULL,
                     message_id   uuid NOT NULL,
                     payload      bytea NOT NULL,
                     published_at bigint NOT NULL
                 );
                 CREATE TABLE {quoted}.bench_cursor (seq bigint NOT NULL);
                 INSERT INTO {quoted}.bench_cursor VALUES (0);"
            ))
            .await
            .map_err(|e| failed("creating the raw tables")(e.to_string()))?;
        drop(client);
        let scratch = PgScratch {
            bus: PgBus::new(&store, PgBusOptions::default()),
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

impl Scratch for PgScratch {
    type Store = PgEventStore;
    type Bus = PgBus;

    fn store(&self) -> &PgEventStore {
        &self.store
    }

    fn bus(&self) -> &PgBus {
        &self.bus
    }

    async fn raw_insert(&self, rows: Vec<RawRow>) -> Result<(), BenchError> {
        let q = &self.quoted;
        let values: Vec<String> = (0..rows.len())
            .map(|n| {
                let p = n * 4;
                format!("(${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4)
            })
            .collect();
        let sql = format!(
            "INSERT INTO {q}.bench_raw (topic, message_id, payload, published_at) VALUES {}",
            values.join(", ")
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(rows.len() * 4);
        for row in &rows {
            params.push(&row.topic);
            params.push(&row.message_id);
            params.push(&row.payload);
            params.push(&row.published_at);
        }
        let client = self
            .store
            .pool()
            .get()
            .await
            .map_err(|e| failed("connecting")(e.to_string()))?;
        let statement = client
            .prepare_cached(&sql)
            .await
            .map_err(|e| failed("raw insert")(e.to_string()))?;
        client
            .execute(&statement, &params)
            .await
            .map_err(|e| failed("raw insert")(e.to_string()))?;
        Ok(())
    }

    async fn raw_read(&self, after: i64, limit: usize) -> Result<(usize, i64), BenchError> {
        let q = &self.quoted;
        let mut client = self
            .store
            .pool()
            .get()
            .await
            .map_err(|e| failed("connecting")(e.to_string()))?;
        let rows = client
            .query(
                &format!(
                    "SELECT seq, topic, message_id, payload, published_at FROM {q}.bench_raw
                      WHERE seq > $1 ORDER BY seq LIMIT $2"
                ),
                &[&after, &(limit as i64)],
            )
            .await
            .map_err(|e| failed("raw read")(e.to_string()))?;
        let mut last = after;
        for row in &rows {
            last = row.get(0);
            let read: (String, uuid::Uuid, Vec<u8>, i64) =
                (row.get(1), row.get(2), row.get(3), row.get(4));
            std::hint::black_box(read);
        }
        // The cursor commits as the bus's acks do: without waiting for the WAL flush.
        let tx = client
            .transaction()
            .await
            .map_err(|e| failed("raw cursor")(e.to_string()))?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(|e| failed("raw cursor")(e.to_string()))?;
        tx.execute(&format!("UPDATE {q}.bench_cursor SET seq = $1"), &[&last])
            .await
            .map_err(|e| failed("raw cursor")(e.to_string()))?;
        tx.commit()
            .await
            .map_err(|e| failed("raw cursor")(e.to_string()))?;
        Ok((rows.len(), last))
    }
}
