//! The parsed tree: [`Value`]s with their [`Span`]s, and ordered [`Table`]s.
//!
//! The parser builds it with every operator already resolved; the typed layer reads it through
//! serde (see `de`). Positions survive so that type errors can name `file:line:col`.

use std::collections::HashMap;
use std::fmt;

use crate::secret::Secret;

/// A 1-based position in a file; `col` counts Unicode scalar values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub col: u32,
}

impl Span {
    /// A position.
    pub fn new(line: u32, col: u32) -> Self {
        Self { line, col }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A value with the position where it was written (an operator's value sits at its `@`).
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    kind: ValueKind,
    span: Span,
}

/// What a [`Value`] holds.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ValueKind {
    /// `null`, or an unset `@env` with a `null` default.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// A finite float.
    Float(f64),
    /// Text.
    String(String),
    /// Text from `@env.secure` or `@file.secure`.
    Secret(Secret<String>),
    /// `[ … ]`.
    Array(Vec<Value>),
    /// `[section]`, dotted keys or `{ … }`.
    Table(Table),
}

impl Value {
    /// A value at a position.
    pub fn new(kind: ValueKind, span: Span) -> Self {
        Self { kind, span }
    }

    /// What the value holds.
    pub fn kind(&self) -> &ValueKind {
        &self.kind
    }

    /// Where it was written.
    pub fn span(&self) -> Span {
        self.span
    }

    /// The table, if this value is one.
    pub fn as_table(&self) -> Option<&Table> {
        match &self.kind {
            ValueKind::Table(table) => Some(table),
            _ => None,
        }
    }

    pub(crate) fn as_table_mut(&mut self) -> Option<&mut Table> {
        match &mut self.kind {
            ValueKind::Table(table) => Some(table),
            _ => None,
        }
    }

    /// The text, if this value is a plain (not secret) string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            ValueKind::String(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of the value's type for messages, such as `"an integer"`.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            ValueKind::Null => "null",
            ValueKind::Bool(_) => "a boolean",
            ValueKind::Int(_) => "an integer",
            ValueKind::Float(_) => "a float",
            ValueKind::String(_) => "a string",
            ValueKind::Secret(_) => "a secret",
            ValueKind::Array(_) => "an array",
            ValueKind::Table(_) => "a table",
        }
    }
}

/// How a table came to be; decides whether it may be extended later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableOrigin {
    /// The file's root.
    Root,
    /// Created by a dotted key or as the parent of a `[a.b]` header: open to more keys.
    Implicit,
    /// Defined by a `[header]`: open to keys, but the header may not repeat.
    Header,
    /// Written as `{ … }`: closed once written.
    Inline,
}

/// One `key: value` of a table, with the key's own position.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    key: String,
    key_span: Span,
    value: Value,
}

impl Entry {
    /// The key (unquoted).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Where the key was first written.
    pub fn key_span(&self) -> Span {
        self.key_span
    }

    /// The value.
    pub fn value(&self) -> &Value {
        &self.value
    }
}

/// A table of entries in the order they were first written.
#[derive(Debug, Clone)]
pub struct Table {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    pub(crate) origin: TableOrigin,
}

impl PartialEq for Table {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Table {
    pub(crate) fn new(origin: TableOrigin) -> Self {
        Self {
            entries: Vec::new(),
            index: HashMap::new(),
            origin,
        }
    }

    /// The entries in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for `key`, if present.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.index.get(key).and_then(|&i| self.entries.get(i))
    }

    /// The value for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entry(key).map(Entry::value)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        let i = *self.index.get(key)?;
        self.entries.get_mut(i).map(|e| &mut e.value)
    }

    /// Adds an entry; the caller has checked that `key` is absent.
    pub(crate) fn push(&mut self, key: String, key_span: Span, value: Value) {
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push(Entry {
            key,
            key_span,
            value,
        });
    }

    /// Follows `keys` through nested tables: `["message_bus", "retry"]`.
    pub fn lookup<'a, I, S>(&self, keys: I) -> Option<&Value>
    where
        I: IntoIterator<Item = &'a S>,
        S: AsRef<str> + ?Sized + 'a,
    {
        let mut keys = keys.into_iter();
        let first = keys.next()?;
        let mut value = self.get(first.as_ref())?;
        for key in keys {
            value = value.as_table()?.get(key.as_ref())?;
        }
        Some(value)
    }

    /// The entry at the end of `keys`, for the position of a key rather than of its value.
    pub fn lookup_entry<S: AsRef<str>>(&self, keys: &[S]) -> Option<&Entry> {
        let (last, parents) = keys.split_last()?;
        let mut table = self;
        for key in parents {
            table = table.get(key.as_ref())?.as_table()?;
        }
        table.entry(last.as_ref())
    }
}
