//! `mammoth events stats`: head position, stream and event counts, events per type, and size
//! on disk.

use crate::output::{Columns, Output, human_bytes, thousands};
use crate::store::AnyStore;

/// Prints the store's counts.
///
/// # Errors
/// A store failure.
pub async fn run(store: &AnyStore, out: &mut Output) -> anyhow::Result<()> {
    let stats = store.stats().await?;
    if out.is_json() {
        out.json_document(&stats)?;
        return out.flush();
    }
    let size = stats
        .size_bytes
        .map_or_else(|| "- (kept in memory)".to_owned(), human_bytes);
    let summary = vec![
        vec!["backend".to_owned(), stats.backend.to_owned()],
        vec!["head position".to_owned(), thousands(stats.head_position)],
        vec!["streams".to_owned(), thousands(stats.stream_count)],
        vec!["events".to_owned(), thousands(stats.event_count)],
        vec!["size on disk".to_owned(), size],
    ];
    let columns = Columns::fitting(&summary);
    for row in &summary {
        out.line(columns.row(row))?;
    }
    if !stats.events_per_type.is_empty() {
        out.line("")?;
        let mut rows = vec![vec!["TYPE".to_owned(), "EVENTS".to_owned()]];
        rows.extend(
            stats
                .events_per_type
                .iter()
                .map(|row| vec![row.event_type.clone(), thousands(row.events)]),
        );
        // The count column is last, so pad it by hand to keep the numbers right-aligned.
        let width = rows.iter().map(|row| row[1].len()).max().unwrap_or(0);
        let columns = Columns::fitting(&rows);
        for row in &rows {
            out.line(columns.row(&[row[0].clone(), format!("{:>width$}", row[1])]))?;
        }
    }
    out.flush()
}
