//! Typed domain events and their stored form: the [`DomainEvent`] trait, [`JsonEvent`] (an
//! event as type name + schema version + JSON data), and the encode/decode functions the
//! repository, projections, sagas and the CLI use.
//!
//! An event type is a Rust enum deriving serde's `Serialize` and `Deserialize` in serde's
//! default (externally tagged) form: the variant name (or its `#[serde(rename)]`) is the stored
//! event type, and the variant's fields are the stored JSON object. Struct variants, newtype
//! variants around a struct, and unit variants (stored as `{}`) are supported; tuple variants
//! are not, because stored data must be a JSON object.
//!
//! Decoding always goes through the [`Upcasters`] registry, so every read path sees events at
//! their current schema version, and a failure names the stream, position, type and version.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::upcast::Upcasters;
use crate::{Metadata, NewEvent, Position, RecordedEvent};

/// A domain event type: usually an enum with one variant per event type of an aggregate.
///
/// Implement [`DomainEvent::schema_version`] to declare every event type the enum holds and
/// its current schema version; the names are serde's variant names.
///
/// ```
/// use mammoth_core::DomainEvent;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// enum CounterEvent {
///     Incremented { by: u32 },
///     Reset,
/// }
///
/// impl DomainEvent for CounterEvent {
///     fn schema_version(event_type: &str) -> Option<u32> {
///         matches!(event_type, "Incremented" | "Reset").then_some(1)
///     }
/// }
///
/// let json = mammoth_core::encode_event(&CounterEvent::Incremented { by: 2 }).unwrap();
/// assert_eq!(json.event_type, "Incremented");
/// assert_eq!(json.data, serde_json::json!({ "by": 2 }));
/// let back: CounterEvent = mammoth_core::decode_event(&json).unwrap();
/// assert_eq!(back, CounterEvent::Incremented { by: 2 });
/// ```
pub trait DomainEvent: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The current schema version of `event_type`, or `None` when this type does not hold it.
    ///
    /// Stored events of an older version are upcast to this one on read; a stored version
    /// newer than this one is [`CodecError::FutureVersion`], never a guess.
    fn schema_version(event_type: &str) -> Option<u32>;
}

/// An event in its JSON form: what upcasters transform and JSON Schemas check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonEvent {
    /// The event type name, e.g. `OrderCreated`.
    pub event_type: String,
    /// The schema version of `data`, 1 or more.
    pub schema_version: u32,
    /// The payload, a JSON object.
    pub data: Value,
}

impl JsonEvent {
    /// An event of `event_type` at `schema_version` with `data`.
    pub fn new(event_type: impl Into<String>, schema_version: u32, data: Value) -> Self {
        Self {
            event_type: event_type.into(),
            schema_version,
            data,
        }
    }

    /// The event as a [`NewEvent`] to append, with the given metadata and no id.
    pub fn into_new_event(self, metadata: Metadata) -> NewEvent {
        NewEvent::from_json_text(self.event_type, self.data.to_string())
            .with_schema_version(self.schema_version)
            .with_metadata(metadata)
    }
}

/// Where a stored event is: its stream and global position. Errors carry it so a message
/// points at the event to look at (`mammoth events read`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// The stream id, empty for an event that is not stored.
    pub stream: String,
    /// The global position, 0 for an event that is not stored.
    pub position: Position,
}

impl Location {
    /// The location of a recorded event.
    pub fn of(event: &RecordedEvent) -> Self {
        Self {
            stream: event.stream_id.to_string(),
            position: event.position,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.stream.is_empty() {
            f.write_str("event (not stored)")
        } else {
            write!(
                f,
                "stream \"{}\" at position {}",
                self.stream, self.position
            )
        }
    }
}

/// Why an event could not be encoded, upcast or decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A typed event could not be turned into a stored event.
    #[error("cannot encode event{}: {reason}", type_suffix(event_type.as_deref()))]
    Encode {
        /// The event type, when it could be told.
        event_type: Option<String>,
        /// What went wrong and how to fix it.
        reason: String,
    },
    /// The stored type is not one the reading code knows.
    #[error(
        "{at}: unknown event type {event_type:?} (v{schema_version}); declare it in DomainEvent::schema_version or register an upcaster that renames it"
    )]
    UnknownType {
        /// Where the stored event is.
        at: Location,
        /// The type after upcasting.
        event_type: String,
        /// The version after upcasting.
        schema_version: u32,
    },
    /// The stored version is newer than the reading code's current version.
    #[error(
        "{at}: {event_type} v{schema_version} is newer than this code's v{current}; run the newer code, it was written by it"
    )]
    FutureVersion {
        /// Where the stored event is.
        at: Location,
        /// The event type.
        event_type: String,
        /// The stored (or upcast) version.
        schema_version: u32,
        /// The version the reading code knows.
        current: u32,
    },
    /// An older version with no upcaster to take it further.
    #[error(
        "{at}: no upcaster from {event_type} v{schema_version} towards v{current}; register one for ({event_type:?}, {schema_version})"
    )]
    MissingUpcaster {
        /// Where the stored event is.
        at: Location,
        /// The event type.
        event_type: String,
        /// The version the chain stopped at.
        schema_version: u32,
        /// The version the reading code knows.
        current: u32,
    },
    /// An upcaster returned an error, or the chain did not end.
    #[error("{at}: upcasting {event_type} v{schema_version} failed: {reason}")]
    Upcast {
        /// Where the stored event is.
        at: Location,
        /// The type the failing step read.
        event_type: String,
        /// The version the failing step read.
        schema_version: u32,
        /// What the upcaster reported.
        reason: String,
    },
    /// The data at the current version does not fit the Rust type.
    #[error("{at}: cannot decode {event_type} v{schema_version}: {reason}")]
    Decode {
        /// Where the stored event is.
        at: Location,
        /// The event type.
        event_type: String,
        /// The event's version.
        schema_version: u32,
        /// What serde reported.
        reason: String,
    },
}

