//! [`ReadModelDatabase`]: where read models live — a pool and the database holding their
//! tables, apart from the event store's.

use mammoth_core::ProjectionError;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Pool};

use super::{DEFAULT_READ_MODEL_DATABASE, fail};

/// Where read models live: a connection pool and the database holding their tables. Cheap to
/// clone. The pool may be the event store's ([`crate::MysqlEventStore::pool`]): every
/// connection taken here selects the read-model database first, and the event store's own
/// statements name their database explicitly.
#[derive(Clone)]
pub struct ReadModelDatabase {
    pool: Pool,
    database: String,
}

impl std::fmt::Debug for ReadModelDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModelDatabase")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl ReadModelDatabase {
    /// A pool of its own on the server at `url`, for read models in `database` (the default
    /// [`DEFAULT_READ_MODEL_DATABASE`] when `None`; the URL's database is not used, since it is
    /// usually the event store's). Nothing connects until first use.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`] for a URL or database name that is not valid.
    pub fn connect(url: &str, database: Option<&str>) -> Result<Self, ProjectionError> {
        let opts = Opts::from_url(url).map_err(|error| ProjectionError::ReadModel {
            projection: "*".to_owned(),
            action: "reading the connection URL",
            message: format!("{error}; write a URL such as mysql://user@host:3306/event_store"),
        })?;
        let opts = mysql_async::OptsBuilder::from_opts(opts).db_name(None::<String>);
        Self::on_pool(
            Pool::new(opts),
            database.unwrap_or(DEFAULT_READ_MODEL_DATABASE),
        )
    }

    /// Read models in `database`, on connections from `pool` (for example the event store's).
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`] for a database name that is not valid.
    pub fn on_pool(pool: Pool, database: &str) -> Result<Self, ProjectionError> {
        crate::schema::check_database_name(database).map_err(|error| {
            ProjectionError::ReadModel {
                projection: "*".to_owned(),
                action: "checking the read-model database name",
                message: error.to_string(),
            }
        })?;
        Ok(Self {
            pool,
            database: database.to_owned(),
        })
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The database's name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The qualified name of `table` in this database: `` `mammoth_read`.`orders` `` (the view
    /// of the active version when `table` is a projection's base name).
    pub fn qualified(&self, table: &str) -> String {
        format!("`{}`.`{}`", self.database, table.replace('`', "``"))
    }

    /// A connection from the pool with the read-model database selected, for the app's
    /// queries (read the views by their base names).
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`] when the server cannot be reached or the database does
    /// not exist yet (a read model creates it when it first loads its checkpoint).
    pub async fn conn(&self) -> Result<Conn, ProjectionError> {
        let mut conn = self
            .pool
            .get_conn()
            .await
            .map_err(fail("*", "getting a connection"))?;
        conn.query_drop(format!("USE `{}`", self.database))
            .await
            .map_err(fail("*", "selecting the read-model database"))?;
        Ok(conn)
    }
}
