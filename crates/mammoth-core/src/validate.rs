//! Checks every driver runs before it writes, so that bad input fails the same way everywhere
//! and nothing is written: [`validate_append`] for the input, [`idempotent_replay`] for
//! re-sent event ids.

use std::collections::HashSet;

use serde::de::IgnoredAny;
use uuid::Uuid;

use crate::event::Metadata;
use crate::{AppendResult, Limits, NewEvent, Position, StoreError, StreamId, Version};

/// The longest event type name accepted, in bytes.
pub const MAX_EVENT_TYPE_BYTES: usize = 255;

/// An event that passed [`validate_append`]: its id is assigned and its metadata is JSON text,
/// ready for a driver to write as is.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedEvent {
    /// The caller's id, or a fresh UUID v7.
    pub id: Uuid,
    /// True when the caller gave the id (only those can make an append a replay).
    pub id_given: bool,
    /// The event type name.
    pub event_type: String,
    /// The schema version, at least 1.
    pub schema_version: u32,
    /// The payload, a JSON object as text.
    pub data: String,
    /// The metadata as JSON object text.
    pub metadata: String,
}

/// Checks an event type name: 1 to 255 bytes, an ASCII letter or `_` first, then ASCII
/// letters, digits, `_`, `.`, `-` or `:`.
///
/// # Errors
/// [`StoreError::InvalidEventType`] naming the rule that failed.
pub fn check_event_type(name: &str) -> Result<(), StoreError> {
    let reason = if name.is_empty() {
        Some("it is empty; give a name such as \"OrderCreated\"")
    } else if name.len() > MAX_EVENT_TYPE_BYTES {
        Some("it is longer than 255 bytes")
    } else if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        Some("it must start with an ASCII letter or `_`")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'))
    {
        Some("only ASCII letters, digits, `_`, `.`, `-` and `:` are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidEventType {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn check_data(event_type: &str, data: &str) -> Result<(), StoreError> {
    let invalid = |reason: String| StoreError::InvalidData {
        event_type: event_type.to_owned(),
        reason,
    };
    if !data.trim_start().starts_with('{') {
        return Err(invalid(
            "event data must be a JSON object such as {\"total\": 30}".to_owned(),
        ));
    }
    serde_json::from_str::<IgnoredAny>(data)
        .map(drop)
        .map_err(|error| invalid(format!("event data is not valid JSON: {error}")))
}

/// Free metadata fields may not reuse a typed field's name: stored as one JSON object, the two
/// would collide and the metadata would not read back as written.
fn check_metadata(metadata: &Metadata) -> Result<(), StoreError> {
    match metadata
        .extra
        .keys()
        .find(|key| Metadata::FIELDS.contains(&key.as_str()))
    {
        Some(key) => Err(StoreError::InvalidMetadata {
            reason: format!(
                "the free field `{key}` has the name of a built-in metadata field; set the field itself or rename the free one"
            ),
        }),
        None => Ok(()),
    }
}

/// Validates an append and prepares its events for writing.
///
/// # Errors
/// [`StoreError::EmptyAppend`], [`StoreError::TooManyEvents`], [`StoreError::InvalidEventType`],
/// [`StoreError::InvalidSchemaVersion`], [`StoreError::InvalidData`],
/// [`StoreError::EventTooLarge`], [`StoreError::InvalidMetadata`] for a free metadata field
/// named like a built-in one, or [`StoreError::DuplicateEventId`] for an id given twice.
pub fn validate_append(
    stream: &StreamId,
    events: Vec<NewEvent>,
    limits: &Limits,
) -> Result<Vec<PreparedEvent>, StoreError> {
    if events.is_empty() {
        return Err(StoreError::EmptyAppend {
            stream: stream.clone(),
        });
    }
    if events.len() > limits.max_events_per_append {
        return Err(StoreError::TooManyEvents {
            count: events.len(),
            max: limits.max_events_per_append,
        });
    }
    let mut seen = HashSet::new();
    events
        .into_iter()
        .map(|event| {
            check_event_type(&event.event_type)?;
            if event.schema_version == 0 {
                return Err(StoreError::InvalidSchemaVersion {
                    event_type: event.event_type,
                    schema_version: 0,
                });
            }
            check_data(&event.event_type, &event.data)?;
            check_metadata(&event.metadata)?;
            let metadata = Metadata::to_json(&event.metadata);
            let size = event.data.len() + metadata.len();
            if size > limits.max_event_bytes {
                return Err(StoreError::EventTooLarge {
                    event_type: event.event_type,
                    size,
                    max: limits.max_event_bytes,
                });
            }
            let (id, id_given) = match event.id {
                Some(id) => (id, true),
                None => (Uuid::now_v7(), false),
            };
            if !seen.insert(id) {
                return Err(StoreError::DuplicateEventId {
                    id,
                    existing_stream: stream.to_string(),
                });
            }
            Ok(PreparedEvent {
                id,
                id_given,
                event_type: event.event_type,
                schema_version: event.schema_version,
                data: event.data,
                metadata,
            })
        })
        .collect()
}

/// Where an event id is already stored: its stream, version and position.
pub type StoredAt = (String, Version, Position);

/// Decides whether an append of `ids` to `stream` is a re-send of an earlier append.
///
/// A re-send is recognized by its ids alone: content is not compared, and re-sending a run of
/// ids that is stored at consecutive versions (say the first event of an earlier two-event
/// append) returns the versions and positions of that run.
///
/// `found[i]` says where `ids[i]` is already stored, if anywhere. Returns `Ok(None)` when none
/// is stored (a new append), `Ok(Some(result))` with the earlier append's result when every id
/// is stored in `stream` at consecutive versions in the same order (a replay: write nothing).
///
/// # Errors
/// [`StoreError::DuplicateEventId`] when an id is stored in another stream;
/// [`StoreError::IdempotencyMismatch`] when the ids only partly match an earlier append.
pub fn idempotent_replay(
    stream: &StreamId,
    ids: &[Uuid],
    found: &[Option<StoredAt>],
) -> Result<Option<AppendResult>, StoreError> {
    if found.iter().all(Option::is_none) {
        return Ok(None);
    }
    for (id, place) in ids.iter().zip(found) {
        if let Some((other, _, _)) = place
            && other != stream.as_str()
        {
            return Err(StoreError::DuplicateEventId {
                id: *id,
                existing_stream: other.clone(),
            });
        }
    }
    let mismatch = |id: Uuid| StoreError::IdempotencyMismatch {
        stream: stream.clone(),
        id,
    };
    let Some(Some((_, first_version, first_position))) = found.first() else {
        return Err(mismatch(ids.first().copied().unwrap_or_default()));
    };
    let mut last_position = *first_position;
    for (offset, (id, place)) in ids.iter().zip(found).enumerate() {
        match place {
            Some((_, version, position)) if *version == first_version + offset as Version => {
                last_position = *position;
            }
            _ => return Err(mismatch(*id)),
        }
    }
    Ok(Some(AppendResult {
        first_version: *first_version,
        last_version: first_version + ids.len() as Version - 1,
        first_position: *first_position,
        last_position,
    }))
}
