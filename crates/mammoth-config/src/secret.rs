//! [`Secret`]: a value that never prints and is wiped from memory when dropped.
//!
//! `@env.secure` and `@file.secure` produce secrets, and only `Secret` fields of the typed
//! configuration accept them (a plain `String` field refuses one, so a secret cannot leak into
//! a field that logs or prints). A plain string may still fill a `Secret` field.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};
use zeroize::Zeroize;

/// The newtype-struct name through which the config deserializer recognises a `Secret` field.
pub(crate) const SECRET_MARKER: &str = "$mammoth_config::Secret";

/// What a secret prints as, in `Debug`, `Display`, `render` and JSON.
pub const REDACTED: &str = "***";

/// A sensitive value: `Debug`, `Display` and `Serialize` show `***`, and the memory is zeroed
/// on drop. Read it with [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself; keep the borrow short and never log it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T: Zeroize> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T: Zeroize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de, T: Zeroize + Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Zeroize + Deserialize<'de>> Visitor<'de> for SecretVisitor<T> {
            type Value = Secret<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret")
            }

            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Self::Value, D::Error> {
                T::deserialize(deserializer).map(Secret)
            }
        }

        // The marker name tells the config deserializer that this field may take a secret.
        deserializer.deserialize_newtype_struct(SECRET_MARKER, SecretVisitor(Default::default()))
    }
}
