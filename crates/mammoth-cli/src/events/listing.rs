//! How `events read`, `events all` and `events tail` print events: as stored, or with
//! `--decode` as the built-in app's current code reads them.
//!
//! Decoding uses the event registry of the app this binary ships (examples/orders:
//! `mammoth_example_orders::versioning::registry()`): each stored event is upcast to its
//! current version and decoded into its Rust type; an upcaster may turn one stored event into
//! several, each printed on its own row or line with the stored position. An event of a type
//! the app does not register is printed as stored, marked so, with a note on stderr at the
//! end. An event that cannot be decoded (a version newer than the code, a failing upcaster,
//! data that does not fit the type) is printed as stored, marked so, and its error goes to
//! stderr naming the stream, position, type and version; the listing goes on, and the command
//! exits with code 1 at the end.

use std::collections::BTreeSet;
use std::fmt;

use mammoth_core::{CodecError, DecodedEvent, EventRegistry, Metadata, RecordedEvent};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::output::{Columns, Output, event_columns, event_header, event_json, event_row};

/// Prints events one by one, with the table header before the first.
pub struct Listing {
    columns: Columns,
    decoding: Option<Decoding>,
    header_printed: bool,
}

/// What decoding needs and what it met.
struct Decoding {
    registry: EventRegistry,
    unknown_types: BTreeSet<String>,
    unknown_events: u64,
    failures: u64,
}

/// Some events could not be decoded; each was reported on stderr (exit code 1).
#[derive(Debug)]
pub struct DecodeFailures(pub u64);

impl fmt::Display for DecodeFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str(
                "1 event could not be decoded (its error is above; the listing shows it as stored)",
            ),
            n => write!(
                f,
                "{n} events could not be decoded (their errors are above; the listing shows them as stored)"
            ),
        }
    }
}

impl std::error::Error for DecodeFailures {}

impl Listing {
    /// A listing of events as stored, or decoded when `decode` is set.
    pub fn new(decode: bool) -> Self {
        let decoding = decode.then(|| Decoding {
            registry: mammoth_example_orders::versioning::registry(),
            unknown_types: BTreeSet::new(),
            unknown_events: 0,
            failures: 0,
        });
        let columns = if decode {
            Columns::new(&[8, 20, 7, 20, 16, 27])
        } else {
            event_columns()
        };
        Self {
            columns,
            decoding,
            header_printed: false,
        }
    }

    /// Prints the table header unless it was printed already (nothing under --json).
    pub fn header(&mut self, out: &mut Output) -> anyhow::Result<()> {
        if self.header_printed || out.is_json() {
            return Ok(());
        }
        self.header_printed = true;
        if self.decoding.is_some() {
            out.line(self.columns.row(&[
                "POSITION",
                "STREAM",
                "VERSION",
                "TYPE",
                "SCHEMA",
                "RECORDED AT",
                "EVENT",
            ]))
        } else {
            out.line(event_header(&self.columns))
        }
    }

    /// Prints one stored event: one row or JSON line, or with --decode one per decoded event.
    pub fn print(&mut self, event: &RecordedEvent, out: &mut Output) -> anyhow::Result<()> {
        self.header(out)?;
        let Some(decoding) = &mut self.decoding else {
            return if out.is_json() {
                out.json_line(&event_json(event))
            } else {
                out.line(event_row(&self.columns, event))
            };
        };
        let shown = match decoding.registry.decode(event) {
            Ok(decoded) => Shown::Decoded(decoded),
            Err(CodecError::UnknownType { event_type, .. }) => {
                decoding.unknown_events += 1;
                decoding.unknown_types.insert(event_type);
                Shown::Unknown
            }
            Err(error) => {
                decoding.failures += 1;
                // Flush first so that on a terminal the error follows the rows before it.
                out.flush()?;
                eprintln!("error: {error} (shown as stored)");
                Shown::Failed(error.to_string())
            }
        };
        match shown {
            Shown::Decoded(decoded) => {
                for (index, current) in decoded.iter().enumerate() {
                    let part = Part {
                        number: index + 1,
                        of: decoded.len(),
                    };
                    if out.is_json() {
                        out.json_line(&DecodedJson::decoded(event, current, part))?;
                    } else {
                        out.line(self.columns.row(&decoded_row(event, current, part)))?;
                    }
                }
                Ok(())
            }
            Shown::Unknown | Shown::Failed(_) => {
                let (status, note, error) = match shown {
                    Shown::Failed(error) => ("error", "raw, error", Some(error)),
                    _ => ("unknown_type", "raw, unknown", None),
                };
                if out.is_json() {
                    out.json_line(&DecodedJson::stored(event, status, error))
                } else {
                    out.line(self.columns.row(&[
                        event.position.to_string(),
                        event.stream_id.to_string(),
                        event.version.to_string(),
                        event.event_type.clone(),
                        format!("v{} {note}", event.schema_version),
                        event.recorded_at_rfc3339(),
                        event.data.clone(),
                    ]))
                }
            }
        }
    }

