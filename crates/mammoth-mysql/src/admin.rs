//! What `mammoth store init` and `mammoth store status` call: create or migrate the tables
//! without starting a store, and report what a database holds.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde::Serialize;

use mammoth_core::StoreError;

use crate::MysqlOptions;
use crate::error::on;
use crate::schema::{self, SCHEMA_VERSION, Sql};
use crate::store::{connect_server, parse_url};

/// What a MySQL/MariaDB event store database holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MysqlStoreStatus {
    /// The database name.
    pub database: String,
    /// The schema version stored in it; 0 when it is not initialized.
    pub schema_version: i64,
    /// The schema version this build writes.
    pub latest_schema_version: i64,
    /// The head of the global log (the last assigned position).
    pub head_position: u64,
    /// Events stored.
    pub event_count: u64,
    /// Streams with at least one event.
    pub stream_count: u64,
    /// Bytes of the database's tables and indexes, as InnoDB estimates them.
    pub size_bytes: u64,
}

/// Creates the tables in the database (`options.database`, else the URL's) or migrates them
/// to the current version, and returns its status. Safe to run while stores are open and
/// from several processes at once.
///
/// # Errors
/// [`StoreError::Backend`] when the server cannot be reached or holds a newer schema.
pub async fn init(url: &str, options: &MysqlOptions) -> Result<MysqlStoreStatus, StoreError> {
    let (opts, database) = parse_url(url, options.database.as_deref())?;
    let sql = Sql::new(&database);
    let mut conn = connect_server(&opts).await?;
    schema::migrate(&mut conn, &sql).await?;
    let status = status_on(&mut conn, &sql).await;
    let _ = conn.disconnect().await;
    status
}

/// The status of the database, without creating or changing anything. A database that
/// does not exist reports version 0 and zero counts.
///
/// # Errors
/// [`StoreError::Backend`] when the server cannot be reached.
pub async fn status(url: &str, options: &MysqlOptions) -> Result<MysqlStoreStatus, StoreError> {
    let (opts, database) = parse_url(url, options.database.as_deref())?;
    let mut conn = connect_server(&opts).await?;
    let status = status_on(&mut conn, &Sql::new(&database)).await;
    let _ = conn.disconnect().await;
    status
}

pub(crate) async fn status_on(conn: &mut Conn, sql: &Sql) -> Result<MysqlStoreStatus, StoreError> {
    let action = "reading the store status";
    let schema_version = schema::stored_version(conn, sql).await?;
    let mut status = MysqlStoreStatus {
        database: sql.database.clone(),
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
    let d = &sql.d;
    let row: Option<(u64, u64, u64)> = conn
        .query_first(format!(
            "SELECT (SELECT position FROM {d}.log_head WHERE only_row = 1),
                    (SELECT COUNT(*) FROM {d}.events),
                    (SELECT COUNT(DISTINCT stream_id) FROM {d}.events)"
        ))
        .await
        .map_err(on(action))?;
    let size: Option<Option<u64>> = conn
        .exec_first(
            "SELECT CAST(SUM(data_length + index_length) AS UNSIGNED) FROM information_schema.tables WHERE table_schema = ?",
            (&sql.database,),
        )
        .await
        .map_err(on(action))?;
    if let Some((head, events, streams)) = row {
        status.head_position = head;
        status.event_count = events;
        status.stream_count = streams;
    }
    status.size_bytes = size.flatten().unwrap_or(0);
    Ok(status)
}

/// Drops `database` and everything in it. For tests and tooling; the events are gone
/// afterwards.
///
/// # Errors
/// [`StoreError::Backend`] when the server cannot be reached.
pub async fn drop_database(url: &str, database: &str) -> Result<(), StoreError> {
    let (opts, database) = parse_url(url, Some(database))?;
    let mut conn = connect_server(&opts).await?;
    let result = conn
        .query_drop(format!("DROP DATABASE IF EXISTS `{database}`"))
        .await
        .map_err(on("dropping the database"));
    let _ = conn.disconnect().await;
    result
}
