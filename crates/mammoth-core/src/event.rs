//! Events as the store sees them: [`NewEvent`] going in, [`RecordedEvent`] coming out.
//!
//! Data is kept as JSON text, not as a parsed tree: the store checks that it is a JSON object
//! and stores the bytes unchanged, so a write never pays for a parse-and-reprint and a read
//! never pays for a parse the caller may not need.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{Position, StoreError, StreamId, Version};

/// Who and what caused an event: correlation and causation ids, actor, tenant, trace context,
/// and free fields. Stored as a JSON object beside the event's data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Groups every event written on behalf of one original request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The id of the message (command or event) that directly caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The user or service that caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The tenant the event belongs to, for multi-tenant applications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// A W3C `traceparent` or similar trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_context: Option<String>,
    /// Any other fields, kept as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Metadata {
    /// The names of the built-in fields; free fields may not use them.
    pub const FIELDS: [&'static str; 5] = [
        "correlation_id",
        "causation_id",
        "actor",
        "tenant",
        "trace_context",
    ];

    /// True when no field is set; such metadata is stored as `{}`.
    pub fn is_empty(&self) -> bool {
        self.correlation_id.is_none()
            && self.causation_id.is_none()
            && self.actor.is_none()
            && self.tenant.is_none()
            && self.trace_context.is_none()
            && self.extra.is_empty()
    }

    /// The metadata as JSON text.
    pub fn to_json(&self) -> String {
        if self.is_empty() {
            return "{}".to_owned();
        }
        // Serializing plain fields and a string-keyed map cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Parses metadata from JSON text; it must be a JSON object.
    ///
    /// # Errors
    /// [`StoreError::InvalidMetadata`] when the text is not a JSON object of this shape.
    pub fn from_json(text: &str) -> Result<Self, StoreError> {
        if text == "{}" {
            return Ok(Self::default());
        }
        serde_json::from_str(text).map_err(|error| StoreError::InvalidMetadata {
            reason: error.to_string(),
        })
    }
}

/// An event to append. The store assigns its stream version, global position and time.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// The event's id. `None` lets the store assign a fresh UUID v7. Give an id to make the
    /// append idempotent: re-sending the same ids to the same stream returns the first result.
    pub id: Option<Uuid>,
    /// The event type name, e.g. `OrderCreated`.
    pub event_type: String,
    /// The schema version of `data`, starting at 1; upcasters read it.
    pub schema_version: u32,
    /// The payload: a JSON object, as text.
    pub data: String,
    /// Correlation, causation and other context.
    pub metadata: Metadata,
}

impl NewEvent {
    /// An event of schema version 1 with a JSON payload, no id and empty metadata.
    ///
    /// # Errors
    /// [`StoreError::InvalidData`] when `data` is not a JSON object.
    pub fn json(event_type: impl Into<String>, data: Value) -> Result<Self, StoreError> {
        let event_type = event_type.into();
        if !data.is_object() {
            return Err(StoreError::InvalidData {
                event_type,
                reason: "event data must be a JSON object".to_owned(),
            });
        }
        Ok(Self::from_json_text(event_type, data.to_string()))
    }

    /// An event of schema version 1 whose payload is given as JSON text. The text is checked
    /// when the event is appended, not here.
    pub fn from_json_text(event_type: impl Into<String>, data: impl Into<String>) -> Self {
        Self {
            id: None,
            event_type: event_type.into(),
            schema_version: 1,
            data: data.into(),
            metadata: Metadata::default(),
        }
    }

    /// Sets the event id, making appends of this event idempotent.
    pub fn with_id(mut self, id: Uuid) -> Self {
        self.id = Some(id);
        self
    }

    /// Sets the schema version.
    pub fn with_schema_version(mut self, schema_version: u32) -> Self {
        self.schema_version = schema_version;
        self
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }
}

/// An event as stored: everything a [`NewEvent`] had, plus where and when it was written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// The event's id (UUID v7 when the writer gave none).
    pub id: Uuid,
    /// The stream it belongs to.
    pub stream_id: StreamId,
    /// Its version within the stream, starting at 1.
    pub version: Version,
    /// Its position in the global log, starting at 1.
    pub position: Position,
    /// The event type name.
    pub event_type: String,
    /// The schema version of `data`.
    pub schema_version: u32,
    /// The payload as JSON object text.
    pub data: String,
    /// Correlation, causation and other context.
    pub metadata: Metadata,
    /// When the store committed it, in microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
}

impl RecordedEvent {
    /// The payload parsed as JSON.
    ///
    /// # Errors
    /// [`StoreError::InvalidData`] if the stored text is not JSON (a corrupted store).
    pub fn data_json(&self) -> Result<Value, StoreError> {
        serde_json::from_str(&self.data).map_err(|error| StoreError::InvalidData {
            event_type: self.event_type.clone(),
            reason: format!(
                "stored data at position {} is not JSON: {error}",
                self.position
            ),
        })
    }

    /// The commit time as a [`SystemTime`].
    pub fn recorded_at(&self) -> SystemTime {
        let micros = u64::try_from(self.recorded_at_micros).unwrap_or(0);
        UNIX_EPOCH + Duration::from_micros(micros)
    }

    /// The commit time in RFC 3339 form, e.g. `2026-11-27T07:18:51.123456Z`.
    pub fn recorded_at_rfc3339(&self) -> String {
        humantime::format_rfc3339_micros(self.recorded_at()).to_string()
    }
}

/// The current time in microseconds since the Unix epoch, as drivers stamp `recorded_at`.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
        })
}
