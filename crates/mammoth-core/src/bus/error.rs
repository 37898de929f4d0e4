//! [`BusError`]: every way a message bus operation can fail, as data a caller can act on.

/// Why a message bus operation failed.
///
/// Input errors (`InvalidName`, `InvalidInput`) are raised before anything is written.
/// [`BusError::Backend`] carries driver and broker failures and says whether retrying may help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// A topic or consumer group name the bus cannot use.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// `"topic"` or `"consumer group"`.
        kind: &'static str,
        /// The rejected name.
        name: String,
        /// What is wrong with it and what would be accepted.
        reason: &'static str,
    },

    /// An argument the operation cannot accept (an empty publish, a zero limit, ...).
    #[error("{0}")]
    InvalidInput(String),

    /// The bus (or its storage, or its broker) failed.
    #[error("{backend} bus: {action} failed: {source}")]
    Backend {
        /// The driver: `"sqlite"`, `"nats"`, `"redis"`, `"memory"`.
        backend: &'static str,
        /// What was being done, such as `"publishing"`.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        /// True when the same call may succeed if retried (a busy database, a broker
        /// reconnecting).
        transient: bool,
    },

    /// The bus was closed.
    #[error("the message bus is closed")]
    Closed,
}

impl BusError {
    /// A backend failure.
    pub fn backend(
        backend: &'static str,
        action: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
        transient: bool,
    ) -> Self {
        Self::Backend {
            backend,
            action,
            source: source.into(),
            transient,
        }
    }

    /// True when retrying the same call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Backend {
                transient: true,
                ..
            }
        )
    }
}
