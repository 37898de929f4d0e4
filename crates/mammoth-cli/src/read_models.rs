//! Where a projection's read model lives and how the CLI administers it, whatever the
//! database: [`ReadModelAt`] reads `[projections.NAME] read_dsn` (a SQLite file by default, or
//! a PostgreSQL schema, or a MySQL database), and [`AnyReadModelAdmin`] is the read-model
//! administration of each (`mammoth_sqlite::ReadModelAdmin`, `PgReadModelAdmin`,
//! `MysqlReadModelAdmin`) behind one type, as [`crate::store::AnyStore`] is for event stores.

use std::path::PathBuf;
use std::sync::Mutex;

use mammoth_core::read_model::{DeadLetter, ReadModelStatus, VerifyReport};
use mammoth_core::{Position, ProjectionError};
use mammoth_mysql::read_model::{MysqlReadModelAdmin, ReadModelDatabase};
use mammoth_postgres::read_model::{DEFAULT_READ_MODEL_SCHEMA, PgReadModelAdmin, PgReadModelDb};
use mammoth_sqlite::ReadModelAdmin;

use crate::exit::ConfigProblem;

/// Connections a PostgreSQL read model's pool keeps (the runner and the app's queries).
const READ_MODEL_POOL_SIZE: usize = 4;

/// Where a projection's read model lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadModelAt {
    /// A SQLite file (the default: `./mammoth-data/read_models.db`).
    File(PathBuf),
    /// A schema of a PostgreSQL database (`?schema=NAME` on the URL, else `mammoth_read`).
    Postgres {
        /// The connection URL, without the `schema` parameter.
        url: String,
        /// The schema holding the read models.
        schema: String,
    },
    /// A MySQL/MariaDB database: the URL's database, else `mammoth_read`.
    Mysql {
        /// The server's URL.
        url: String,
        /// The database holding the read models.
        database: String,
    },
}

impl ReadModelAt {
    /// Reads a `read_dsn`: a path or `sqlite:` DSN, a `postgres://` URL, a `mysql://` (or
    /// `mariadb://`) URL, or the seed's PDO form (`mysql:host=...;dbname=...`).
    ///
    /// # Errors
    /// A [`ConfigProblem`] naming what is wrong with the DSN (never its text, which may hold
    /// a password).
    pub fn parse(dsn: &str) -> anyhow::Result<Self> {
        let url = mammoth_config::normalize_dsn(dsn)
            .map_err(|problem| ConfigProblem(format!("read_dsn: {problem}")))?;
        let (scheme, rest) = url.split_once("://").unwrap_or(("sqlite", url.as_str()));
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Self::File(PathBuf::from(rest))),
            "postgres" | "postgresql" => {
                let (url, schema) = take_query_param(&url, "schema");
                Ok(Self::Postgres {
                    url,
                    schema: schema.unwrap_or_else(|| DEFAULT_READ_MODEL_SCHEMA.to_owned()),
                })
            }
            "mysql" | "mariadb" => {
                let url = url.replacen("mariadb://", "mysql://", 1);
                let database = url_database(&url)
                    .unwrap_or(mammoth_mysql::read_model::DEFAULT_READ_MODEL_DATABASE)
                    .to_owned();
                Ok(Self::Mysql { url, database })
            }
            other => Err(ConfigProblem(format!(
                "read_dsn: read models can live in SQLite, PostgreSQL or MySQL, not {other:?}; write a path, postgres://... or mysql://..."
            ))
            .into()),
        }
    }

    /// `sqlite`, `postgres` or `mysql`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::File(_) => "sqlite",
            Self::Postgres { .. } => "postgres",
            Self::Mysql { .. } => "mysql",
        }
    }

    /// For messages and listings: the file, or the schema/database and server (no password).
    pub fn describe(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Postgres { url, schema } => {
                format!("postgres schema {schema} at {}", host_of(url))
            }
            Self::Mysql { url, database } => {
                format!("mysql database {database} at {}", host_of(url))
            }
        }
    }

    /// Connects to a PostgreSQL read-model schema (creating it and its bookkeeping tables).
    pub(crate) async fn postgres(&self) -> anyhow::Result<PgReadModelDb> {
        match self {
            Self::Postgres { url, schema } => {
                Ok(PgReadModelDb::connect(url, schema, READ_MODEL_POOL_SIZE).await?)
            }
            other => anyhow::bail!("{} is not a PostgreSQL read model", other.describe()),
        }
    }

    /// A pool on a MySQL read-model database (created when a read model first loads).
    pub(crate) fn mysql(&self) -> anyhow::Result<ReadModelDatabase> {
        match self {
            Self::Mysql { url, database } => Ok(ReadModelDatabase::connect(url, Some(database))?),
            other => anyhow::bail!("{} is not a MySQL read model", other.describe()),
        }
    }
}

