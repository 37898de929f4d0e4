//! The runtime's errors: [`CommandError`] for the write side (a domain rejection kept apart from
//! every infrastructure failure) and [`QueryError`] for the read side.

use std::time::Duration;

use mammoth_core::{CodecError, ExpectedVersion, Position, StoreError, StreamId, Version};

use crate::schema::SchemaViolation;

/// A boxed error, as middleware sees a handler's domain rejection.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a command did not complete. `E` is the domain's rejection type.
///
/// Only [`CommandError::Rejected`] comes from the domain; every other variant is about the
/// command's envelope or the infrastructure. In every error case nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError<E> {
    /// The aggregate refused the command: a business rule, not a failure.
    #[error("rejected: {0}")]
    Rejected(E),
    /// No handler is registered for this command type.
    #[error(
        "no handler is registered for command {command}; register one with CommandBusBuilder::handle"
    )]
    UnknownCommand {
        /// The command's name.
        command: &'static str,
    },
    /// The validation middleware refused the command's input.
    #[error("invalid {command}: {reason}")]
    Invalid {
        /// The command's name.
        command: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The authorization hook refused the command.
    #[error("{actor} may not run {command}: {reason}")]
    Unauthorized {
        /// The command's name.
        command: &'static str,
        /// Who asked (`anonymous` when the context names no actor).
        actor: String,
        /// Why not.
        reason: String,
    },
    /// Concurrent writers kept winning until the retry budget ran out.
    #[error(
        "stream \"{stream}\": expected {expected}, found version {actual}, still conflicting after {attempts} attempt(s); retry later"
    )]
    Conflict {
        /// The contended stream.
        stream: StreamId,
        /// What the last attempt expected.
        expected: ExpectedVersion,
        /// What the stream was at.
        actual: Version,
        /// Attempts made, including the first.
        attempts: u32,
    },
    /// The idempotency key was already used for another stream or another command.
    #[error(
        "idempotency key {key:?} was already used for a different request (stream \"{stream}\"); use a new key for a new request"
    )]
    IdempotencyKeyReused {
        /// The key.
        key: String,
        /// The stream that holds the key's events.
        stream: String,
    },
    /// An event broke its JSON Schema; nothing was written.
    #[error(transparent)]
    Schema(#[from] SchemaViolation),
    /// An event could not be encoded, upcast or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The event store failed.
    #[error(transparent)]
    Store(StoreError),
    /// A handler or middleware failed in a way none of the variants above describes.
    #[error("{command} failed: {message}")]
    Failed {
        /// The command's name.
        command: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl<E> From<StoreError> for CommandError<E> {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict {
                stream,
                expected,
                actual,
            } => Self::Conflict {
                stream,
                expected,
                actual,
                attempts: 1,
            },
            other => Self::Store(other),
        }
    }
}

impl<E> CommandError<E> {
    /// True for a domain rejection.
    pub fn is_rejected(&self) -> bool {
        matches!(self, Self::Rejected(_))
    }

    /// True for an optimistic-concurrency conflict.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// True when the same command may succeed if sent again unchanged: conflicts and transient
    /// store failures.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Conflict { .. } => true,
            Self::Store(error) => error.is_transient(),
            _ => false,
        }
    }

    /// The domain's rejection, if that is what this is.
    pub fn rejection(&self) -> Option<&E> {
        match self {
            Self::Rejected(error) => Some(error),
            _ => None,
        }
    }

    /// Converts the rejection type, keeping every other variant.
    pub fn map_rejection<F>(self, convert: impl FnOnce(E) -> F) -> CommandError<F> {
        match self {
            Self::Rejected(error) => CommandError::Rejected(convert(error)),
            Self::UnknownCommand { command } => CommandError::UnknownCommand { command },
            Self::Invalid { command, reason } => CommandError::Invalid { command, reason },
            Self::Unauthorized {
                command,
                actor,
                reason,
            } => CommandError::Unauthorized {
                command,
                actor,
                reason,
            },
            Self::Conflict {
                stream,
                expected,
                actual,
                attempts,
            } => CommandError::Conflict {
                stream,
                expected,
                actual,
                attempts,
            },
            Self::IdempotencyKeyReused { key, stream } => {
                CommandError::IdempotencyKeyReused { key, stream }
            }
            Self::Schema(violation) => CommandError::Schema(violation),
            Self::Codec(error) => CommandError::Codec(error),
            Self::Store(error) => CommandError::Store(error),
            Self::Failed { command, message } => CommandError::Failed { command, message },
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> CommandError<E> {
    /// Boxes the rejection, as the bus does before middleware sees the error.
    pub fn erase(self) -> CommandError<BoxError> {
        self.map_rejection(|error| Box::new(error) as BoxError)
    }
}

impl CommandError<BoxError> {
    /// Recovers the typed rejection of an erased error. A rejection of another type (only a
    /// misbehaving middleware can make one) becomes [`CommandError::Failed`].
    pub fn restore<E: std::error::Error + Send + Sync + 'static>(
        self,
        command: &'static str,
    ) -> CommandError<E> {
        match self {
            Self::Rejected(error) => match error.downcast::<E>() {
                Ok(error) => CommandError::Rejected(*error),
                Err(other) => CommandError::Failed {
                    command,
                    message: other.to_string(),
                },
            },
            other => other.map_rejection(|_| unreachable!("rejections are handled above")),
        }
    }
}

/// Why a query did not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// No handler is registered for this query type.
    #[error(
        "no handler is registered for query {query}; register one with QueryBusBuilder::handle"
    )]
    UnknownQuery {
        /// The query's name.
        query: &'static str,
    },
    /// The read model did not reach the requested position in time.
    #[error(
        "{query}: the read model reached position {reached}, not {wanted}, within {waited:?}; retry, or check the projection's lag"
    )]
    NotCaughtUp {
        /// The query's name.
        query: &'static str,
        /// The position the caller asked for (the position its command wrote).
        wanted: Position,
        /// Where the read model was when the wait ended.
        reached: Position,
        /// How long the bus waited.
        waited: Duration,
    },
    /// The query's input is invalid.
    #[error("invalid {query}: {reason}")]
    Invalid {
        /// The query's name.
        query: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Stored events could not be decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The handler failed in a way none of the variants above describes.
    #[error("{query} failed: {message}")]
    Failed {
        /// The query's name.
        query: &'static str,
        /// What went wrong.
        message: String,
    },
}
