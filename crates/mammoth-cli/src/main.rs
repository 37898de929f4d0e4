//! The `mammoth` binary: parses the command line, sets up logging and the async runtime, runs
//! one command, and turns its outcome into an exit code. Each command lives in its own module.

mod bench;
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
mod sagas;
mod serve;
mod settings;
mod sql_stats;
mod status;
mod store;
mod store_cmd;

use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return exit::report(&error.into()),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that closed our stdout (`| head`) got what it wanted.
        Err(error) if error.is::<output::Closed>() => ExitCode::SUCCESS,
        Err(error) => exit::report(&error),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Config(command) => config::run(command, &cli.global),
        Command::Events(command) => events::run(command, &cli.global).await,
        Command::Bench(command) => bench::run(command, &cli.global).await,
        Command::Store(command) => store_cmd::run(command, &cli.global).await,
        Command::Dlq(command) => dlq::run(command, &cli.global).await,
        Command::Bus(command) => bus::run(command, &cli.global).await,
        Command::Projections(command) => projections::run(command, &cli.global).await,
        Command::Serve(args) => serve::run(args, &cli.global).await,
        Command::Demo(args) => demo::run(args, &cli.global).await,
        Command::Sagas(command) => sagas::run(command, &cli.global).await,
        Command::Status => status::run(&cli.global).await,
    }
}
