//! mammoth's configuration (temporary lib while building).
mod document;
mod env;
mod error;
mod parse;
mod secret;
mod value;
pub use document::Document;
pub use env::{EmptyEnv, Env, ProcessEnv};
pub use error::{ConfigError, Diagnostic, ErrorCode};
pub use secret::Secret;
pub use value::{Entry, Span, Table, Value, ValueKind};
