//! Comparing a driver's answers with the model's: positions by relative order (the driver's
//! positions are mapped onto the model's 1, 2, 3, ... through the events both wrote), ids by
//! the pairs both assigned, errors by variant and structured fields.

use std::collections::HashMap;

use mammoth_core::{AppendResult, Position, RecordedEvent, StoreError};
use uuid::Uuid;

/// What the comparison has learned so far: the driver's position of each model position, and
/// the driver's id of each model id.
#[derive(Default)]
pub(crate) struct Mapping {
    /// `positions[i]` is the driver's position of the event at model position `i + 1`.
    positions: Vec<Position>,
    ids: HashMap<Uuid, Uuid>,
}

impl Mapping {
    /// Records newly written events, read back from both stores in the same order.
    pub(crate) fn learn(
        &mut self,
        model: &[RecordedEvent],
        store: &[RecordedEvent],
    ) -> Result<(), String> {
        if model.len() != store.len() {
            return Err(format!(
                "reading back a new append: model has {} events, store {}",
                model.len(),
                store.len()
            ));
        }
        for (m, s) in model.iter().zip(store) {
            if m.position != self.positions.len() as Position + 1 {
                return Err(format!("model position {} is not the next one", m.position));
            }
            if let Some(&last) = self.positions.last()
                && s.position <= last
            {
                return Err(format!(
                    "store position {} of a new event is not above {last}, the last one written",
                    s.position
                ));
            }
            self.positions.push(s.position);
            self.ids.insert(m.id, s.id);
            self.event(m, s)?;
        }
        Ok(())
    }

    /// The model position of the driver's position `position` of a known event.
    fn to_model(&self, position: Position) -> Option<Position> {
        self.positions
            .binary_search(&position)
            .ok()
            .map(|index| index as Position + 1)
    }

    /// How many known events are at or below the driver's position `position`: the model
    /// position that the driver's head `position` corresponds to.
    pub(crate) fn count_up_to(&self, position: Position) -> Position {
        self.positions.partition_point(|&p| p <= position) as Position
    }

    /// The driver's position to read the global log from for model position `from`.
    pub(crate) fn to_store_from(&self, from: Position) -> Position {
        let known = self.positions.len() as Position;
        match from {
            0 => 0,
            from if from <= known => self.positions[from as usize - 1],
            from => self.positions.last().copied().unwrap_or(0) + (from - known),
        }
    }

    /// Compares two recorded events.
    pub(crate) fn event(&self, m: &RecordedEvent, s: &RecordedEvent) -> Result<(), String> {
        let same = m.stream_id == s.stream_id
            && m.version == s.version
            && m.event_type == s.event_type
            && m.schema_version == s.schema_version
            && m.data == s.data
            && m.metadata == s.metadata;
        if !same {
            return Err(format!("events differ:\n model {m:?}\n store {s:?}"));
        }
        if self.ids.get(&m.id) != Some(&s.id) {
            return Err(format!(
                "{}@{}: store id {} is not the id it got when written (model id {})",
                s.stream_id, s.version, s.id, m.id
            ));
        }
        if self.to_model(s.position) != Some(m.position) {
            return Err(format!(
                "{}@{}: store position {} is not where it was written (model position {}, store positions so far {:?})",
                s.stream_id, s.version, s.position, m.position, self.positions
            ));
        }
        Ok(())
    }

    /// Compares two append results (after [`Mapping::learn`] for a new write).
    pub(crate) fn append(&self, m: &AppendResult, s: &AppendResult) -> Result<(), String> {
        let versions = (m.first_version, m.last_version) == (s.first_version, s.last_version);
        let positions = self.to_model(s.first_position) == Some(m.first_position)
            && self.to_model(s.last_position) == Some(m.last_position);
        if versions && positions {
            Ok(())
        } else {
            Err(format!("append results differ: model {m:?}, store {s:?}"))
        }
    }

    /// Compares two lists of events.
    pub(crate) fn events(&self, m: &[RecordedEvent], s: &[RecordedEvent]) -> Result<(), String> {
        if m.len() != s.len() {
            let brief = |events: &[RecordedEvent]| -> Vec<String> {
                events
                    .iter()
                    .map(|e| format!("{}@{}", e.stream_id, e.version))
                    .collect()
            };
            return Err(format!(
                "model returned {:?}, store {:?}",
                brief(m),
                brief(s)
            ));
        }
        m.iter().zip(s).try_for_each(|(m, s)| self.event(m, s))
    }
}

/// An error reduced to what the contract fixes: its variant and structured fields (reasons
/// and messages are free text and may differ between drivers). `IdempotencyMismatch` names
/// "an" id of the batch, so only its stream is compared.
pub(crate) fn error_key(error: &StoreError) -> String {
    match error {
        StoreError::Conflict {
            stream,
            expected,
            actual,
        } => {
            format!("Conflict {{ stream: {stream:?}, expected: {expected:?}, actual: {actual} }}")
        }
        StoreError::InvalidStreamId { id, .. } => format!("InvalidStreamId {{ id: {id:?} }}"),
        StoreError::InvalidEventType { name, .. } => {
            format!("InvalidEventType {{ name: {name:?} }}")
        }
        StoreError::InvalidSchemaVersion {
            event_type,
            schema_version,
        } => {
            format!(
                "InvalidSchemaVersion {{ event_type: {event_type:?}, schema_version: {schema_version} }}"
            )
        }
        StoreError::InvalidData { event_type, .. } => {
            format!("InvalidData {{ event_type: {event_type:?} }}")
        }
        StoreError::InvalidMetadata { .. } => "InvalidMetadata".to_owned(),
        StoreError::EventTooLarge {
            event_type,
            size,
            max,
        } => {
            format!("EventTooLarge {{ event_type: {event_type:?}, size: {size}, max: {max} }}")
        }
        StoreError::EmptyAppend { stream } => format!("EmptyAppend {{ stream: {stream:?} }}"),
        StoreError::TooManyEvents { count, max } => {
            format!("TooManyEvents {{ count: {count}, max: {max} }}")
        }
        StoreError::DuplicateEventId {
            id,
            existing_stream,
        } => {
            format!("DuplicateEventId {{ id: {id}, existing_stream: {existing_stream:?} }}")
        }
        StoreError::IdempotencyMismatch { stream, .. } => {
            format!("IdempotencyMismatch {{ stream: {stream:?} }}")
        }
        StoreError::InvalidRead { .. } => "InvalidRead".to_owned(),
        other => format!("{other:?}"),
    }
}

/// Compares two results with `same` for the values and [`error_key`] for errors.
pub(crate) fn results<T: std::fmt::Debug>(
    m: &Result<T, StoreError>,
    s: &Result<T, StoreError>,
    same: impl FnOnce(&T, &T) -> Result<(), String>,
) -> Result<(), String> {
    match (m, s) {
        (Ok(m), Ok(s)) => same(m, s),
        (Err(m), Err(s)) if error_key(m) == error_key(s) => Ok(()),
        (m, s) => Err(format!(
            "outcomes differ:\n model {}\n store {}",
            describe(m),
            describe(s)
        )),
    }
}

fn describe<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> String {
    match result {
        Ok(value) => {
            let text = format!("Ok({value:?})");
            // Event lists can be long; the head of the text is enough to see what differs.
            if text.len() > 2000 {
                format!("{}...", text.chars().take(2000).collect::<String>())
            } else {
                text
            }
        }
        Err(error) => format!("Err({}) \"{error}\"", error_key(error)),
    }
}
