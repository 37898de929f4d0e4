//! `mammoth events append`: one event, with an optional expected version, checked before
//! anything is written.

use std::io::Read as _;

use anyhow::Context as _;
use clap::Args;
use mammoth_core::{EventStore, ExpectedVersion, Metadata, NewEvent, StreamId};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::exit::usage_error;
use crate::output::{Columns, Output};
use crate::store::AnyStore;

const EXAMPLES: &str = "\
Examples:
  mammoth events append order-42 --type OrderCreated --data '{\"total\": 30}'
  mammoth events append order-42 --type OrderShipped --data '{}' --expected 1
  mammoth events append order-43 --type OrderCreated --data @order.json --expected no-stream
  echo '{\"total\": 5}' | mammoth events append order-44 --type OrderCreated --data -
  mammoth events append order-42 --type OrderPaid --data '{}' \\
      --metadata '{\"correlation_id\": \"0190c1d2-0000-7000-8000-000000000001\", \"actor\": \"alice\"}'

A conflict (the stream is not at --expected) exits with code 3 and names both versions.";

/// Arguments of `events append`.
#[derive(Debug, Args)]
#[command(after_long_help = EXAMPLES)]
pub struct AppendArgs {
    /// The stream to append to, such as order-42 (its category is the text before the first
    /// `-`). Ids starting with `$` are reserved for mammoth.
    #[arg(value_name = "STREAM")]
    pub stream: String,

    /// The event type, such as OrderCreated.
    #[arg(long = "type", value_name = "TYPE")]
    pub event_type: String,

    /// The event data: a JSON object, `@FILE` to read it from a file, or `-` for stdin.
    #[arg(long, value_name = "JSON")]
    pub data: String,

    /// Metadata as a JSON object: correlation_id, causation_id, actor, tenant,
    /// trace_context, and any other fields.
    #[arg(long, value_name = "JSON")]
    pub metadata: Option<String>,

    /// The event id (a UUID). Re-sending the same id to the same stream writes nothing and
    /// prints the first result. Default: a new UUID v7.
    #[arg(long, value_name = "UUID")]
    pub id: Option<Uuid>,

    /// The schema version of the data, 1 or more.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub schema_version: u32,

    /// What the stream must be at: a version number, `any`, `no-stream` or `exists`.
    #[arg(long, value_name = "N|any|no-stream|exists", default_value = "any")]
    pub expected: ExpectedVersion,
}

/// What `--json` prints after an append.
#[derive(Serialize)]
struct Appended<'a> {
    stream: &'a str,
    id: Uuid,
    version: u64,
    position: u64,
}

/// Appends the event and prints where it went.
///
/// # Errors
/// Usage errors for a bad stream id, reserved stream or bad JSON; the store's conflict and
/// input errors; storage failures.
pub async fn run(store: &AnyStore, args: AppendArgs, out: &mut Output) -> anyhow::Result<()> {
    let stream = StreamId::new(args.stream)?;
    if stream.is_reserved() {
        usage_error!(
            "stream \"{stream}\" is reserved: ids starting with `$` belong to mammoth's own streams (sagas, audit); choose an id such as \"order-42\""
        );
    }
    let data = read_data(&args.data)?;
    match serde_json::from_str::<Value>(&data) {
        Err(error) => usage_error!("--data is not valid JSON: {error}"),
        Ok(value) if !value.is_object() => {
            usage_error!(
                "--data must be a JSON object such as '{{\"total\": 30}}', got {}",
                kind(&value)
            )
        }
        Ok(_) => {}
    }
    let metadata = match &args.metadata {
        None => Metadata::default(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Err(error) => usage_error!("--metadata is not valid JSON: {error}"),
            Ok(value) if !value.is_object() => {
                usage_error!("--metadata must be a JSON object, got {}", kind(&value))
            }
            Ok(value) => match serde_json::from_value::<Metadata>(value) {
                Ok(metadata) => metadata,
                Err(error) => usage_error!("--metadata: {error}"),
            },
        },
    };
    let id = args.id.unwrap_or_else(Uuid::now_v7);
    let event = NewEvent::from_json_text(args.event_type, data)
        .with_id(id)
        .with_schema_version(args.schema_version)
        .with_metadata(metadata);
    let written = store.append(&stream, args.expected, vec![event]).await?;
    if out.is_json() {
        out.json_line(&Appended {
            stream: stream.as_str(),
            id,
            version: written.last_version,
            position: written.last_position,
        })?;
    } else {
        let rows = vec![
            vec!["stream".to_owned(), stream.to_string()],
            vec!["id".to_owned(), id.to_string()],
            vec!["version".to_owned(), written.last_version.to_string()],
            vec!["position".to_owned(), written.last_position.to_string()],
        ];
        let columns = Columns::fitting(&rows);
        for row in &rows {
            out.line(columns.row(row))?;
        }
    }
    out.flush()
}

fn read_data(arg: &str) -> anyhow::Result<String> {
    if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read --data from stdin")?;
        return Ok(text);
    }
    if let Some(path) = arg.strip_prefix('@') {
        return match std::fs::read_to_string(path) {
            Ok(text) => Ok(text),
            Err(error) => usage_error!("cannot read --data file {path:?}: {error}"),
        };
    }
    Ok(arg.to_owned())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
