//! `mammoth events tail`: follow the global log live through a [`Subscription`] until Ctrl-C
//! (or SIGTERM), then exit cleanly with code 0.

use clap::Args;
use mammoth_core::{EventFilter, EventStore as _, Position, Subscription};

use super::listing::Listing;
use crate::output::Output;
use crate::store::AnyStore;

/// Arguments of `events tail`.
#[derive(Debug, Args)]
#[command(
    after_long_help = "Examples:\n  mammoth events tail                       # events appended from now on\n  mammoth events tail --from 1              # the whole log, then live\n  mammoth events tail --category order --json\n  mammoth events tail --decode              # upcast to the current versions"
)]
pub struct TailArgs {
    /// The global position to start at, inclusive (default: the first event appended after
    /// the command starts).
    #[arg(long, value_name = "POS")]
    pub from: Option<Position>,

    /// Only events of this type; repeat for several.
    #[arg(long = "type", value_name = "TYPE")]
    pub event_types: Vec<String>,

    /// Only events of streams in this category; repeat for several.
    #[arg(long = "category", value_name = "CATEGORY")]
    pub categories: Vec<String>,

    /// Show each event as the built-in app (examples/orders) reads it: upcast to its current
    /// version and decoded into its Rust type. Types it does not register are shown as
    /// stored; an event that cannot be decoded is shown as stored with its error on stderr,
    /// and the command exits with code 1 when it stops.
    #[arg(long)]
    pub decode: bool,
}

/// Prints events as they are committed until interrupted.
///
/// # Errors
/// A store failure.
pub async fn run(store: &AnyStore, args: TailArgs, out: &mut Output) -> anyhow::Result<()> {
    let from = match args.from {
        Some(from) => from,
        None => store.head_position().await? + 1,
    };
    let filter = EventFilter::all()
        .with_types(args.event_types)
        .with_categories(args.categories);
    let mut interrupt = Interrupt::listen()?;
    let mut subscription = Subscription::new(store, from, filter);
    eprintln!("following the global log from position {from}; Ctrl-C to stop");
    let mut listing = Listing::new(args.decode);
    listing.header(out)?;
    out.flush()?;
    loop {
        let batch = tokio::select! {
            batch = subscription.next_batch() => batch?,
            () = interrupt.recv() => break,
        };
        for event in &batch {
            listing.print(event, out)?;
        }
        out.flush()?;
    }
    out.flush()?;
    listing.finish()
}

/// Ctrl-C and SIGTERM, caught from the moment this is created (so a signal that arrives
/// before the first wait still ends the command cleanly rather than killing it).
struct Interrupt {
    #[cfg(unix)]
    signals: (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
}

impl Interrupt {
    fn listen() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                signals: (
                    signal(SignalKind::interrupt())?,
                    signal(SignalKind::terminate())?,
                ),
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.signals.0.recv() => {}
            _ = self.signals.1.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
