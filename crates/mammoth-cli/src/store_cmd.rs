//! `mammoth store init` and `mammoth store status`: create (or migrate) the configured store's
//! schema, and report what it holds — schema version beside the latest this build writes,
//! head position, event and stream counts, size — on every backend. `status` changes nothing:
//! a store that does not exist yet reports schema version 0.

use std::path::Path;

use clap::Subcommand;
use mammoth_config::EventStoreBackend;
use mammoth_mysql::MysqlOptions;
use mammoth_postgres::PgOptions;
use mammoth_sqlite::{SqliteEventStore, SqliteOptions};
use serde::Serialize;

use crate::cli::GlobalOptions;
use crate::output::{Columns, Output, human_bytes, thousands};
use crate::settings::{self, StoreSettings};
use crate::store;

/// Store administration commands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create the store's schema, or migrate it to this build's version, and show its status.
    ///
    /// Safe to run again and while other processes use the store. SQLite: creates the file;
    /// PostgreSQL: the schema `event_store.schema` (default mammoth); MySQL: the tables in the
    /// DSN's database.
    #[command(
        after_long_help = "Examples:\n  mammoth store init\n  mammoth --config prod.tsk store init --json"
    )]
    Init,
    /// Show the schema version (stored and latest), head position, event and stream counts
    /// and size on disk, without creating or changing anything.
    #[command(
        after_long_help = "Examples:\n  mammoth store status\n  mammoth store status --json | jq .schema_version"
    )]
    Status,
}

/// What `store init` and `store status` report, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct StoreStatus {
    /// The backend name from the configuration.
    pub backend: &'static str,
    /// Where the tables are: the SQLite file, the PostgreSQL schema or the MySQL database.
    pub location: String,
    /// The schema version stored; 0 when the store is not initialized.
    pub schema_version: i64,
    /// The schema version this build writes (`store init` migrates up to it).
    pub latest_schema_version: i64,
    /// The head of the global log.
    pub head_position: u64,
    /// Events stored.
    pub event_count: u64,
    /// Streams with at least one event.
    pub stream_count: u64,
    /// Bytes on disk; `None` for the memory store.
    pub size_bytes: Option<u64>,
}

/// Runs a store command against the configured store.
///
/// # Errors
/// Configuration errors (exit code 2) and store errors (exit code 1).
pub async fn run(command: StoreCommand, global: &GlobalOptions) -> anyhow::Result<()> {
    let settings = settings::load(global.config.as_deref())?;
    let init = matches!(command, StoreCommand::Init);
    let status = status_of(&settings.store, init).await?;
    let mut out = Output::new(global.json);
    if out.is_json() {
        out.json_document(&status)?;
        return out.flush();
    }
    if init {
        out.line(format!(
            "# store ready at schema version {}",
            status.schema_version
        ))?;
    }
    print(&status, &mut out)?;
    out.flush()
}

async fn status_of(settings: &StoreSettings, init: bool) -> anyhow::Result<StoreStatus> {
    match settings.backend {
        EventStoreBackend::Sqlite => sqlite_status(settings, init).await,
        EventStoreBackend::Memory => Ok(StoreStatus {
            backend: "memory",
            location: "memory (nothing is kept between commands)".to_owned(),
            schema_version: 0,
            latest_schema_version: 0,
            head_position: 0,
            event_count: 0,
            stream_count: 0,
            size_bytes: None,
        }),
        EventStoreBackend::Postgres => {
            let url = settings.event_store.connection_url()?;
            let options = PgOptions::from_config(&settings.event_store);
            let status = if init {
                mammoth_postgres::init(url.expose(), &options).await
            } else {
                mammoth_postgres::status(url.expose(), &options).await
            }
            .map_err(|error| {
                anyhow::Error::new(error).context(format!(
                    "cannot reach the postgres event store (schema {})",
                    options.schema
                ))
            })?;
            Ok(StoreStatus {
                backend: "postgres",
                location: format!("schema {}", status.schema),
                schema_version: status.schema_version,
                latest_schema_version: status.latest_schema_version,
                head_position: status.head_position,
                event_count: status.event_count,
                stream_count: status.stream_count,
                size_bytes: Some(status.size_bytes),
            })
        }
        EventStoreBackend::Mysql => {
            let url = store::mysql_url(settings)?;
            let options = MysqlOptions::from_config(&settings.event_store);
            let status = if init {
                mammoth_mysql::init(&url, &options).await
            } else {
                mammoth_mysql::status(&url, &options).await
            }
            .map_err(|error| {
                anyhow::Error::new(error).context("cannot reach the mysql event store")
            })?;
            Ok(StoreStatus {
                backend: "mysql",
                location: format!("database {}", status.database),
                schema_version: status.schema_version,
                latest_schema_version: status.latest_schema_version,
                head_position: status.head_position,
                event_count: status.event_count,
                stream_count: status.stream_count,
                size_bytes: Some(status.size_bytes),
            })
        }
    }
}

