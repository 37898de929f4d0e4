//! `mammoth events ...`: append, read, follow and count events in the configured store.
//! One module per subcommand; they share the store opening and closing here.

mod append;
mod listing;
mod read;
mod stats;
mod tail;

use clap::Subcommand;

use crate::cli::GlobalOptions;
use crate::output::Output;
use crate::{settings, store};

/// Event commands.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Append one event to a stream.
    Append(append::AppendArgs),
    /// Read one stream, forward or backward.
    Read(read::ReadArgs),
    /// Read the global log in position order, optionally filtered.
    All(read::AllArgs),
    /// Follow the global log live until interrupted (Ctrl-C).
    Tail(tail::TailArgs),
    /// Show the head position, stream and event counts, events per type and size on disk.
    #[command(
        after_long_help = "Examples:\n  mammoth events stats\n  mammoth events stats --json | jq .event_count"
    )]
    Stats,
}

/// Runs an event command against the configured store, closing the store afterwards.
///
/// # Errors
/// Configuration, usage and store errors; the caller maps them to exit codes.
pub async fn run(command: EventsCommand, global: &GlobalOptions) -> anyhow::Result<()> {
    let settings = settings::load(global.config.as_deref())?;
    let access = match command {
        EventsCommand::Append(_) => store::Access::ReadWrite,
        _ => store::Access::ReadOnly,
    };
    let store = store::open(&settings.store, access).await?;
    if matches!(store, store::AnyStore::Memory(_)) {
        eprintln!(
            "note: event_store.backend is \"memory\": events live only while this command runs"
        );
    }
    let mut out = Output::new(global.json);
    let result = match command {
        EventsCommand::Append(args) => append::run(&store, args, &mut out).await,
        EventsCommand::Read(args) => read::run_stream(&store, args, &mut out).await,
        EventsCommand::All(args) => read::run_all(&store, args, &mut out).await,
        EventsCommand::Tail(args) => tail::run(&store, args, &mut out).await,
        EventsCommand::Stats => stats::run(&store, &mut out).await,
    };
    let closed = store.close().await;
    result.and(closed)
}
