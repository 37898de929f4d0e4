//! Runs the built `mammoth` binary in a temporary directory of its own, with a mammoth.tsk the
//! test writes, and captures what it prints.

#![allow(dead_code)] // each test binary uses its own part of the helpers

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

/// The binary under test.
pub const MAMMOTH: &str = env!("CARGO_BIN_EXE_mammoth");

/// A working directory with a configuration that puts the store in `store/events.db`.
pub struct Sandbox {
    dir: TempDir,
}

/// What one run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts exit code 0 and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success, got {self:#?}");
        &self.stdout
    }

    /// Asserts `code` and returns stderr.
    pub fn failed_with(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "expected exit code {code}, got {self:#?}");
        &self.stderr
    }

    /// stdout as JSON lines.
    pub fn json_lines(&self) -> Vec<Value> {
        self.ok()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
            .collect()
    }

    /// stdout as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("{self:#?}: {e}"))
    }
}

impl Sandbox {
    /// A fresh directory holding `mammoth.tsk` that points the SQLite store at
    /// `store/events.db`.
    pub fn new() -> Self {
        let sandbox = Self {
            dir: tempfile::tempdir().expect("temporary directory"),
        };
        sandbox.write(
            "mammoth.tsk",
            "# written by the test\n[event_store]\nbackend: \"sqlite\"\ndsn: \"sqlite://./store/events.db\"\n",
        );
        sandbox
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file in the directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// A `mammoth` command running in the directory, isolated from the caller's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(MAMMOTH);
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("MAMMOTH_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        command
    }

    /// Runs `mammoth args...` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        run(self.command(args))
    }

    /// Appends one event and returns the JSON the command printed.
    pub fn append(&self, stream: &str, event_type: &str, data: &str) -> Value {
        let run = self.run(&[
            "events", "append", stream, "--type", event_type, "--data", data, "--json",
        ]);
        run.json()
    }

    /// The number of events in the store.
    pub fn event_count(&self) -> u64 {
        self.run(&["events", "stats", "--json"]).json()["event_count"]
            .as_u64()
            .expect("event_count")
    }
}

/// Runs a prepared command to completion.
pub fn run(mut command: Command) -> Run {
    let output = command.output().expect("run mammoth");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
