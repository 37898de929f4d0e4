//! Where `@env(...)` and `MAMMOTH_CONFIG` read environment variables from.
//!
//! The reader never calls `std::env` directly: it asks an [`Env`]. [`ProcessEnv`] is the real
//! process environment; tests pass a map or a closure instead, so they need not mutate the
//! process environment (which Rust 2024 makes `unsafe`).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;

/// A source of environment variables.
pub trait Env {
    /// The variable's value, `None` when unset. An empty value is set.
    fn var(&self, name: &str) -> Option<OsString>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }
}

/// No variables at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyEnv;

impl Env for EmptyEnv {
    fn var(&self, _name: &str) -> Option<OsString> {
        None
    }
}

impl<F> Env for F
where
    F: Fn(&str) -> Option<String>,
{
    fn var(&self, name: &str) -> Option<OsString> {
        self(name).map(OsString::from)
    }
}

impl<S: std::hash::BuildHasher> Env for HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<OsString> {
        self.get(name).map(OsString::from)
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<OsString> {
        self.get(name).map(OsString::from)
    }
}

impl Env for [(&str, &str)] {
    fn var(&self, name: &str) -> Option<OsString> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| OsString::from(*v))
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<OsString> {
        self.as_slice().var(name)
    }
}
