//! Optional JSON Schemas per (event type, schema version), checked on the typed write path
//! before anything is appended.
//!
//! This lives in the runtime, not in `mammoth-core`: the `jsonschema` crate (built with
//! `default-features = false`, so without its HTTP and file resolvers) brings some 75 crates
//! (regex engines, number and URI libraries), which core's users — drivers and pure domain
//! crates — should not pay for. Schemas are given in code as JSON values; nothing is fetched.

use std::collections::HashMap;
use std::fmt;

use jsonschema::Validator;
use jsonschema::error::ValidationErrorKind;
use mammoth_core::JsonEvent;
use serde_json::Value;

/// An event that breaks its schema: which event, which field, which rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "event {event_type} v{schema_version} breaks its schema at field {field}: rule `{rule}` ({message}); nothing was written"
)]
pub struct SchemaViolation {
    /// The event type.
    pub event_type: String,
    /// Its schema version.
    pub schema_version: u32,
    /// The field, as a JSON pointer into the event data (`/total`, `/items/0/sku`; `/` for the
    /// whole object).
    pub field: String,
    /// The JSON Schema keyword that failed (`minimum`, `required`, `type`, ...).
    pub rule: String,
    /// The validator's explanation.
    pub message: String,
}

/// A schema that could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the JSON Schema for {event_type} v{schema_version} is invalid: {reason}")]
pub struct InvalidSchema {
    /// The event type.
    pub event_type: String,
    /// The schema version.
    pub schema_version: u32,
    /// What the compiler reported.
    pub reason: String,
}

/// The JSON Schemas of an application's events, compiled once.
///
/// ```
/// use mammoth_core::JsonEvent;
/// use mammoth_runtime::Schemas;
/// use serde_json::json;
///
/// let schemas = Schemas::new()
///     .add("Deposited", 1, json!({
///         "type": "object",
///         "required": ["amount"],
///         "properties": { "amount": { "type": "integer", "minimum": 1 } }
///     }))
///     .unwrap();
/// let bad = JsonEvent::new("Deposited", 1, json!({ "amount": 0 }));
/// let violation = schemas.check(&bad).unwrap_err();
/// assert_eq!((violation.field.as_str(), violation.rule.as_str()), ("/amount", "minimum"));
/// ```
#[derive(Default)]
pub struct Schemas {
    validators: HashMap<String, HashMap<u32, Validator>>,
}

impl fmt::Debug for Schemas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for (event_type, versions) in &self.validators {
            for version in versions.keys() {
                list.entry(&format_args!("{event_type} v{version}"));
            }
        }
        list.finish()
    }
}

impl Schemas {
    /// No schemas: every event passes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the schema of `event_type` at `schema_version`, replacing any earlier one.
    ///
    /// # Errors
    /// [`InvalidSchema`] when `schema` is not a valid JSON Schema.
    pub fn add(
        mut self,
        event_type: &str,
        schema_version: u32,
        schema: Value,
    ) -> Result<Self, InvalidSchema> {
        let validator = jsonschema::validator_for(&schema).map_err(|error| InvalidSchema {
            event_type: event_type.to_owned(),
            schema_version,
            reason: error.to_string(),
        })?;
        self.validators
            .entry(event_type.to_owned())
            .or_default()
            .insert(schema_version, validator);
        Ok(self)
    }

    /// True when no schema is registered.
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// Checks `event` against the schema of its type and version; events without a schema
    /// pass.
    ///
    /// # Errors
    /// [`SchemaViolation`] naming the first failing field and rule.
    pub fn check(&self, event: &JsonEvent) -> Result<(), SchemaViolation> {
        let Some(validator) = self
            .validators
            .get(&event.event_type)
            .and_then(|versions| versions.get(&event.schema_version))
        else {
            return Ok(());
        };
        let Some(error) = validator.iter_errors(&event.data).next() else {
            return Ok(());
        };
        let mut field = error.instance_path().to_string();
        if let ValidationErrorKind::Required { property } = error.kind() {
            // The path of a missing field is its parent; name the field itself.
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned);
            field = format!("{field}/{name}");
        }
        if field.is_empty() {
            field = "/".to_owned();
        }
        Err(SchemaViolation {
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            field,
            rule: error.kind().keyword().to_owned(),
            message: error.to_string(),
        })
    }
}
