//! [`Upcasters`]: pure JSON functions registered per (event type, from version), chained on
//! read until no step applies, so code only ever decodes the current version of an event.
//!
//! A step may change the data (`v1 -> v2`), rename the type, or split one stored event into
//! several. Steps are plain functions registered in code; nothing is looked up by name.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::codec::{CodecError, JsonEvent, Location};

/// The most steps one stored event may go through; more means a cycle among the upcasters.
pub const MAX_UPCAST_STEPS: usize = 1000;

type Step = Arc<dyn Fn(Value) -> Result<Vec<JsonEvent>, String> + Send + Sync>;

/// The upcasters of an application, keyed by (event type, from version).
///
/// ```
/// use mammoth_core::{JsonEvent, Location, Upcasters};
/// use serde_json::json;
///
/// let upcasters = Upcasters::new()
///     // v1 stored the total as a string of units; v2 stores integer cents.
///     .add("OrderCreated", 1, |mut data| {
///         let total = data["total"].as_str().ok_or("total is not a string")?;
///         let cents = (total.parse::<f64>().map_err(|e| e.to_string())? * 100.0).round();
///         data["total"] = json!(cents as u64);
///         Ok(data)
///     })
///     .rename("OrderPlaced", 1, "OrderCreated", 1);
///
/// let old = JsonEvent::new("OrderPlaced", 1, json!({ "total": "12.50" }));
/// let now = upcasters.upcast(old, &Location::default()).unwrap();
/// assert_eq!(now, vec![JsonEvent::new("OrderCreated", 2, json!({ "total": 1250 }))]);
/// ```
#[derive(Clone, Default)]
pub struct Upcasters {
    steps: HashMap<String, BTreeMap<u32, Step>>,
}

impl fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for (event_type, versions) in &self.steps {
            for version in versions.keys() {
                list.entry(&format_args!("{event_type} v{version}"));
            }
        }
        list.finish()
    }
}

impl Upcasters {
    /// No upcasters: every event is read as stored.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a step that takes `event_type` from `from_version` to `from_version + 1`,
    /// changing only its data.
    ///
    /// # Panics
    /// When a step for (`event_type`, `from_version`) is already registered: two steps for the
    /// same input are a programming error, found at start-up.
    pub fn add<F>(self, event_type: &str, from_version: u32, step: F) -> Self
    where
        F: Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    {
        let name = event_type.to_owned();
        self.add_split(event_type, from_version, move |data| {
            Ok(vec![JsonEvent::new(
                name.clone(),
                from_version + 1,
                step(data)?,
            )])
        })
    }

    /// Registers a rename: `event_type` at `from_version` becomes `new_type` at `new_version`
    /// with the same data (later steps of `new_type` then apply).
    ///
    /// # Panics
    /// When a step for (`event_type`, `from_version`) is already registered.
    pub fn rename(
        self,
        event_type: &str,
        from_version: u32,
        new_type: &str,
        new_version: u32,
    ) -> Self {
        let new_type = new_type.to_owned();
        self.add_split(event_type, from_version, move |data| {
            Ok(vec![JsonEvent::new(new_type.clone(), new_version, data)])
        })
    }

    /// Registers the most general step: the stored data of `event_type` at `from_version`
    /// becomes any number of events, each with its own type and version (a split, or a drop
    /// when the list is empty). Each resulting event is upcast further.
    ///
    /// # Panics
    /// When a step for (`event_type`, `from_version`) is already registered.
    pub fn add_split<F>(mut self, event_type: &str, from_version: u32, step: F) -> Self
    where
        F: Fn(Value) -> Result<Vec<JsonEvent>, String> + Send + Sync + 'static,
    {
        let previous = self
            .steps
            .entry(event_type.to_owned())
            .or_default()
            .insert(from_version, Arc::new(step));
        assert!(
            previous.is_none(),
            "two upcasters registered for ({event_type:?}, v{from_version}); keep one"
        );
        self
    }

    /// Adds every step of `other`.
    ///
    /// # Panics
    /// When both hold a step for the same (type, version).
    pub fn merge(mut self, other: &Upcasters) -> Self {
        for (event_type, versions) in &other.steps {
            for (version, step) in versions {
                let step = Arc::clone(step);
                self = self.add_split(event_type, *version, move |data| step(data));
            }
        }
        self
    }

    /// True when no step is registered.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// True when a step reads (`event_type`, `schema_version`).
    pub fn has_step(&self, event_type: &str, schema_version: u32) -> bool {
        self.steps
            .get(event_type)
            .is_some_and(|versions| versions.contains_key(&schema_version))
    }

    /// Applies steps until none applies to any resulting event, and returns the results in
    /// order. An event with no step is returned as it is.
    ///
    /// # Errors
    /// [`CodecError::Upcast`] when a step fails, or after [`MAX_UPCAST_STEPS`] steps (a cycle).
    pub fn upcast(&self, event: JsonEvent, at: &Location) -> Result<Vec<JsonEvent>, CodecError> {
        let mut done = Vec::with_capacity(1);
        // A stack of pending events, last first, so results keep their order.
        let mut pending = vec![event];
        let mut steps = 0;
        while let Some(event) = pending.pop() {
            let step = self
                .steps
                .get(&event.event_type)
                .and_then(|versions| versions.get(&event.schema_version));
            let Some(step) = step else {
                done.push(event);
                continue;
            };
            steps += 1;
            let failed = |reason: String| CodecError::Upcast {
                at: at.clone(),
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                reason,
            };
            if steps > MAX_UPCAST_STEPS {
                return Err(failed(format!(
                    "more than {MAX_UPCAST_STEPS} steps; two upcasters lead back to each other"
                )));
            }
            let produced = step(event.data.clone()).map_err(&failed)?;
            pending.extend(produced.into_iter().rev());
        }
        Ok(done)
    }
}
