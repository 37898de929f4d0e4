//! Events per type on the SQL servers, for `events stats`: one `GROUP BY` over the store's
//! own table, read through the store's pool (the drivers' status reports the other counts).

use mammoth_mysql::MysqlEventStore;
use mammoth_postgres::PgEventStore;
use mysql_async::prelude::Queryable as _;

/// `(type, events)` of a PostgreSQL store.
///
/// # Errors
/// The database's error, or a closed pool.
pub async fn pg_events_per_type(store: &PgEventStore) -> anyhow::Result<Vec<(String, u64)>> {
    let client = store.pool().get().await?;
    // The schema name is checked by the driver: ASCII letters, digits and `_` only.
    let sql = format!(
        "SELECT event_type, count(*) FROM \"{}\".events GROUP BY event_type",
        store.schema()
    );
    let rows = client.query(sql.as_str(), &[]).await?;
    Ok(rows
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1) as u64))
        .collect())
}

/// `(type, events)` of a MySQL/MariaDB store.
///
/// # Errors
/// The server's error, or a closed pool.
pub async fn mysql_events_per_type(store: &MysqlEventStore) -> anyhow::Result<Vec<(String, u64)>> {
    let mut conn = store.pool().get_conn().await?;
    let sql = format!(
        "SELECT event_type, COUNT(*) FROM `{}`.events GROUP BY event_type",
        store.database().replace('`', "``")
    );
    let rows: Vec<(String, u64)> = conn.query(sql).await?;
    Ok(rows)
}
