//! Stream ids and expected versions: the names and the preconditions of an append.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{StoreError, Version};

/// The longest stream id accepted, in bytes.
pub const MAX_STREAM_ID_BYTES: usize = 255;

/// A validated stream id such as `order-42`.
///
/// Its category is the text before the first `-` (`order`), or the whole id when it has none.
/// Ids are 1 to 255 bytes with no control characters. Ids starting with `$` are reserved for
/// mammoth's own streams (sagas, audit); [`StreamId::is_reserved`] tells them apart so that
/// user-facing entry points can refuse them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    /// Validates `id` and wraps it.
    ///
    /// # Errors
    /// [`StoreError::InvalidStreamId`] when the id is empty, longer than 255 bytes, or holds a
    /// control character.
    pub fn new(id: impl Into<String>) -> Result<Self, StoreError> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("it is empty")
        } else if id.len() > MAX_STREAM_ID_BYTES {
            Some("it is longer than 255 bytes")
        } else if id.chars().any(char::is_control) {
            Some("it contains a control character")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(StoreError::InvalidStreamId { id, reason }),
            None => Ok(Self(id)),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The category: the text before the first `-`, or the whole id.
    pub fn category(&self) -> &str {
        category_of(&self.0)
    }

    /// True for ids starting with `$`, which mammoth reserves for its own streams.
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with('$')
    }
}

/// The category of a stream id given as text: the part before the first `-`.
pub fn category_of(id: &str) -> &str {
    id.split_once('-').map_or(id, |(category, _)| category)
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl AsRef<str> for StreamId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StreamId {
    type Error = StoreError;
    fn try_from(id: String) -> Result<Self, StoreError> {
        Self::new(id)
    }
}

impl TryFrom<&str> for StreamId {
    type Error = StoreError;
    fn try_from(id: &str) -> Result<Self, StoreError> {
        Self::new(id)
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> String {
        id.0
    }
}

/// The precondition of an append: what the writer believes about the stream's current version.
///
/// Stream versions start at 1, so a stream with no events is at version 0 and `Exact(0)` means
/// the same as `NoStream`. A mismatch fails the append with [`StoreError::Conflict`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check: append whatever the stream holds.
    Any,
    /// The stream must have no events.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream must be exactly at this version.
    Exact(Version),
}

impl ExpectedVersion {
    /// True when a stream at `current` (0 = no events) satisfies this expectation.
    pub fn is_satisfied_by(self, current: Version) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => current == 0,
            Self::StreamExists => current > 0,
            Self::Exact(version) => current == version,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream | Self::Exact(0) => f.write_str("no stream"),
            Self::StreamExists => f.write_str("an existing stream"),
            Self::Exact(version) => write!(f, "version {version}"),
        }
    }
}

impl std::str::FromStr for ExpectedVersion {
    type Err = String;

    /// Parses `any`, `no-stream`, `exists` or a version number.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "any" => Ok(Self::Any),
            "no-stream" | "no_stream" | "nostream" => Ok(Self::NoStream),
            "exists" | "stream-exists" => Ok(Self::StreamExists),
            number => number.parse::<Version>().map(Self::Exact).map_err(|_| {
                format!(
                    "expected version `{text}` is not valid; use a version number, `any`, `no-stream` or `exists`"
                )
            }),
        }
    }
}
