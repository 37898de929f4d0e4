//! [`EventRegistry`]: the typed events and upcasters of an application, for read paths that
//! are not tied to one aggregate — `mammoth events read --decode`, migrations, diagnostics.
//! It turns any stored event into its upcast, current-version form and checks that it decodes
//! into its Rust type.

use std::fmt::Debug;

use serde::Serialize;
use serde_json::Value;

use crate::RecordedEvent;
use crate::codec::{CodecError, DomainEvent, JsonEvent, Location, decode_event, encode_event};
use crate::upcast::Upcasters;

/// A stored event as the current code reads it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DecodedEvent {
    /// The event type after upcasting.
    pub event_type: String,
    /// The current schema version.
    pub schema_version: u32,
    /// The data at the current version, as the Rust type encodes it.
    pub data: Value,
    /// The Rust value, printed with `{:?}`.
    pub typed: String,
}

type Decoder = fn(&JsonEvent, &Location) -> Result<Option<DecodedEvent>, CodecError>;

/// The event types an application knows, and its upcasters.
///
/// ```
/// use mammoth_core::{DomainEvent, EventRegistry, NewEvent, Upcasters};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Serialize, Deserialize)]
/// # enum AccountEvent { Opened { owner: String } }
/// # impl DomainEvent for AccountEvent {
/// #     fn schema_version(t: &str) -> Option<u32> { (t == "Opened").then_some(1) }
/// # }
/// let registry = EventRegistry::new(Upcasters::new()).with::<AccountEvent>();
/// assert!(registry.knows("Opened"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct EventRegistry {
    upcasters: Upcasters,
    decoders: Vec<Decoder>,
    knows: Vec<fn(&str) -> bool>,
}

impl EventRegistry {
    /// A registry that upcasts with `upcasters` and knows no type yet.
    pub fn new(upcasters: Upcasters) -> Self {
        Self {
            upcasters,
            ..Self::default()
        }
    }

    /// Adds the event types of `E`.
    pub fn with<E: DomainEvent + Debug>(mut self) -> Self {
        self.decoders.push(decode_as::<E>);
        self.knows
            .push(|event_type| E::schema_version(event_type).is_some());
        self
    }

    /// The upcasters.
    pub fn upcasters(&self) -> &Upcasters {
        &self.upcasters
    }

    /// True when a registered type holds `event_type` (at its current name).
    pub fn knows(&self, event_type: &str) -> bool {
        self.knows.iter().any(|knows| knows(event_type))
    }

    /// Upcasts `event` and decodes each result into its registered Rust type.
    ///
    /// # Errors
    /// A [`CodecError`] naming the stream, position, type and version:
    /// [`CodecError::UnknownType`] for a type no registered event holds (show it raw).
    pub fn decode(&self, event: &RecordedEvent) -> Result<Vec<DecodedEvent>, CodecError> {
        let at = Location::of(event);
        let data = event.data_json().map_err(|error| CodecError::Decode {
            at: at.clone(),
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            reason: error.to_string(),
        })?;
        let stored = JsonEvent::new(event.event_type.clone(), event.schema_version, data);
        self.upcasters
            .upcast(stored, &at)?
            .iter()
            .map(|current| self.decode_current(current, &at))
            .collect()
    }

    fn decode_current(&self, event: &JsonEvent, at: &Location) -> Result<DecodedEvent, CodecError> {
        for decoder in &self.decoders {
            if let Some(decoded) = decoder(event, at)? {
                return Ok(decoded);
            }
        }
        Err(CodecError::UnknownType {
            at: at.clone(),
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
        })
    }
}

fn decode_as<E: DomainEvent + Debug>(
    event: &JsonEvent,
    at: &Location,
) -> Result<Option<DecodedEvent>, CodecError> {
    if E::schema_version(&event.event_type).is_none() {
        return Ok(None);
    }
    let typed: E = decode_event(event).map_err(|error| locate(error, at))?;
    let current = encode_event(&typed)?;
    Ok(Some(DecodedEvent {
        event_type: current.event_type,
        schema_version: current.schema_version,
        data: current.data,
        typed: format!("{typed:?}"),
    }))
}

/// Puts the stored event's location into an error raised without one.
fn locate(error: CodecError, at: &Location) -> CodecError {
    match error {
        CodecError::FutureVersion {
            event_type,
            schema_version,
            current,
            ..
        } => CodecError::FutureVersion {
            at: at.clone(),
            event_type,
            schema_version,
            current,
        },
        CodecError::MissingUpcaster {
            event_type,
            schema_version,
            current,
            ..
        } => CodecError::MissingUpcaster {
            at: at.clone(),
            event_type,
            schema_version,
            current,
        },
        CodecError::Decode {
            event_type,
            schema_version,
            reason,
            ..
        } => CodecError::Decode {
            at: at.clone(),
            event_type,
            schema_version,
            reason,
        },
        other => other,
    }
}
