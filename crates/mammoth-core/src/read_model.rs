//! Read models in SQL tables, whatever the database: the names of a projection's versioned
//! tables ([`Tables`]), how one event of a batch fails ([`EventFailure`]), and what the
//! read-model administration reports ([`ReadModelStatus`], [`DeadLetter`], [`VerifyReport`]).
//! The drivers (`mammoth_sqlite::read_model`, and the PostgreSQL and MySQL ones) share them, so
//! `mammoth projections` prints the same thing on every backend.

use serde::Serialize;

use crate::{HandlerError, Position, ProjectionState};

/// The version number of the shadow tables `verify` builds.
pub const SHADOW_VERSION: u32 = 0;

/// The physical names of a projection's tables at one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    version: u32,
}

impl Tables {
    /// The tables of `version` (0 is the shadow).
    pub fn new(version: u32) -> Self {
        Self { version }
    }

    /// The version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The physical name of table `base`: `orders_v2`, or `orders_shadow` for version 0.
    pub fn name(&self, base: &str) -> String {
        if self.version == SHADOW_VERSION {
            format!("{base}_shadow")
        } else {
            format!("{base}_v{}", self.version)
        }
    }
}

/// One event of a batch failed: which one, and why.
#[derive(Debug)]
pub struct EventFailure {
    /// Its index in the batch.
    pub index: usize,
    /// The handler's error.
    pub error: HandlerError,
}

/// One version of one projection, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReadModelStatus {
    /// The projection.
    pub name: String,
    /// The tables' version (0 is a verify shadow).
    pub version: u32,
    /// True for the version the views point at.
    pub active: bool,
    /// Every event at or below it is applied.
    pub checkpoint: Position,
    /// The state its runner last recorded.
    pub state: ProjectionState,
    /// True when a pause was requested.
    pub pause_requested: bool,
    /// When the row last changed, in microseconds since the Unix epoch.
    pub updated_at_micros: i64,
}

/// A parked event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// The projection.
    pub name: String,
    /// The event's global position.
    pub position: Position,
    /// The event's id.
    pub event_id: String,
    /// Its stream.
    pub stream_id: String,
    /// Its type.
    pub event_type: String,
    /// The last error.
    pub error: String,
    /// How many times it was tried.
    pub attempts: u32,
}

/// Rows of one table that differ between the live version and the shadow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableDiff {
    /// The table's base name.
    pub table: String,
    /// How many rows the live table has that the shadow lacks.
    pub only_live: u64,
    /// How many rows the shadow has that the live table lacks.
    pub only_shadow: u64,
    /// Up to 20 of each, printed as `(col, col, ...)`.
    pub examples: Vec<String>,
}

/// What `verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The projection.
    pub name: String,
    /// The checkpoint both sides were compared at.
    pub checkpoint: Position,
    /// The live version compared.
    pub version: u32,
    /// Tables with differences (empty: the read model equals a fresh replay).
    pub differences: Vec<TableDiff>,
}

impl VerifyReport {
    /// True when every table matched.
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}
