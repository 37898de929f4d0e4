//! What `mammoth store init` and `mammoth store status` call: create or migrate the schema
//! without starting a store, and report what a schema holds.

use serde::Serialize;
use tokio_postgres::{Client, NoTls};

use mammoth_core::StoreError;

use crate::PgOptions;
use crate::error::on;
use crate::schema::{self, SCHEMA_VERSION, Sql};
use crate::store::parse_url;

/// What a PostgreSQL event store schema holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PgStoreStatus {
    /// The schema name.
    pub schema: String,
    /// The schema version stored in it; 0 when the schema is not initialized.
    pub schema_version: i64,
    /// The schema version this build writes.
    pub latest_schema_version: i64,
    /// The head of the global log (the last assigned position).
    pub head_position: u64,
    /// Events stored.
    pub event_count: u64,
    /// Streams with at least one event.
    pub stream_count: u64,
    /// Bytes on disk of the schema's tables, indexes and TOAST data.
    pub size_bytes: u64,
}

async fn connect(url: &str) -> Result<Client, StoreError> {
    let config = parse_url(url)?;
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(on("connecting to the database"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "admin connection ended");
        }
    });
    Ok(client)
}

/// Creates the schema `options.schema` (or migrates it to the current version) and returns
/// its status. Safe to run while stores are open and from several processes at once.
///
/// # Errors
/// [`StoreError::Backend`] when the database cannot be reached or holds a newer schema.
pub async fn init(url: &str, options: &PgOptions) -> Result<PgStoreStatus, StoreError> {
    schema::check_schema_name(&options.schema)?;
    let mut client = connect(url).await?;
    let sql = Sql::new(&options.schema);
    schema::migrate(&mut client, &sql).await?;
    status_on(&client, &sql).await
}

/// The status of schema `options.schema`, without creating or changing anything. A schema
/// that does not exist reports version 0 and zero counts.
///
/// # Errors
/// [`StoreError::Backend`] when the database cannot be reached.
pub async fn status(url: &str, options: &PgOptions) -> Result<PgStoreStatus, StoreError> {
    schema::check_schema_name(&options.schema)?;
    let client = connect(url).await?;
    status_on(&client, &Sql::new(&options.schema)).await
}

pub(crate) async fn status_on(client: &Client, sql: &Sql) -> Result<PgStoreStatus, StoreError> {
    let action = "reading the store status";
    let schema_version = schema::stored_version(client, sql).await?;
    let mut status = PgStoreStatus {
        schema: sql.schema.clone(),
        schema_version,
        latest_schema_version: SCHEMA_VERSION,
        head_position: 0,
        event_count: 0,
        stream_count: 0,
        size_bytes: 0,
    };
    if schema_version == 0 {
        return Ok(status);
    }
    let s = sql.quoted();
    let row = client
        .query_one(
            &format!(
                "SELECT (SELECT position FROM {s}.log_head),
                        (SELECT count(*) FROM {s}.events),
                        (SELECT count(DISTINCT stream_id) FROM {s}.events),
                        (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE n.nspname = $1 AND c.relkind = 'r')"
            ),
            &[&sql.schema],
        )
        .await
        .map_err(on(action))?;
    status.head_position = row.get::<_, i64>(0) as u64;
    status.event_count = row.get::<_, i64>(1) as u64;
    status.stream_count = row.get::<_, i64>(2) as u64;
    status.size_bytes = row.get::<_, i64>(3) as u64;
    Ok(status)
}

/// Drops schema `schema` and everything in it. For tests and `mammoth store` tooling; the
/// events are gone afterwards.
///
/// # Errors
/// [`StoreError::Backend`] when the database cannot be reached.
pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    schema::check_schema_name(schema)?;
    let client = connect(url).await?;
    client
        .batch_execute(&format!(
            "SET lock_timeout = '30s'; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        ))
        .await
        .map_err(on("dropping the schema"))
}
