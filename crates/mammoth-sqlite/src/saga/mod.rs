//! The SQLite side of the saga runtime: [`SqliteTimerStore`], durable saga deadlines in the
//! event store's own file, and [`SagaIndex`], a read model with one row per saga (type, id,
//! status, reason, times, steps) that `mammoth sagas list` and `mammoth status` read.

mod index;
mod timers;

pub use index::{SAGA_INDEX, SagaCount, SagaIndex, SagaRow, counts, list};
pub use timers::SqliteTimerStore;
