//! The rows of the saga index, the read model with one row per saga that every backend's
//! saga index keeps (`mammoth_sqlite::saga::SagaIndex`, `mammoth_postgres::saga_index`,
//! `mammoth_mysql::saga_index`) and that `mammoth sagas list` and `/admin/sagas` show. Plain
//! data, so each backend's queries return the same types.

use serde::{Deserialize, Serialize};

/// The saga index's projection name, and the name of its view in every backend.
pub const SAGA_INDEX: &str = "saga_index";

/// One saga as the index holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaRow {
    /// The saga type.
    pub saga_type: String,
    /// The saga id.
    pub saga_id: String,
    /// Its status.
    pub status: String,
    /// Why it is compensating, compensated or failed.
    pub reason: Option<String>,
    /// Its first step, microseconds since the Unix epoch.
    pub started_micros: i64,
    /// Its last step.
    pub updated_micros: i64,
    /// How many steps it took.
    pub steps: u64,
}

/// How many sagas of one type are in one status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaCount {
    /// The saga type.
    pub saga_type: String,
    /// The status.
    pub status: String,
    /// How many.
    pub count: u64,
}