fn type_suffix(event_type: Option<&str>) -> String {
    event_type.map_or_else(String::new, |name| format!(" {name}"))
}

/// Encodes a typed event as a [`JsonEvent`] at its current schema version.
///
/// # Errors
/// [`CodecError::Encode`] when the value does not serialize to an externally tagged enum
/// variant holding a JSON object, or when its type is not declared in
/// [`DomainEvent::schema_version`].
pub fn encode_event<E: DomainEvent>(event: &E) -> Result<JsonEvent, CodecError> {
    let encode_error =
        |event_type: Option<String>, reason: String| CodecError::Encode { event_type, reason };
    let value =
        serde_json::to_value(event).map_err(|error| encode_error(None, error.to_string()))?;
    let (event_type, data) = match value {
        Value::String(name) => (name, Value::Object(Map::new())),
        Value::Object(map) if map.len() == 1 => {
            let Some((name, data)) = map.into_iter().next() else {
                unreachable!("a map of length 1 has an entry")
            };
            (name, data)
        }
        other => {
            return Err(encode_error(
                None,
                format!(
                    "serialized to {other}; domain events must be enums in serde's default (externally tagged) form"
                ),
            ));
        }
    };
    if !data.is_object() {
        return Err(encode_error(
            Some(event_type),
            "the variant's data is not a JSON object; use a struct or unit variant".to_owned(),
        ));
    }
    let Some(schema_version) = E::schema_version(&event_type) else {
        return Err(encode_error(
            Some(event_type),
            "the type is not declared in DomainEvent::schema_version".to_owned(),
        ));
    };
    Ok(JsonEvent {
        event_type,
        schema_version,
        data,
    })
}

/// Decodes an event that is already at its current version (no upcasting, no location).
///
/// # Errors
/// [`CodecError::UnknownType`], [`CodecError::FutureVersion`], [`CodecError::MissingUpcaster`]
/// or [`CodecError::Decode`].
pub fn decode_event<E: DomainEvent>(event: &JsonEvent) -> Result<E, CodecError> {
    decode_current(event, &Location::default())
}

/// Decodes a recorded event into one or more typed events (several when an upcaster splits
/// it), upcasting it to the current version first.
///
/// # Errors
/// A [`CodecError`] naming the stream, position, type and version.
pub fn decode_recorded<E: DomainEvent>(
    event: &RecordedEvent,
    upcasters: &Upcasters,
) -> Result<Vec<E>, CodecError> {
    let at = Location::of(event);
    if !upcasters.has_step(&event.event_type, event.schema_version) {
        // The common case: no upcasting, so parse the stored text straight into the type.
        check_version::<E>(&event.event_type, event.schema_version, &at)?;
        return decode_text(event, &at).map(|decoded| vec![decoded]);
    }
    let data = serde_json::from_str(&event.data).map_err(|error| CodecError::Decode {
        at: at.clone(),
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        reason: format!("stored data is not JSON: {error}"),
    })?;
    let stored = JsonEvent::new(event.event_type.clone(), event.schema_version, data);
    upcasters
        .upcast(stored, &at)?
        .iter()
        .map(|current| decode_current(current, &at))
        .collect()
}

fn check_version<E: DomainEvent>(
    event_type: &str,
    schema_version: u32,
    at: &Location,
) -> Result<(), CodecError> {
    let Some(current) = E::schema_version(event_type) else {
        return Err(CodecError::UnknownType {
            at: at.clone(),
            event_type: event_type.to_owned(),
            schema_version,
        });
    };
    if schema_version > current {
        return Err(CodecError::FutureVersion {
            at: at.clone(),
            event_type: event_type.to_owned(),
            schema_version,
            current,
        });
    }
    if schema_version < current {
        return Err(CodecError::MissingUpcaster {
            at: at.clone(),
            event_type: event_type.to_owned(),
            schema_version,
            current,
        });
    }
    Ok(())
}

fn decode_text<E: DomainEvent>(event: &RecordedEvent, at: &Location) -> Result<E, CodecError> {
    let tag = serde_json::to_string(&event.event_type).unwrap_or_default();
    let result = if is_empty_object(&event.data) {
        serde_json::from_str(&tag).or_else(|_| serde_json::from_str(&format!("{{{tag}:{{}}}}")))
    } else {
        serde_json::from_str(&format!("{{{tag}:{}}}", event.data))
    };
    result.map_err(|error| CodecError::Decode {
        at: at.clone(),
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        reason: error.to_string(),
    })
}

fn is_empty_object(text: &str) -> bool {
    let inner = text.trim();
    inner.starts_with('{') && inner.ends_with('}') && inner[1..inner.len() - 1].trim().is_empty()
}

fn decode_current<E: DomainEvent>(event: &JsonEvent, at: &Location) -> Result<E, CodecError> {
    check_version::<E>(&event.event_type, event.schema_version, at)?;
    let decode_error = |error: serde_json::Error| CodecError::Decode {
        at: at.clone(),
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        reason: error.to_string(),
    };
    if event.data.as_object().is_some_and(Map::is_empty)
        && let Ok(unit) = serde_json::from_value(Value::String(event.event_type.clone()))
    {
        return Ok(unit);
    }
    let mut tagged = Map::with_capacity(1);
    tagged.insert(event.event_type.clone(), event.data.clone());
    serde_json::from_value(Value::Object(tagged)).map_err(decode_error)
}