/// `url` without query parameter `name`, and that parameter's value.
fn take_query_param(url: &str, name: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut value = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some((key, found)) if key == name => {
                value = Some(found.to_owned());
                false
            }
            _ => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, value)
}

/// The database a `mysql://host/db?...` URL names, if any.
fn url_database(url: &str) -> Option<&str> {
    let after = url.split_once("://")?.1;
    let path = after.split_once('/')?.1;
    let database = path.split(['?', '#']).next()?;
    (!database.is_empty()).then_some(database)
}

/// `host:port` of a URL, without user and password.
fn host_of(url: &str) -> &str {
    let after = url.split_once("://").map_or(url, |(_, rest)| rest);
    let after = after.rsplit_once('@').map_or(after, |(_, host)| host);
    after.split(['/', '?']).next().unwrap_or(after)
}

/// The read-model administration of a [`ReadModelAt`].
pub enum AnyReadModelAdmin {
    /// A SQLite file's.
    Sqlite(Mutex<ReadModelAdmin>),
    /// A PostgreSQL schema's.
    Postgres(PgReadModelAdmin),
    /// A MySQL database's.
    Mysql(MysqlReadModelAdmin),
}

impl std::fmt::Debug for AnyReadModelAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
            Self::Mysql(_) => "mysql",
        };
        f.debug_tuple("AnyReadModelAdmin").field(&backend).finish()
    }
}

/// Calls the same method on whichever admin `$self` holds (the SQLite one under its lock).
macro_rules! each {
    ($self:expr, $admin:ident => $call:expr) => {
        match $self {
            AnyReadModelAdmin::Sqlite(lock) => {
                #[allow(unused_mut)]
                let mut $admin = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                $call
            }
            AnyReadModelAdmin::Postgres($admin) => $call.await,
            AnyReadModelAdmin::Mysql($admin) => $call.await,
        }
    };
}

impl AnyReadModelAdmin {
    /// Opens the administration of the read models at `at` (creating the bookkeeping tables
    /// where they are missing).
    ///
    /// # Errors
    /// When the file or database cannot be opened.
    pub async fn open(at: &ReadModelAt) -> anyhow::Result<Self> {
        Ok(match at {
            ReadModelAt::File(path) => Self::Sqlite(Mutex::new(ReadModelAdmin::open(path)?)),
            ReadModelAt::Postgres { .. } => {
                Self::Postgres(PgReadModelAdmin::new(&at.postgres().await?))
            }
            ReadModelAt::Mysql { .. } => {
                Self::Mysql(MysqlReadModelAdmin::open(&at.mysql()?).await?)
            }
        })
    }

