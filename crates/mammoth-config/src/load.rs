//! Finding and reading the configuration file: `--config PATH`, else `MAMMOTH_CONFIG`, else
//! `./mammoth.tsk` if it exists, else the built-in defaults.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::document::{Document, base_dir_of};
use crate::env::{Env, ProcessEnv};
use crate::error::{ConfigError, Diagnostic, ErrorCode};
use crate::parse::MAX_FILE_BYTES;
use crate::typed::Config;

/// The variable naming the configuration file when `--config` is not given.
pub const CONFIG_ENV_VAR: &str = "MAMMOTH_CONFIG";
/// The file looked for in the working directory.
pub const DEFAULT_FILE_NAME: &str = "mammoth.tsk";

/// Why a file was chosen, for the message when it cannot be read.
#[derive(Clone, Copy)]
enum Origin {
    Flag,
    EnvVar,
    WorkingDir,
}

impl Config {
    /// Loads the configuration: `explicit` (an error if missing), else the file named by
    /// `MAMMOTH_CONFIG`, else `./mammoth.tsk` if it exists, else [`Config::default`]. Returns
    /// the file used, if any.
    ///
    /// # Errors
    /// E015 when a named file cannot be read, and every error of [`Config::from_str`].
    pub fn load(explicit: Option<&Path>) -> Result<(Self, Option<PathBuf>), ConfigError> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Self::load_with(explicit, &ProcessEnv, &cwd)
    }

    /// [`Config::load`] with the environment and working directory given (for tests).
    ///
    /// The returned path is the file as found, joined to `cwd` when relative. An empty
    /// `MAMMOTH_CONFIG` counts as unset.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_with(
        explicit: Option<&Path>,
        env: &dyn Env,
        cwd: &Path,
    ) -> Result<(Self, Option<PathBuf>), ConfigError> {
        let chosen = if let Some(path) = explicit {
            Some((path.to_path_buf(), Origin::Flag))
        } else if let Some(var) = env.var(CONFIG_ENV_VAR).filter(|v| !v.is_empty()) {
            Some((PathBuf::from(var), Origin::EnvVar))
        } else {
            let candidate = PathBuf::from(DEFAULT_FILE_NAME);
            cwd.join(&candidate)
                .is_file()
                .then_some((candidate, Origin::WorkingDir))
        };
        let Some((path, origin)) = chosen else {
            return Ok((Self::default(), None));
        };
        let full = cwd.join(&path);
        let bytes = read_config_file(&full, &path, origin)?;
        let doc = Document::parse_bytes_in(&bytes, &path, &base_dir_of(&full), env)?;
        let config = Self::from_document(&doc)?;
        Ok((config, Some(full)))
    }
}

fn read_config_file(full: &Path, shown: &Path, origin: Origin) -> Result<Vec<u8>, ConfigError> {
    let why = match origin {
        Origin::Flag => "check the --config path",
        Origin::EnvVar => "MAMMOTH_CONFIG names this file; fix the variable or unset it",
        Origin::WorkingDir => "check the file's permissions",
    };
    let fail = |message: String| {
        ConfigError::new(
            Diagnostic::new(ErrorCode::ConfigFile, message)
                .in_file(shown)
                .with_help(why),
        )
    };
    let file = std::fs::File::open(full).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => fail("config file not found".to_owned()),
        _ => fail(format!("cannot read config file: {e}")),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot read config file: {e}")))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".to_owned()));
    }
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_FILE_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read config file: {e}")))?;
    Ok(bytes)
}