    /// Ends the listing: a note on stderr for types shown as stored, and a
    /// [`DecodeFailures`] error when some events could not be decoded.
    pub fn finish(self) -> anyhow::Result<()> {
        let Some(decoding) = self.decoding else {
            return Ok(());
        };
        if decoding.unknown_events > 0 {
            let types: Vec<&str> = decoding.unknown_types.iter().map(String::as_str).collect();
            eprintln!(
                "note: {} event{} of types the built-in app (examples/orders) does not register {} shown as stored: {}",
                decoding.unknown_events,
                if decoding.unknown_events == 1 {
                    ""
                } else {
                    "s"
                },
                if decoding.unknown_events == 1 {
                    "was"
                } else {
                    "were"
                },
                types.join(", ")
            );
        }
        if decoding.failures > 0 {
            return Err(DecodeFailures(decoding.failures).into());
        }
        Ok(())
    }
}

enum Shown {
    Decoded(Vec<DecodedEvent>),
    Unknown,
    Failed(String),
}

/// Which of the events decoded from one stored event this is (1 of 1 unless split).
#[derive(Clone, Copy)]
struct Part {
    number: usize,
    of: usize,
}

fn decoded_row(event: &RecordedEvent, current: &DecodedEvent, part: Part) -> [String; 7] {
    let mut from = Vec::new();
    if current.event_type != event.event_type {
        from.push(format!(
            "from {} v{}",
            event.event_type, event.schema_version
        ));
    } else if current.schema_version != event.schema_version {
        from.push(format!("from v{}", event.schema_version));
    }
    if part.of > 1 {
        from.push(format!("{} of {}", part.number, part.of));
    }
    let schema = if from.is_empty() {
        format!("v{}", current.schema_version)
    } else {
        format!("v{} ({})", current.schema_version, from.join(", "))
    };
    [
        event.position.to_string(),
        event.stream_id.to_string(),
        event.version.to_string(),
        current.event_type.clone(),
        schema,
        event.recorded_at_rfc3339(),
        current.typed.clone(),
    ]
}

/// One line of `--decode --json`. `type`, `schema_version` and `data` are the event as the
/// current code reads it; `stored_type` and `stored_schema_version` what was written.
/// `status` is `decoded`, `unknown_type` (data as stored) or `error` (data as stored, the
/// reason in `error`).
#[derive(Serialize)]
struct DecodedJson<'a> {
    position: u64,
    stream: &'a str,
    version: u64,
    id: uuid::Uuid,
    status: &'static str,
    #[serde(rename = "type")]
    event_type: &'a str,
    schema_version: u32,
    data: Data<'a>,
    typed: Option<&'a str>,
    error: Option<String>,
    stored_type: &'a str,
    stored_schema_version: u32,
    part: usize,
    parts: usize,
    metadata: &'a Metadata,
    recorded_at: String,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Data<'a> {
    Decoded(&'a Value),
    Stored(Box<RawValue>),
}

impl<'a> DecodedJson<'a> {
    fn decoded(event: &'a RecordedEvent, current: &'a DecodedEvent, part: Part) -> Self {
        Self {
            event_type: &current.event_type,
            schema_version: current.schema_version,
            typed: Some(&current.typed),
            part: part.number,
            parts: part.of,
            ..Self::new(event, "decoded", Data::Decoded(&current.data), None)
        }
    }

    fn stored(event: &'a RecordedEvent, status: &'static str, error: Option<String>) -> Self {
        let data = Data::Stored(crate::output::stored_data(event));
        Self::new(event, status, data, error)
    }

    fn new(
        event: &'a RecordedEvent,
        status: &'static str,
        data: Data<'a>,
        error: Option<String>,
    ) -> Self {
        Self {
            position: event.position,
            stream: event.stream_id.as_str(),
            version: event.version,
            id: event.id,
            status,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            data,
            typed: None,
            error,
            stored_type: &event.event_type,
            stored_schema_version: event.schema_version,
            part: 1,
            parts: 1,
            metadata: &event.metadata,
            recorded_at: event.recorded_at_rfc3339(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(event_type: &str, schema_version: u32) -> RecordedEvent {
        RecordedEvent {
            id: uuid::Uuid::nil(),
            stream_id: mammoth_core::StreamId::new("order-1").unwrap(),
            version: 4,
            position: 9,
            event_type: event_type.to_owned(),
            schema_version,
            data: "{}".to_owned(),
            metadata: Metadata::default(),
            recorded_at_micros: 0,
        }
    }

    fn current(event_type: &str, schema_version: u32) -> DecodedEvent {
        DecodedEvent {
            event_type: event_type.to_owned(),
            schema_version,
            data: Value::Null,
            typed: format!("{event_type} {{ }}"),
        }
    }

    #[test]
    fn the_schema_cell_says_what_the_stored_event_was_and_which_part_of_a_split_this_is() {
        let one = Part { number: 1, of: 1 };
        let cell =
            |stored_event, decoded, part| decoded_row(&stored_event, &decoded, part)[4].clone();
        assert_eq!(cell(stored("A", 2), current("A", 2), one), "v2");
        assert_eq!(cell(stored("A", 1), current("A", 2), one), "v2 (from v1)");
        assert_eq!(
            cell(stored("Old", 1), current("New", 1), one),
            "v1 (from Old v1)"
        );
        let second = Part { number: 2, of: 3 };
        assert_eq!(
            cell(stored("Both", 1), current("One", 1), second),
            "v1 (from Both v1, 2 of 3)"
        );
        let row = decoded_row(&stored("A", 1), &current("A", 2), second);
        assert_eq!(row[0], "9", "every part keeps the stored position");
    }
}
