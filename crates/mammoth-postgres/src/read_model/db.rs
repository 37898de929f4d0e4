//! [`PgReadModelDb`]: where read models live — a pool (their own, or the event store's) and
//! the schema holding their tables, created with the bookkeeping tables when opened.

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use mammoth_core::ProjectionError;
use tokio_postgres::NoTls;

use super::{DEFAULT_READ_MODEL_SCHEMA, fail, pool_fail, schema};
use crate::PgEventStore;

/// Where read models live: a pool on the database and the schema holding their tables.
/// Cheap to clone.
#[derive(Clone)]
pub struct PgReadModelDb {
    pool: Pool,
    schema: Arc<str>,
}

impl std::fmt::Debug for PgReadModelDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgReadModelDb")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PgReadModelDb {
    /// Connects to the database at `url` with a pool of `pool_size` connections of its own
    /// and creates `schema` with its bookkeeping tables if missing.
    ///
    /// # Errors
    /// [`ProjectionError::Store`] for an invalid URL or schema name,
    /// [`ProjectionError::ReadModel`] when the database cannot be reached.
    pub async fn connect(
        url: &str,
        schema: &str,
        pool_size: usize,
    ) -> Result<Self, ProjectionError> {
        let config = crate::store::parse_url(url)?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|error| ProjectionError::ReadModel {
                projection: "*".to_owned(),
                action: "building the read-model connection pool",
                message: error.to_string(),
            })?;
        Self::with_pool(pool, schema).await
    }

    /// Read models in `schema`, sharing `store`'s pool of read connections.
    ///
    /// # Errors
    /// As [`PgReadModelDb::with_pool`], and [`ProjectionError::ReadModel`] when `schema` is
    /// the event store's own.
    pub async fn beside(store: &PgEventStore, schema: &str) -> Result<Self, ProjectionError> {
        if schema == store.schema() {
            return Err(ProjectionError::ReadModel {
                projection: "*".to_owned(),
                action: "checking the configuration",
                message: format!(
                    "the read-model schema {schema:?} is the event store's; give read models a schema of their own (e.g. {DEFAULT_READ_MODEL_SCHEMA:?})"
                ),
            });
        }
        Self::with_pool(store.pool().clone(), schema).await
    }

    /// Read models in `schema` over `pool`, creating the schema and its bookkeeping tables if
    /// missing.
    ///
    /// # Errors
    /// [`ProjectionError::Store`] for an invalid schema name, [`ProjectionError::ReadModel`]
    /// when the tables cannot be created.
    pub async fn with_pool(pool: Pool, schema: &str) -> Result<Self, ProjectionError> {
        crate::schema::check_schema_name(schema)?;
        let action = "creating the read-model tables";
        let mut client = pool.get().await.map_err(pool_fail("*", action))?;
        let tx = client.transaction().await.map_err(fail("*", action))?;
        schema::bootstrap(&tx, schema)
            .await
            .map_err(fail("*", action))?;
        tx.commit().await.map_err(fail("*", action))?;
        Ok(Self {
            pool,
            schema: schema.into(),
        })
    }

    /// The pool, for the application's queries.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The schema holding the read models.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The quoted, schema-qualified name of the view `base` (the active version's rows), for
    /// queries: `SELECT n FROM {view} WHERE ...`.
    pub fn view(&self, base: &str) -> String {
        schema::quoted(&self.schema, base)
    }

    pub(super) async fn client(
        &self,
        name: &str,
        action: &'static str,
    ) -> Result<deadpool_postgres::Client, ProjectionError> {
        self.pool.get().await.map_err(pool_fail(name, action))
    }
}
