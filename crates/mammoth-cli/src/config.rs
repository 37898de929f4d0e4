//! `mammoth config check`: load a configuration, report its errors where they are, and print
//! what it resolves to, secrets as `***`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::cli::GlobalOptions;
use crate::output::Output;
use crate::settings;

/// Configuration commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file and print the configuration it resolves to.
    ///
    /// Every key is shown with its value, defaults included; secrets (@env.secure,
    /// @file.secure) print as ***. An error names file:line:col and shows the line with a
    /// caret under the problem; the exit code is then 2.
    #[command(
        after_long_help = "Examples:\n  mammoth config check\n  mammoth config check config/production.tsk\n  mammoth config check --json"
    )]
    Check(CheckArgs),
}

/// Arguments of `config check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The file to check. Without it, the file the other commands would use (--config,
    /// $MAMMOTH_CONFIG, ./mammoth.tsk) or the built-in defaults.
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
}

/// Runs a configuration command.
///
/// # Errors
/// A configuration error (exit code 2) or an I/O failure printing.
pub fn run(command: ConfigCommand, global: &GlobalOptions) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Check(args) => check(args, global),
    }
}

fn check(args: CheckArgs, global: &GlobalOptions) -> anyhow::Result<()> {
    let path = args.path.or_else(|| global.config.clone());
    let settings = settings::load(path.as_deref())?;
    let mut out = Output::new(global.json);
    if out.is_json() {
        let config = serde_json::value::RawValue::from_string(settings.config.to_json())?;
        out.json_document(&serde_json::json!({
            "file": settings.file,
            "config": config,
        }))?;
    } else {
        let source = settings.file.as_ref().map_or_else(
            || "built-in defaults (no configuration file)".to_owned(),
            |file| file.display().to_string(),
        );
        out.line(format!("# configuration OK: {source}"))?;
        out.line(settings.config.render().trim_end())?;
    }
    out.flush()
}
