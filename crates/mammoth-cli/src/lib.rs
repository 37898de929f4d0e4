//! The `mammoth` command line as a library: [`App`] registers an application's commands,
//! queries, projections, sagas and bus workers, and [`App::main`] runs every `mammoth` command
//! for it (`serve`, `projections`, `events`, `dlq`, `status`, ...). The `mammoth` binary is
//! [`App::orders`], the built-in order app; a user's binary registers its own (see the
//! `own_binary` example).

mod app;
mod bench;
mod builtin;
mod bus;
mod bus_backend;
mod cli;
mod config;
mod demo;
mod dlq;
mod events;
mod exit;
mod output;
mod projections;
mod read_models;
mod sagas;
mod serve;
mod settings;
mod side;
mod sql_stats;
mod status;
mod store;
mod store_cmd;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

pub use app::{App, AppContext, AppStore, ReadModel, ReadModelDatabase};
pub use bus_backend::{AnyBus, AnyConsumer};
pub use read_models::{AnyReadModelAdmin, ReadModelAt};
pub use store::AnyStore;

use crate::cli::{Cli, Command};

/// Parses `args`, sets up logging and the async runtime, runs one command for `app`, and turns
/// its outcome into an exit code.
fn main_with<I, T>(app: App, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    // A second call in one process (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return exit::report(&error.into()),
    };
    let outcome = runtime.block_on(run(cli, &app));
    // Tasks still running (a broker client's background connection) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that closed our stdout (`| head`) got what it wanted.
        Err(error) if error.is::<output::Closed>() => ExitCode::SUCCESS,
        Err(error) => exit::report(&error),
    }
}

async fn run(cli: Cli, app: &App) -> anyhow::Result<()> {
    match cli.command {
        Command::Config(command) => config::run(command, &cli.global),
        Command::Events(command) => events::run(command, &cli.global).await,
        Command::Bench(command) => bench::run(command, &cli.global).await,
        Command::Store(command) => store_cmd::run(command, &cli.global).await,
        Command::Dlq(command) => dlq::run(command, &cli.global).await,
        Command::Bus(command) => bus::run(command, &cli.global).await,
        Command::Projections(command) => projections::run(command, &cli.global, app).await,
        Command::Serve(args) => serve::run(args, &cli.global, app).await,
        Command::Demo(args) => demo::run(args, &cli.global).await,
        Command::Sagas(command) => sagas::run(command, &cli.global).await,
        Command::Status => status::run(&cli.global, app).await,
    }
}