    /// Every projection version stored.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn status(&self) -> Result<Vec<ReadModelStatus>, ProjectionError> {
        each!(self, admin => admin.status())
    }

    /// The active version of `name`.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn active(&self, name: &str) -> Result<Option<ReadModelStatus>, ProjectionError> {
        each!(self, admin => admin.active(name))
    }

    /// Asks `name`'s runner to pause.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn pause(&self, name: &str) -> Result<(), ProjectionError> {
        each!(self, admin => admin.pause(name))
    }

    /// Clears a pause, or has a failed runner retry.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn resume(&self, name: &str) -> Result<(), ProjectionError> {
        each!(self, admin => admin.resume(name))
    }

    /// Empties `name`'s active tables and moves its checkpoint to zero (a replay).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn reset(&self, name: &str, tables: &[&str]) -> Result<(), ProjectionError> {
        each!(self, admin => admin.reset(name, tables))
    }

    /// Points `name`'s views at `version`; false when that version is not caught up yet.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn switch(
        &self,
        name: &str,
        tables: &[&str],
        version: u32,
    ) -> Result<bool, ProjectionError> {
        each!(self, admin => admin.switch(name, tables, version))
    }

    /// Drops version `version` of `name`.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn drop_version(
        &self,
        name: &str,
        tables: &[&str],
        version: u32,
    ) -> Result<(), ProjectionError> {
        each!(self, admin => admin.drop_version(name, tables, version))
    }

    /// The events parked for `name`.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>, ProjectionError> {
        each!(self, admin => admin.dead_letters(name))
    }

    /// The active version's checkpoint.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn live_checkpoint(&self, name: &str) -> Result<Position, ProjectionError> {
        each!(self, admin => admin.live_checkpoint(name))
    }

    /// The shadow diffed with the live tables; `None` when their checkpoints differ.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn diff_shadow(
        &self,
        name: &str,
        tables: &[&str],
    ) -> Result<Option<VerifyReport>, ProjectionError> {
        each!(self, admin => admin.diff_shadow(name, tables))
    }

    /// Drops the shadow tables.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn drop_shadow(&self, name: &str, tables: &[&str]) -> Result<(), ProjectionError> {
        each!(self, admin => admin.drop_shadow(name, tables))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_dsn_names_a_file_a_postgres_schema_or_a_mysql_database() {
        assert_eq!(
            ReadModelAt::parse("./rm/read_models.db").unwrap(),
            ReadModelAt::File(PathBuf::from("./rm/read_models.db"))
        );
        assert_eq!(
            ReadModelAt::parse("sqlite:///tmp/rm.db").unwrap(),
            ReadModelAt::File(PathBuf::from("/tmp/rm.db"))
        );
        assert_eq!(
            ReadModelAt::parse("postgres://app:pw@db:5432/shop?schema=views&sslmode=disable")
                .unwrap(),
            ReadModelAt::Postgres {
                url: "postgres://app:pw@db:5432/shop?sslmode=disable".to_owned(),
                schema: "views".to_owned(),
            }
        );
        assert_eq!(
            ReadModelAt::parse("postgresql://db/shop").unwrap(),
            ReadModelAt::Postgres {
                url: "postgresql://db/shop".to_owned(),
                schema: "mammoth_read".to_owned(),
            }
        );
        // The seed's own example.
        assert_eq!(
            ReadModelAt::parse("mysql://localhost:3306/read_models").unwrap(),
            ReadModelAt::Mysql {
                url: "mysql://localhost:3306/read_models".to_owned(),
                database: "read_models".to_owned(),
            }
        );
        let pdo = ReadModelAt::parse("mysql:host=localhost;dbname=views").unwrap();
        assert!(
            matches!(&pdo, ReadModelAt::Mysql { database, .. } if database == "views"),
            "{pdo:?}"
        );
        let described = ReadModelAt::parse("mysql://root:secret@db:3306/")
            .unwrap()
            .describe();
        assert_eq!(described, "mysql database mammoth_read at db:3306");
    }

    #[test]
    fn a_read_dsn_for_another_kind_of_database_is_a_configuration_error() {
        let error = ReadModelAt::parse("mongodb://db/views").unwrap_err();
        assert!(error.downcast_ref::<ConfigProblem>().is_some(), "{error:#}");
        assert!(error.to_string().contains("SQLite, PostgreSQL or MySQL"));
    }
}
