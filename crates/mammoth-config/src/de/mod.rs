//! A serde `Deserializer` over the value tree, so typed structs fill with `#[derive]`.
//!
//! Every error is placed at the innermost value (or key) that caused it and names its dotted
//! key path. A secret value only passes into a field whose type is [`Secret`]: any other
//! request for it is refused without showing its text.
//!
//! [`Secret`]: crate::Secret

mod error;

use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

pub use error::DeError;

use crate::error::ErrorCode;
use crate::parse::quote_key;
use crate::secret::SECRET_MARKER;
use crate::value::{Entry, Span, Table, Value, ValueKind};

/// Fills `T` from a table (the file's root).
pub(crate) fn from_table<'de, T: de::Deserialize<'de>>(table: &Table) -> Result<T, DeError> {
    T::deserialize(TableDe {
        table,
        span: Span::new(1, 1),
        key: String::new(),
    })
}

fn child_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        quote_key(key)
    } else {
        format!("{parent}.{}", quote_key(key))
    }
}

fn secret_refused() -> DeError {
    DeError::new(
        ErrorCode::WrongType,
        "a secret (from @env.secure or @file.secure) can only fill a secret field",
    )
    .with_help("use @env(…) or @file(…) if this value is not secret")
}

/// Deserializes one value.
struct ValueDe<'a> {
    value: &'a Value,
    key: String,
}

impl<'de> Deserializer<'de> for ValueDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let span = self.value.span();
        let result = match self.value.kind() {
            ValueKind::Null => visitor.visit_unit(),
            ValueKind::Bool(b) => visitor.visit_bool(*b),
            ValueKind::Int(i) => visitor.visit_i64(*i),
            ValueKind::Float(f) => visitor.visit_f64(*f),
            ValueKind::String(s) => visitor.visit_str(s),
            ValueKind::Secret(_) => Err(secret_refused()),
            ValueKind::Array(items) => visitor.visit_seq(SeqDe {
                items: items.iter().enumerate(),
                key: &self.key,
            }),
            ValueKind::Table(table) => visitor.visit_map(MapDe::new(table, &self.key)),
        };
        result.map_err(|e| e.at(span, &self.key))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let span = self.value.span();
        let key = self.key.clone();
        match self.value.kind() {
            ValueKind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e| e.at(span, &key))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let span = self.value.span();
        let key = self.key.clone();
        match self.value.kind() {
            ValueKind::Secret(secret) if name == SECRET_MARKER => {
                visitor.visit_newtype_struct(SecretDe {
                    text: secret.expose(),
                })
            }
            _ => visitor.visit_newtype_struct(self),
        }
        .map_err(|e| e.at(span, &key))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let span = self.value.span();
        match self.value.kind() {
            ValueKind::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            ValueKind::Secret(_) => Err(secret_refused()),
            _ => {
                let names: Vec<String> = variants.iter().map(|v| format!("\"{v}\"")).collect();
                Err(DeError::new(
                    ErrorCode::WrongType,
                    format!(
                        "expected one of {}, found {}",
                        names.join(", "),
                        self.value.type_name()
                    ),
                ))
            }
        }
        .map_err(|e| e.at(span, &self.key))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

/// Deserializes the root table.
struct TableDe<'a> {
    table: &'a Table,
    span: Span,
    key: String,
}

impl<'de> Deserializer<'de> for TableDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor
            .visit_map(MapDe::new(self.table, &self.key))
            .map_err(|e| e.at(self.span, &self.key))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

/// Hands a secret's text to a `Secret<T>` field; errors never repeat the text.
struct SecretDe<'a> {
    text: &'a str,
}

impl<'de> Deserializer<'de> for SecretDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor
            .visit_string::<DeError>(self.text.to_owned())
            .map_err(|_| {
                DeError::new(
                    ErrorCode::WrongType,
                    "the secret does not fit this field's type",
                )
            })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

/// Deserializes a key, placing errors (such as an unknown field) at the key.
struct KeyDe<'a> {
    entry: &'a Entry,
    key: String,
}

impl<'de> Deserializer<'de> for KeyDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor
            .visit_str::<DeError>(self.entry.key())
            .map_err(|e| e.at(self.entry.key_span(), &self.key))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

struct MapDe<'a> {
    entries: std::slice::Iter<'a, Entry>,
    pending: Option<&'a Entry>,
    key: &'a str,
}

impl<'a> MapDe<'a> {
    fn new(table: &'a Table, key: &'a str) -> Self {
        Self {
            entries: table.entries().iter(),
            pending: None,
            key,
        }
    }
}

impl<'de> MapAccess<'de> for MapDe<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some(entry);
        seed.deserialize(KeyDe {
            entry,
            key: child_key(self.key, entry.key()),
        })
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(entry) = self.pending.take() else {
            return Err(DeError::new(
                ErrorCode::InvalidValue,
                "a value was read before its key",
            ));
        };
        seed.deserialize(ValueDe {
            value: entry.value(),
            key: child_key(self.key, entry.key()),
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct SeqDe<'a, I> {
    items: I,
    key: &'a str,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Value)> + ExactSizeIterator> SeqAccess<'de>
    for SeqDe<'_, I>
{
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((i, value)) = self.items.next() else {
            return Ok(None);
        };
        seed.deserialize(ValueDe {
            value,
            key: format!("{}[{i}]", self.key),
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}
