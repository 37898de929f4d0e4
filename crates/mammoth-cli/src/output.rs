//! How commands print: JSON documents and JSON lines for scripts, aligned tables for people.
//!
//! Streaming commands print as they read, so tables use fixed column widths (a value wider than
//! its column pushes the rest of its row right rather than making the command hold every row to
//! measure them). A closed stdout (`mammoth events all | head`) ends the command quietly.

use std::io::{self, BufWriter, Stdout, Write};

use mammoth_core::RecordedEvent;
use serde::Serialize;
use serde_json::value::RawValue;

/// Buffered stdout that reports a closed pipe as [`Closed`] so the command can stop quietly.
pub struct Output {
    json: bool,
    out: BufWriter<Stdout>,
}

/// stdout was closed by the reader; the command should stop and exit 0.
#[derive(Debug)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for Closed {}

fn check(result: io::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Err(Closed.into()),
        other => Ok(other?),
    }
}

impl Output {
    /// Output in JSON when `json` is set, tables otherwise.
    pub fn new(json: bool) -> Self {
        Self {
            json,
            out: BufWriter::new(io::stdout()),
        }
    }

    /// True when the command should print JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints one line of text.
    pub fn line(&mut self, text: impl std::fmt::Display) -> anyhow::Result<()> {
        check(writeln!(self.out, "{text}"))
    }

    /// Prints `value` as one line of JSON.
    pub fn json_line(&mut self, value: &impl Serialize) -> anyhow::Result<()> {
        let text = serde_json::to_string(value)?;
        self.line(text)
    }

    /// Prints `value` as a pretty JSON document.
    pub fn json_document(&mut self, value: &impl Serialize) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(value)?;
        self.line(text)
    }

    /// Sends what is buffered to stdout (streaming commands call it after each batch).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        check(self.out.flush())
    }
}

/// Lays out rows in columns of fixed widths, two spaces apart; the last column is not padded.
pub struct Columns {
    widths: Vec<usize>,
}

impl Columns {
    /// Columns of these widths (in characters).
    pub fn new(widths: &[usize]) -> Self {
        Self {
            widths: widths.to_vec(),
        }
    }

    /// Columns just wide enough for every cell of `rows`, for tables known in advance.
    pub fn fitting<S: AsRef<str>>(rows: &[Vec<S>]) -> Self {
        let count = rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths = (0..count)
            .map(|column| {
                rows.iter()
                    .filter_map(|row| row.get(column))
                    .map(|cell| cell.as_ref().chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        Self { widths }
    }

    /// One row; cells that are numbers are right-aligned, other cells left-aligned.
    pub fn row<S: AsRef<str>>(&self, cells: &[S]) -> String {
        let mut line = String::new();
        let mut overflow = 0usize;
        for (index, cell) in cells.iter().enumerate() {
            let cell = cell.as_ref();
            if index + 1 == cells.len() {
                line.push_str(cell);
                break;
            }
            let width = self.widths.get(index).copied().unwrap_or(0);
            let length = cell.chars().count();
            let right = cell.starts_with(|c: char| c.is_ascii_digit())
                && cell
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == ',' || c == '.');
            let pad = width.saturating_sub(length + overflow);
            overflow = (length + overflow).saturating_sub(width);
            if right {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
            line.push_str("  ");
        }
        line.trim_end().to_owned()
    }
}

/// The columns of an event listing: position, stream, version, type, recorded at, data.
pub fn event_columns() -> Columns {
    Columns::new(&[8, 20, 7, 20, 27])
}

/// The header row of an event listing.
pub fn event_header(columns: &Columns) -> String {
    columns.row(&[
        "POSITION",
        "STREAM",
        "VERSION",
        "TYPE",
        "RECORDED AT",
        "DATA",
    ])
}

/// One event as a table row.
pub fn event_row(columns: &Columns, event: &RecordedEvent) -> String {
    columns.row(&[
        event.position.to_string(),
        event.stream_id.to_string(),
        event.version.to_string(),
        event.event_type.clone(),
        event.recorded_at_rfc3339(),
        event.data.clone(),
    ])
}

/// One event as `--json` prints it; `data` is embedded as the JSON text stored.
#[derive(Serialize)]
pub struct EventJson<'a> {
    position: u64,
    stream: &'a str,
    version: u64,
    id: uuid::Uuid,
    #[serde(rename = "type")]
    event_type: &'a str,
    schema_version: u32,
    data: Box<RawValue>,
    metadata: &'a mammoth_core::Metadata,
    recorded_at: String,
}

/// One event as a JSON object, its data and metadata embedded as JSON.
pub fn event_json(event: &RecordedEvent) -> EventJson<'_> {
    let data = stored_data(event);
    EventJson {
        position: event.position,
        stream: event.stream_id.as_str(),
        version: event.version,
        id: event.id,
        event_type: &event.event_type,
        schema_version: event.schema_version,
        data,
        metadata: &event.metadata,
        recorded_at: event.recorded_at_rfc3339(),
    }
}

/// An event's data as the JSON text stored, to embed in a JSON object.
pub fn stored_data(event: &RecordedEvent) -> Box<RawValue> {
    // Stored data is checked JSON; should a corrupted row slip through, show it as a JSON
    // string rather than fail the whole listing.
    RawValue::from_string(event.data.clone()).unwrap_or_else(|_| {
        let quoted = serde_json::to_string(&event.data).unwrap_or_else(|_| "null".to_owned());
        RawValue::from_string(quoted).unwrap_or_default()
    })
}

/// A byte count for people: `1.5 MiB (1,572,864 bytes)`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {} ({} bytes)", UNITS[unit], thousands(bytes))
}

/// An integer with `,` between groups of three digits.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        let remaining = digits.len() - index;
        if index > 0 && remaining / 3 * 3 == remaining {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_right_aligned_and_text_left_aligned() {
        let columns = Columns::new(&[6, 6, 3]);
        assert_eq!(columns.row(&["42", "ab", "x"]), "    42  ab      x");
    }

    #[test]
    fn a_wide_cell_pushes_its_row_right_without_breaking_later_columns() {
        let columns = Columns::new(&[3, 3, 1]);
        assert_eq!(columns.row(&["abcde", "x", "y"]), "abcde  x  y");
    }

    #[test]
    fn byte_counts_read_as_units_and_exact_bytes() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(1_572_864), "1.5 MiB (1,572,864 bytes)");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(999), "999");
    }
}
