//! Exit codes, and how an error becomes one: 1 runtime failure, 2 usage or configuration
//! error (or input the store rejected), 3 conflict. `mammoth --help` documents them.

use std::fmt;
use std::process::ExitCode;

use mammoth_core::StoreError;

/// A runtime failure: storage, I/O, a failed benchmark, events `--decode` could not decode.
pub const RUNTIME_FAILURE: u8 = 1;
/// Bad usage, a bad configuration, or input the store rejected before writing.
pub const USAGE: u8 = 2;
/// The stream was not at the expected version.
pub const CONFLICT: u8 = 3;

/// A mistake in how the command was called, found by the command itself (clap reports its
/// own with exit code 2 too).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Returns early from a command with a [`UsageError`].
macro_rules! usage_error {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::exit::UsageError(format!($($arg)*))))
    };
}
pub(crate) use usage_error;

/// A configuration that names something this build cannot do.
#[derive(Debug)]
pub struct ConfigProblem(pub String);

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigProblem {}

/// The exit code for `error`, from the first error in its chain that says what kind it is.
pub fn code_for(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.is::<UsageError>()
            || cause.is::<ConfigProblem>()
            || cause.is::<mammoth_config::ConfigError>()
        {
            return USAGE;
        }
        if let Some(store) = cause.downcast_ref::<StoreError>() {
            if store.is_conflict() {
                return CONFLICT;
            }
            if store.is_bad_input() {
                return USAGE;
            }
            return RUNTIME_FAILURE;
        }
    }
    RUNTIME_FAILURE
}

/// Prints `error` to stderr the way a user reads it and returns the exit code.
pub fn report(error: &anyhow::Error) -> ExitCode {
    let mut causes = error.chain();
    match causes.next() {
        // A configuration error prints as a compiler diagnostic: `file:line:col: error[E..]`,
        // the source line and a caret.
        Some(first) if first.is::<mammoth_config::ConfigError>() => eprintln!("{first}"),
        Some(first) => eprintln!("error: {first}"),
        None => {}
    }
    for cause in causes {
        eprintln!("  caused by: {cause}");
    }
    ExitCode::from(code_for(error))
}
