//! `mammoth events read` (one stream) and `mammoth events all` (the global log): both page
//! through the store and print each page as it arrives, so memory stays bounded however long
//! the stream or log is.

use clap::Args;
use futures_util::{Stream, TryStreamExt as _};
use mammoth_core::{
    Direction, EventFilter, Position, RecordedEvent, StoreError, StreamId, Version, read_all_pages,
    read_stream_pages,
};

use super::listing::Listing;
use crate::output::Output;
use crate::store::AnyStore;

/// Events fetched per read; a limit below it fetches less.
const PAGE_SIZE: usize = 512;

/// Arguments of `events read`.
#[derive(Debug, Args)]
#[command(
    after_long_help = "Examples:\n  mammoth events read order-42\n  mammoth events read order-42 --backward --limit 1    # the latest event\n  mammoth events read order-42 --from 10 --limit 5 --json\n  mammoth events read order-42 --decode                # upcast to the current versions\n\nWith --decode, an event that cannot be decoded is shown as stored, its error goes to stderr,\nthe listing goes on, and the command exits with code 1 at the end."
)]
pub struct ReadArgs {
    /// The stream to read, such as order-42.
    #[arg(value_name = "STREAM")]
    pub stream: String,

    /// Newest first (default: oldest first).
    #[arg(long)]
    pub backward: bool,

    /// The version to start at, inclusive (default: the first event, or the last when
    /// reading backward).
    #[arg(long, value_name = "N")]
    pub from: Option<Version>,

    /// Print at most N events.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,

    /// Show each event as the built-in app (examples/orders) reads it: upcast to its current
    /// version and decoded into its Rust type. Types it does not register are shown as stored.
    /// --limit counts stored events, also when an upcaster splits one into several.
    #[arg(long)]
    pub decode: bool,
}

/// Arguments of `events all`.
#[derive(Debug, Args)]
#[command(
    after_long_help = "Examples:\n  mammoth events all\n  mammoth events all --from 1000 --limit 50\n  mammoth events all --type OrderCreated --type OrderCancelled\n  mammoth events all --category order --json | jq .data\n  mammoth events all --decode --json | jq 'select(.status != \"decoded\")'\n\nWith --decode, an event that cannot be decoded is shown as stored, its error goes to stderr,\nthe listing goes on, and the command exits with code 1 at the end."
)]
pub struct AllArgs {
    /// The global position to start at, inclusive (default: the beginning).
    #[arg(long, value_name = "POS", default_value_t = 1)]
    pub from: Position,

    /// Only events of this type; repeat for several.
    #[arg(long = "type", value_name = "TYPE")]
    pub event_types: Vec<String>,

    /// Only events of streams in this category (the text before the first `-` of a stream
    /// id); repeat for several.
    #[arg(long = "category", value_name = "CATEGORY")]
    pub categories: Vec<String>,

    /// Print at most N events.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,

    /// Show each event as the built-in app (examples/orders) reads it: upcast to its current
    /// version and decoded into its Rust type. Types it does not register are shown as stored.
    /// --limit counts stored events, also when an upcaster splits one into several.
    #[arg(long)]
    pub decode: bool,
}

impl AllArgs {
    /// The filter the arguments describe.
    pub fn filter(&self) -> EventFilter {
        EventFilter::all()
            .with_types(self.event_types.iter().cloned())
            .with_categories(self.categories.iter().cloned())
    }
}

/// Prints one stream.
///
/// # Errors
/// A bad stream id (exit 2) or a store failure.
pub async fn run_stream(store: &AnyStore, args: ReadArgs, out: &mut Output) -> anyhow::Result<()> {
    let stream = StreamId::new(args.stream)?;
    let direction = if args.backward {
        Direction::Backward
    } else {
        Direction::Forward
    };
    let events = read_stream_pages(
        store,
        stream.clone(),
        direction,
        args.from,
        page_size(args.limit),
    );
    let printed = print_events(events, args.limit, Listing::new(args.decode), out).await?;
    if printed == 0 && !out.is_json() {
        eprintln!("stream \"{stream}\" has no events in that range");
    }
    Ok(())
}

/// Prints the global log.
///
/// # Errors
/// A store failure.
pub async fn run_all(store: &AnyStore, args: AllArgs, out: &mut Output) -> anyhow::Result<()> {
    let events = read_all_pages(store, args.from, args.filter(), page_size(args.limit));
    let printed = print_events(events, args.limit, Listing::new(args.decode), out).await?;
    if printed == 0 && !out.is_json() {
        eprintln!("no events match");
    }
    Ok(())
}

fn page_size(limit: Option<u64>) -> usize {
    limit.map_or(PAGE_SIZE, |limit| {
        usize::try_from(limit).unwrap_or(PAGE_SIZE).min(PAGE_SIZE)
    })
}

async fn print_events(
    events: impl Stream<Item = Result<RecordedEvent, StoreError>>,
    limit: Option<u64>,
    mut listing: Listing,
    out: &mut Output,
) -> anyhow::Result<u64> {
    let mut events = std::pin::pin!(events);
    let mut printed = 0u64;
    while limit.is_none_or(|limit| printed < limit) {
        let Some(event) = events.try_next().await? else {
            break;
        };
        listing.print(&event, out)?;
        printed += 1;
    }
    out.flush()?;
    listing.finish()?;
    Ok(printed)
}