async fn sqlite_status(settings: &StoreSettings, init: bool) -> anyhow::Result<StoreStatus> {
    let path = &settings.sqlite_path;
    let mut status = StoreStatus {
        backend: "sqlite",
        location: format!("file {}", path.display()),
        schema_version: 0,
        latest_schema_version: mammoth_sqlite::schema::SCHEMA_VERSION,
        head_position: 0,
        event_count: 0,
        stream_count: 0,
        size_bytes: None,
    };
    if !init && !path.is_file() {
        return Ok(status);
    }
    let options = SqliteOptions {
        synchronous: settings.synchronous,
        limits: settings.limits,
        ..SqliteOptions::default()
    };
    // `open` creates and migrates; a read-only handle changes nothing and takes no lock.
    let opened = if init {
        SqliteEventStore::open(path, options)
    } else {
        SqliteEventStore::open_read_only(path, options)
    };
    let handle = opened.map_err(|error| {
        anyhow::Error::new(error).context(format!(
            "cannot open the event store {} (event_store.dsn)",
            path.display()
        ))
    })?;
    let stats = handle.stats().await;
    let closed = handle.close().await;
    let stats = stats?;
    closed?;
    status.schema_version = sqlite_schema_version(path)?;
    status.head_position = stats.head_position;
    status.event_count = stats.event_count;
    status.stream_count = stats.stream_count;
    status.size_bytes = Some(stats.size_bytes);
    Ok(status)
}

/// The version in the file's `mammoth_meta`, read without a lock.
fn sqlite_schema_version(path: &Path) -> anyhow::Result<i64> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let version = conn.query_row(
        "SELECT value FROM mammoth_meta WHERE key = 'schema_version'",
        [],
        |row| row.get(0),
    )?;
    Ok(version)
}

fn print(status: &StoreStatus, out: &mut Output) -> anyhow::Result<()> {
    let version = match status.schema_version {
        0 if status.backend == "memory" => "- (nothing to create)".to_owned(),
        0 => format!(
            "0: not initialized (latest {}); run `mammoth store init`",
            status.latest_schema_version
        ),
        v if v < status.latest_schema_version => format!(
            "{v} (latest {}); run `mammoth store init` to migrate",
            status.latest_schema_version
        ),
        v => format!("{v} (latest {})", status.latest_schema_version),
    };
    let size = status
        .size_bytes
        .map_or_else(|| "- (kept in memory)".to_owned(), human_bytes);
    let rows = vec![
        vec!["backend".to_owned(), status.backend.to_owned()],
        vec!["location".to_owned(), status.location.clone()],
        vec!["schema version".to_owned(), version],
        vec!["head position".to_owned(), thousands(status.head_position)],
        vec!["streams".to_owned(), thousands(status.stream_count)],
        vec!["events".to_owned(), thousands(status.event_count)],
        vec!["size on disk".to_owned(), size],
    ];
    let columns = Columns::fitting(&rows);
    for row in &rows {
        out.line(columns.row(row))?;
    }
    Ok(())
}
