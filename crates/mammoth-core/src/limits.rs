//! Limits every driver enforces before it writes anything.

use serde::{Deserialize, Serialize};

/// Size limits of an append. Drivers check them before writing, so an append that breaks one
/// fails whole with a typed error and writes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The largest event accepted, in bytes of JSON data plus JSON metadata. Default 1 MiB.
    pub max_event_bytes: usize,
    /// The most events one append may carry. Default 4096.
    pub max_events_per_append: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 1024 * 1024,
            max_events_per_append: 4096,
        }
    }
}
