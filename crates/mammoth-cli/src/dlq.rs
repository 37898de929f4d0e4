//! `mammoth dlq list|show|replay|discard`: the dead-letter queue of the configured bus. Every
//! dead letter keeps its message, group, last error, attempt count and first and last failure
//! times; replay delivers it again to the group that failed it (as attempt 1, under the retry
//! policy `[message_bus.retry]` configures, which the report states); discard removes it for
//! good.

use clap::{Args, Subcommand};
use mammoth_core::bus::{ConsumerGroup, DeadLetter, DeadLetterFilter, MessageBus as _, Topic};
use serde::Serialize;

use crate::cli::GlobalOptions;
use crate::exit::usage_error;
use crate::output::{Columns, Output};
use crate::{bus, settings};

/// Dead-letter queue commands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters, oldest first.
    #[command(
        after_long_help = "Examples:\n  mammoth dlq list\n  mammoth dlq list --topic orders --error timeout --json"
    )]
    List(ListArgs),
    /// Show one dead letter whole: message, headers, payload, error, attempts, times.
    Show {
        /// The dead letter's id (from `dlq list`).
        id: String,
    },
    /// Deliver dead letters again to the group that failed them (one, a filter, or --all).
    #[command(
        after_long_help = "Examples:\n  mammoth dlq replay 17\n  mammoth dlq replay --group billing --error timeout\n  mammoth dlq replay --all"
    )]
    Replay(Selection),
    /// Remove dead letters for good (one, a filter, or --all).
    Discard(Selection),
}

/// Filters shared by the commands.
#[derive(Debug, Args)]
pub struct Filters {
    /// Only dead letters of this topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// Only dead letters of this consumer group.
    #[arg(long)]
    pub group: Option<String>,
    /// Only dead letters whose last error contains this text.
    #[arg(long = "error", value_name = "TEXT")]
    pub error_contains: Option<String>,
}

/// Arguments of `dlq list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    filters: Filters,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

/// Which dead letters `replay` and `discard` apply to.
#[derive(Debug, Args)]
pub struct Selection {
    /// One dead letter's id.
    id: Option<String>,
    #[command(flatten)]
    filters: Filters,
    /// Every dead letter (needed when neither an id nor a filter is given).
    #[arg(long)]
    all: bool,
}

fn filter(id: Option<String>, filters: Filters) -> anyhow::Result<DeadLetterFilter> {
    Ok(DeadLetterFilter {
        id,
        topic: filters.topic.map(Topic::new).transpose()?,
        group: filters.group.map(ConsumerGroup::new).transpose()?,
        error_contains: filters.error_contains,
    })
}

fn time(micros: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros.max(0).unsigned_abs());
    humantime::format_rfc3339_millis(at).to_string()
}

/// A dead letter as JSON: the payload as text.
#[derive(Serialize)]
struct LetterJson<'a> {
    id: &'a str,
    topic: &'a str,
    group: &'a str,
    message_id: String,
    key: Option<&'a str>,
    sequence: u64,
    attempts: u32,
    last_error: &'a str,
    first_failed_at: String,
    last_failed_at: String,
    published_at: String,
    headers: &'a std::collections::BTreeMap<String, String>,
    payload: String,
}

fn json(letter: &DeadLetter) -> LetterJson<'_> {
    LetterJson {
        id: &letter.id,
        topic: letter.message.topic.as_str(),
        group: letter.group.as_str(),
        message_id: letter.message.id.to_string(),
        key: letter.message.key.as_deref(),
        sequence: letter.message.sequence,
        attempts: letter.attempts,
        last_error: &letter.last_error,
        first_failed_at: time(letter.first_failed_at_micros),
        last_failed_at: time(letter.last_failed_at_micros),
        published_at: time(letter.message.published_at_micros),
        headers: &letter.message.headers,
        payload: letter.message.payload_text(),
    }
}

/// Runs a dead-letter command.
///
/// # Errors
/// Usage, configuration and bus errors.
pub async fn run(command: DlqCommand, global: &GlobalOptions) -> anyhow::Result<()> {
    let settings = settings::load(global.config.as_deref())?;
    let bus = bus::open_configured(&settings, true).await?;
    let mut out = Output::new(global.json);
    match command {
        DlqCommand::List(args) => {
            if args.limit == 0 {
                usage_error!("--limit must be at least 1");
            }
            let letters = bus
                .dead_letters(&filter(None, args.filters)?, args.limit)
                .await?;
            if out.is_json() {
                for letter in &letters {
                    out.json_line(&json(letter))?;
                }
                return out.flush();
            }
            if letters.is_empty() {
                out.line("no dead letters")?;
                return out.flush();
            }
            let mut rows = vec![
                ["ID", "TOPIC", "GROUP", "ATTEMPTS", "LAST FAILED", "ERROR"]
                    .map(str::to_owned)
                    .to_vec(),
            ];
            for letter in &letters {
                let error: String = letter.last_error.chars().take(60).collect();
                rows.push(vec![
                    letter.id.clone(),
                    letter.message.topic.to_string(),
                    letter.group.to_string(),
                    letter.attempts.to_string(),
                    time(letter.last_failed_at_micros),
                    error,
                ]);
            }
            let columns = Columns::fitting(&rows);
            for row in &rows {
                out.line(columns.row(row))?;
            }
        }
        DlqCommand::Show { id } => {
            let letters = bus
                .dead_letters(&DeadLetterFilter::id(id.clone()), 1)
                .await?;
            let Some(letter) = letters.first() else {
                usage_error!("no dead letter {id:?}; `mammoth dlq list` shows the ids");
            };
            let shown = json(letter);
            if out.is_json() {
                out.json_document(&shown)?;
            } else {
                // The JSON form is also the clearest full view for a person.
                out.line(serde_json::to_string_pretty(&shown)?)?;
            }
        }
        DlqCommand::Replay(selection) | DlqCommand::Discard(selection)
            if selection.id.is_none()
                && !selection.all
                && selection.filters.topic.is_none()
                && selection.filters.group.is_none()
                && selection.filters.error_contains.is_none() =>
        {
            usage_error!("name a dead letter id, a filter (--topic, --group, --error) or --all");
        }
        DlqCommand::Replay(selection) => {
            let retry = bus::policy(&settings)?.retry;
            let count = bus
                .replay_dead_letters(&filter(selection.id, selection.filters)?)
                .await?;
            if out.is_json() {
                out.json_document(&serde_json::json!({ "replayed": count, "retry": retry }))?;
            } else {
                report(&mut out, "replayed", count)?;
                out.line(format!(
                    "each is delivered again as attempt 1 of {} ([message_bus.retry]: {:?} x{} up to {:?}), then dead-lettered again",
                    retry.max_attempts, retry.base, retry.factor, retry.cap
                ))?;
            }
        }
        DlqCommand::Discard(selection) => {
            let count = bus
                .discard_dead_letters(&filter(selection.id, selection.filters)?)
                .await?;
            report(&mut out, "discarded", count)?;
        }
    }
    out.flush()
}

fn report(out: &mut Output, verb: &str, count: u64) -> anyhow::Result<()> {
    if out.is_json() {
        out.json_document(&serde_json::json!({ verb: count }))
    } else {
        out.line(format!("{verb} {count} dead letter(s)"))
    }
}
